"""Parsl's lines about each task are left out of parsl.log (q2pconf._parsl.tasklog); every
other line stays, a failed step's traceback among them; Q2PCONF_PARSL_TASK_LOG=1 keeps them.
Each run is a program of its own, as a user's is."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from configs import config, htex, local, threads
from procs import config_env, new_token, wait_gone

STEPS = 300
PROGRAM = """
import sys
from q2pconf import parallel_pipeline, step

@step
def square(i):
    return i * i

@step
def broken():
    raise ValueError("on purpose")

@parallel_pipeline
def fan(n):
    return [square(i) for i in range(n)]

@parallel_pipeline
def fails():
    return broken()

if __name__ == "__main__":
    assert fan(int(sys.argv[1])) == [i * i for i in range(int(sys.argv[1]))]
    try:
        fails()
    except ValueError:
        print("failed as it should")
"""
THREADS = config(threads("default"))
HTEX = config(threads("default"), htex("htex", max_workers_per_node=2, provider=local()),
              mapping={"square": "htex", "broken": "htex"}, strategy="none")
PER_TASK = re.compile(r"Task \d+ (submitted for App|changing state|initializing state|will not"
                      r" be memoized)|Parsl task \d+ try \d+ launched|for task \d+ will not be "
                      r"redirected|Normal ending for _launch_if_ready_async|Pushing function|"
                      r"TasksOutgoing|ResultsIncoming")


def parsl_log(tmp_path: Path, text: str = THREADS, **env: str) -> str:
    """parsl.log of a program that runs STEPS steps, then a step that fails."""
    token, work = new_token(), tmp_path / "work"
    work.mkdir()
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    child = subprocess.run([sys.executable, str(program), str(STEPS)], cwd=work,
                           capture_output=True, text=True, timeout=120,
                           env=config_env(tmp_path, token, text, **env))
    assert child.returncode == 0 and "failed as it should" in child.stdout, child.stderr
    assert wait_gone(token, cwd=work) == []
    [log] = (tmp_path / "cache" / "q2pconf" / "runinfo").glob("*/000/parsl.log")
    return log.read_text()


@pytest.mark.parametrize("executors", [THREADS, HTEX], ids=["threads", "htex"])
def test_parsl_log_keeps_all_but_the_lines_about_each_task(tmp_path: Path,
                                                           executors: str) -> None:
    text = parsl_log(tmp_path, executors)
    assert PER_TASK.findall(text) == []
    assert "Starting DataFlowKernel with config" in text and "DFK cleanup initiated" in text
    failed = re.search(r"ERROR: Task (\d+) failed after 0 retry attempts\n(.*\n)*?ValueError: "
                       "on purpose", text)
    assert failed, text[-3000:]  # the failed step's traceback
    assert len(text.encode()) < STEPS * 300  # Parsl's lines about each task: about 3 KB a step


@pytest.mark.parametrize("value", ["1", "yes"])
def test_the_lines_about_each_task_are_kept_when_asked_for(tmp_path: Path, value: str) -> None:
    text = parsl_log(tmp_path, Q2PCONF_PARSL_TASK_LOG=value)
    submitted = re.findall(r"Task \d+ submitted for App (\w+)", text)
    assert submitted.count("square") == STEPS and submitted.count("broken") == 1
    assert len(text.encode()) > STEPS * 1000
