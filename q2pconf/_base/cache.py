"""q2pconf's files in the user's cache directory: one marshal document each, read and written
one way by both caches (what the installed Parsl accepts, `q2pconf._catalog.accepted`, and
typeguard's instrumentation of Parsl, `q2pconf._parsl.typecache`).

A cache is never an error: a missing, damaged, foreign or oversized file reads as None, and a
directory that cannot be written means no cache. Files are replaced atomically, so processes
starting together (the program, the interchange, a worker pool) never read half a file.
"""
from __future__ import annotations

import marshal
import os
from typing import Any

LIMIT = 16 << 20  # bytes; a cache file bigger than this is not ours


def path(name: str) -> str:
    """Where the cache file `name` lives: q2pconf's directory in the user's cache."""
    from q2pconf._base.paths import user_cache_dir

    return os.path.join(user_cache_dir("q2pconf"), name)


def read(file: str | os.PathLike[str], *, own: bool = False) -> Any:
    """The document in `file`, or None. `own`: only a file that is the user's own and that no
    one else can write, in a directory that is too (as ssh asks of its keys): for a file
    that holds code which will run."""
    try:
        if own and not (_owned(os.path.dirname(os.fspath(file))) and _owned(file)):
            return None
        from q2pconf._base.tomlfile import read_regular

        return marshal.loads(read_regular(file, LIMIT))  # a FIFO there must not block
    except Exception:  # noqa: BLE001 - a cache is never an error: any damage means rebuild
        return None


def write(file: str | os.PathLike[str], document: Any) -> bool:
    """Replace `file` with `document` atomically, its directory created private (0700,
    ~/.cache too if missing); False when it cannot be written or marshal cannot hold it."""
    from q2pconf._base.paths import make_private_dirs, replace_file

    try:
        make_private_dirs(os.path.dirname(os.fspath(file)))
        replace_file(os.fspath(file), marshal.dumps(document))
    except (OSError, ValueError):
        return False
    return True


def _owned(file: str | os.PathLike[str]) -> bool:
    info = os.stat(file)
    return info.st_uid == os.geteuid() and not info.st_mode & 0o022
