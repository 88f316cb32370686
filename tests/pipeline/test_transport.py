"""How steps reach HTEX workers: from an importable module, from the running script, by value."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pipeline_steps
from configs import config, htex, local, threads
from procs import config_env, new_token, wait_gone
from q2pconf import step
from q2pconf.pipeline._transport import Remote

CONFIG = config(threads("default", max_threads=2),
                htex("htex", max_workers_per_node=1, provider=local()), strategy="none")


SCRIPT = '''
import collections, os
from q2pconf import parallel_pipeline, step

SCALE = 3

def helper(word):
    return collections.Counter(word).most_common(1)[0][0] * SCALE

@step(executor="htex")
def shout(word):
    return helper(word), os.getpid()

@parallel_pipeline
def run(words):
    return [shout(w) for w in words]

{main}
'''
GUARDED = ('if __name__ == "__main__":\n'
           '    print(sorted(run(["aab", "xyy"])))\n    print(os.getpid())')
UNGUARDED = 'print(run(["aab"]))'


def run_script(tmp_path: Path, main: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "my pipeline.py"
    script.write_text(SCRIPT.format(main=textwrap.dedent(main)))
    work = tmp_path / "work"
    work.mkdir()
    token = new_token()
    done = subprocess.run([sys.executable, str(script)], cwd=work,
                          env=config_env(tmp_path, token, CONFIG), capture_output=True,
                          text=True, timeout=120)
    assert wait_gone(token, cwd=work) == []
    return done


def test_a_step_in_the_running_script_reaches_the_worker_with_its_globals(
        tmp_path: Path) -> None:
    done = run_script(tmp_path, GUARDED)
    assert done.returncode == 0, done.stderr
    results, parent = done.stdout.splitlines()[0], done.stdout.splitlines()[1]
    assert "'aaa'" in results and "'yyy'" in results
    assert parent not in results  # the steps ran in a worker process, not in the script


def test_a_script_that_runs_its_pipeline_on_import_gets_a_clear_error(tmp_path: Path) -> None:
    done = run_script(tmp_path, UNGUARDED)
    assert done.returncode == 1
    assert 'put the call under `if __name__ == "__main__":`' in done.stderr
    assert "my pipeline.py" in done.stderr


def test_steps_in_importable_modules_travel_by_reference() -> None:
    blob = pickle.dumps(pipeline_steps.add.runner)
    assert b"pipeline_steps" in blob and len(blob) < 300
    assert pickle.loads(blob).runner is pipeline_steps.add.runner


def test_a_step_made_inside_a_function_travels_by_value() -> None:
    def local(x: int) -> int:
        return x * 7

    runner = step(local).runner
    import dill

    copy = dill.loads(dill.dumps(runner))
    assert isinstance(copy, Remote) and copy.runner is not runner
    assert copy(6) == 42


def test_the_runner_drops_keywords_meant_for_parsl_only() -> None:
    assert pipeline_steps.add.runner(1, 2, walltime=5, _q2pconf_code="x") == 3


def test_code_digest_changes_with_the_code() -> None:
    def one() -> int:
        return 1

    def two() -> int:
        return 2

    assert step(one).runner.code_digest() != step(two).runner.code_digest()


@pytest.mark.parametrize("name", ["add", "span"])
def test_steps_keep_their_names_for_parsl(name: str) -> None:
    runner = getattr(pipeline_steps, name).runner
    assert runner.__name__ == name and runner.__module__ == "pipeline_steps"


TYPED_IN = '''
import json, os, time
from q2pconf import parallel_pipeline, step
from q2pconf.pipeline import _session as session
LIMIT = 3

def clip(x):
    return min(x, LIMIT)

@step
def double(x):
    return 2 * x

@step(executor="htex")
def work(x):
    time.sleep(0.01)
    return clip(double(x)), os.getpid()

@parallel_pipeline
def run(xs):
    return [work(x) for x in xs]

print(json.dumps({"results": run([1, 2]), "pid": os.getpid(),
                  "htex": "htex" in session.session().dfk.executors}))
'''


def test_a_step_typed_into_python_c_reaches_the_worker_with_its_namespace(
        tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    token = new_token()
    done = subprocess.run([sys.executable, "-c", TYPED_IN], cwd=work,
                          env=config_env(tmp_path, token, CONFIG), capture_output=True,
                          text=True, timeout=120)
    assert wait_gone(token, cwd=work) == []
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert [value for value, _ in answer["results"]] == [2, 3]
    assert answer["htex"] and all(pid != answer["pid"] for _, pid in answer["results"])


def test_by_value_functions_keep_closures_defaults_and_mutual_recursion() -> None:
    import dill

    offset = 10

    def even(n: int, base: int = 0) -> bool:
        return base + offset > 0 if n == 0 else odd(n - 1)

    def odd(n: int) -> bool:
        return False if n == 0 else even(n - 1)

    globals()["odd"] = odd  # a namespace where two functions call each other
    try:
        copy = dill.loads(dill.dumps(step(even).runner))
    finally:
        del globals()["odd"]
    assert copy(4) is True and copy(3) is False and copy(0, base=-20) is False
