"""Keys older QIIME 2 configs use that today's Parsl removed: translate, drop, or refuse.

A rule applies only when the installed Parsl no longer accepts the old key, so the same file
keeps working on old and new Parsl alike.
"""
from __future__ import annotations

from collections.abc import Mapping

from q2pconf.errors import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see q2pconf.records)
if TYPE_CHECKING:
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
REFUSED = {
    "worker_ports": "it was replaced by worker_port (one port): write worker_port = N",
    "channels": "channels were removed in Parsl 2024.12; delete it",
}
# Old Config keys that now belong to the memoizer object.
MEMOIZER_KEYS = {"checkpoint_mode": "checkpoint_mode", "checkpoint_files": "checkpoint_files",
                 "checkpoint_period": "checkpoint_period", "app_cache": "memoize"}


def refuse_removed(file: str, name: str, key: str) -> None:
    """Raise ConfigError when `name` is a class Parsl has removed."""
    if name in REMOVED:
        problem, fix = REMOVED[name]
        raise ConfigError(file, key, f"{name} {problem}", fix)


def translate(file: str, kind: str, table: dict[str, Any], key: str,
              params: Mapping[str, object]) -> tuple[dict[str, Any], list[str]]:
    """`table` with old keys rewritten for the installed Parsl (whose keywords are `params`),
    and a warning per rewritten or dropped key. Raises ConfigError for keys that cannot work.
    Works both ways: an old file on today's Parsl, and a file written for today's Parsl
    (a memoizer table) on an older Parsl that the project still supports."""
    warnings: list[str] = []
    out: dict[str, Any] = {}
    memoizer: dict[str, Any] = {}
    for arg, value in table.items():
        where = f"{key}.{arg}"
        if kind == "provider" and arg == "channel":  # q2pconf builds no channel on any Parsl
            warnings.append(_channel(file, value, where))
        elif arg in params:
            out[arg] = value
        elif arg in RENAMED and RENAMED[arg] in params:
            new = _renamed(file, arg, table, where)
            out[new] = _whole(value)
            warnings.append(f"{file}: {where}: is called {new} in today's Parsl; "
                            f"write {new} = {out[new]} (translated for now)")
        elif arg in DROPPED:
            warnings.append(f"{file}: {where}: is ignored: {DROPPED[arg]}; delete it")
        elif arg in REFUSED:
            raise ConfigError(file, where, "is no longer a Parsl setting", REFUSED[arg])
        elif kind == "config" and arg in MEMOIZER_KEYS and "memoizer" in params:
            memoizer[MEMOIZER_KEYS[arg]] = value
            warnings.append(f"{file}: {where}: moved into the memoizer in today's Parsl; write "
                            "[parsl.memoizer] with class = \"BasicMemoizer\" (translated for now)")
        elif kind == "config" and arg == "memoizer" and _basic_memoizer(value):
            out.update(_unpacked(value))  # this older Parsl takes checkpoint keys on Config
        else:
            out[arg] = value  # unknown: the checker names it with a suggestion
    if memoizer:
        if "memoizer" in out:
            raise ConfigError(file, f"{key}.memoizer", "is set together with old checkpoint keys",
                              "move the checkpoint keys into the memoizer table")
        out["memoizer"] = {"class": "BasicMemoizer", **memoizer}
    return out, warnings


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
