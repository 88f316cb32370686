"""Finding and checking a config never imports Parsl; building one does."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from configs import config, htex, slurm, threads
from conftest import LOOKUP_VARS

CODE = """
import json, sys
import q2pconf
settings = q2pconf.load()
checked = q2pconf.check(sys.argv[1])
before = sorted(m for m in sys.modules if m == "parsl" or m.startswith("parsl."))
if sys.argv[2] == "build":
    checked.parsl_config()
after = sorted(m for m in sys.modules if m == "parsl" or m.startswith("parsl."))
print(json.dumps({"source": settings.source, "labels": list(checked.labels),
                  "before": before, "after": after}))
"""
LEGACY = config(threads("default", max_threads=2),
                htex("htex", max_workers=2, provider=slurm(partition="short",
                                                           launcher="SrunLauncher")),
                strategy="None")


def run(tmp_path: Path, mode: str, conda: bool) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in LOOKUP_VARS}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               XDG_CONFIG_DIRS=str(tmp_path / "site"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    if conda:
        (tmp_path / "env").mkdir()
        env["CONDA_PREFIX"] = str(tmp_path / "env")
    path = tmp_path / "legacy.toml"
    path.write_text(LEGACY)
    result = subprocess.run([sys.executable, "-c", CODE, str(path), mode], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("conda", [False, True], ids=["in-memory", "seeded-prefix"])
def test_load_and_check_do_not_import_parsl(tmp_path, conda):
    data = run(tmp_path, "check", conda)
    assert data["source"] == ("vendored" if conda else "in-memory")
    assert data["labels"] == ["default", "htex"]
    assert data["before"] == [] and data["after"] == []


def test_building_imports_parsl(tmp_path):
    data = run(tmp_path, "build", conda=False)
    assert data["before"] == []
    assert "parsl" in data["after"] and "parsl.config" in data["after"]
    assert "parsl.providers" in data["after"]


def test_plain_import_is_cheap():
    code = ("import sys, q2pconf; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('parsl', 'q2pconf')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['q2pconf']"


def test_public_check_is_the_function_after_load():
    """No submodule shares a public function's name (it would replace it once imported)."""
    code = "import q2pconf; q2pconf.from_dict({'parsl': {}}); print(callable(q2pconf.check))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == "True", result.stderr
