"""How a run ends when something ends it: signals to the whole process group (as a terminal,
`timeout`, `scancel` and walltimes send them), Ctrl-C typed on a real terminal, SIGKILL of the
program or of one HTEX part, a pause of the whole run, and queued steps after a failure.

Every program runs in a child process with a deadline; afterwards every process that carries
the child's token (or runs in its working directory) must be gone."""
from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import fcntl
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from configs import config, htex, local, threads
from procs import config_env, new_token, tagged, wait_gone, written

CONFIG = config(threads("default", max_threads=2),
                htex("htex", max_workers_per_node=2, provider=local()), strategy="none")
ENDS_WITHIN = 30.0  # seconds from the signal to the program's end (generous: a loaded machine)
GONE_WITHIN = 20.0  # seconds for every process of the run to be gone after the program ended


@pytest.fixture(autouse=True)
def no_program_left() -> Iterator[None]:
    """Whatever a test ends with (a failed assertion, say), its programs are killed."""
    yield
    while Program.running:
        Program.running.pop().kill()


class Program:
    """A pipeline program in a child process: in a session of its own (as a shell's job), on
    a pseudo-terminal as its controlling terminal when `terminal` is set."""

    running: list[Program] = []

    def __init__(self, tmp_path: Path, code: str, terminal: bool = False) -> None:
        Program.running.append(self)
        self.token, self.work = new_token(), tmp_path / "work"
        self.work.mkdir(exist_ok=True)
        env = config_env(tmp_path, self.token, CONFIG, PYTHONFAULTHANDLER="1")
        self.output: list[bytes] = []
        self.closing = threading.Event()
        self.leader = None
        streams: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
        if terminal:
            self.leader, follower = os.openpty()
            streams = {"stdin": follower, "stdout": follower, "stderr": follower}
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], env=env, cwd=self.work, start_new_session=True,
            preexec_fn=_take_terminal if terminal else None, **streams)  # type: ignore[arg-type]
        if terminal:
            os.close(follower)
        source = self.leader if terminal else self.process.stdout.fileno()  # type: ignore
        self.reader = threading.Thread(target=self._drain, args=(source,), daemon=True)
        self.reader.start()

    def _drain(self, fd: int) -> None:
        # select first: a read in progress would keep a closed terminal open (no hangup).
        while not self.closing.is_set():
            if not select.select([fd], [], [], 0.1)[0]:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal was hung up
                return
            if not chunk:
                return
            self.output.append(chunk)

    def hang_up(self) -> None:
        """Close the terminal, as when its window closes."""
        self.closing.set()
        self.reader.join(5)
        os.close(self.leader)  # type: ignore[arg-type]

    def text(self) -> str:
        return b"".join(self.output).decode(errors="replace")

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                pytest.fail(f"the program ended before {what}: {self.text()[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"{what} did not happen within {timeout} s: {self.text()[-3000:]}")
            time.sleep(0.05)

    def started(self, part: str) -> Callable[[], bool]:
        """Whether `part` ("interchange", "process_worker_pool") of the run has started."""
        return lambda: bool(self.parts(part))

    def parts(self, part: str) -> list[psutil.Process]:
        """The run's processes that are `part` or its q2pconf._parsl.guard (the guard first)."""
        marks = (f"high_throughput.{part}", f"HTEX {part}")  # the interchange renames itself
        found = [p for p in tagged(self.token, self.work)
                 if any(mark in " ".join(_cmdline(p)) for mark in marks)]
        return sorted(found, key=lambda p: "q2pconf._parsl.guard" not in " ".join(_cmdline(p)))

    def ends_within(self, seconds: float) -> float:
        """Seconds the program took to end; fails (and kills it) if it did not."""
        began = time.monotonic()
        try:
            self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # faulthandler shows where it hangs
            time.sleep(2)
            self.kill()
            pytest.fail(f"still running {seconds} s later: {self.text()[-6000:]}")
        self.reader.join(5)
        return time.monotonic() - began

    def leftovers(self, timeout: float = GONE_WITHIN) -> list[str]:
        return wait_gone(self.token, timeout, cwd=self.work)

    def kill(self) -> None:
        _quietly_kill(self.process.pid)
        for process in tagged(self.token, self.work):
            _quietly_kill(process.pid)
        self.process.wait(timeout=10)


def _take_terminal() -> None:
    """In the child, after setsid: make the pseudo-terminal on stdin its controlling one."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _descendants(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _quietly_kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _flag_written(flag: Path) -> Callable[[], bool]:
    return lambda: written(flag)


RUNNING = "import ending_steps as s; print(s.running({flag!r}, 300))"
FAILING = "import ending_steps as s; print(s.failing({flag!r}))"
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def start_at(tmp_path: Path, moment: str, terminal: bool = False) -> Program:
    """A program that runs HTEX steps, at `moment`: "starting" (its interchange runs and its
    worker pool has just been launched), "running" (a worker runs a step) or "failing" (a step
    fails while another runs)."""
    flag = tmp_path / "flag"
    code = (FAILING if moment == "failing" else RUNNING).format(flag=str(flag))
    program = Program(tmp_path, code, terminal)
    if moment == "starting":
        program.wait_until(program.started("process_worker_pool"), "the pool was launched")
    else:
        program.wait_until(_flag_written(flag), "a step started")
    return program


def assert_ended_by(program: Program, signum: int, moment: str) -> None:
    took = program.ends_within(ENDS_WITHIN)
    print(f"{signal.Signals(signum).name} while {moment}: ended after {took:.2f} s, "
          f"status {program.process.returncode}")
    expected = {-signum} | ({1} if moment == "failing" else set())  # the failure may win
    assert program.process.returncode in expected, program.text()[-3000:]
    if signum == signal.SIGINT and program.process.returncode == -signum:
        assert "KeyboardInterrupt" in program.text()
    assert program.leftovers() == []


@pytest.mark.parametrize("moment", ["starting", "running", "failing"])
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_to_the_process_group_ends_the_program_and_every_part(
        tmp_path: Path, signum: int, moment: str) -> None:
    program = start_at(tmp_path, moment)
    os.killpg(program.process.pid, signum)
    assert_ended_by(program, signum, moment)


@pytest.mark.parametrize("moment", ["starting", "running", "failing"])
def test_ctrl_c_on_a_terminal_ends_the_program_and_every_part(
        tmp_path: Path, moment: str) -> None:
    program = start_at(tmp_path, moment, terminal=True)
    os.write(program.leader, b"\x03")  # the terminal sends SIGINT to its foreground group
    assert_ended_by(program, signal.SIGINT, moment)
    program.hang_up()


@pytest.mark.parametrize("delay", [3.0, 4.5, 6.0])
def test_sigterm_while_thousands_of_steps_are_submitted(tmp_path: Path, delay: float) -> None:
    """The handler used to run close() in the main thread while that thread held the logging
    lock, then join a Parsl thread waiting for that lock."""
    flag = tmp_path / "flag"
    program = Program(tmp_path, f"import ending_steps as s; s.flood({str(flag)!r}, 20000)")
    program.wait_until(program.started("interchange"), "the interchange started")
    time.sleep(delay + random.uniform(-0.5, 0.5))
    program.process.send_signal(signal.SIGTERM)
    took = program.ends_within(ENDS_WITHIN)
    print(f"ended {took:.2f} s after SIGTERM, status {program.process.returncode}")
    assert program.process.returncode in (-signal.SIGTERM, 0), program.text()[-3000:]
    assert program.leftovers() == []


def test_sigkill_of_the_program_ends_every_part(tmp_path: Path) -> None:
    program = start_at(tmp_path, "running")
    program.process.kill()
    program.ends_within(10)
    # The interchange's guard sees its parent go at once; the pool's sees the interchange's
    # port refuse connections for 10 s.
    assert program.leftovers(timeout=25) == []


def _part(program: Program, name: str) -> psutil.Process:
    """The real interchange or worker pool: the child of the q2pconf._parsl.guard that runs it. (Not
    the last process naming it: multiprocessing's forkserver and the workers it forks carry
    the pool's module on their command lines too, so that was a worker, now and then.)"""
    guards = [p for p in program.parts(name) if "q2pconf._parsl.guard" in " ".join(_cmdline(p))]
    assert guards, f"no {name} running"
    children = guards[0].children()
    assert children, f"the guard of the {name} runs nothing"
    return children[0]


def test_kill_9_of_the_worker_pool_leaves_no_worker(tmp_path: Path) -> None:
    program = start_at(tmp_path, "running")
    _part(program, "process_worker_pool").kill()
    took = program.ends_within(ENDS_WITHIN)
    print(f"ended {took:.2f} s after the pool was killed")
    assert program.process.returncode == 1, program.text()[-3000:]
    assert program.leftovers(timeout=5) == []  # its workers went with it, not 120 s later


def _started(log: Path) -> int:
    return len(log.read_text().split()) if log.exists() else 0


def test_queued_thread_steps_do_not_start_after_a_failure(tmp_path: Path) -> None:
    log = tmp_path / "started"
    program = Program(tmp_path, f"import ending_steps as s; s.many_queued({str(log)!r}, 40, "
                                "True)")
    took = program.ends_within(60)
    assert program.process.returncode == 1, program.text()[-3000:]
    assert "ValueError: on purpose" in program.text()
    print(f"{_started(log)} of 40 queued steps started; ended after {took:.2f} s")
    assert _started(log) <= 4  # the ones already running, and a race or two
    assert program.leftovers() == []


def test_queued_thread_steps_do_not_start_after_ctrl_c(tmp_path: Path) -> None:
    log = tmp_path / "started"
    program = Program(tmp_path, f"import ending_steps as s; s.many_queued({str(log)!r}, 40, "
                                "False)", terminal=True)
    program.wait_until(lambda: _started(log) >= 2, "two steps started")
    os.write(program.leader, b"\x03")
    took = program.ends_within(ENDS_WITHIN)
    print(f"{_started(log)} of 40 queued steps started; ended {took:.2f} s after Ctrl-C")
    assert program.process.returncode == -signal.SIGINT, program.text()[-3000:]
    assert _started(log) <= 5
    assert took < 10  # the two running steps take 1 s; the 38 queued would take 19 s
    program.hang_up()
    assert program.leftovers() == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP],
                         ids=lambda s: signal.Signals(s).name)
def test_a_signal_while_thread_steps_queue_ends_the_run_without_a_false_failure(
        tmp_path: Path, signum: int) -> None:
    """`scancel`, `timeout` or a closed terminal while thread steps wait: the program dies of
    the signal, and says nothing of the steps the signal cancelled (a CancelledError traceback
    "in step queued(...)" once read as a failing step). Its run ends as "terminated"."""
    log = tmp_path / "started"
    program = Program(tmp_path, f"import ending_steps as s; s.many_queued({str(log)!r}, 40, "
                                "False)")
    program.wait_until(lambda: _started(log) >= 2, "two steps started")
    os.killpg(program.process.pid, signum)
    program.ends_within(ENDS_WITHIN)
    assert program.process.returncode == -signum, program.text()[-3000:]
    assert "Traceback" not in program.text() and "CancelledError" not in program.text()
    [meta] = (tmp_path / "cache").rglob("many_queued-*.run.json")
    assert json.loads(meta.read_text())["outcome"] == "terminated"
    assert program.leftovers() == []


PAUSE = 60.0  # seconds: twice the heartbeat threshold q2pconf used to give local pools


def test_a_paused_run_carries_on_when_continued(tmp_path: Path) -> None:
    """Ctrl-Z then `fg`, or a laptop's sleep: every process of the run stops, then goes on."""
    flag = tmp_path / "flag"
    program = Program(tmp_path, f"import ending_steps as s; print(s.paused({str(flag)!r}, 3, 8))")
    program.wait_until(_flag_written(flag), "a step started")
    _pause(program, PAUSE)
    program.ends_within(60)
    assert program.process.returncode == 0, program.text()[-3000:]
    assert program.text().strip().splitlines()[-1] == str(list(range(8)))
    assert program.leftovers() == []


def _pause(program: Program, seconds: float) -> None:
    """Stop every process of the run for `seconds`, then continue them (Ctrl-Z, then `fg`)."""
    stopped = [program.process.pid, *(p.pid for p in tagged(program.token, program.work))]
    os.killpg(program.process.pid, signal.SIGSTOP)  # what Ctrl-Z does
    for pid in stopped:  # and what sleep does to the rest
        os.kill(pid, signal.SIGSTOP)
    time.sleep(seconds)
    for pid in stopped:
        os.kill(pid, signal.SIGCONT)
    os.killpg(program.process.pid, signal.SIGCONT)


def test_a_pause_right_after_a_stale_poll_is_no_failure(tmp_path: Path) -> None:
    """The race of the 60 s pause above, made certain (a simulation: the program leaves the
    HTEX's block statuses as Parsl's poller leaves them when its poll races with the block's
    launch, and lets it poll again only 2 s after the pause): the watchdog must not read that
    as "no block pending or running" the moment the run goes on."""
    flag = tmp_path / "flag"
    program = Program(tmp_path, "import ending_steps as s; "
                                f"print(s.paused_after_a_stale_poll({str(flag)!r}, 3, 8))")
    program.wait_until(_flag_written(flag), "the block statuses were made stale")
    _pause(program, 10.0)  # longer than the watchdog's 5 s grace for strategy "none"
    program.ends_within(60)
    assert program.process.returncode == 0, program.text()[-3000:]
    assert program.text().strip().splitlines()[-1] == str(list(range(8)))
    assert program.leftovers() == []
