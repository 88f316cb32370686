"""The public entry points: find a config, check it, and build Parsl objects from it."""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from q2pconf.tomlfile import read_toml
from q2pconf.validate import Plan, plan
from q2pconf.errors import ConfigError, shallow
from q2pconf.find import Located, Looked, locate
from typing import Any, NamedTuple

IN_MEMORY = "<built-in default>"
DEFAULT_LABEL = "default"  # unmapped steps run here; every config must have it


class Settings(NamedTuple):
    """A checked config and where it came from. Nothing is started until you build from it."""

    path: Path | None
    source: str
    plan: Plan
    trail: tuple[Looked, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.plan.executors)

    @property
    def mapping(self) -> dict[str, str]:
        return dict(self.plan.mapping)

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.plan.warnings

    def label_for(self, action: str, plugin: str | None = None) -> str | None:
        """The executor the mapping sends `action` to ("plugin.action" first), or None."""
        return mapped_label(self.plan.mapping, action, plugin)

    def executor_class(self, label: str) -> str:
        return self.plan.executors[label].cls

    def workers(self, label: str) -> int | None:
        """Workers per node (or threads) the file asks for, when it says."""
        kwargs = self.plan.executors[label].kwargs
        for key in ("max_threads", "max_workers_per_node", "max_workers_per_block"):
            if isinstance(kwargs.get(key), int):
                return kwargs[key]
        return None

    @shallow
    def parsl_config(self, labels: Iterable[str] | None = None, **defaults: Any) -> Any:
        """A `parsl.Config` (imports Parsl); see `q2pconf.build.parsl_config`."""
        from q2pconf.build import parsl_config

        return parsl_config(self.plan, labels, **defaults)

    @shallow
    def executor(self, label: str) -> Any:
        """A new, unstarted Parsl executor for `label`."""
        from q2pconf.build import executor

        return executor(self.plan, label)


def mapped_label(mapping: Mapping[str, str], name: str, plugin: str | None) -> str | None:
    """The label a flat mapping gives a step: "plugin.name" first, then "name"; else None."""
    if plugin is not None and f"{plugin}.{name}" in mapping:
        return mapping[f"{plugin}.{name}"]
    return mapping.get(name)


def choose_executor(mapping: Mapping[str, str], labels: Iterable[str], name: str,
                    plugin: str | None = None, hint: str | None = None) -> str:
    """The one rule for where a step runs: the mapping ("plugin.name", then "name"), else the
    step's own `@step(executor=...)` hint when an executor has that label, else "default"."""
    label = mapped_label(mapping, name, plugin)
    if label is not None:
        return label
    return hint if hint is not None and hint in labels else DEFAULT_LABEL


@shallow
def load(explicit: str | os.PathLike[str] | None = None, *, seed: bool = True) -> Settings:
    """Find the config as QIIME 2 does (see `q2pconf.find.locate`) and check it."""
    found = locate(explicit, seed=seed)
    settings = _settings(found)
    _report(settings.warnings)
    return settings


@shallow
def check(path: str | os.PathLike[str]) -> Settings:
    """Read and check one file. Writes nothing, starts nothing, imports no Parsl."""
    return _settings(Located(Path(path), "explicit"))


@shallow
def from_dict(doc: dict[str, Any], file: str = "<dict>") -> Settings:
    """Check a config already parsed into a dict (QIIME 2's `get_config_from_dict`)."""
    return Settings(None, "explicit", plan(doc, file, _vendored))


def vendored() -> Settings:
    """The vendored default, held in memory."""
    return Settings(None, "in-memory", plan(_vendored(), IN_MEMORY))


def _settings(found: Located) -> Settings:
    if found.path is None:
        return Settings(None, found.source, vendored().plan, found.trail)
    try:
        doc = read_toml(found.path)
    except ConfigError as error:
        if found.source != "QIIME2_CONFIG":
            raise
        raise ConfigError(error.file, error.key, f"{error.problem} (named by $QIIME2_CONFIG)",
                          f"{error.fix}, or unset QIIME2_CONFIG") from None
    return Settings(found.path, found.source, plan(doc, str(found.path), _vendored),
                    found.trail)


def _vendored() -> dict[str, Any]:
    from q2pconf.templates import vendored_dict

    return vendored_dict()


def _report(warnings: Iterable[str]) -> None:
    """Each warning once per process: every pipeline call loads the config again."""
    from q2pconf.errors import warn_once

    for message in warnings:
        warn_once(message)
