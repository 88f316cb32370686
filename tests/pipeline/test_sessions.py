"""Several sessions in one program: threads with different configs, resume beside ordinary
runs. Each case runs in a child Python with a timeout, then checks what it leaves running."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from configs import config, htex, local, threads
from procs import new_token, program_env, tagged, wait_gone, written

TWO_THREADS = """\
import json, sys, threading, time
from pathlib import Path
import q2pconf, session_steps as s
first, second, resume, tmp = sys.argv[1], sys.argv[2], sys.argv[3] == "1", Path(sys.argv[4])
started, flag, results = tmp / "started", tmp / "flag", {}

def hold():
    with q2pconf.ParallelConfig(first, mapping={"hold": "htex"}):
        try:
            results["held"] = s.held(str(started), str(flag))
        except BaseException as error:
            results["held"] = f"{type(error).__name__}: {error}"

thread = threading.Thread(target=hold)
thread.start()
deadline = time.monotonic() + 60
while not started.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
# the first thread's step now runs on its HTEX; another config runs beside it
with q2pconf.ParallelConfig(second, mapping={"double": "htex"}):
    pipeline = s.doubled_resumable if resume else s.doubled
    results["doubled"] = pipeline(3)
flag.write_text("go")
thread.join(60)
print(json.dumps(results))
"""


def write_config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(config(threads("default", max_threads=2),
                           htex("htex", max_workers_per_node=1, provider=local()),
                           strategy="none"))
    return path


def run_child(tmp_path: Path, code: str, *args: str, timeout: float = 180) -> tuple[str, str]:
    """Run `code`, check it succeeded and left no process behind; its stdout and stderr."""
    token, work = new_token(), tmp_path / "work"
    work.mkdir(exist_ok=True)
    child = subprocess.run([sys.executable, "-c", code, *args], cwd=work, capture_output=True,
                           text=True, timeout=timeout, env=program_env(tmp_path, token))
    assert child.returncode == 0, child.stderr
    assert wait_gone(token, cwd=work) == []
    return child.stdout, child.stderr


@pytest.mark.parametrize("resume", [False, True], ids=["another-config", "resume-beside"])
def test_a_second_config_in_another_thread_leaves_a_running_pipeline_alone(
        tmp_path: Path, resume: bool) -> None:
    first = write_config(tmp_path, "first")
    second = first if resume else write_config(tmp_path, "second")
    out, _ = run_child(tmp_path, TWO_THREADS, str(first), str(second), "1" if resume else "0",
                       str(tmp_path))
    assert json.loads(out) == {"held": True, "doubled": [0, 2, 4]}


ALTERNATING = """\
import json, sys
import q2pconf, session_steps as s
with q2pconf.ParallelConfig(sys.argv[1]):
    results = [(s.doubled_resumable if i % 2 else s.doubled)(3) for i in range(6)]
print(json.dumps(results))
"""


def test_alternating_resume_and_ordinary_runs_reuse_their_sessions(tmp_path: Path) -> None:
    out, _ = run_child(tmp_path, ALTERNATING, str(write_config(tmp_path, "one")))
    assert json.loads(out) == [[0, 2, 4]] * 6
    # each Parsl DataFlowKernel numbers its own run directory: one per session started
    runs = list((tmp_path / "cache" / "q2pconf" / "runinfo").glob("*/[0-9]*"))
    assert len(runs) == 2, runs


MANY_CONFIGS = """\
import json, sys
import q2pconf, session_steps as s
from procs import interchanges
results, running = [], []
for path in sys.argv[1:]:
    with q2pconf.ParallelConfig(path, mapping={"double": "htex"}):
        results.append(s.doubled(2))
    running.append(interchanges())  # an open session keeps its HTEX's interchange running
print(json.dumps({"results": results, "interchanges": running}))
"""


def test_idle_sessions_are_bounded(tmp_path: Path) -> None:
    """The last one used stays open, and the one before; older idle sessions are closed."""
    paths = [str(write_config(tmp_path, f"c{i}")) for i in range(4)]
    out, _ = run_child(tmp_path, MANY_CONFIGS, *paths)
    assert json.loads(out) == {"results": [[0, 2]] * 4, "interchanges": [1, 2, 2, 2]}


BOTH_HELD = """\
import sys, threading
import q2pconf, session_steps as s

def hold(config, started):
    with q2pconf.ParallelConfig(config, mapping={"hold": "htex"}):
        s.held(started, sys.argv[3])

threads = [threading.Thread(target=hold, args=(sys.argv[i], sys.argv[i + 3]))
           for i in (1, 2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


def test_a_signal_ends_every_session_of_the_program(tmp_path: Path) -> None:
    """Two configs hold a step each on their own HTEX; SIGTERM to the program's process group
    (as `timeout` or `scancel` sends it) ends the program, both worker pools and workers."""
    token, work = new_token(), tmp_path / "work"
    work.mkdir()
    started = [tmp_path / "started-1", tmp_path / "started-2"]
    args = [str(write_config(tmp_path, "first")), str(write_config(tmp_path, "second")),
            str(tmp_path / "never"), *map(str, started)]
    child = subprocess.Popen([sys.executable, "-c", BOTH_HELD, *args], cwd=work,
                             env=program_env(tmp_path, token), start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not all(map(written, started)) and time.monotonic() < deadline:
            assert child.poll() is None, child.communicate(timeout=10)
            time.sleep(0.1)
        workers = [psutil.Process(int(p.read_text())) for p in started]
        assert all(map(alive, workers))  # both pipelines run now
        os.killpg(child.pid, signal.SIGTERM)
        _, err = child.communicate(timeout=60)
        assert child.returncode == -signal.SIGTERM, err
        assert wait_gone(token, cwd=work) == []
        assert not any(map(alive, workers))
    finally:
        child.kill()
        for process in tagged(token, work):
            process.kill()


def alive(process: psutil.Process) -> bool:
    """Running, and not a zombie waiting for a parent (init, in a container) to reap it."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
