"""resume=True reruns a step when anything its result depends on changed: its code, its
defaults, and what it reaches in its own module (helpers, constants, classes), transitively;
and reuses the result when only something it does not reach changed.

Each run is a child process (a rerun must read checkpoints from disk, as a user's would)."""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from configs import config, htex, local, threads
from procs import config_env, new_token

CONFIG = config(threads("default", max_threads=2),
                htex("htex", max_workers_per_node=1, provider=local()), strategy="none")

PIPELINE = '''
import sys
from q2pconf import parallel_pipeline, step

OFFSET = 1000
TABLE = {"a": 1}
UNUSED = 5


def deeper(v):
    return v * 2


def helper(v):
    return deeper(v) + TABLE["a"]


class Scorer:
    bonus = 10

    def score(self, v):
        return v + self.bonus


def unrelated():
    return 1


@step
def work(log, v, scale=3, *, shift=7):
    with open(log, "a") as handle:
        handle.write(f"{v}\\n")

    def inner(x):
        return x + 100

    twice = lambda x: x * 2  # noqa
    return helper(v) + OFFSET + scale * v + shift + Scorer().score(v) + inner(v) + twice(v)


@parallel_pipeline(resume=True)
def run(log, values):
    return [work(log, v) for v in values]


if __name__ == "__main__":
    print(run(sys.argv[1], [1, 2]))
'''
# (what is edited, old text, new text): each edit changes the step's result
INVALIDATING = [
    ("a helper's helper", "return v * 2", "return v * 3"),
    ("a constant a helper reads", 'TABLE = {"a": 1}', 'TABLE = {"a": 2}'),
    ("a module constant", "OFFSET = 1000", "OFFSET = 2000"),
    ("a default", "scale=3", "scale=4"),
    ("a keyword-only default", "shift=7", "shift=8"),
    ("a nested function", "x + 100", "x + 200"),
    ("a lambda inside the step", "lambda x: x * 2", "lambda x: x * 5"),
    ("a class attribute", "bonus = 10", "bonus = 20"),
    ("a method it calls", "return v + self.bonus", "return v - self.bonus"),
]
# edits of what the step does not reach: its checkpointed result is reused
HARMLESS = [
    ("a constant it does not read", "UNUSED = 5", "UNUSED = 6"),
    ("a function it does not call", "    return 1\n", "    return 2\n"),
]


def run_script(script: Path, text: str, log: Path, env: dict[str, str]) -> tuple[str, int]:
    """`text` written to `script` and run with `log` as its argument: what it printed, and
    how many steps have run so far (the lines of `log`)."""
    script.write_text(text)
    try:
        done = subprocess.run([sys.executable, str(script), str(log)], env=env,
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the pipeline hung: {hung.stderr!r}")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), len(log.read_text().split())


def test_resume_follows_what_the_step_reaches_in_its_module(tmp_path: Path) -> None:
    script, log = tmp_path / "resumable.py", tmp_path / "calls.log"
    env = config_env(tmp_path, new_token(), CONFIG)

    def run(text: str) -> tuple[str, int]:
        return run_script(script, text, log, env)

    text = PIPELINE
    result, ran = run(text)
    assert ran == 2
    assert run(text) == (result, 2)  # unchanged: both steps reused
    for what, old, new in INVALIDATING:
        assert text.count(old) == 1, what
        text = text.replace(old, new)
        changed, now = run(text)
        assert changed != result and now == ran + 2, f"editing {what} reused a stale result"
        result, ran = changed, now
    for what, old, new in HARMLESS:
        text = text.replace(old, new)
        assert run(text) == (result, ran), f"editing {what} ran the step again"


LIMIT = 3
HERE = Path(__file__).parent


def test_a_fingerprint_is_the_same_in_every_process() -> None:
    """No addresses, no hash-randomised set order: a fresh interpreter computes the same."""
    from q2pconf.pipeline import _fingerprint as fingerprint

    code = ("import pipeline_steps as s, test_fingerprint as t\n"
            "from q2pconf.pipeline import _fingerprint as fingerprint\n"
            "print(fingerprint.of(s.deep_sum.func), fingerprint.of(t.reaching))")
    tests = HERE.parent  # pipeline_steps; and this file's folder: test_fingerprint
    import pipeline_steps

    here = f"{fingerprint.of(pipeline_steps.deep_sum.func)} {fingerprint.of(reaching)}"
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, cwd=tests,
                              env={"PYTHONPATH": os.pathsep.join([str(tests), str(HERE)]),
                                   "PYTHONHASHSEED": seed})
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == here


WORDS = frozenset({"alpha", "beta", "gamma"})


def reaching(x: int) -> object:
    return [w for w in WORDS if len(w) > x], {"k": lambda y: y + LIMIT}


def _scaled(k: int):  # type: ignore[no-untyped-def]
    def scale(x: int) -> int:
        return x * k
    return scale


def _logged(func):  # type: ignore[no-untyped-def]
    @functools.wraps(func)
    def wrapper(*args):  # type: ignore[no-untyped-def]
        return func(*args)
    return wrapper


def test_closures_and_decorated_helpers_are_followed() -> None:
    from q2pconf.pipeline import _fingerprint as fingerprint

    assert fingerprint.of(_scaled(3)) == fingerprint.of(_scaled(3))
    assert fingerprint.of(_scaled(3)) != fingerprint.of(_scaled(4))
    # a helper wrapped by a decorator: what it wraps counts, as if called directly
    assert fingerprint.of(_logged(_scaled(3))) != fingerprint.of(_logged(_scaled(4)))


PARTIAL_PIPELINE = '''
import functools
import sys
from q2pconf import parallel_pipeline, step


def scaled(log, v, k):
    with open(log, "a") as handle:
        handle.write(f"{v}\\n")
    return v * k


work = step(functools.partial(scaled, k=10))


@parallel_pipeline(resume=True)
def run(log, values):
    return [work(log, v) for v in values]


if __name__ == "__main__":
    print(run(sys.argv[1], [1, 2]))
'''


def test_resume_reruns_a_partial_step_when_its_function_changes(tmp_path: Path) -> None:
    """A step made of functools.partial(f, ...) is keyed by f's code and the bound arguments,
    not by the partial's pickle (which names f only): editing f reruns it."""
    script, log = tmp_path / "partial_step.py", tmp_path / "calls.log"
    env = config_env(tmp_path, new_token(), config(threads("default", max_threads=2)))

    def run(text: str) -> tuple[str, int]:
        return run_script(script, text, log, env)

    assert run(PARTIAL_PIPELINE) == ("[10, 20]", 2)
    assert run(PARTIAL_PIPELINE) == ("[10, 20]", 2)  # unchanged: both reused
    edited = PARTIAL_PIPELINE.replace("return v * k", "return v * k + 1")
    assert run(edited) == ("[11, 21]", 4), "editing the partial's function reused a stale result"
    rebound = edited.replace("k=10", "k=100")
    assert run(rebound) == ("[101, 201]", 6)


def test_a_step_of_a_method_descriptor_has_a_fingerprint() -> None:
    """str.upper has no __module__: resume=True must still key it, not raise AttributeError."""
    from q2pconf.pipeline import _fingerprint as fingerprint

    assert fingerprint.of_definition(str.upper) == fingerprint.of_definition(str.upper)
    assert fingerprint.of_definition(str.upper) != fingerprint.of_definition(str.lower)
