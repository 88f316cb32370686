"""Any function a user writes can be a step (issue 23): arguments named as Parsl's keywords,
methods, library callables; shapes that cannot work are refused when decorated; a walltime
ends a step waiting in a sleep or a subprocess on the HTEX. Each on threads, on a real local
HTEX, in `run.serial` and outside a pipeline (an ordinary call)."""
from __future__ import annotations

import functools
import math
import operator
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import shape_steps as shapes
from configs import config, htex, local, threads
from procs import config_env, new_token
import q2pconf
from q2pconf import step

THREADS = config(threads("default", max_threads=2), strategy="none")
# every step without a hint goes to "default": here an HTEX
HTEX = config(htex("default", max_workers_per_node=2,
                   provider=local(init_blocks=1, max_blocks=1)), strategy="none")
WHERE = {"threads": THREADS, "htex": HTEX}

pytestmark = pytest.mark.usefixtures("fresh_session")


def configured(tmp_path: Path, where: str) -> q2pconf.ParallelConfig:
    path = tmp_path / f"{where}.toml"
    path.write_text(WHERE[where])
    return q2pconf.ParallelConfig(path)


def everywhere(tmp_path: Path, pipeline: q2pconf.Pipeline, where: str) -> object:
    """The pipeline's result outside a pipeline (every step an ordinary call), which a
    serial run and a parallel run on `where` must give too."""
    expected = pipeline.func()
    assert pipeline.serial() == expected
    with configured(tmp_path, where):
        assert pipeline() == expected
    return expected


@pytest.mark.parametrize("where", ["threads", "htex"])
def test_arguments_named_as_parsl_keywords_reach_the_step_untouched(tmp_path, where):
    got = everywhere(tmp_path, shapes.reserved_names, where)
    assert got == [
        {"inputs": [1, 2], "outputs": None, "stdout": None, "stderr": None, "walltime": None,
         "spec": None},
        {"inputs": [3], "outputs": ["a.txt"], "stdout": "out.log", "stderr": "err.log",
         "walltime": 0.001, "spec": {"cores": 10 ** 6}},
        {"inputs": [2], "outputs": ["b.txt"], "stdout": None, "stderr": None,
         "walltime": 0.001, "spec": None},
        {"args": (), "kwargs": shapes.EVERY_NAME},
        {"args": ([4],), "kwargs": {"inputs": [6]}},
        0.001, "mine"]


def test_resume_keys_on_arguments_named_inputs(tmp_path):
    token, log = new_token(), tmp_path / "calls.log"
    code = ("import sys, json, shape_steps as s\n"
            f"print(s.resumed({str(log)!r}, json.loads(sys.argv[1])))")

    def run(values: str) -> str:
        child = subprocess.run([sys.executable, "-c", code, values], capture_output=True,
                               env=config_env(tmp_path, token, THREADS), text=True, timeout=120)
        assert child.returncode == 0, child.stderr
        return child.stdout.strip()

    assert run("[[1, 2], [3]]") == "[3, 3]"
    assert run("[[1, 2], [3]]") == "[3, 3]"  # both from the checkpoints
    assert run("[[1, 2], [4]]") == "[3, 4]"  # another `inputs`: that step runs again
    ran = log.read_text().split("\n")  # the first run's two steps ran at once, in either order
    assert sorted(ran[:2]) == ["[1, 2]", "[3]"] and ran[2:] == ["[4]", ""]


@pytest.mark.parametrize("where", ["threads", "htex"])
def test_methods_bind_their_instance_or_class(tmp_path, where):
    got = everywhere(tmp_path, shapes.methods, where)
    assert got == [12, 15, 9, "Sample:1", "Sample:2", "Subsample:3", "Sample/4",
                   "Subsample/5", 2, 3, 5, 6]


def test_a_method_step_is_a_method_outside_a_pipeline():
    sample = shapes.Sample(2)
    assert sample.scaled(5) == 10 and shapes.Sample.named(1) == "Sample:1"
    assert shapes.Sample.scaled.name == "scaled" and sample.scaled.__self__ is sample
    assert shapes.Sample.plain(1) == 2 and shapes.Sample.plain_too(1) == 3


def test_an_instance_no_pickle_can_send_fails_with_one_clear_message(tmp_path):
    assert shapes.locked.func() == 1 == shapes.locked.serial()
    with configured(tmp_path, "threads"):
        assert shapes.locked() == 1  # a thread needs no pickle
    with configured(tmp_path, "htex"), pytest.raises(Exception) as caught:
        shapes.locked()
    text = str(caught.value)
    assert "generator" in text and "pickle" in text, text
    assert [r.executor for r in shapes.locked.history] == ["default"]


@pytest.mark.parametrize("where", ["threads", "htex"])
def test_library_callables_are_steps(tmp_path, where):
    got = everywhere(tmp_path, shapes.library, where)
    assert got == [4.0, 3, [3, 2, 1], 32, 4.5, 6, "y", "ABC", "a/b"]
    names = [record.name for record in shapes.library.history]
    assert names == ["sqrt", "len", "sorted", "pow", "partial(divide)", "add", "Scale",
                     "itemgetter", "methodcaller", "join"]


def test_library_callables_are_named_sensibly():
    assert repr(shapes.sqrt) == "<q2pconf step math.sqrt>"
    assert repr(shapes.length) == "<q2pconf step builtins.len>"
    assert repr(shapes.halve) == "<q2pconf step shape_steps.partial(divide)>"
    assert repr(shapes.triple) == "<q2pconf step shape_steps.Scale>"
    assert repr(shapes.second) == "<q2pconf step operator.itemgetter>"


@pytest.mark.parametrize("where", ["threads", "htex"])
def test_a_partial_of_a_function_only_this_process_knows_is_sent_by_value(tmp_path, where):
    offset = 100

    def shift(a: int, b: int) -> int:
        return a + b + offset

    shifted = step(functools.partial(shift, 1))
    root = step(math.sqrt)

    @q2pconf.parallel_pipeline
    def local_pipeline() -> list[object]:
        return [shifted(2), root(9.0), step(operator.neg)(5)]

    assert local_pipeline.func() == [103, 3.0, -5] == local_pipeline.serial()
    with configured(tmp_path, where):
        assert local_pipeline() == [103, 3.0, -5]


def test_generators_and_coroutines_are_refused_when_decorated():
    def numbers():
        yield 1

    async def fetch():
        return 1

    async def stream():
        yield 1

    for func, kind, fix in [(numbers, "a generator function", "return list(...)"),
                            (fetch, "an `async def` function", "asyncio.run("),
                            (stream, "an async generator", "asyncio.run(")]:
        for decorate in (step, step(executor="htex"), lambda f: step(functools.partial(f))):
            with pytest.raises(TypeError) as caught:
                decorate(func)
            text = str(caught.value)
            assert func.__qualname__ in text and f"it is {kind}" in text, text
            assert fix in text and text.startswith("q2pconf: @step cannot"), text


def test_on_the_htex_a_walltime_ends_a_sleep_at_the_walltime(tmp_path):
    from parsl.app.errors import AppTimeout

    with configured(tmp_path, "htex"):
        shapes.sleeping(0.01)  # the pool is up: what follows times the step only
        began = time.monotonic()
        with pytest.raises(AppTimeout):
            shapes.sleeping(120)
        assert time.monotonic() - began < 60  # about 1 s, not 120: a loaded machine is slow


@pytest.mark.parametrize("started_by", ["the step", "a thread of the step"])
def test_on_the_htex_a_walltime_kills_the_steps_processes(tmp_path, started_by):
    from parsl.app.errors import AppTimeout

    pidfile = tmp_path / "tool.pid"
    pipeline = shapes.tool if started_by == "the step" else shapes.threaded_tool
    with configured(tmp_path, "htex"):
        began = time.monotonic()
        with pytest.raises(AppTimeout):
            pipeline(str(pidfile), 120)
        assert time.monotonic() - began < 90
    pid = int(pidfile.read_text())
    assert not _alive(pid), f"the step's tool (pid {pid}) survived its walltime"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("how", ["threads", "serial"])
def test_a_thread_step_past_its_walltime_is_reported_once(tmp_path, how, capfd, caplog):
    """Said once, on the q2pconf logger (stderr unless the program routes logging)."""
    from parsl.app.errors import AppTimeout

    for _ in range(2):
        with pytest.raises(AppTimeout):
            if how == "serial":
                shapes.napping.serial(2.5)
            else:
                with configured(tmp_path, "threads"):
                    shapes.sleeping(2.5)
    err = capfd.readouterr().err + caplog.text
    assert err.count("runs past its walltime of 1 s in a thread") == 1, err
    assert "Send the step to an HTEX executor" in err


SCRIPT = '''\
import functools, math
from q2pconf import parallel_pipeline, step


def divide(a, b):
    return a / b


class Scale:
    def __init__(self, factor):
        self.factor = factor

    def __call__(self, x):
        return self.factor * x


class Sample:
    def __init__(self, scale):
        self.scale = scale

    @step
    def scaled(self, x):
        return self.scale * x

    @classmethod
    @step
    def named(cls, x):
        return f"{cls.__name__}:{x}"


root, halve, triple = step(math.sqrt), step(functools.partial(divide, b=2)), step(Scale(3))


@parallel_pipeline
def run(inputs):
    return [Sample(3).scaled(2), Sample.named(1), root(4.0), halve(5), triple(2), inputs]


if __name__ == "__main__":
    print(run([1]), run.serial(inputs=[2]), run.func([3]))
'''


def test_a_scripts_methods_and_callables_run_on_the_htex(tmp_path):
    """Steps of the running script: a worker loads it as a module (q2pconf.pipeline._transport)."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=config_env(tmp_path, new_token(), HTEX), timeout=120)
    assert done.returncode == 0, done.stderr
    row = "[6, 'Sample:1', 2.0, 2.5, 6, [{}]]"
    assert done.stdout.split("\n")[0] == " ".join(row.format(n) for n in (1, 2, 3))
