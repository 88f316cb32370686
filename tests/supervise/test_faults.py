"""Hard failures on an HTEX: workers that die, hang, or get their program signalled.

Each case runs a pipeline in a child Python process and then looks for every process that
carries the child's token in its environment (interchange and workers inherit it), so an
orphan reparented to init is still found."""
from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from configs import config, htex, local, threads
from procs import config_env, new_token, wait_gone

# The worker pool's watchdog looks for dead workers every heartbeat_period seconds (default
# 30): 1 s makes a lost worker show up in about a second.
CONFIG = config(threads("default", max_threads=2),
                htex("htex", max_workers_per_node=2, heartbeat_period=1, heartbeat_threshold=10,
                     provider=local()), strategy="none")
DETECTION_LIMIT = 15.0  # seconds from the worker's death to the caller's exception


def env_for(tmp_path: Path, token: str) -> dict[str, str]:
    return config_env(tmp_path, token, CONFIG, PYTHONFAULTHANDLER="")


RUN_FAULT = """\
import json, sys, time
import fault_steps
try:
    fault_steps.FAULTS[sys.argv[1]](sys.argv[2])
except BaseException as error:
    kind = type(error)
    print(json.dumps({"type": f"{kind.__module__}.{kind.__qualname__}", "message": str(error),
                      "notes": getattr(error, "__notes__", []), "caught": time.time()}))
else:
    print(json.dumps({"type": None}))
"""

EXPECTED = {
    "exit": "parsl.executors.high_throughput.errors.WorkerLost",
    "segfault": "parsl.executors.high_throughput.errors.WorkerLost",
    "walltime": "parsl.app.errors.AppTimeout",
}
STEP = {"exit": "exit_hard", "segfault": "segfault", "walltime": "spin"}


@pytest.mark.parametrize("fault", EXPECTED)
def test_a_worker_that_dies_or_hangs_fails_the_pipeline_quickly(tmp_path: Path,
                                                                fault: str) -> None:
    token, flag = new_token(), tmp_path / "misbehaving"
    child = subprocess.Popen([sys.executable, "-c", RUN_FAULT, fault, str(flag)],
                             env=env_for(tmp_path, token), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=90)
    finally:
        child.kill()  # only if it hung: the test fails and leaves nothing running
    assert child.returncode == 0, err
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["type"] == EXPECTED[fault], answer
    notes = "\n".join(answer["notes"])
    assert f"q2pconf: in step fault_steps.{STEP[fault]}(" in notes
    assert "on executor 'htex'" in notes
    began, worker = flag.read_text().split()
    latency = answer["caught"] - float(began)
    print(f"{fault}: {answer['type']} ({answer['message']}) {latency:.2f} s after")
    assert latency < DETECTION_LIMIT
    assert wait_gone(token) == []


# Ctrl-C raises KeyboardInterrupt, after which Python waits for running threads (they cannot
# be stopped): a thread-pool step still sleeping would make that wait long by design, so the
# SIGINT runs use HTEX steps only. SIGTERM kills the process whatever its threads do.
PIPELINE = {signal.SIGTERM: "mixed", signal.SIGINT: "htex_only"}
# Measured here: the interchange appears ~0.5 s after the start, the worker pool ~1 s, its
# workers run steps from ~1.5 s. Seeded moments in each window: before the HTEX starts, while
# it starts, while steps run.
WINDOWS = [(0.0, 0.5), (0.5, 1.5), (1.5, 3.0)]
SEEDS = range(6)


def delay(signum: int, seed: int) -> float:
    low, high = WINDOWS[seed % len(WINDOWS)]
    return round(random.Random(seed * 1000 + signum).uniform(low, high), 3)


CASES = [pytest.param(signum, delay(signum, seed),
                      id=f"{signal.Signals(signum).name}-{delay(signum, seed)}s")
         for signum in PIPELINE for seed in SEEDS]


@pytest.mark.parametrize("signum,delay", CASES)
def test_a_signal_at_any_moment_ends_the_program_and_its_processes(tmp_path: Path,
                                                                   signum: int,
                                                                   delay: float) -> None:
    token = new_token()
    code = f"import fault_steps; fault_steps.{PIPELINE[signum]}(300)"
    child = subprocess.Popen([sys.executable, "-c", code], env=env_for(tmp_path, token),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    child.send_signal(signum)
    started = time.monotonic()
    try:
        _, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        _, err = child.communicate(timeout=10)  # a left-behind process may hold the pipes
        pytest.fail(f"still running 60 s after {signal.Signals(signum).name}: {err[-3000:]}")
    print(f"ended {time.monotonic() - started:.2f} s after the signal, rc={child.returncode}")
    if signum == signal.SIGINT and child.returncode == 1:
        # Ctrl-C while Python is still starting or importing (before a pipeline runs): Python
        # prints the KeyboardInterrupt and exits 1, as it does for any program.
        assert err.rstrip().endswith("KeyboardInterrupt"), err
    else:
        assert child.returncode == -signum, err  # died of it (Python re-raises SIGINT at exit)
    left = wait_gone(token)
    assert left == [], f"orphans after {signal.Signals(signum).name} at {delay} s: {left}"
