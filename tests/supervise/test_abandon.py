"""After a step fails, the run's other steps that have not started never start
(q2pconf._supervise.abandon), on an HTEX as on threads: not those queued behind it in the
interchange or a worker, and not those still waiting for inputs. The next pipeline call of the same
program then starts at once instead of queueing behind the dead run's steps."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from configs import config, htex, local, threads
from procs import config_env, new_token, wait_gone

# One worker, so steps queue; strategy "none" with one block started at once.
CONFIG = config(threads("default", max_threads=2),
                htex("htex", max_workers_per_node=1, provider=local(init_blocks=1, max_blocks=1)),
                strategy="none")

PROGRAM = """\
import json, os, sys, time
import abandon_steps as steps

pipeline = getattr(steps, sys.argv[1])
try:
    pipeline(*[int(a) for a in sys.argv[2:]])
except ValueError as error:
    failure = str(error)
if sys.argv[1] == "waiting_on_a_success":
    while not os.path.exists(os.path.join(os.environ["ABANDON_DIR"], "input")):
        time.sleep(0.05)
    time.sleep(1)  # the input is made: the dependent step has been launched by now
after = steps.one("next")  # queued on the same single worker after whatever is left
states = sorted({r.state for r in pipeline.history})
print(json.dumps({"failure": failure, "after": after, "states": states}))
"""


def run(tmp_path: Path, *args: str) -> tuple[dict[str, object], set[str]]:
    token, ran = new_token(), tmp_path / "ran"
    ran.mkdir()
    env = config_env(tmp_path, token, CONFIG, ABANDON_DIR=str(ran))
    done = subprocess.run([sys.executable, "-c", PROGRAM, *args], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    wait_gone(token)
    return json.loads(done.stdout.splitlines()[-1]), {p.name for p in ran.iterdir()}


def test_steps_queued_behind_a_failed_step_on_an_htex_never_start(tmp_path: Path) -> None:
    result, ran = run(tmp_path, "queued_behind_a_failure", "6")
    assert result["failure"] == "failed failed on purpose"
    assert result["after"] == "next"
    # The worker may already hold the step after the failing one when the failure reaches the
    # pipeline; none after that starts (without q2pconf._supervise.abandon all six ran, then
    # "next").
    queued = {name for name in ran if name.startswith("queued-")}
    assert queued <= {"queued-0"}, sorted(ran)
    assert {"failed", "next"} <= ran
    assert "cancelled" in result["states"]


def test_a_step_waiting_on_a_successful_step_never_starts_after_the_run_failed(
        tmp_path: Path) -> None:
    result, ran = run(tmp_path, "waiting_on_a_success")
    assert result["failure"] == "failed failed on purpose"
    assert ran == {"input", "failed", "next"}, sorted(ran)
