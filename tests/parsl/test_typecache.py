"""q2pconf._parsl.typecache: typeguard's instrumentation of Parsl kept on disk, with Parsl's checks
unchanged, never trusted from a file others could write, and rebuilt when a source changes."""
from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# A module of our own with typeguard's @typechecked, imported through the cache: prints what
# its functions return for good and bad arguments, and whether the cache file changed.
USE = """
import json, os, sys
from q2pconf._parsl import typecache
sys.path.insert(0, sys.argv[1])
with typecache.cached():
    import checked
from typeguard import TypeCheckError
out = {"good": checked.double(2)}
try:
    checked.double("x")
    out["bad"] = "accepted"
except TypeCheckError as error:
    out["bad"] = "refused"
print(json.dumps(out))
"""

MODULE = """
from typeguard import typechecked

@typechecked
def double(value: {kind}) -> {kind}:
    return value * 2
"""


def run(code: str, cache: Path, *args: str) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def cache_file(cache: Path) -> Path:
    return cache / "q2pconf" / f"typeguard-{sys.implementation.cache_tag}.marshal"


def write_module(where: Path, kind: str) -> None:
    path = where / "checked.py"
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(MODULE.format(kind=kind))
    os.utime(path, ns=(before + 10**9, before + 10**9))  # a new stamp even within one tick


def test_a_cached_function_checks_as_typeguard_made_it(tmp_path: Path) -> None:
    write_module(tmp_path, "int")
    first = run(USE, tmp_path / "cache", str(tmp_path))
    stored = cache_file(tmp_path / "cache")
    assert stored.exists()
    written = stored.stat().st_mtime_ns
    second = run(USE, tmp_path / "cache", str(tmp_path))
    assert first == second == {"good": 4, "bad": "refused"}
    assert stored.stat().st_mtime_ns == written  # all from the cache: nothing new to write


def test_a_changed_module_is_instrumented_again(tmp_path: Path) -> None:
    write_module(tmp_path, "int")
    assert run(USE, tmp_path / "cache", str(tmp_path))["bad"] == "refused"
    write_module(tmp_path, "object")  # now anything goes: the cached code must not be used
    assert run(USE, tmp_path / "cache", str(tmp_path)) == {"good": 4, "bad": "accepted"}


def poison(stored: Path) -> None:
    """Make every entry's code accept anything: what a cache file written by someone else
    could do."""
    doc = marshal.loads(stored.read_bytes())
    namespace: dict = {}
    exec(compile("def double(value):\n    return value * 2\n",
                 next(iter(doc["entries"])).split("\0")[0], "exec"), namespace)
    doc["entries"] = {key: marshal.dumps(namespace["double"].__code__) for key in doc["entries"]}
    stored.write_bytes(marshal.dumps(doc))


@pytest.mark.parametrize("loose", ["file", "directory"])
def test_a_cache_others_can_write_is_not_used(tmp_path: Path, loose: str) -> None:
    write_module(tmp_path, "int")
    run(USE, tmp_path / "cache", str(tmp_path))
    stored = cache_file(tmp_path / "cache")
    poison(stored)
    # The poisoned entries are used from a private file: the test can fail...
    assert run(USE, tmp_path / "cache", str(tmp_path))["bad"] == "accepted"
    # ... and are not once others may write the file or its directory.
    os.chmod(stored if loose == "file" else stored.parent, 0o777 if loose == "directory"
             else 0o666)
    assert run(USE, tmp_path / "cache", str(tmp_path))["bad"] == "refused"


@pytest.mark.parametrize("damage", [b"", b"\x00garbage", marshal.dumps({"stamp": [], "x": 1})])
def test_a_damaged_cache_is_rebuilt(tmp_path: Path, damage: bytes) -> None:
    write_module(tmp_path, "int")
    stored = cache_file(tmp_path / "cache")
    stored.parent.mkdir(parents=True, mode=0o700)
    stored.write_bytes(damage)
    os.chmod(stored, 0o600)
    assert run(USE, tmp_path / "cache", str(tmp_path)) == {"good": 4, "bad": "refused"}
    assert marshal.loads(stored.read_bytes())["entries"]


# Parsl itself: the code of every function typeguard instrumented, from a plain import (no
# cache) and then from the cache, must be the same code.
PARSL_CODES = """
import json, marshal, sys
import typeguard
from q2pconf._parsl import typecache
seen = {}
real = typeguard.typechecked

def noting(target=None, **options):  # what @typechecked made, as Parsl's modules get it
    if target is None:
        return lambda function: noting(function, **options)
    made = real(target, **options)
    code = getattr(made, "__code__", None)
    if code is not None:
        seen[made.__module__ + ":" + made.__qualname__] = marshal.dumps(code).hex()
    return made

typeguard.typechecked = noting
if sys.argv[1] == "cached":
    typecache.import_parsl()
else:
    import parsl
print(json.dumps(seen))
"""


def test_parsl_from_the_cache_is_the_code_typeguard_makes(tmp_path: Path) -> None:
    plain = run(PARSL_CODES, tmp_path / "cache", "plain")
    run(PARSL_CODES, tmp_path / "cache", "cached")  # fills the cache
    written = cache_file(tmp_path / "cache").stat().st_mtime_ns
    cached = run(PARSL_CODES, tmp_path / "cache", "cached")  # every entry from it
    assert cache_file(tmp_path / "cache").stat().st_mtime_ns == written  # nothing was missing
    assert len(plain) >= 10 and plain.keys() == cached.keys()
    for name in plain:  # code objects compare by their content
        assert (marshal.loads(bytes.fromhex(plain[name]))
                == marshal.loads(bytes.fromhex(cached[name]))), name
    assert len(marshal.loads(cache_file(tmp_path / "cache").read_bytes())["entries"]) >= 10


def test_parsl_still_refuses_a_wrong_type_with_a_warm_cache(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import json
        from q2pconf._parsl import typecache
        typecache.import_parsl()
        from parsl.executors import ThreadPoolExecutor
        from typeguard import TypeCheckError
        try:
            ThreadPoolExecutor(max_threads="four")
            print(json.dumps("accepted"))
        except TypeCheckError:
            print(json.dumps("refused"))
    """)
    run(code, tmp_path / "cache")
    assert cache_file(tmp_path / "cache").exists()
    assert run(code, tmp_path / "cache") == "refused"


def test_the_interchange_runs_through_the_cache(tmp_path: Path) -> None:
    """`python -m q2pconf._parsl.typecache MODULE ARGS` runs MODULE as `python -m` does."""
    (tmp_path / "shown.py").write_text(
        "import json, sys\nprint(json.dumps([__name__, sys.argv[1:], 'parsl' in sys.modules]))\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run([sys.executable, "-m", "q2pconf._parsl.typecache", "shown", "a", "b"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["__main__", ["a", "b"], True]
    assert cache_file(tmp_path / "cache").exists()


def test_entries_of_a_changed_file_leave_the_cache(tmp_path: Path) -> None:
    """An upgraded Parsl must not leave its old code in the cache for ever."""
    write_module(tmp_path, "int")
    run(USE, tmp_path / "cache", str(tmp_path))
    old = set(marshal.loads(cache_file(tmp_path / "cache").read_bytes())["entries"])
    write_module(tmp_path, "float")
    run(USE, tmp_path / "cache", str(tmp_path))
    new = set(marshal.loads(cache_file(tmp_path / "cache").read_bytes())["entries"])
    assert len(old) == len(new) == 1 and not old & new
