"""Helpers for tests of q2pconf._parsl.guard and of a dead interchange, shared by the guard's,
the stall watch's and the portability tests: stand-ins for the worker pool and the
interchange, and a pipeline run whose interchange is killed."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from configs import config, htex, local, threads
from procs import is_interchange, program_env, tagged, wait_gone

# A "pool": starts two sleeping workers, says their pids, then sleeps.
POOL = """\
import subprocess, sys, time
workers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
           for _ in range(2)]
print(" ".join(str(w.pid) for w in workers), flush=True)
time.sleep(300)
"""


def pool_guard(tmp_path: Path, token: str, server: socket.socket, *extra: str,
               env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The guard running the stand-in pool, told to watch `server` as its interchange."""
    port = server.getsockname()[1]
    command = [sys.executable, "-m", "q2pconf._parsl.guard", "pool", *extra, "--",
               sys.executable, "-c", POOL, "-a", "127.0.0.1", f"--port={port}"]
    process = subprocess.Popen(command, env=env or program_env(tmp_path, token),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.readline()  # type: ignore[union-attr]  # the workers run
    return process


def listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    return server


def ended(process: subprocess.Popen[str], seconds: float) -> int:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the guard was still running after {seconds} s")


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(word) for word in children.read().split()]


def write_toml(tmp_path: Path, executor: dict[str, object]) -> Path:
    """A config of one thread and `executor`."""
    path = tmp_path / "config.toml"
    path.write_text(config(threads("default", max_threads=1), executor, strategy="none"))
    return path


DEAD_INTERCHANGE = """\
import json, sys, time
import q2pconf, session_steps as s
try:
    with q2pconf.ParallelConfig(sys.argv[3], mapping={"hold": "htex"}):
        s.held(sys.argv[1], sys.argv[2])
except Exception as error:
    print(json.dumps({"type": type(error).__name__, "message": str(error),
                      "caught": time.time()}), flush=True)
"""


def kill_interchange(tmp_path: Path, token: str, env: dict[str, str] | None = None
                     ) -> tuple[dict[str, Any], str, float, tuple[int, int]]:
    """Run a pipeline whose HTEX step waits, SIGKILL its interchange once the step started:
    (what the program caught, its stderr, when the kill was, the pids of the interchange and
    of its guard). Checks that no process is left."""
    work, started = tmp_path / "work", tmp_path / "started"
    work.mkdir()
    child = subprocess.Popen([sys.executable, "-c", DEAD_INTERCHANGE, str(started),
                              str(tmp_path / "flag"),
                              str(write_toml(tmp_path, htex("htex", max_workers_per_node=1,
                                                            provider=local())))],
                             cwd=work,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env or program_env(tmp_path, token))
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), child.communicate(timeout=5)
        interchange = [p for p in tagged(token, work) if is_interchange(p.cmdline())]
        assert len(interchange) == 1
        pids = interchange[0].pid, interchange[0].ppid()
        interchange[0].kill()
        killed = time.time()
        out, err = child.communicate(timeout=60)
        assert wait_gone(token, cwd=work) == []
    finally:
        child.kill()
        for process in tagged(token, work):
            process.kill()
    return json.loads(out), err, killed, pids
