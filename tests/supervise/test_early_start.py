"""An HTEX the pipeline body names starts in the background while its thread steps run, and
a program ended during that start leaves no process behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from configs import config, htex, local, threads
from procs import config_env, new_token, program_env, tagged, wait_gone

CONFIG = config(threads("default", max_threads=2),
                htex("htex", max_workers_per_node=1, provider=local()), strategy="none")


def start(tmp_path: Path, code: str, token: str) -> subprocess.Popen[str]:
    """`code` in a child Python, in a process group of its own, running in tmp_path/work."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", code], cwd=work, text=True,
                            env=config_env(tmp_path, token, CONFIG), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until(check, child: subprocess.Popen[str], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"{what} never happened: {child.communicate(timeout=10)}")
        time.sleep(0.05)


def interchange_runs(token: str, work: Path) -> bool:
    for process in tagged(token, work):
        try:
            if any("HTEX interchange" in part or part.endswith("high_throughput.interchange")
                   for part in process.cmdline()):
                return True
        except psutil.Error:
            continue
    return False


def code(flag: Path, go: Path, use_htex: bool) -> str:
    return (f"import pipeline_steps as s; print(s.threads_first({str(flag)!r}, {str(go)!r}, "
            f"{use_htex}))")


@pytest.mark.parametrize("use_htex", [False, True])
def test_htex_starts_beside_the_first_thread_step(tmp_path: Path, use_htex: bool) -> None:
    token, flag, go = new_token(), tmp_path / "running", tmp_path / "go"
    child = start(tmp_path, code(flag, go, use_htex), token)
    try:
        wait_until(flag.exists, child, "the thread step")
        # the body is blocked in .result() of its thread step: no HTEX step was called yet
        wait_until(lambda: interchange_runs(token, tmp_path / "work"), child,
                   "the background start of the HTEX")
        go.write_text("")
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert out.strip()  # the result was printed
    assert wait_gone(token, cwd=tmp_path / "work") == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_background_start_leaves_no_process(tmp_path: Path,
                                                                signum: int) -> None:
    token, flag, go = new_token(), tmp_path / "running", tmp_path / "go"
    child = start(tmp_path, code(flag, go, True), token)
    try:
        wait_until(flag.exists, child, "the thread step")
        time.sleep(0.3)  # the HTEX is starting now (its interchange takes ~0.5-2 s)
        go.write_text("")  # a Ctrl-C must not wait for the thread step to end by itself
        os.killpg(child.pid, signum)
        child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode != 0
    assert wait_gone(token, cwd=tmp_path / "work") == []


SLOW_TICK = config(threads("default", max_threads=1),
                   htex("htex", max_workers_per_node=1, provider=local()),
                   strategy="none", strategy_period=120)


def test_a_local_block_launches_with_its_executor_not_at_the_strategys_tick(
        tmp_path: Path) -> None:
    """Strategy "none" only launches init_blocks at its first tick (here 120 s away): q2pconf
    launches them as the executor starts."""
    from q2pconf.config import vendored
    from q2pconf.pipeline._session import _blocks_now

    executor = vendored().executor("htex")
    assert _blocks_now(executor, "simple") == 0 and executor.provider.init_blocks == 1
    assert _blocks_now(executor, "none") == 1 and executor.provider.init_blocks == 0
    path = tmp_path / "slow-tick.toml"
    path.write_text(SLOW_TICK)
    token = new_token()
    # The session (and the strategy's clock) starts with a thread step; its first tick (~1 s
    # in) passes before the HTEX exists, the next is 120 s away.
    code = ("import time, q2pconf, pipeline_steps as s\n"
            f"with q2pconf.ParallelConfig({str(path)!r}):\n"
            "    s.threads_only(1); time.sleep(3)\n"
            "    began = time.monotonic(); s.long_on_htex('/dev/null', 0)\n"
            "    print(round(time.monotonic() - began, 1))\n")
    done = subprocess.run([sys.executable, "-c", code], env=program_env(tmp_path, token),
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) < 60  # well before the strategy's first tick
    assert wait_gone(token) == []
