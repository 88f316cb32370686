"""Parsl imported faster: typeguard's instrumentation of Parsl's functions, kept on disk.

Parsl decorates its constructors and a few functions with typeguard's `@typechecked`. typeguard 4
instruments each one while its module is imported: it reads the module's whole source, parses
it, rewrites the one function and compiles the whole module again, once per decorated function.
That is ~40% of `import parsl` (~0.18 s of ~0.43 s on this project's 2-CPU machine), paid by the
program and by every interchange, worker pool and forkserver q2pconf starts.

What typeguard makes of a function depends only on its module's source, the function's place in
it and typeguard's own code. So the code object it compiled is kept, in marshal's format (the
format of `.pyc` files), keyed by the stat of the module's file, the function's name and line,
the stat of typeguard's files and the interpreter's version. A hit builds the function from that
code as typeguard does; the checks Parsl's functions make are exactly the same. A miss, or
anything unusual, is typeguard's own work.

    >>> from q2pconf._parsl import typecache
    >>> with typecache.cached():
    ...     import parsl                                        # doctest: +SKIP

Only while Parsl is imported (`cached()`): typeguard finds the values of names in a closure by
reading its caller's caller's frame, which this wrapper shifts by one. Parsl decorates no nested
function; a program's own (later) uses of typeguard never meet the wrapper.
"""
from __future__ import annotations

import marshal
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import CodeType, FunctionType
from typing import Any

from q2pconf._base import cache

FORMAT = 1  # bump when the cache file's shape changes
_TYPEGUARD_FILES = ("_decorators.py", "_transformer.py")


@contextmanager
def cached() -> Iterator[None]:
    """typeguard's instrumentation from the cache while the block runs (imports Parsl);
    what was missing is written to the cache at the end."""
    store = _Store.open()
    if store is None:
        yield
        return
    from typeguard import _decorators

    original = _decorators.instrument
    _decorators.instrument = store.wrap(original)
    try:
        yield
    finally:
        _decorators.instrument = original
        store.save()


def import_parsl() -> None:
    """Import Parsl (once per process) with the cache: every first Parsl import goes here."""
    if "parsl" not in sys.modules:
        with cached():
            import parsl  # noqa: F401


class _Store:
    """The cache file's entries: key -> the instrumented code, in marshal bytes."""

    def __init__(self, path: str, stamp: list[Any], entries: dict[str, bytes]) -> None:
        self.path = path
        self.stamp = stamp
        self.entries = entries
        self.added = 0

    @classmethod
    def open(cls) -> _Store | None:
        """The store of this interpreter and typeguard; None where typeguard does not
        instrument (typeguard 2 checks at call time) or its shape is unknown."""
        try:
            from typeguard import _decorators
        except ImportError:
            return None
        if not callable(getattr(_decorators, "instrument", None)):
            return None
        here = os.path.dirname(os.path.abspath(_decorators.__file__))
        stamp = [FORMAT, sys.version, *(_stat(os.path.join(here, n)) for n in _TYPEGUARD_FILES)]
        path = cache.path(f"typeguard-{sys.implementation.cache_tag}.marshal")
        return cls(path, stamp, _read(path, stamp))

    def wrap(self, original: Any) -> Any:
        def instrument(f: Any) -> Any:
            key = _key(f)
            if key is None or _debugging():
                return original(f)
            made = _from_code(f, self.entries.get(key))
            if made is None:
                made = original(f)
                code = getattr(made, "__code__", None)
                if isinstance(made, FunctionType) and _fits(f, code):
                    self.entries[key] = marshal.dumps(code)
                    self.added += 1
            return made

        return instrument

    def save(self) -> None:
        """Write the entries when some were added, merged with what another process wrote
        meanwhile (the interchange, the pool and its forkserver start together)."""
        if not self.added:
            return
        merged = {**_read(self.path, self.stamp), **self.entries}
        entries = {key: code for key, code in merged.items() if _current(key)}
        # unwritable or full: no cache, typeguard's own work
        cache.write(self.path, {"stamp": self.stamp, "entries": entries})


def _stat(path: str) -> list[Any]:
    from q2pconf._base.paths import file_stamp

    return [path, *file_stamp(path)]


def _key(f: Any) -> str | None:
    """What the instrumented code of `f` depends on: its module's file (as typeguard reads
    it), its name and first line. None for what is not a plain function of a source file."""
    code = getattr(f, "__code__", None)
    module = sys.modules.get(getattr(f, "__module__", None) or "")
    source = getattr(module, "__file__", None)
    if (not isinstance(code, CodeType) or not isinstance(source, str)
            or not source.endswith(".py") or "<locals>" in f.__qualname__
            or hasattr(f, "__wrapped__")):
        return None
    _, mtime, size = _stat(source)
    if mtime == -1:
        return None
    return f"{source}\0{mtime}\0{size}\0{f.__qualname__}\0{code.co_firstlineno}"


def _current(key: str) -> bool:
    """Whether the file a key names is still as it was (entries of an upgraded Parsl go)."""
    path, mtime, size = key.split("\0")[:3]
    return _stat(path)[1:] == [int(mtime), int(size)]


def _debugging() -> bool:
    """typeguard prints what it instrumented: let it."""
    from typeguard._config import global_config

    return bool(getattr(global_config, "debug_instrumentation", False))


def _fits(f: Any, code: Any) -> bool:
    """Whether `code` can stand for `f`'s: the same function, the same closure."""
    own = f.__code__
    return (isinstance(code, CodeType) and code.co_name == own.co_name
            and code.co_filename == own.co_filename and code.co_freevars == own.co_freevars)


def _from_code(f: Any, blob: bytes | None) -> FunctionType | None:
    """`f` instrumented from its cached code, made as typeguard makes it; None on a miss."""
    try:
        code = None if blob is None else marshal.loads(blob)
    except (EOFError, ValueError, TypeError):
        return None
    if not _fits(f, code):
        return None
    made = FunctionType(code, f.__globals__, f.__name__, f.__defaults__, f.__closure__)
    made.__module__, made.__qualname__, made.__doc__ = f.__module__, f.__qualname__, f.__doc__
    made.__kwdefaults__ = f.__kwdefaults__
    if sys.version_info >= (3, 12):
        made.__type_params__ = f.__type_params__
    if sys.version_info >= (3, 14):
        made.__annotate__ = f.__annotate__
    else:
        made.__annotations__ = f.__annotations__
    return made


def _read(path: str, stamp: list[Any]) -> dict[str, bytes]:
    """The entries of a cache file that is ours, whole and made for this stamp; else none.
    The file holds code that will run: it must be the user's own, writable by no one else
    (as ssh asks of its keys), in a directory that is too."""
    doc = cache.read(path, own=True)
    try:
        entries = doc["entries"] if doc["stamp"] == stamp else {}
        if isinstance(entries, dict) and all(isinstance(v, bytes) for v in entries.values()):
            return dict(entries)
    except Exception:  # noqa: BLE001 - a cache is never an error: typeguard does the work
        pass
    return {}


def main() -> None:
    """`python -m q2pconf._parsl.typecache MODULE ARGS...`: run MODULE as `python -m` would, Parsl
    imported first with the cache (how q2pconf starts Parsl's interchange)."""
    if len(sys.argv) < 2:
        sys.exit("usage: python -m q2pconf._parsl.typecache MODULE [ARGS...]")
    module = sys.argv.pop(1)
    import logging
    import runpy

    # The interchange logs into the run directory: on a full disk every record would print a
    # traceback ("--- Logging error ---") on the program's stderr, where the program has
    # already said once that the run directory cannot be written (q2pconf._base.rundir).
    logging.raiseExceptions = False
    import_parsl()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
