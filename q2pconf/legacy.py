"""Keys older QIIME 2 configs use that today's Parsl removed: translate, drop, or refuse.

A rule applies only when the installed Parsl no longer accepts the old key, so the same file
keeps working on old and new Parsl alike.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from q2pconf.catalog import Param
    from q2pconf.validate import _Checker

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


def translate(checker: _Checker, kind: str, name: str, table: dict[str, Any], key: str,
              params: dict[str, Param]) -> dict[str, Any]:
    """`table` with old keys rewritten for the installed Parsl; warnings go to `checker`."""
    out: dict[str, Any] = {}
    memoizer: dict[str, Any] = {}
    for arg, value in table.items():
        where = f"{key}.{arg}"
        if arg in params:
            out[arg] = value
        elif arg in RENAMED and RENAMED[arg] in params:
            new = RENAMED[arg]
            if new in table:
                raise checker.fail(where, f"is the old name of {new}, which is set too",
                                   f"remove {arg}")
            out[new] = _whole(value)
            checker.warn(where, f"is called {new} in today's Parsl; "
                         f"write {new} = {out[new]} (translated for now)")
        elif arg in DROPPED:
            checker.warn(where, f"is ignored: {DROPPED[arg]}; delete it")
        elif arg in REFUSED:
            raise checker.fail(where, "is no longer a Parsl setting", REFUSED[arg])
        elif arg == "channel" and kind == "provider":
            _channel(checker, value, where)
        elif arg in MEMOIZER_KEYS and kind == "config" and "memoizer" in params:
            memoizer[MEMOIZER_KEYS[arg]] = value
            checker.warn(where, "moved into the memoizer in today's Parsl; write "
                         "[parsl.memoizer] with class = \"BasicMemoizer\" (translated for now)")
        else:
            out[arg] = value  # unknown: the checker names it with a suggestion
    if memoizer:
        if "memoizer" in out:
            raise checker.fail(f"{key}.memoizer", "is set together with old checkpoint keys",
                               "move the checkpoint keys into the memoizer table")
        out["memoizer"] = {"class": "BasicMemoizer", **memoizer}
    return out


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # anything else is checked (and refused) like a new-style value


def _channel(checker: _Checker, value: Any, where: str) -> None:
    cls = value.get("class") if isinstance(value, dict) else None
    if cls == "LocalChannel":
        checker.warn(where, "is ignored: channels were removed in Parsl 2024.12 and "
                     "LocalChannel was the default; delete the channel table")
        return
    raise checker.fail(where, f"{cls or 'a channel'} cannot work: channels were removed in "
                       "Parsl 2024.12", "run the pipeline on the cluster itself and delete "
                       "the channel table")
