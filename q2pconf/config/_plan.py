"""A checked config (`Plan`), the Parsl objects it names (`ObjectSpec`), and the checker's
reporting core (`Report`), below the checker and its rule modules, which all use them."""
from __future__ import annotations

from typing import Any, NamedTuple

from q2pconf._base.errors import ConfigError


class ObjectSpec(NamedTuple):
    """A table that becomes a Parsl object: `kind` namespace, class name, checked keywords."""

    kind: str
    cls: str
    kwargs: dict[str, Any]
    key: str


class Plan(NamedTuple):
    """A checked config: ready to build, without anything built yet."""

    file: str
    options: dict[str, Any]
    executors: dict[str, ObjectSpec]
    mapping: dict[str, str]
    warnings: tuple[str, ...] = ()
    vendored_executors: bool = False

    @property
    def mapping_only(self) -> bool:
        """The file holds only a mapping (QIIME 2: a config of None): it applies to whichever
        config is in force, and its labels are checked when it meets that config's executors."""
        return self.vendored_executors and not self.options


class Report:
    """The checker's reporting core: errors at a key as the file wrote it, and warnings.
    The rule modules (_limits, _local_limits, _autoscale) report through it."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.warnings: list[str] = []
        self.origins: dict[str, str] = {}  # key path after a legacy translation -> as written

    def fail(self, key: str, problem: str, fix: str = "") -> ConfigError:
        """The error, at the key as the file wrote it (not as a legacy translation moved it)."""
        return ConfigError(self.file, self.origin(key), problem, fix)

    def origin(self, key: str) -> str:
        """`key` (or the key it is under) as the file wrote it."""
        for new, old in self.origins.items():
            if key == new or key.startswith((new + ".", new + "[")):
                return old + key[len(new):]
        return key

    def written(self, key: str) -> str:
        """The name the file gave the setting at `key`: what a fix tells the user to write."""
        return self.origin(key).rpartition(".")[2]

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{self.file}: {key}: {message}")
