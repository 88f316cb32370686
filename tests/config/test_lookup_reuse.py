"""A pipeline call makes the lookup again, but an unchanged config file is not read and checked
again: its session is reused. An edited file, or another file found, takes effect at once, an
edit within the same clock tick that keeps the file's size included."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pipeline_steps as steps
import q2pconf
from configs import config, threads
from procs import new_token, program_env, wait_gone
from q2pconf.pipeline import _session as sessions

pytestmark = pytest.mark.usefixtures("fresh_session")
HOUR_NS = 3600 * 10**9


def write(path: Path, max_threads: int, age_ns: int = 0) -> os.stat_result:
    """A one-executor config; `age_ns` old (0: written now; below 0: ahead of the clock); its
    stat."""
    path.write_text(config(threads("default", max_threads=max_threads)))
    if age_ns:
        when = time.time_ns() - age_ns
        os.utime(path, ns=(when, when))
    return path.stat()


def run_once() -> sessions.Session:
    """One pipeline call through the lookup; the session it used."""
    assert steps.threads_only(2) == [0, 2]
    return sessions.session()


def test_an_unchanged_file_keeps_its_session_and_an_edited_one_replaces_it(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = clean_env / "first.toml"
    write(path, 2, age_ns=HOUR_NS)
    monkeypatch.setenv("QIIME2_CONFIG", str(path))
    first = run_once()
    assert (first.settings.path, first.settings.workers("default")) == (path, 2)
    again = run_once()
    assert again is first and again.settings.plan is first.settings.plan  # not checked again
    write(path, 12, age_ns=HOUR_NS)  # another size, an mtime an hour old
    edited = run_once()
    assert edited is not first and edited.settings.workers("default") == 12
    assert first.closed  # its file changed: it can never be used again
    other = clean_env / "other.toml"
    write(other, 3, age_ns=HOUR_NS)
    monkeypatch.setenv("QIIME2_CONFIG", str(other))
    found = run_once()
    assert found is not edited and found.settings.path == other
    assert found.settings.workers("default") == 3


def test_an_edit_in_the_same_tick_keeping_the_size_takes_effect(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second write leaves the stat as it was (inode, size, mtime to the nanosecond), as
    two writes within one tick of a coarse file-system clock do: only the bytes differ.

    A stat stays too young to vouch for the bytes only while the file's mtime is within
    RACY_NS of the clock at each look; the file's mtime is set ahead of the clock (as a file
    server's clock can be), so that a loaded machine, slow between the write and the looks,
    cannot age the stamp and let the test pass or fail by its speed."""
    path = clean_env / "config.toml"
    before = write(path, 2, age_ns=-HOUR_NS)
    monkeypatch.setenv("QIIME2_CONFIG", str(path))
    first = run_once()
    assert first.settings.workers("default") == 2
    write(path, 3)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns)
    edited = run_once()
    assert edited is not first and edited.settings.workers("default") == 3
    assert run_once() is edited


def test_a_block_made_before_an_edit_runs_the_config_it_checked(clean_env: Path) -> None:
    path = clean_env / "config.toml"
    write(path, 2, age_ns=HOUR_NS)
    block = q2pconf.ParallelConfig(path)  # checked now: 2 threads
    write(path, 12, age_ns=HOUR_NS)
    with block:
        first = run_once()
    assert first.settings.workers("default") == 2
    with q2pconf.ParallelConfig(path):
        edited = run_once()
    assert edited is not first and edited.settings.workers("default") == 12
    with q2pconf.ParallelConfig(path):  # the same file, unchanged: the same session
        assert run_once() is edited


READS = """
import json, os, sys
import pipeline_steps as steps
from q2pconf.pipeline import _session as sessions

path = os.environ["QIIME2_CONFIG"]
opened = []
sys.addaudithook(lambda event, args: opened.append(event) if event == "open"
                 and isinstance(args[0], str) and args[0] == path else None)
plans = set()
for _ in range(5):
    assert steps.threads_only(2) == [0, 2]
    plans.add(id(sessions.session().settings.plan))
print(json.dumps({"opened": len(opened), "plans": len(plans),
                  "sessions": len(sessions._SESSIONS)}))
"""


def test_back_to_back_calls_read_an_unchanged_file_once(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    write(path, 2, age_ns=HOUR_NS)
    token, work = new_token(), tmp_path / "work"
    work.mkdir()
    child = subprocess.run([sys.executable, "-c", READS], cwd=work, capture_output=True,
                           text=True, timeout=180, env=program_env(tmp_path, token, path))
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == {"opened": 1, "plans": 1, "sessions": 1}
    assert wait_gone(token, cwd=work) == []
