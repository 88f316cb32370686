"""Keys older QIIME 2 configs use that today's Parsl removed: translate, drop, or refuse.

A rule applies only when the installed Parsl no longer accepts the old key, so the same file
keeps working on old and new Parsl alike.
"""
from __future__ import annotations

from collections.abc import Mapping

from q2pconf._base.errors import ConfigError

from typing import Any

# Classes older QIIME 2 configs name that Parsl has since removed: (what happened, the fix).
REMOVED = {
    "AdHocProvider": ("was removed from Parsl in 2024.12 (with channels)",
                      "use LocalProvider, or a batch scheduler's provider on the cluster"),
    "LocalChannel": ("was removed from Parsl in 2024.12", "delete the channel table"),
    "SSHChannel": ("was removed from Parsl in 2024.12",
                   "run the pipeline on the cluster's login node with the scheduler's provider"),
}
RENAMED = {"max_workers": "max_workers_per_node"}
DROPPED = {
    "start_method": "Parsl chooses how workers start",
    "move_files": "providers no longer move files (channels were removed in Parsl 2024.12)",
}
# Old keys that cannot be translated: (the key that replaced them, or None; the fix). The fix
# is given only where the installed Parsl has that key (else the checker names the unknown key).
REFUSED = {
    "worker_ports": ("worker_port", "write worker_port = 54000 in its place (one port replaced "
                     "the two), or remove it to let Parsl choose"),
    "channels": (None, "channels were removed in Parsl 2024.12; delete it"),
}
# Old Config keys that now belong to the memoizer object: old name -> its name there.
MEMOIZER_KEYS = {"checkpoint_mode": "checkpoint_mode", "checkpoint_files": "checkpoint_files",
                 "checkpoint_period": "checkpoint_period", "app_cache": "memoize"}
# Keys Parsl once took as true/false and now reads as a level (0 off): Parsl still takes a
# bool there (typeguard lets it pass as an int), and reads true as level 1.
LEVELS = {"usage_tracking": "usage tracking is a level from 0 (off) to 3 in today's Parsl"}


def refuse_removed(file: str, name: str, key: str) -> None:
    """Raise ConfigError when `name` is a class Parsl has removed."""
    if name in REMOVED:
        problem, fix = REMOVED[name]
        raise ConfigError(file, key, f"{name} {problem}", fix)


def translate(file: str, kind: str, table: dict[str, Any], key: str,
              params: Mapping[str, object]
              ) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """`table` with old keys rewritten for the installed Parsl (whose keywords are `params`),
    a warning per rewritten or dropped key, and where each rewritten key came from (its new key
    path -> the path the file wrote). Raises ConfigError for keys that cannot work.
    Works both ways: an old file on today's Parsl, and a file written for today's Parsl
    (a memoizer table) on an older Parsl that the project still supports."""
    translation = _Translation(file, kind, key, params)
    for arg, value in table.items():
        translation.add(arg, value, table)
    return translation.finish()


class _Translation:
    """One table's translation, key by key."""

    def __init__(self, file: str, kind: str, key: str, params: Mapping[str, object]) -> None:
        self.file, self.kind, self.key, self.params = file, kind, key, params
        self.out: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.origins: dict[str, str] = {}
        self.memoizer: dict[str, Any] = {}
        self.memoizer_class = _memoizer_class(params) if kind == "config" else None

    def add(self, arg: str, value: Any, table: dict[str, Any]) -> None:
        where = f"{self.key}.{arg}"
        if self.kind == "provider" and arg == "channel":  # q2pconf builds no channel on any Parsl
            self.warnings.append(_channel(self.file, value, where))
        elif arg in LEVELS and isinstance(value, bool) and _level(self.params.get(arg)):
            self.out[arg] = int(value)
            self.warnings.append(f"{self.file}: {where}: {LEVELS[arg]}, and Parsl reads "
                                 f"{str(value).lower()} as {int(value)}; write {arg} = "
                                 f"{int(value)}")
        elif arg in self.params:
            self.out[arg] = value
        elif arg in RENAMED and RENAMED[arg] in self.params:
            new = _renamed(self.file, arg, table, where)
            self.out[new] = _whole(value)
            self.origins[f"{self.key}.{new}"] = where
            self.warnings.append(f"{self.file}: {where}: is called {new} in today's Parsl; "
                                 f"write {new} = {self.out[new]} (translated for now)")
        elif arg in DROPPED:
            self.warnings.append(f"{self.file}: {where}: is ignored: {DROPPED[arg]}; delete it")
        elif arg in REFUSED and REFUSED[arg][0] in (None, *self.params):
            raise ConfigError(self.file, where, "is no longer a Parsl setting", REFUSED[arg][1])
        elif arg in MEMOIZER_KEYS and self.takes_memoizer_key(MEMOIZER_KEYS[arg]):
            self.to_memoizer(arg, value, where)
        elif self.kind == "config" and arg == "memoizer" and _basic_memoizer(value):
            self.out.update(_unpacked(value))  # this older Parsl takes checkpoint keys on Config
        else:
            self.out[arg] = value  # unknown: the checker names it with a suggestion

    def takes_memoizer_key(self, name: str) -> bool:
        if self.memoizer_class is None:
            return False
        from q2pconf._catalog import accepted as catalog

        return name in catalog.parameters("memoizer", self.memoizer_class)

    def to_memoizer(self, arg: str, value: Any, where: str) -> None:
        new = MEMOIZER_KEYS[arg]
        self.memoizer[new] = value
        self.origins[f"{self.key}.memoizer.{new}"] = where
        self.warnings.append(f"{self.file}: {where}: moved into the memoizer in today's Parsl; "
                             f"write [{self.key}.memoizer] with class = "
                             f"\"{self.memoizer_class}\" and {new} = ... (translated for now)")

    def finish(self) -> tuple[dict[str, Any], list[str], dict[str, str]]:
        if self.memoizer:
            if "memoizer" in self.out:
                raise ConfigError(self.file, f"{self.key}.memoizer", "is set together with old "
                                  "checkpoint keys", "move the checkpoint keys into the "
                                  "memoizer table")
            self.out["memoizer"] = {"class": self.memoizer_class, **self.memoizer}
        return self.out, self.warnings, self.origins


def _memoizer_class(params: Mapping[str, object]) -> str | None:
    """The memoizer class old checkpoint keys move into: one of the installed Parsl's that
    takes them (BasicMemoizer today), or None when its Config takes no memoizer."""
    if "memoizer" not in params:
        return None
    from q2pconf._catalog import accepted as catalog

    for name in sorted(catalog.names("memoizer")):
        if set(MEMOIZER_KEYS.values()) & set(catalog.parameters("memoizer", name)):
            return name
    return None


def _level(param: object) -> bool:
    """The keyword takes a whole number and not true/false (its annotation today)."""
    accepts = getattr(param, "accepts", frozenset())
    return "int" in accepts and "bool" not in accepts


def _renamed(file: str, arg: str, table: dict[str, Any], where: str) -> str:
    new = RENAMED[arg]
    if new in table:
        raise ConfigError(file, where, f"is the old name of {new}, which is set too",
                          f"remove {arg}")
    return new


def _basic_memoizer(value: Any) -> bool:
    return isinstance(value, dict) and value.get("class") == "BasicMemoizer"


def _unpacked(memoizer: dict[str, Any]) -> dict[str, Any]:
    """A BasicMemoizer table as the Config keywords Parsl used before memoizer objects."""
    old = {new: old for old, new in MEMOIZER_KEYS.items()}
    return {old.get(arg, arg): value for arg, value in memoizer.items() if arg != "class"}


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # anything else is checked (and refused) like a new-style value


def _channel(file: str, value: Any, where: str) -> str:
    """The warning for a LocalChannel (the default, so harmless); other channels are refused."""
    cls = value.get("class") if isinstance(value, dict) else None
    if cls == "LocalChannel":
        return (f"{file}: {where}: is ignored: channels were removed in Parsl 2024.12 and "
                "LocalChannel was the default; delete the channel table")
    raise ConfigError(file, where, f"{cls or 'a channel'} cannot work: channels were removed in "
                      "Parsl 2024.12", "run the pipeline on the cluster itself and delete "
                      "the channel table")
