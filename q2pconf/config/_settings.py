"""The public entry points: find a config, check it, and build Parsl objects from it."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from q2pconf._base.tomlfile import read_regular, read_toml
from q2pconf._base.errors import ConfigError, shallow
from q2pconf.config._find import Located, Looked, locate
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

# The validator (q2pconf.config._validate and its rules) is imported when a config is checked, not
# with this module: `from q2pconf import parallel_pipeline` does not load it.
if TYPE_CHECKING:
    from q2pconf.config._plan import Plan

T = TypeVar("T")

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
        """A `parsl.Config` (imports Parsl); see `q2pconf.config._build.parsl_config`."""
        from q2pconf.config._build import parsl_config

        return parsl_config(self.plan, labels, **defaults)

    @shallow
    def executor(self, label: str) -> Any:
        """A new, unstarted Parsl executor for `label`."""
        from q2pconf.config._build import executor

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
    """Find the config as QIIME 2 does (see `q2pconf.config._find.locate`) and check it."""
    found = locate(explicit, seed=seed)
    settings = _settings(found)
    _report(settings.warnings)
    return settings


@shallow
def check(path: str | os.PathLike[str]) -> Settings:
    """Read and check one file. Writes nothing, starts nothing, imports no Parsl. Its
    warnings also name what a pipeline would meet: a mapping-only file's labels that the
    executors in force lack."""
    from q2pconf.config._validate import unmatched_labels

    settings = _settings(Located(Path(path), "explicit"))
    more = unmatched_labels(settings.plan)
    if not more:
        return settings
    return settings._replace(plan=settings.plan._replace(warnings=settings.warnings + more))


@shallow
def from_dict(doc: dict[str, Any], file: str = "<dict>") -> Settings:
    """Check a config already parsed into a dict (QIIME 2's `get_config_from_dict`)."""
    from q2pconf.config._validate import plan

    return Settings(None, "explicit", plan(doc, file, _vendored))


def vendored() -> Settings:
    """The vendored default, held in memory."""
    from q2pconf.config._validate import plan

    return Settings(None, "in-memory", plan(_vendored(), IN_MEMORY))


def _settings(found: Located) -> Settings:
    from q2pconf.config._validate import plan

    if found.path is None:
        return Settings(None, found.source, vendored().plan, found.trail)
    doc = _reading(found, lambda: read_toml(found.path))
    return Settings(found.path, found.source, plan(doc, str(found.path), _vendored),
                    found.trail)


def _reading(found: Located, read: Callable[[], T]) -> T:
    """`read()`; a file $QIIME2_CONFIG names that cannot be read says so, and how to unset it."""
    try:
        return read()
    except ConfigError as error:
        if found.source != "QIIME2_CONFIG":
            raise
        raise ConfigError(error.file, error.key, f"{error.problem} (named by $QIIME2_CONFIG)",
                          f"{error.fix}, or unset QIIME2_CONFIG") from None


# -- a pipeline call's lookup: an unchanged file is not read and checked again ---------------

# A file's stat is a stamp that can miss an edit: two writes of the same size within one tick
# of the file system's clock (on some, a whole second or two) leave the same mtime. So a file
# is known by the sha256 of its bytes, read again only while its stat cannot vouch for it: the
# stat changed, or the file was younger than RACY_NS when last read ("racily clean", as git
# says of its index).
RACY_NS = 3_000_000_000


class _Seen(NamedTuple):
    """A config file as last read: its stat then, the digest of its bytes, and whether that
    stat was too young to vouch for the bytes."""

    stat: tuple[int, ...]
    digest: str
    racy: bool


class _Checked(NamedTuple):
    """A config file as the lookup last checked it."""

    digest: str
    plan: Plan
    text: str


_SEEN: dict[str, _Seen] = {}
_CHECKED: dict[str, _Checked] = {}
_VENDORED_PLAN: list[tuple[dict[str, Any], Plan]] = []  # (the vendored doc, its plan)


@shallow
def load_current(explicit: str | os.PathLike[str] | None = None) -> Settings:
    """`load()` for a pipeline call or a `ParallelConfig` block: the same lookup, made again
    on every call, but a file found unchanged since it was last checked (see `file_digest`)
    is not read and checked again, and neither is an unchanged vendored default."""
    found = locate(explicit)
    if found.path is None:
        settings = Settings(None, found.source, _vendored_plan(), found.trail)
    else:
        settings = Settings(found.path, found.source, _checked(found).plan, found.trail)
    _report(settings.warnings)
    return settings


def file_digest(path: str | os.PathLike[str]) -> str:
    """The sha256 of a config file's bytes, read again only when its stat cannot vouch for
    them. Raises ConfigError when the file cannot be read."""
    return _look(os.fspath(path))[0]


def checked_digest(settings: Settings) -> str:
    """The digest of the bytes `settings` were checked from, when `load_current` checked
    them; else the digest of the file now. Raises ConfigError when it cannot be read."""
    checked = _CHECKED.get(str(settings.path))
    if checked is not None and checked.plan is settings.plan:
        return checked.digest
    return file_digest(settings.path or "")


def checked_text(settings: Settings) -> str | None:
    """The text of the file `settings` were checked from: kept by `load_current`, else read
    now (None if it cannot be)."""
    checked = _CHECKED.get(str(settings.path))
    if checked is not None and checked.plan is settings.plan:
        return checked.text
    try:
        return Path(settings.path or "").read_text()
    except OSError:
        return None


def _checked(found: Located) -> _Checked:
    from q2pconf.config._validate import plan

    key = str(found.path)
    digest, data = _reading(found, lambda: _look(key))
    checked = _CHECKED.get(key)
    if checked is not None and checked.digest == digest:
        return checked
    if data is None:  # looked at since, but never checked in that state
        digest, data = _reading(found, lambda: _read(key))
    doc = _reading(found, lambda: read_toml(key, data))
    checked = _Checked(digest, plan(doc, key, _vendored), data.decode("utf-8"))
    _CHECKED[key] = checked
    return checked


def _look(path: str) -> tuple[str, bytes | None]:
    """The file's digest, and its bytes if it had to be read to know it."""
    seen = _SEEN.get(path)
    if seen is not None and not seen.racy and seen.stat == _stat(path):
        return seen.digest, None
    return _read(path)


def _read(path: str) -> tuple[str, bytes]:
    """The file's digest and bytes, read now; its stat is taken before, so an edit made while
    it is read is seen by the next look."""
    import hashlib

    stat = _stat(path)
    data = read_regular(path)
    digest = hashlib.sha256(data).hexdigest()
    _SEEN[path] = _Seen(stat, digest, racy=not stat or time.time_ns() - stat[2] < RACY_NS)
    return digest, data


def _stat(path: str) -> tuple[int, ...]:
    """What changes when a file is edited or replaced; () when it cannot be read."""
    try:
        info = os.stat(path)
    except OSError:
        return ()
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


def _vendored_plan() -> Plan:
    """The vendored default's plan, checked again only when the default changed (its workers
    follow the CPUs this process may use)."""
    from q2pconf.config._validate import plan

    doc = _vendored()
    if not _VENDORED_PLAN or _VENDORED_PLAN[0][0] != doc:
        _VENDORED_PLAN[:] = [(doc, plan(_vendored(), IN_MEMORY))]
    return _VENDORED_PLAN[0][1]


def _vendored() -> dict[str, Any]:
    from q2pconf.config._templates import vendored_dict

    return vendored_dict()


def _report(warnings: Iterable[str]) -> None:
    """Each warning once per process: every pipeline call loads the config again."""
    from q2pconf._base.errors import warn_once

    for message in warnings:
        warn_once(message)
