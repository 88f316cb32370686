"""The catalog of what Parsl accepts is cached on disk and rebuilt when Parsl changes."""
from __future__ import annotations

import json
import marshal
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# Prints the keywords of FakeExecutor and whether Parsl's source was parsed (ast imported).
PROBE = """
import json, sys
from q2pconf._catalog import accepted as catalog
params = sorted(catalog.parameters("executors", "FakeExecutor"))
print(json.dumps({"params": params, "parsed": "ast" in sys.modules,
                  "root": str(catalog.parsl_root())}))
"""
EXECUTORS = '__all__ = ["FakeExecutor"]\n\n\nclass FakeExecutor:\n' \
            '    def __init__(self, label: str = "x"{more}):\n        pass\n'


@pytest.fixture
def fake_parsl(tmp_path: Path) -> Path:
    """A Parsl-like source tree holding only what the catalog reads."""
    root = tmp_path / "site" / "parsl"
    (root / "executors").mkdir(parents=True)
    (root / "providers").mkdir()
    (root / "__init__.py").write_text("")
    (root / "version.py").write_text("VERSION = '2099.1.1'\n")
    (root / "executors" / "__init__.py").write_text(EXECUTORS.format(more=""))
    (root / "providers" / "__init__.py").write_text(
        "class LocalProvider:\n    def __init__(self, init_blocks: int = 1):\n        pass\n")
    (root / "config.py").write_text("class Config:\n    def __init__(self, strategy='simple'):"
                                    "\n        pass\n")
    return root


def probe(root: Path, cache: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root.parent), "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def cache_file(cache: Path) -> Path:
    (found,) = (cache / "q2pconf").glob("parsl-catalog-*.marshal")
    return found


def test_built_once_then_read_from_the_cache(fake_parsl: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = probe(fake_parsl, cache)
    assert first == {"params": ["label"], "parsed": True, "root": str(fake_parsl)}
    assert probe(fake_parsl, cache)["parsed"] is False
    assert stat.S_IMODE(cache_file(cache).stat().st_mode) == 0o600
    assert stat.S_IMODE((cache / "q2pconf").stat().st_mode) == 0o700


def test_an_edited_parsl_file_rebuilds_the_cache(fake_parsl: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    probe(fake_parsl, cache)
    (fake_parsl / "executors" / "__init__.py").write_text(
        EXECUTORS.format(more=", workers: int = 1"))
    assert probe(fake_parsl, cache) == {"params": ["label", "workers"], "parsed": True,
                                        "root": str(fake_parsl)}
    assert probe(fake_parsl, cache)["parsed"] is False


def test_a_touched_file_rebuilds_the_cache(fake_parsl: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    probe(fake_parsl, cache)
    for name in ("executors/__init__.py", "version.py"):  # same text, newer mtime
        path = fake_parsl / name
        later = path.stat().st_mtime + 10
        os.utime(path, (later, later))
        assert probe(fake_parsl, cache)["parsed"] is True
        assert probe(fake_parsl, cache)["parsed"] is False


def test_another_parsl_gets_its_own_cache(fake_parsl: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    probe(fake_parsl, cache)
    other = tmp_path / "other" / "parsl"
    shutil.copytree(fake_parsl, other)
    assert probe(other, cache)["parsed"] is True
    assert len(list((cache / "q2pconf").glob("parsl-catalog-*.marshal"))) == 2
    assert probe(fake_parsl, cache)["parsed"] is False  # each keeps its own


def test_the_cache_of_a_removed_parsl_goes(fake_parsl: Path, tmp_path: Path) -> None:
    """One cache per Parsl installation ever used would pile up: a deleted environment's
    goes when another cache is written."""
    cache = tmp_path / "cache"
    probe(fake_parsl, cache)
    gone = cache_file(cache)
    other = tmp_path / "other" / "parsl"
    other.parent.mkdir()
    os.rename(fake_parsl, other)
    assert probe(other, cache)["parsed"] is True
    assert cache_file(cache) != gone and not gone.exists()


def _unpacked_signature(whole: bytes) -> bytes:
    """The real cache with one signature as a table, not its own marshal bytes."""
    doc = marshal.loads(whole)
    doc["params"]["executors:FakeExecutor"] = {"label": ("label", frozenset({"str"}))}
    return marshal.dumps(doc)


# Each damage: the real cache file's bytes -> the bytes written in its place.
DAMAGE = {"garbage": lambda whole: b"{not marshal", "a list": lambda whole: marshal.dumps([]),
          "no files": lambda whole: marshal.dumps({"stamp": {"files": 3}}),
          "empty": lambda whole: b"", "first half": lambda whole: whole[:len(whole) // 2],
          "a signature not in bytes": _unpacked_signature}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_corrupt_cache_is_rebuilt_not_an_error(fake_parsl: Path, tmp_path: Path,
                                                 damage: Callable[[bytes], bytes]) -> None:
    cache = tmp_path / "cache"
    probe(fake_parsl, cache)
    cache_file(cache).write_bytes(damage(cache_file(cache).read_bytes()))
    assert probe(fake_parsl, cache) == {"params": ["label"], "parsed": True,
                                        "root": str(fake_parsl)}
    marshal.loads(cache_file(cache).read_bytes())  # rewritten whole
    assert probe(fake_parsl, cache)["parsed"] is False


def test_a_damaged_signature_in_the_cache_is_read_from_parsl(fake_parsl: Path,
                                                             tmp_path: Path) -> None:
    """Each signature is decoded when first asked for: damaged, it is read from the source."""
    cache = tmp_path / "cache"
    probe(fake_parsl, cache)
    doc = marshal.loads(cache_file(cache).read_bytes())
    doc["params"]["executors:FakeExecutor"] = b"{damaged"
    cache_file(cache).write_bytes(marshal.dumps(doc))
    assert probe(fake_parsl, cache) == {"params": ["label"], "parsed": True,
                                        "root": str(fake_parsl)}


def test_an_unwritable_cache_is_not_an_error(fake_parsl: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    for _ in range(2):
        assert probe(fake_parsl, blocker)["params"] == ["label"]
    assert blocker.read_text() == ""


def test_an_unreadable_cache_is_rebuilt(fake_parsl: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    probe(fake_parsl, cache)
    path = cache_file(cache)
    path.unlink()
    path.mkdir()  # open() fails even for root
    assert probe(fake_parsl, cache)["params"] == ["label"]


# What the installed Parsl's classes take, and whether its source was parsed to answer.
ASK_PARSL = """
import json, sys
from q2pconf._catalog import accepted as catalog
asked = [("executors", "HighThroughputExecutor"), ("executors", "ThreadPoolExecutor"),
         ("provider", "SlurmProvider"), ("launcher", "SrunLauncher"), ("config", "Config")]
print(json.dumps({"params": {name: sorted(catalog.parameters(kind, name))
                             for kind, name in asked},
                  "parsed": "ast" in sys.modules}))
"""


def test_the_cache_holds_what_the_installed_parsl_says(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def ask() -> dict:
        done = subprocess.run([sys.executable, "-c", ASK_PARSL], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    built, cached = ask(), ask()
    assert built["parsed"] and not cached["parsed"]  # built, then read from the cache
    assert {"label", "provider", "max_workers_per_node"} <= set(
        built["params"]["HighThroughputExecutor"])  # the real Parsl was read
    assert cached["params"] == built["params"]
