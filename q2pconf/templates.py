"""Commented config files `q2pconf init --template NAME` writes, one per kind of machine."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from q2pconf.cluster_templates import pbs_toml, slurm_toml
from q2pconf.default import vendored_toml

# name -> function of the target path returning the file's text
TEMPLATES: dict[str, Callable[[Path], str]] = {
    "local": vendored_toml,
    "slurm": slurm_toml,
    "pbs": pbs_toml,
}


def render(name: str, path: Path) -> str:
    return TEMPLATES[name](path)
