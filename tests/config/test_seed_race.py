"""Seeding while someone swaps etc/ for a symlink, and a seeder killed halfway: no other
directory's mode changes, and no temporary file is left anywhere."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from q2pconf._base.paths import CONFIG_NAME
from q2pconf._base.files import STALE_AFTER, write_new
from q2pconf.config._seed import seed_prefix

RACE_SECONDS = 5.0  # the race lasts at least this long,
LEAST_SWAPS = 20  # and on until etc/ was swapped this often (a busy machine starves a side),
RACE_LIMIT = 120.0  # within this safety net


def temporaries(*directories: Path) -> list[str]:
    return [str(p) for d in directories if d.is_dir() for p in d.rglob("*.tmp")]


SWAPPER = """
import os, sys, time
prefix, other, graveyard, seconds, least, limit = sys.argv[1:7]
etc, swaps, moved, began = os.path.join(prefix, "etc"), 0, 0, time.monotonic()
print("ready", flush=True)
while ((time.monotonic() - began < float(seconds) or swaps < int(least))
       and time.monotonic() - began < float(limit)):
    try:
        if os.path.isdir(etc) and not os.path.islink(etc):
            os.rename(etc, os.path.join(graveyard, str(moved)))
            moved += 1  # a name of its own each time, even when the seeder wins the symlink's place
            os.symlink(other, etc)
            swaps += 1
        elif os.path.islink(etc):
            os.unlink(etc)
    except OSError:
        pass  # the seeder got there first this time
print(swaps)
"""


def test_swapping_etc_for_a_symlink_while_seeding(tmp_path):
    """Another process moves each real etc/ away and puts a symlink to `other` in its place,
    again and again, while this one seeds again and again."""
    prefix, other, graveyard = tmp_path / "env", tmp_path / "other", tmp_path / "graveyard"
    for directory in (prefix, other, graveyard):
        directory.mkdir()
    os.chmod(other, 0o777)  # a directory whose mode must never change
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(prefix), str(other),
                                str(graveyard), str(RACE_SECONDS), str(LEAST_SWAPS),
                                str(RACE_LIMIT)], stdout=subprocess.PIPE, text=True)
    try:
        assert swapper.stdout.readline() == "ready\n"
        seeds = 0
        while swapper.poll() is None:
            try:
                seed_prefix(prefix)
                seeds += 1
            except OSError:
                pass  # etc/ was a symlink made after we looked: refused, as it should be
            for name in (CONFIG_NAME, f".{CONFIG_NAME}.sha256"):  # seed again next time
                try:
                    os.unlink(other / name)
                except OSError:
                    pass
        swaps = int(swapper.communicate(timeout=30)[0])
    finally:
        swapper.kill()
        swapper.wait(timeout=30)
    # both really ran, even on a busy machine
    assert seeds >= LEAST_SWAPS and swaps >= LEAST_SWAPS, (seeds, swaps)
    assert stat.S_IMODE(other.stat().st_mode) == 0o777
    assert temporaries(prefix, other, graveyard) == []


def test_a_seeder_killed_halfway_leaves_a_temporary_the_next_seed_removes(tmp_path):
    """SIGKILL between writing the temporary file and linking it into place: the next
    writer removes it (its writer is gone), and leaves a live writer's temporary alone."""
    etc = tmp_path / "etc"
    code = ("import os, time; from q2pconf.config._seed import seed_prefix\n"
            "real = os.link\n"
            "def slow(*a, **k):\n    print('linking', flush=True); time.sleep(60)\n"
            "os.link = slow\n"
            f"seed_prefix({str(tmp_path)!r})\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "linking\n"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    left = temporaries(etc)
    assert len(left) == 1 and f".{CONFIG_NAME}." in left[0], left
    live = etc / f".{CONFIG_NAME}.{os.uname().nodename}.{os.getpid()}.0badcafe.tmp"
    live.write_text("a writer still at work")  # this process: alive
    foreign = etc / f".{CONFIG_NAME}.otherhost.1.0badcafe.tmp"
    foreign.write_text("a writer on another node of a shared file system")
    path, written = seed_prefix(tmp_path)
    assert written
    assert sorted(temporaries(etc)) == sorted([str(live), str(foreign)])
    old = time.time() - STALE_AFTER - 60
    os.utime(foreign, (old, old))
    assert write_new(etc / "other.toml", "x = 1\n") is True  # another name: not its temporary
    assert foreign.exists()
    older = etc / f".{CONFIG_NAME}.k3j_x9a2.tmp"  # tempfile.mkstemp's name, older q2pconf
    older.write_text("")
    os.unlink(path)
    seed_prefix(tmp_path)
    assert sorted(temporaries(etc)) == sorted([str(live), str(older)])  # not old enough yet
    os.utime(older, (old, old))
    os.unlink(path)
    seed_prefix(tmp_path)
    assert temporaries(etc) == [str(live)]


def test_a_directory_made_by_the_seed_is_opened_without_following_links(tmp_path):
    """etc/ appearing as a symlink after the seeder found no etc/ is refused, not followed."""
    other = tmp_path / "other"
    other.mkdir()
    os.chmod(other, 0o777)
    prefix = tmp_path / "env"
    prefix.mkdir()
    real_mkdir = os.mkdir

    def mkdir_then_swap(name, mode=0o777, *, dir_fd=None):
        real_mkdir(name, mode, dir_fd=dir_fd)
        os.rmdir(prefix / "etc")
        os.symlink(other, prefix / "etc")

    os.mkdir = mkdir_then_swap
    try:
        try:
            seed_prefix(prefix)
            raised = None
        except OSError as error:
            raised = error
    finally:
        os.mkdir = real_mkdir
    assert raised is not None
    assert stat.S_IMODE(other.stat().st_mode) == 0o777
    assert list(other.iterdir()) == []
