"""Many steps in one pipeline, and many programs starting on one fresh environment at once."""
from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from configs import tomllib
from procs import new_token, program_env
from q2pconf.config import check
from q2pconf._base.paths import CONFIG_NAME
from q2pconf.config._templates import vendored_dict

STEPS = 10_000
# Measured here (Parsl 2026.10.26, Python 3.11): ~0.5 KiB of peak RSS per step for 10,000
# steps (a finished step keeps a small StepFuture and ~25 bytes of history; Parsl's task record
# goes when the step ends). Before that it was ~5.8 KiB: this bound catches a return to it.
PER_STEP_KIB = 3

HEAD = """\
import json, resource, sys
from q2pconf import parallel_pipeline, step

@step
def inc(i: int) -> int:
    return i + 1

@parallel_pipeline
def many(n: int) -> list:
    return [inc(i) for i in range(n)]

def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
"""

MANY_STEPS = HEAD + """
def live_futures() -> int:
    import gc
    from concurrent.futures import Future
    gc.collect()
    return sum(isinstance(o, Future) for o in gc.get_objects())

n = int(sys.argv[1])
assert many(50) == list(range(1, 51))  # start the session and its threads first
futures_before, start = live_futures(), peak()
first = many(n)
after_first = peak()
second = many(n)
from q2pconf.pipeline import _session as session
print(json.dumps({"correct": first == second == list(range(1, n + 1)),
                  "history": len(many.history), "start": start, "first": after_first,
                  "futures": live_futures() - futures_before,
                  "tasks": len(session.session().dfk.tasks)}))
"""


def test_ten_thousand_steps_complete_with_bounded_memory(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", MANY_STEPS, str(STEPS)],
                         env=program_env(tmp_path, new_token()), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["correct"] and answer["history"] == STEPS
    growth = answer["first"] - answer["start"]
    print(f"peak RSS growth: {growth / STEPS:.2f} KiB per step")
    assert growth / STEPS < PER_STEP_KIB
    # a run's steps are freed when it ends: no future and no Parsl task record outlives it
    # (counted, not measured through RSS, which the allocator keeps; fewer than before is
    # fine: the warm-up run's last futures may still have been waiting for the collector)
    assert answer["futures"] <= 0 and answer["tasks"] == 0


FAN_IN_KIB = 1
# A step taking the list of every step's future (the merge of a per-sample fan-out). Measured
# here (Parsl 2026.10.26, Python 3.11), 10,000 steps: 2.2 KiB of peak RSS a step while Parsl
# followed each finished input (a callback and a queued launch attempt per input), ~0.25 KiB
# since it follows only the inputs still running, as one future (q2pconf._base.nested.awaited).
FAN_IN = HEAD + """
@step
def merge(values: list) -> list:
    return [v * 2 for v in values]

@parallel_pipeline
def fan_in(n: int) -> list:
    return merge([inc(i) for i in range(n)])

n = int(sys.argv[1])
assert fan_in(50) == [2 * i for i in range(1, 51)]
start = peak()
merged = fan_in(n)
print(json.dumps({"correct": merged == [2 * i for i in range(1, n + 1)],
                  "growth": peak() - start}))
"""


def test_a_fan_in_of_ten_thousand_steps_keeps_under_a_kib_a_step(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", FAN_IN, str(STEPS)],
                         env=program_env(tmp_path, new_token()), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["correct"]
    print(f"peak RSS growth of a fan-in: {answer['growth'] / STEPS:.2f} KiB per step")
    assert answer["growth"] / STEPS < FAN_IN_KIB


PROGRAM = """\
import json
import pipeline_steps
from q2pconf.pipeline import _session as session
result = pipeline_steps.threads_only(8)
current = session.session()
print(json.dumps({"result": result, "source": current.settings.source,
                  "path": str(current.settings.path), "run_dir": current.dfk.run_dir}))
"""


def test_twenty_programs_on_one_fresh_environment_seed_one_config(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    prefix.mkdir()
    env = program_env(tmp_path, new_token(), CONDA_PREFIX=str(prefix))
    children = [subprocess.Popen([sys.executable, "-c", PROGRAM], env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(20)]
    outputs = [child.communicate(timeout=240) for child in children]
    assert [c.returncode for c in children] == [0] * 20, [err for _, err in outputs]
    answers = [json.loads(out) for out, _ in outputs]
    target = prefix / "etc" / CONFIG_NAME
    assert all(a["result"] == [2 * i for i in range(8)] for a in answers)
    assert {a["path"] for a in answers} == {str(target)}
    assert {a["source"] for a in answers} <= {"vendored", "conda"}
    assert len({a["run_dir"] for a in answers}) == 20  # no two runs share a run directory
    stamp = target.with_name(f".{CONFIG_NAME}.sha256")
    assert sorted(p.name for p in target.parent.iterdir()) == [stamp.name, target.name]
    assert tomllib.loads(target.read_text()) == vendored_dict()
    assert check(target).labels == ("default", "htex")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    verify = subprocess.run(["sha256sum", "--status", "-c", stamp.name], cwd=target.parent,
                            timeout=60)
    assert verify.returncode == 0
