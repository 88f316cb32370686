"""q2pconf._parsl.guard on its own, with stand-ins for the interchange and the worker pool: a child
that starts "workers" (sleeping grandchildren) and a listening socket as the interchange."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guardtools import POOL, children, ended, listening, pool_guard
from procs import new_token, program_env, wait_gone


def test_a_killed_pool_takes_its_workers_along(tmp_path: Path) -> None:
    token, server = new_token(), listening()
    with server:
        process = pool_guard(tmp_path, token, server)
        os.kill(children(process.pid)[0], signal.SIGKILL)
        assert ended(process, 10) == -signal.SIGKILL  # the guard ends as its child did
    assert wait_gone(token, 10) == []


def test_a_pool_ends_when_its_interchange_refuses_connections(tmp_path: Path) -> None:
    token, server = new_token(), listening()
    process = pool_guard(tmp_path, token, server, "--lost-after", "2")
    time.sleep(4)
    assert process.poll() is None  # the interchange answers: the pool runs on
    server.close()
    began = time.monotonic()
    assert ended(process, 20) == 1
    assert time.monotonic() - began < 10
    assert "the interchange at 127.0.0.1:" in process.stderr.read()  # type: ignore
    assert wait_gone(token, 10) == []


def test_an_interchange_ends_with_the_program_that_started_it(tmp_path: Path) -> None:
    token = new_token()
    # The "program": starts the guarded interchange, says its pid, then waits.
    program = subprocess.Popen(
        [sys.executable, "-c", f"""
import subprocess, sys, time
guard = subprocess.Popen([sys.executable, "-m", "q2pconf._parsl.guard", "interchange", "--",
                          sys.executable, "-c", {POOL!r}], stdout=subprocess.PIPE)
print(guard.pid, guard.stdout.readline().decode().strip(), flush=True)
time.sleep(300)
"""], env=program_env(tmp_path, token), stdout=subprocess.PIPE, text=True)
    line = program.stdout.readline().split()  # type: ignore[union-attr]
    assert len(line) == 3, line
    assert os.getsid(int(line[0])) == int(line[0])  # a session of its own: no terminal signals
    program.kill()
    program.wait(timeout=10)
    assert wait_gone(token, 10) == []


def test_a_signal_to_the_guard_ends_its_child_group_and_the_guard_dies_of_it(
        tmp_path: Path) -> None:
    token, server = new_token(), listening()
    with server:
        process = pool_guard(tmp_path, token, server)
        process.terminate()
        assert ended(process, 10) == -signal.SIGTERM
    assert wait_gone(token, 10) == []


def test_a_bad_lost_after_setting_is_named(tmp_path: Path) -> None:
    env = {**program_env(tmp_path, new_token()), "Q2PCONF_LOST_AFTER": "ten"}
    done = subprocess.run([sys.executable, "-m", "q2pconf._parsl.guard", "pool", "--", "true"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Q2PCONF_LOST_AFTER='ten' is not a number of seconds" in done.stderr


def test_a_local_pool_ends_with_its_program_while_the_interchange_still_answers(
        tmp_path: Path) -> None:
    """A LocalProvider's pool is on the program's host: its guard watches the program itself
    (`--program PID:START`), so a SIGKILLed program's workers go within the guard's poll, not
    after `--lost-after` seconds of a dead interchange (here the interchange never stops
    answering, so only the program's death can end the pool)."""
    token, server = new_token(), listening()
    program = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        with server:
            from q2pconf._parsl.guard import process_id

            process = pool_guard(tmp_path, token, server, "--program",
                                 process_id(program.pid), "--lost-after", "300")
            time.sleep(1)
            assert process.poll() is None  # the program lives: the pool stays
            program.kill()
            program.wait(timeout=10)
            assert ended(process, 10) != 0
            assert "the program that started it" in process.stderr.read()  # type: ignore
        assert wait_gone(token, 10) == []
    finally:
        program.kill()


@pytest.mark.parametrize("program", ["reused", "elsewhere"])
def test_a_program_not_seen_at_the_start_is_not_watched(tmp_path: Path, program: str) -> None:
    """PID:START names one process: the same pid with another start time (a reused pid), or
    a pid with no process here (a pool on another node of an allocation, under LocalProvider
    with SrunLauncher), is not the program: the pool runs on, ended only by its interchange."""
    token, server = new_token(), listening()
    pid = os.getpid() if program == "reused" else _unused_pid()
    with server:
        process = pool_guard(tmp_path, token, server, "--program", f"{pid}:1")
        time.sleep(2)  # ten polls of the guard
        assert process.poll() is None
        process.terminate()
        assert ended(process, 10) == -signal.SIGTERM
    assert wait_gone(token, 10) == []


def _unused_pid() -> int:
    pid = 4_000_000
    while Path(f"/proc/{pid}").exists():
        pid -= 1
    return pid


def test_a_paused_pool_is_not_ended_by_its_first_probe_after_the_pause(tmp_path: Path) -> None:
    """Ctrl-Z then `fg`, or a laptop's sleep: the guard was stopped longer than --lost-after.
    The seconds it did not see are no loss: a first refused probe after it (the interchange
    not yet listening again) must not end the pool; refusals for --lost-after still do."""
    token, server = new_token(), listening()
    port = server.getsockname()[1]
    process = pool_guard(tmp_path, token, server, "--lost-after", "5")
    try:
        process.send_signal(signal.SIGSTOP)
        server.close()  # refused while the guard is stopped, and just after
        time.sleep(8)
        process.send_signal(signal.SIGCONT)
        time.sleep(1)
        again = socket.socket()
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen(64)
        with again:
            time.sleep(6)  # more than --lost-after: it would have ended by now
            assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
        assert ended(process, 20) == 1  # refused for --lost-after: ended
    finally:
        process.kill()
    assert wait_gone(token, 10) == []
