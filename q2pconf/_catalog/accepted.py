"""What the installed Parsl accepts: the names a config may use and the keywords they take.

`import parsl` costs ~0.3 s; checking a config file must not pay that. The answers are read
from the installed Parsl's source with `ast` (q2pconf._catalog.source), once per Parsl: the whole
catalog is kept in the user's cache directory, keyed by the stat (path, mtime, size) of every
file it was read from, and read again whenever one of them (or this reader) changed. A cache
that is missing, stale, unreadable or corrupt is rebuilt silently; one that cannot be written is
simply not kept. The cache is in `marshal`'s format, which is built into the interpreter and reads
it in a fraction of a millisecond (json costs ~2 ms to import and read); marshal is not meant for
data from others, and this file is not: it lives in the user's own 0700 cache directory.
"""
from __future__ import annotations

import hashlib
import marshal
import os
import sys
from pathlib import Path
from typing import Any

from q2pconf._base import cache
from q2pconf._catalog.kinds import Param

# Config keys whose tables become objects, and the only namespace each class may come from.
NAMESPACES = {
    "executors": "parsl.executors",
    "provider": "parsl.providers",
    "launcher": "parsl.launchers",
    "address": "parsl.addresses",
    "memoizer": "parsl.dataflow.memoization",
    "monitoring": "parsl.monitoring",
    "config": "parsl.config",
}

CACHE_FORMAT = 4  # bump when the cached document's shape changes


class NotInParsl(LookupError):
    """The name is not a class (or function) that namespace exports."""


def parsl_root() -> Path:
    """The installed Parsl's package directory (found without importing Parsl)."""
    import importlib.util

    spec = importlib.util.find_spec("parsl")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("Parsl is not installed: pip install parsl")
    return Path(list(spec.submodule_search_locations)[0])


def names(kind: str) -> dict[str, str]:
    """The names a config may use under `kind`, each with the module that defines it."""
    return _catalog()["names"][kind]


def parameters(kind: str, name: str) -> dict[str, Param]:
    """The keywords `name` (a class or function under `kind`) takes, from its signature."""
    module = names(kind).get(name)
    if module is None:
        raise NotInParsl(name)
    params = _catalog()["params"]
    key = f"{kind}:{name}"
    if isinstance(params.get(key), bytes):  # as cached: decoded when first asked for
        params[key] = _decoded(params[key])
    if params.get(key) is None:  # the build could not read it (or its bytes are damaged)
        from q2pconf._catalog import source as parsl_source

        params[key] = parsl_source.signature(parsl_root(), module, name)
    return params[key]


def _decoded(blob: bytes) -> dict[str, Param] | None:
    """One signature as the cache holds it (its own marshal bytes); None if damaged."""
    try:
        return {arg: Param._make(fields) for arg, fields in marshal.loads(blob).items()}
    except Exception:  # noqa: BLE001 - a cache is never an error: read it from Parsl again
        return None


_LOADED: dict[str, Any] | None = None


def _catalog() -> dict[str, Any]:
    """The catalog of the installed Parsl: from the cache when it is current, else built."""
    global _LOADED
    if _LOADED is None:
        root = parsl_root()
        path = cache_path(root)
        _LOADED = _read_cache(path, root)
        if _LOADED is None:
            _LOADED, files = _build(root)
            _write_cache(path, root, _LOADED, files)
    return _LOADED


def cache_path(root: Path) -> Path:
    """One cache file per Parsl installation, in the user's cache directory."""
    # A name, not a secret: the stamp inside the file says whose it is, so two roots sharing
    # a name would only rebuild each other's cache.
    digest = hashlib.sha256(os.fsencode(root)).hexdigest()[:16]
    return Path(cache.path(f"parsl-catalog-{digest}.marshal"))


def _build(root: Path) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """Read every name and signature from Parsl's source; also the files read, with their
    stat taken before they were read."""
    from q2pconf._catalog import source as parsl_source

    reader = parsl_source.Reader(root)
    found: dict[str, Any] = {"names": {}, "params": {}}
    for kind, namespace in NAMESPACES.items():
        try:
            found["names"][kind] = reader.names(kind, namespace)
        except (SyntaxError, ValueError, OSError):  # a namespace this Parsl does not have
            found["names"][kind] = {}
        for name, module in found["names"][kind].items():
            try:
                found["params"][f"{kind}:{name}"] = reader.signature(module, name)
            except (SyntaxError, ValueError, OSError):  # left to a live read, if ever asked
                continue
    files = _current(_always(root))
    files.update({path: list(stat) for path, stat in reader.files.items()})
    return found, files


def _always(root: Path) -> list[str]:
    """Files every stamp covers: the reader (its rules) and Parsl's version file."""
    here = os.path.dirname(os.path.abspath(__file__))
    return [os.path.join(here, "parsl_source.py"), str(root / "version.py")]


def _current(paths: list[str]) -> dict[str, list[int]]:
    from q2pconf._base.paths import file_stamp

    return {path: file_stamp(path) for path in paths}


def _stamp(root: Path, files: dict[str, list[int]]) -> dict[str, Any]:
    """What must be unchanged for a cached catalog to hold."""
    return {"format": CACHE_FORMAT, "python": list(sys.version_info[:2]), "root": str(root),
            "files": [[path, *files[path]] for path in sorted(files)]}


def _read_cache(path: Path, root: Path) -> dict[str, Any] | None:
    """The cached catalog if it is whole and every file it was read from is unchanged."""
    doc = cache.read(path)
    try:
        stamp = doc["stamp"]
        listed = [entry[0] for entry in stamp["files"]]
        if not set(_always(root)) <= set(listed) or stamp != _stamp(root, _current(listed)):
            return None
        result = {"names": {kind: dict(doc["names"][kind]) for kind in NAMESPACES},
                  "params": dict(doc["params"])}
        if not all(isinstance(blob, bytes) for blob in result["params"].values()):
            return None  # each signature is its own bytes (see _write_cache)
    except Exception:  # noqa: BLE001 - a cache is never an error: any damage means rebuild
        return None
    return result


def _write_cache(path: Path, root: Path, found: dict[str, Any],
                 files: dict[str, list[int]]) -> None:
    """Write the cache (q2pconf._base.cache); an unwritable or full cache directory, or a value
    marshal cannot hold, means no cache."""
    try:
        # Each signature in bytes of its own, decoded only when asked for (a check asks for a
        # handful of ~300). marshal takes plain tuples, not Param (a tuple subclass).
        doc = {"stamp": _stamp(root, files), "names": found["names"],
               "params": {key: marshal.dumps({arg: tuple(param) for arg, param in table.items()})
                          for key, table in found["params"].items()}}
    except ValueError:
        return
    if cache.write(path, doc):
        _forget_removed(path.parent)


def _forget_removed(directory: Path) -> None:
    """Remove the caches of Parsl installations that are gone (an environment deleted or
    moved): done when a cache is written, which is when a Parsl is new or changed."""
    for other in directory.glob("parsl-catalog-*.marshal"):
        try:
            root = cache.read(other)["stamp"]["root"]
            if not os.path.isdir(root):
                other.unlink()
        except Exception:  # noqa: BLE001 - another's, damaged or racing: left alone
            continue
