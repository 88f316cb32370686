"""The Parsl session as a whole program sees it: child Python processes run pipelines, and
the test checks what they leave behind (processes, files, terminal output)."""
from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from configs import config, htex, local, threads
from procs import config_env, new_token, wait_gone, written

CONFIG = config(threads("default", max_threads=2),
                htex("htex", max_workers_per_node=1, provider=local()), strategy="none")


def start(tmp_path: Path, code: str, token: str, **extra: str) -> subprocess.Popen[str]:
    """`code` in a child Python whose processes carry `token` and run in tmp_path/work."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = config_env(tmp_path, token, CONFIG, **extra)
    return subprocess.Popen([sys.executable, "-c", code], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=work)


def wait_for_file(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> None:
    """Until `path` has its content: a step's write_text creates it empty first."""
    deadline = time.monotonic() + timeout
    while not written(path):
        # communicate() with a timeout: a process the child left behind may hold its pipes
        if process.poll() is not None:
            pytest.fail(f"child exited early: {process.communicate(timeout=10)}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{path} never appeared: {process.communicate(timeout=10)}")
        time.sleep(0.05)


# SIGTERM/SIGHUP end the process with steps running on both executors. Ctrl-C raises
# KeyboardInterrupt, which closes the HTEX at once; Python itself then waits for steps still
# running in threads (threads cannot be killed), so that case runs a long step on HTEX only.
LONG = {signal.SIGTERM: "long_running", signal.SIGHUP: "long_running",
        signal.SIGINT: "long_on_htex"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_no_process_outlives_a_signalled_pipeline(tmp_path: Path, signum: int) -> None:
    token, flag = new_token(), tmp_path / "started"
    code = f"import pipeline_steps as s; s.{LONG[signum]}({str(flag)!r}, 300)"
    child = start(tmp_path, code, token)
    wait_for_file(flag, child)  # the HTEX step is running in a worker now
    worker = int(flag.read_text())
    child.send_signal(signum)
    try:
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()  # only if it hung: the test fails, and leaves nothing running
    assert child.returncode != 0
    if signum == signal.SIGINT:
        assert "KeyboardInterrupt" in err
    else:
        assert child.returncode == -signum
    assert wait_gone(token, cwd=tmp_path / "work") == []
    assert not _alive(worker)


def test_no_process_outlives_a_failing_pipeline(tmp_path: Path) -> None:
    token = new_token()
    child = start(tmp_path, "import pipeline_steps as s; s.htex_failing()", token)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 1
    assert "KeyError: 'on purpose'" in err
    assert "q2pconf: in step pipeline_steps.fail('on purpose')" in err
    assert wait_gone(token, cwd=tmp_path / "work") == []


def test_no_process_outlives_a_normal_exit(tmp_path: Path) -> None:
    token = new_token()
    code = "import pipeline_steps as s; print(s.long_running('/dev/null', 0))"
    child = start(tmp_path, code, token)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert wait_gone(token, cwd=tmp_path / "work") == []
    assert "Python is exiting with a DFK still running" not in err


def test_htex_starts_from_a_virtualenv_that_is_not_activated(tmp_path: Path) -> None:
    """Workers are launched with this interpreter, not found on PATH."""
    token = new_token()
    code = "import pipeline_steps as s; print(s.long_on_htex('/dev/null', 0))"
    child = start(tmp_path, code, token, PATH="/usr/bin:/bin")  # no pyenv, no parsl scripts
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert wait_gone(token, cwd=tmp_path / "work") == []


def test_resume_skips_steps_whose_inputs_and_code_are_unchanged(tmp_path: Path) -> None:
    token, log = new_token(), tmp_path / "calls.log"
    code = ("import sys, pipeline_steps as s, q2pconf\n"
            "run = q2pconf.parallel_pipeline(s.counted.func, resume=True)\n"
            f"print(run({str(log)!r}, [int(v) for v in sys.argv[1:]]))")

    def run(*values: int) -> str:
        child = subprocess.run([sys.executable, "-c", code, *map(str, values)],
                               env=config_env(tmp_path, token, CONFIG), capture_output=True,
                               text=True, timeout=120)
        assert child.returncode == 0, child.stderr
        return child.stdout.strip()

    assert run(1, 2, 3) == "[10, 20, 30]"
    assert sorted(log.read_text().split()) == ["1", "2", "3"]
    assert run(1, 2, 3) == "[10, 20, 30]"  # all three came from the checkpoints
    assert sorted(log.read_text().split()) == ["1", "2", "3"]
    assert run(3, 4) == "[30, 40]"  # only the new input ran
    assert sorted(log.read_text().split()) == ["1", "2", "3", "4"]


def test_resume_recognises_set_frozenset_and_bytes_arguments(tmp_path: Path) -> None:
    """Parsl's memoizer refuses them; q2pconf teaches it, with a set's order not mattering
    (each run is a new interpreter, with its own string hash seed)."""
    token, log = new_token(), tmp_path / "calls.log"
    code = ("import sys, pipeline_steps as s, q2pconf\n"
            "run = q2pconf.parallel_pipeline(s.counted_kinds.func, resume=True)\n"
            f"print(run({str(log)!r}))")
    for _ in range(2):
        child = subprocess.run([sys.executable, "-c", code],
                               env=config_env(tmp_path, token, CONFIG), capture_output=True,
                               text=True, timeout=120)
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == "[2, 3, 4, 2]"
    assert len(log.read_text().split()) == 4  # the second run reused all four


# Each run's arguments, as Python evaluated where pipeline_steps is `s` (collections `c`).
TYPED_FIRST = ("[s.Pair(1, 2), c.OrderedDict(a=1, b=2), c.defaultdict(list, a=[1]), "
               "c.Counter('aab'), s.Window(1, 5)]")
# A step per value runs again, except for the Counter (unchanged): another named tuple type
# with equal values, an OrderedDict in another order, another default_factory, another
# dataclass field, and a plain dict equal to the first run's OrderedDict.
TYPED_CHANGED = ("[s.Twin(1, 2), c.OrderedDict(b=2, a=1), c.defaultdict(set, a=[1]), "
                 "c.Counter('aab'), s.Window(1, 6), dict(a=1, b=2)]")


def test_resume_recognises_named_tuples_dict_subclasses_and_dataclasses(tmp_path: Path) -> None:
    """Keyed by content and type: the second run reuses every step, a changed value or
    another type with equal content runs again (each run a new interpreter)."""
    token, log = new_token(), tmp_path / "calls.log"
    code = ("import collections as c, sys, pipeline_steps as s, q2pconf\n"
            "run = q2pconf.parallel_pipeline(s.counted_each.func, resume=True)\n"
            f"print(run({str(log)!r}, eval(sys.argv[1])))")

    def run(values: str) -> str:
        child = subprocess.run([sys.executable, "-c", code, values],
                               env=config_env(tmp_path, token, CONFIG), capture_output=True,
                               text=True, timeout=120)
        assert child.returncode == 0, child.stderr
        return child.stdout.strip()

    first = "['Pair', 'OrderedDict', 'defaultdict', 'Counter', 'Window']"
    assert run(TYPED_FIRST) == first
    assert len(log.read_text().split()) == 5
    assert run(TYPED_FIRST) == first
    assert len(log.read_text().split()) == 5  # all five came from the checkpoints
    assert run(TYPED_CHANGED) == ("['Twin', 'OrderedDict', 'defaultdict', 'Counter', 'Window', "
                                  "'dict']")
    assert sorted(log.read_text().split()[5:]) == ["OrderedDict", "Twin", "Window",
                                                   "defaultdict", "dict"]  # in any order


def test_resume_refuses_an_argument_with_state_beyond_its_content(tmp_path: Path) -> None:
    """An OrderedDict carrying an attribute could change the step's result unseen: refused
    with Parsl's memoizer error, not reused."""
    code = ("import collections, pipeline_steps as s, q2pconf\n"
            "value = collections.OrderedDict(a=1); value.note = 'x'\n"
            "run = q2pconf.parallel_pipeline(s.counted_each.func, resume=True)\n"
            f"run({str(tmp_path / 'calls.log')!r}, [value])")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=config_env(tmp_path, new_token(), CONFIG), timeout=120)
    assert child.returncode != 0 and "unknown type for memoization" in child.stderr
    assert "Fix: pass plain data or a dataclass" in child.stderr
    assert not (tmp_path / "calls.log").exists()


def test_progress_line_on_a_terminal_and_silence_elsewhere(tmp_path: Path) -> None:
    code = "import pipeline_steps as s; s.threads_only(30)"
    env = config_env(tmp_path, new_token(), CONFIG, Q2PCONF_PROGRESS="1")
    assert "q2pconf: 30/30 steps done, 0 running, 0 failed" in _on_terminal(code, env)
    assert _on_terminal(code, {**env, "Q2PCONF_PROGRESS": "0"}) == ""
    piped = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == ""


NAPS = """
import sys, time
from q2pconf.pipeline import parallel_pipeline, step

@step
def nap(i):
    time.sleep(0.3)
    return i

@parallel_pipeline
def naps(n):
    return [nap(i) for i in range(n)]

@parallel_pipeline
def waiting(n):
    # the body waits for every step, so the time left shows; all 12 are done before the 13th
    # is called, so no 13th-step line can show a time left (when the 13th ends, none is left)
    naps = [nap(i) for i in range(n)]
    naps[-1].result()
    last = max(f.result() for f in naps)
    return nap(last + 1)  # one more step: how many are to come is unknown again
"""


def test_the_terminal_line_says_the_time_left_and_imports_no_ipython(tmp_path: Path) -> None:
    """The body returned at once, 12 steps of 0.3 s run 2 at a time: the redraws say the time
    left, the last line does not (none is left). IPython, installed here, stays unimported."""
    env = config_env(tmp_path, new_token(), CONFIG, Q2PCONF_PROGRESS="1")
    code = NAPS + 'naps(12); print("IPython imported:", "IPython" in sys.modules, file=sys.stderr)'
    shown = _on_terminal(code, env)
    redraws = shown.split("\r\x1b[K")
    assert any(re.search(r" steps done, \d+ running, 0 failed, .* left$", r) for r in redraws)
    assert redraws[-1] == ("q2pconf: 12/12 steps done, 0 running, 0 failed\r\n"
                           "IPython imported: False\r\n"), shown


def test_a_body_waiting_for_a_result_shows_the_time_left_until_it_calls_more(
        tmp_path: Path) -> None:
    env = config_env(tmp_path, new_token(), CONFIG, Q2PCONF_PROGRESS="1")
    redraws = _on_terminal(NAPS + "waiting(12)", env).split("\r\x1b[K")
    assert any(re.search(r"/12 steps done, .* left$", r) for r in redraws), redraws
    assert not any(re.search(r"/13 steps done, .* left", r) for r in redraws), redraws
    assert redraws[-1] == "q2pconf: 13/13 steps done, 0 running, 0 failed\r\n"


def _on_terminal(code: str, env: dict[str, str]) -> str:
    """What `code` writes to stderr when stderr is a real pseudo-terminal."""
    leader, follower = pty.openpty()
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=follower,
                             stdout=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        try:
            chunk = os.read(leader, 4096) if ready else b""
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(timeout=60) == 0
    return b"".join(chunks).decode()


def _alive(pid: int) -> bool:
    """Running, not just an unreaped zombie (this machine's init may not reap orphans)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


RESUMABLE = '''
import sys
from q2pconf import parallel_pipeline, step

@step
def work(log, value):
    with open(log, "a") as handle:
        handle.write(f"{{value}}\\n")
    return value * {factor}

@parallel_pipeline(resume=True)
def run(log, values):
    return [work(log, v) for v in values]

if __name__ == "__main__":
    print(run(sys.argv[1], [1, 2]))
'''


# The step never names the argument's type: only the type's fingerprint in the key sees an
# edit to its method.
TYPED_RESUMABLE = '''
import sys
from typing import NamedTuple
from q2pconf import parallel_pipeline, step

class Sample(NamedTuple):
    reads: int

    def scaled(self):
        return self.reads * {factor}

@step
def work(log, value):
    with open(log, "a") as handle:
        handle.write(f"{{value.reads}}\\n")
    return value.scaled()

@parallel_pipeline(resume=True)
def run(log, values):
    return [work(log, Sample(v)) for v in values]

if __name__ == "__main__":
    print(run(sys.argv[1], [1, 2]))
'''


@pytest.mark.parametrize("template", [RESUMABLE, TYPED_RESUMABLE], ids=["code", "type"])
def test_resume_runs_a_step_again_when_its_code_or_argument_type_changed(
        tmp_path: Path, template: str) -> None:
    script, log = tmp_path / "resumable.py", tmp_path / "calls.log"
    env = config_env(tmp_path, new_token(), CONFIG)

    def run(factor: int) -> str:
        script.write_text(template.format(factor=factor))
        done = subprocess.run([sys.executable, str(script), str(log)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run(10) == "[10, 20]"
    assert run(10) == "[10, 20]" and len(log.read_text().split()) == 2  # reused
    assert run(100) == "[100, 200]" and len(log.read_text().split()) == 4  # changed
