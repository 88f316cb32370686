"""Steps and pipelines called inside running steps, and scripts as users run them.

Inside a running step a step call is a plain call, and a pipeline runs its steps in that step,
in every mode (threads, HTEX, run.serial), with one worker or several: never a Future where a
value belongs, never a wait for a worker the calling step holds. Scripts read from standard
input reach HTEX workers; a global a script's main block sets, which HTEX workers never see,
is warned about.
"""
from __future__ import annotations

import collections
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import nesting_steps
from configs import config, htex, local, threads
from procs import config_env, new_token, wait_gone
from q2pconf.pipeline import _mainblock as mainblock

# The vendored default's shape: one thread, one HTEX worker; and several of each.
ONE_WORKER = config(threads("default", max_threads=1),
                    htex("htex", max_workers_per_node=1, provider=local()), strategy="none")
SEVERAL = config(threads("default", max_threads=4),
                 htex("htex", max_workers_per_node=3, provider=local(init_blocks=1)),
                 strategy="none")
STEP_VALUE = 6 + 6 + 3 + 30  # nesting_steps._calls_steps(3)
INNER = 2 * (1 + 2 + 3) * 2  # nesting_steps.inner(XS)
EXPECTED = {"step in thread step": STEP_VALUE, "step in htex step": STEP_VALUE,
            "step in step in step": STEP_VALUE, "pipeline in thread step": INNER,
            "pipeline in htex step": INNER, "nested pipelines in thread step": 2 * INNER,
            "nested pipelines in htex step": 2 * INNER, "serial in thread step": INNER,
            "nested pipelines in the body": 2 * INNER}
# What the outer run's history holds: its own steps, and those of `middle` called in its body
# (twice inner's 3 double, 3 double_far and add_all, then middle's add_all); never the steps
# that ran inside a step.
HISTORY = collections.Counter({**{name: 1 for name in nesting_steps.OUTER_STEPS},
                               "double": 6, "double_far": 6, "add_all": 3})
PROCESS_TIMEOUT = 240  # seconds: a safety net; a run here takes a few seconds


def values(result: dict[str, Any]) -> dict[str, Any]:
    """The result without the pids some steps add."""
    return {key: value[0] if isinstance(value, (list, tuple)) else value
            for key, value in result.items()}


def run_program(tmp_path: Path, text: str, argv: list[str], stdin: Path | None = None,
                ) -> subprocess.CompletedProcess[str]:
    """A Python program run with the config `text`, whose processes are all gone after it."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    token = new_token()
    with open(stdin or "/dev/null", encoding="utf-8") as source:
        done = subprocess.run([sys.executable, *argv], cwd=work, stdin=source,
                              env=config_env(tmp_path, token, text), capture_output=True,
                              text=True, timeout=PROCESS_TIMEOUT)
    assert wait_gone(token, cwd=work) == []
    return done


def check_report(answer: dict[str, Any]) -> None:
    assert values(answer["result"]) == EXPECTED
    names = collections.Counter(name for name, _ in answer["history"])
    assert names == HISTORY
    assert {state for _, state in answer["history"]} == {"exec_done"}
    # inner.serial inside a step set inner's history (3 double, 3 double_far, add_all), as
    # run.serial does anywhere; pipelines run inline inside steps leave no history of theirs
    assert len(answer["inner history"]) == 7


@pytest.mark.timeout(120)
def test_run_serial_gives_steps_inside_steps_plain_values() -> None:
    answer = json.loads(json.dumps(nesting_steps.report(serially=True)))
    check_report(answer)


@pytest.mark.parametrize("text", [ONE_WORKER, SEVERAL], ids=["one worker", "several workers"])
def test_steps_and_pipelines_inside_steps_give_plain_values_in_every_combination(
        tmp_path: Path, text: str) -> None:
    program = "import json, nesting_steps; print(json.dumps(nesting_steps.report()))"
    done = run_program(tmp_path, text, ["-c", program])
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    check_report(answer)
    result, pid = answer["result"], answer["pid"]
    assert result["step in thread step"][1] == pid  # on a thread of the program
    assert result["pipeline in thread step"][1] == pid
    assert result["step in htex step"][1] != pid  # in a worker process
    assert result["pipeline in htex step"][1] != pid
    traced = collections.Counter(name.rpartition(".")[2] for name in answer["traced"])
    assert traced == HISTORY  # the trace has the run's steps, as its history has
    assert "warning" not in done.stderr


SCRIPT = '''
import json, os
from q2pconf import parallel_pipeline, step

SCALE = 1
LEVEL = "module"
UNUSED = 0


def factor():
    return SCALE


def setup():
    global LEVEL
    LEVEL = "main"


@step(executor="htex")
def scaled(x):
    return x * SCALE, os.getpid()


@step(executor="htex")
def via_helper(x):
    return x * factor()


@step(executor="htex")
def level():
    return LEVEL


@step(executor="htex")
def twice(x):
    return 2 * x


@parallel_pipeline
def inner(xs):
    return [twice(x) for x in xs]


@step(executor="htex")
def runs_inner(xs):
    return sum(inner(xs)), os.getpid()


@step
def runs_inner_here(xs):
    return sum(inner(xs))


@parallel_pipeline
def main_pipeline(xs):
    return {"scaled": [scaled(5), scaled(6)], "via helper": via_helper(5), "level": level(),
            "pipeline in htex step": runs_inner(xs), "pipeline in thread step": runs_inner_here(xs)}


if __name__ == "__main__":
    SCALE = 10
    UNUSED = 1
    setup()
    print(json.dumps({"result": main_pipeline([1, 2, 3]), "pid": os.getpid()}))
'''


def run_script(tmp_path: Path, from_stdin: bool) -> dict[str, Any]:
    script = tmp_path / "my pipeline.py"
    script.write_text(SCRIPT)
    if from_stdin:
        done = run_program(tmp_path, ONE_WORKER, ["-"], stdin=script)
    else:
        done = run_program(tmp_path, ONE_WORKER, [str(script)])
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    result = answer["result"]
    assert result["pipeline in htex step"][0] == 12 and result["pipeline in thread step"] == 12
    assert result["pipeline in htex step"][1] != answer["pid"]  # it ran on the HTEX
    assert all(pid != answer["pid"] for _, pid in result["scaled"])
    return {**answer, "stderr": done.stderr, "script": str(script)}


def test_a_script_read_from_standard_input_runs_htex_steps_and_pipelines_in_them(
        tmp_path: Path) -> None:
    answer = run_script(tmp_path, from_stdin=True)
    result = answer["result"]
    # sent by value, with the namespace as the main block left it: what threads would see
    assert [value for value, _ in result["scaled"]] == [50, 60]
    assert result["via helper"] == 50 and result["level"] == "main"
    assert "warning" not in answer["stderr"]


def test_a_global_the_main_block_sets_is_warned_about_once_per_step(tmp_path: Path) -> None:
    answer = run_script(tmp_path, from_stdin=False)
    result = answer["result"]
    # the worker loads the script without its main block: the module-level values
    assert [value for value, _ in result["scaled"]] == [5, 6]
    assert result["via helper"] == 5 and result["level"] == "module"
    warnings = [line for line in answer["stderr"].splitlines() if "warning" in line]
    assert len(warnings) == 3, answer["stderr"]  # scaled ran twice, is said once
    told = {line.split("step ")[1].split()[0]: line for line in warnings}
    assert set(told) == {"scaled", "via_helper", "level"}
    for step_name, name in [("scaled", "SCALE"), ("via_helper", "SCALE"), ("level", "LEVEL")]:
        line = told[step_name]
        assert f"value of {name}," in line and answer["script"] in line
        assert "Fix: pass it to the step as an argument, or set it at module level" in line
    assert "UNUSED" not in answer["stderr"]


def test_the_names_a_main_block_sets_are_found_in_the_script(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent('''
        import os
        A = 1
        def configure():
            global B, C
            B = C = 2
        def untouched():
            global D
            D = 3
        if "__main__" == __name__:
            import json
            A += 1
            for E in range(2):
                pass
            with open(os.devnull) as F:
                G: int = 4
            configure()
            os.sep_copy = os.sep
            def helper():
                H = 5
            [I for I in range(2)]
    '''))
    found = mainblock.set_in_main(str(script))
    assert found == {"A", "B", "C", "E", "F", "G", "helper", "os.sep_copy"}
    script.write_text("if __name__ == '__main__':\n    A = 1\n")
    assert mainblock.set_in_main(str(script)) == {"A"}
    script.write_text("def broken(:\n")
    assert mainblock.set_in_main(str(script)) == frozenset()


PACKAGED = '''
import json, os
from q2pconf import parallel_pipeline, step
from .helpers import FACTOR


class Scaled:
    def __init__(self, value):
        self.value = value


@step(executor="htex")
def times(x):
    return Scaled(x * FACTOR), os.getpid()


@parallel_pipeline
def main_pipeline(xs):
    return [times(x) for x in xs]


if __name__ == "__main__":
    results = main_pipeline([1, 2])
    print(json.dumps({"values": [r.value for r, _ in results], "pid": os.getpid(),
                      "pids": [pid for _, pid in results],
                      "same class": all(type(r) is Scaled for r, _ in results)}))
'''


def test_a_module_run_with_python_m_keeps_its_relative_imports_on_the_htex(
        tmp_path: Path) -> None:
    package = tmp_path / "work" / "mypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("FACTOR = 3\n")
    (package / "run.py").write_text(PACKAGED)
    done = run_program(tmp_path, ONE_WORKER, ["-m", "mypkg.run"])
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["values"] == [3, 6] and answer["same class"]
    assert answer["pid"] not in answer["pids"]  # the steps ran on the HTEX


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("fresh_session")
@pytest.mark.parametrize("serially", [True, False], ids=["serial", "threads"])
def test_a_failing_step_of_a_pipeline_inside_a_step_fails_both_naming_each(
        tmp_path: Path, serially: bool) -> None:
    import q2pconf

    path = tmp_path / "threads.toml"
    path.write_text(config(threads("default", max_threads=1), strategy="none"))
    with q2pconf.ParallelConfig(path):
        pipeline = nesting_steps.outer_failing
        run = pipeline.serial if serially else pipeline
        with pytest.raises(KeyError, match="lost sample") as raised:
            run("lost sample")
    notes = getattr(raised.value, "__notes__", [])
    assert any("nesting_steps.fail('lost sample') run serially" in note for note in notes)
    on = "run serially" if serially else "on executor 'default'"
    assert any(f"nesting_steps.calls_failing('lost sample') {on}" in note for note in notes)


def test_a_pipeline_called_from_a_thread_of_an_htex_step_runs_in_that_worker(
        tmp_path: Path) -> None:
    """No Parsl of its own inside a worker: its steps run in the worker's process, in turn."""
    program = ("import json, nesting_steps as s; "
               "print(json.dumps(s.outer_threaded(s.XS)))")
    done = run_program(tmp_path, ONE_WORKER, ["-c", program])
    assert done.returncode == 0, done.stderr
    inner, worker = json.loads(done.stdout)
    assert [value for value, _ in inner] == [2, 4, 6]
    assert {pid for _, pid in inner} == {worker}


FACTORS = """
from q2pconf import step

FACTOR = 1


@step(executor="htex")
def by_factor(x):
    return x * FACTOR


@step(executor="htex")
def unchanged(x):
    return x
"""
USES_FACTORS = """
import json
import factors as f
from q2pconf import parallel_pipeline


@parallel_pipeline
def run(x):
    return [f.by_factor(x), f.unchanged(x)]


if __name__ == "__main__":
    f.FACTOR = 7
    print(json.dumps(run(5)))
"""


def test_a_global_of_a_steps_module_set_by_the_main_block_is_warned_about(
        tmp_path: Path) -> None:
    (tmp_path / "factors.py").write_text(FACTORS)
    script = tmp_path / "uses_factors.py"
    script.write_text(USES_FACTORS)
    done = run_program(tmp_path, ONE_WORKER, [str(script)])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [5, 5]  # the worker imports factors afresh
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, done.stderr
    assert "step factors.by_factor runs on an HTEX worker" in warnings[0]
    assert "value of f.FACTOR," in warnings[0] and str(script) in warnings[0]


def test_a_step_reading_an_attribute_of_that_name_is_not_warned_about(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text("data = 1\nif __name__ == '__main__':\n    data = 2\n")
    namespace = {"LIMIT": 3}
    exec("def step(table):\n    return [table.data for _ in range(LIMIT)]", namespace)
    assert mainblock.reads(namespace["step"]) == ({"range", "LIMIT"}, {"data"})
    assert mainblock.read_of(mainblock.set_in_main(str(script)), namespace["step"], None) == []


FROM_OWN_THREADS = '''
import concurrent.futures
import q2pconf._base.notice
from q2pconf import parallel_pipeline, step

q2pconf._base.notice.AFTER = 1.0  # seconds before a wait says so


@step
def double(x):
    return 2 * x


@parallel_pipeline
def inner(x):
    return double(x)


@step
def fans_out(xs):  # the pipeline is called from threads this step starts, not its own
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return list(pool.map(inner, xs))


@parallel_pipeline
def outer(xs):
    return fans_out(xs)


if __name__ == "__main__":
    print(outer([1, 2]))
'''


def test_a_pipeline_called_from_a_thread_a_step_started_is_named_as_the_likely_cause(
        tmp_path: Path) -> None:
    """Known limit: a thread a step starts cannot be told from the program's own threads, so a
    pipeline called there starts a parallel run, whose steps wait for the one thread the step
    holds. It does not wait without a word: its wait names this cause and the fix."""
    import os
    import signal
    import threading

    script = tmp_path / "own_threads.py"
    script.write_text(FROM_OWN_THREADS)
    token = new_token()
    child = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, text=True,
                             env=config_env(tmp_path, token, ONE_WORKER),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    ender = threading.Timer(120, os.killpg, (child.pid, signal.SIGKILL))  # EOF if never said
    ender.daemon = True
    ender.start()
    try:
        said = ""
        for line in child.stderr:
            said += line
            if "from a thread the step started itself" in line:
                break
    finally:
        ender.cancel()
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate(timeout=60)
    assert "call the pipeline in the step's own thread" in said, said
    assert wait_gone(token, cwd=tmp_path) == []
