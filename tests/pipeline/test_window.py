"""The bound on steps in flight (q2pconf._base.window): the pipeline body's thread waits in a
step call while a window of steps is unfinished, and only that thread; waiting there still ends at
once on Ctrl-C or a failing step; results and history do not change."""
from __future__ import annotations

import csv
import json
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import q2pconf
import window_steps as steps
from configs import config, htex, local, threads
from procs import config_env, new_token, tagged, wait_gone
from q2pconf._base import window
from q2pconf._base.window import WINDOW_VAR

CONFIG = config(threads("default", max_threads=2))
pytestmark = pytest.mark.usefixtures("fresh_session")


@pytest.fixture(autouse=True)
def gate() -> Iterator[None]:
    """Each test starts with the gate closed; whatever it ends with, held steps are let go."""
    steps.GATE.clear()
    steps.RETURNED.clear()
    steps.RELEASED_BY.clear()
    yield
    steps.release("cleanup")


def write_config(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "window.toml"
    path.write_text(text)
    return path


def release_later(seconds: float) -> None:
    """A safety net: a test that went wrong lets its held steps go, rather than hang."""
    timer = threading.Timer(seconds, steps.release, args=("timer",))
    timer.daemon = True  # pytest must not wait for it at exit (up to 90 s, seen in CI)
    timer.start()


def watch_calls(expected: int, within: float, then: float, seen: list[int]) -> None:
    """In a thread: wait until `expected` step calls of the body have returned (at most
    `within` s), `then` s more, note how many have, and let the held steps go."""
    def watch() -> None:
        deadline = time.monotonic() + within
        while len(steps.RETURNED) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(then)
        seen.append(len(steps.RETURNED))
        steps.release("test")

    threading.Thread(target=watch, daemon=True).start()
    release_later(90)


def test_the_window_counts_worker_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    from parsl.executors import HighThroughputExecutor, ThreadPoolExecutor
    from parsl.providers import LocalProvider, SlurmProvider

    monkeypatch.delenv(WINDOW_VAR, raising=False)
    small = {"default": ThreadPoolExecutor(label="default", max_threads=2)}
    assert window.size(small) == window.FLOOR
    big = {"default": ThreadPoolExecutor(max_threads=1000),
           "_parsl_internal": ThreadPoolExecutor(max_threads=5000)}  # Parsl's own: not counted
    assert window.size(big) == window.K * 1000
    cluster = HighThroughputExecutor(label="htex", address="127.0.0.1", max_workers_per_node=8,
                                     provider=SlurmProvider(nodes_per_block=4, max_blocks=50))
    assert window.slots(cluster) == 8 * 4 * 50
    unbounded = HighThroughputExecutor(label="any", address="127.0.0.1",
                                       provider=LocalProvider(max_blocks=2))
    assert window.slots(unbounded) == window.NODE_GUESS * 2
    assert window.slots(object()) == window.UNKNOWN_SLOTS
    assert window.size({**small, "htex": cluster}) == window.K * (2 + 1600)


def test_the_variable_sets_the_window_or_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WINDOW_VAR, " 7 ")
    assert window.size({}) == 7
    monkeypatch.setenv(WINDOW_VAR, "0")
    assert window.size({}) is None
    for bad in ("1", "-3", "many", "2.5"):
        monkeypatch.setenv(WINDOW_VAR, bad)
        with pytest.raises(ValueError, match=f"{WINDOW_VAR}='{bad}' is not a number of steps"):
            window.size({})


def test_the_body_stops_submitting_at_the_window_and_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The config's own window (no variable): 2 threads, so FLOOR steps in flight."""
    monkeypatch.delenv(WINDOW_VAR, raising=False)
    limit = window.FLOOR
    count = limit + limit // 2 + 10
    seen: list[int] = []

    watch_calls(limit, 60, 1.5, seen)  # a body that did not wait would go on in the 1.5 s
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        result = steps.counted(count)
    assert seen == [limit]  # the two running steps are held too: none finished
    assert result == list(range(count))
    assert steps.RELEASED_BY == ["test"]


def test_steps_waiting_for_their_inputs_do_not_hold_the_body_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fan-out waiting for one long step is not work the executors hold: a body counting it
    would wait for that step before submitting its later, independent steps (hours of a
    branch that could have run beside it)."""
    monkeypatch.setenv(WINDOW_VAR, "4")
    count = 20
    seen: list[int] = []

    watch_calls(count + 2, 20, 0, seen)
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        result = steps.fan_out_behind_one(count)
    assert seen == [count + 2]  # every call returned while the first step was held
    assert result == [0, *range(count), -1]
    assert steps.RELEASED_BY == ["test"]


def test_a_step_failing_while_the_body_waits_is_raised_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WINDOW_VAR, "4")
    release_later(90)
    began = time.monotonic()
    with q2pconf.ParallelConfig(write_config(tmp_path)), \
            pytest.raises(ValueError, match="on purpose"):
        steps.failing_while_full(20)
    took = time.monotonic() - began
    history = steps.failing_while_full.history
    steps.release("test")
    assert took < 30, f"raised after {took:.1f} s: not until the held steps were let go"
    assert steps.RELEASED_BY == ["test"]
    assert len(history) == 4  # the body waited at the window: the 5th call raised
    assert history[0].state == "failed"
    # the run failed as any run does: what had not started never starts (q2pconf._supervise.abandon)
    with open(str(steps.failing_while_full.trace_path), newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    statuses = [row["status"] for row in rows]
    assert statuses[0] == "failed" and statuses[1:] == ["cancelled"] * 3, statuses


def test_a_step_call_from_another_thread_never_waits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WINDOW_VAR, "4")
    release_later(90)
    seen: list[int] = []
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        result = steps.from_a_thread(20, seen)
    assert seen == [20]  # all submitted while every step was held
    assert result == list(range(20))


def test_a_pipeline_called_inside_a_step_never_waits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipeline called inside a step runs its steps in that step, one after another, as
    run.serial does (q2pconf.pipeline): it never waits for room among steps in flight, nor for
    a pool thread (here the only one, which its own step holds). Its steps no longer run beside
    its body, so they cannot wait for what the body does later: the gate is open from the
    start, and a wait would last the held steps' SAFETY (or, for a thread, for ever)."""
    monkeypatch.setenv(WINDOW_VAR, "4")
    monkeypatch.setenv("QIIME2_CONFIG", str(write_config(
        tmp_path, config(threads("default", max_threads=1)))))
    steps.release("test")
    began = time.monotonic()
    assert steps.outer(12) == list(range(12))
    assert time.monotonic() - began < steps.SAFETY / 2


def test_results_and_history_do_not_change_beyond_the_window(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = {}
    for limit in ("0", "4"):  # no bound, then a window far smaller than the run
        monkeypatch.setenv(WINDOW_VAR, limit)
        with q2pconf.ParallelConfig(write_config(tmp_path)):
            result = steps.naps(60, 0.005)
        history = steps.naps.history
        runs[limit] = (result, [(r.name, r.executor, r.state) for r in history])
    assert runs["4"] == runs["0"]
    assert runs["4"][0] == list(range(60))
    assert runs["4"][1] == [("nap", "default", "exec_done")] * 60


def test_ctrl_c_while_the_body_waits_for_room(tmp_path: Path) -> None:
    """SIGINT to the whole process group (a terminal's Ctrl-C) while the body waits in a step
    call: KeyboardInterrupt within seconds, and nothing of the run left."""
    token, log, work = new_token(), tmp_path / "returned", tmp_path / "work"
    work.mkdir()
    env = config_env(tmp_path, token, CONFIG, **{WINDOW_VAR: "4"})
    code = f"import window_steps as s; s.interruptible(200, 3.0, {str(log)!r})"
    program = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=work,
                               start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text() == "4"):
            assert program.poll() is None and time.monotonic() < deadline, "never reached 4"
            time.sleep(0.05)
        time.sleep(0.3)  # the body is now waiting for two of the 3 s steps to end
        began = time.monotonic()
        os.killpg(program.pid, signal.SIGINT)
        output, _ = program.communicate(timeout=30)
        took = time.monotonic() - began
    finally:
        if program.poll() is None:
            os.killpg(program.pid, signal.SIGKILL)
            program.wait(timeout=10)
    text = output.decode(errors="replace")
    assert program.returncode == -signal.SIGINT, text[-3000:]
    assert "KeyboardInterrupt" in text
    assert took < 15, f"ended {took:.1f} s after Ctrl-C"  # the two running steps end first
    assert log.read_text() == "4"  # it was waiting in the 5th call, and never got further
    assert wait_gone(token, 20, cwd=work) == []


@pytest.mark.parametrize("where", ["default", "htex"])
def test_finished_parsl_tasks_are_freed_without_the_collector(tmp_path: Path, where: str) -> None:
    """q2pconf._base.futures.Release: Parsl's finished tasks are not left in reference cycles for
    Python's collector (~6 KiB each, and the oldest generation is collected rarely)."""
    text = config(threads("default", max_threads=2),
                  htex("htex", max_workers_per_node=2, provider=local(init_blocks=1)),
                  strategy="none")
    with q2pconf.ParallelConfig(write_config(tmp_path, text)):
        steps.trivial(4, where)  # the executor is started
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable stays to be seen
        try:
            assert steps.trivial(300, where) == list(range(300))
            gc.collect()
            left = sum(type(item).__name__ == "AppFuture" for item in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    # the run's last task or two may still wait for Parsl's launch to store its future
    assert left <= 3, f"{left} of 300 Parsl tasks were left to the collector"


STALLED = """
import json, sys, time
from parsl.config import Config
from parsl.executors import HighThroughputExecutor, ThreadPoolExecutor
from parsl.providers import LocalProvider
import q2pconf, window_steps as s

htex = HighThroughputExecutor(
    label="htex", address="127.0.0.1", provider=LocalProvider(init_blocks=0, max_blocks=1),
    interchange_launch_cmd=[sys.executable, "-m", "parsl.executors.high_throughput.interchange"])
began = time.monotonic()
try:
    with q2pconf.ParallelConfig(Config(executors=[ThreadPoolExecutor(label="default"), htex],
                                       strategy="none", strategy_period=1)):
        s.trivial(50, "htex")
except Exception as error:
    print(json.dumps({"type": type(error).__name__, "message": str(error),
                      "seconds": time.monotonic() - began, "calls": len(s.trivial.history)}))
"""


def test_a_stalled_run_fails_saying_why_while_the_body_waits_for_room(tmp_path: Path) -> None:
    """No block can ever start: the watchdog's message, not a body waiting for ever."""
    token, work = new_token(), tmp_path / "work"
    work.mkdir()
    try:
        child = subprocess.run([sys.executable, "-c", STALLED], cwd=work, capture_output=True,
                               text=True, timeout=90,
                               env=config_env(tmp_path, token, CONFIG, **{WINDOW_VAR: "4"}))
        assert wait_gone(token, 20, cwd=work) == []
    finally:
        for process in tagged(token, work):
            process.kill()
    assert child.returncode == 0 and child.stdout.strip(), child.stderr[-3000:]
    answer = json.loads(child.stdout)
    assert answer["type"] == "ExecutorFailed", answer
    assert "executor 'htex' has no block pending or running" in answer["message"]
    assert answer["calls"] == 4  # it waited in the 5th step call
    assert answer["seconds"] < 30


HELD = "the pipeline body has waited"
RULE_BROKEN = """
import q2pconf._base.notice, window_steps as s
q2pconf._base.notice.AFTER = {after}  # seconds without a step finishing before the message
print(s.breaks_the_rule(6, {seconds}))
"""


def _break_the_rule(tmp_path: Path, limit: str, after: float,
                    seconds: float) -> subprocess.CompletedProcess[str]:
    """One thread, the window `limit`, a step waiting (up to `seconds`) for the body."""
    token, work = new_token(), tmp_path / f"work{limit}"
    work.mkdir()
    env = config_env(tmp_path, token, config(threads("default", max_threads=1)),
                     **{WINDOW_VAR: limit})
    code = RULE_BROKEN.format(after=after, seconds=seconds)
    return subprocess.run([sys.executable, "-c", code], cwd=work, env=env, text=True,
                          capture_output=True, timeout=120)


def test_a_body_held_by_the_window_says_so_once(tmp_path: Path) -> None:
    """The deadlock of a step waiting for what the body does more than a window of calls
    later: the body waits for room the waiting step never frees, until its own timeout. It
    cannot be told from long steps, so the run goes on as before; but it is said, once."""
    held = _break_the_rule(tmp_path, "4", 1.0, 8.0)
    assert held.returncode == 0, held.stderr[-3000:]
    assert held.stdout.strip() == str([False, *range(6)])  # the step's wait timed out
    assert held.stderr.count(HELD) == 1, held.stderr[-3000:]
    message = held.stderr[held.stderr.index(HELD):]
    assert "window of 4 steps in flight" in message
    assert f"{WINDOW_VAR}=N" in message and f"{WINDOW_VAR}=0 to lift" in message
    lifted = _break_the_rule(tmp_path, "0", 1.0, 60.0)  # the fix the message gives
    assert lifted.returncode == 0, lifted.stderr[-3000:]
    assert lifted.stdout.strip() == str([True, *range(6)])
    assert HELD not in lifted.stderr


def test_a_body_waiting_while_steps_finish_says_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """A full window is normal while steps finish: each finish starts the count again. One
    thread and a window of 40: the body waits for 20 steps of 0.15 s (3 s), twice AFTER."""
    from q2pconf._base import notice

    monkeypatch.setenv(WINDOW_VAR, "40")
    monkeypatch.setattr(notice, "AFTER", 1.5)
    with q2pconf.ParallelConfig(write_config(tmp_path, config(threads("default",
                                                                      max_threads=1)))):
        assert steps.naps(45, 0.15) == list(range(45))
    assert HELD not in capfd.readouterr().err


def test_the_final_wait_says_once_when_no_step_finishes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """The body's last wait, for its results: steps that take long are said once."""
    from q2pconf._base import notice

    monkeypatch.setattr(notice, "AFTER", 1.0)
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        assert steps.naps(2, 4.0) == [0, 1]
        err = capfd.readouterr().err
        assert err.count("the pipeline has waited") == 1, err
        assert "for its last 2 steps, and none has finished meanwhile" in err
        assert steps.naps(6, 0.1) == list(range(6))  # each finish starts the count again
    assert "the pipeline has waited" not in capfd.readouterr().err
