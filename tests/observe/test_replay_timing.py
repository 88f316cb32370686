"""The replay's prediction of a real run's time, for the config it ran with: a pipeline with a
fan-out, a merge the body waits for and a second fan-out, run in a fresh process on two
threads and on an HTEX of two workers (its start included), each traced; `q2pconf tune --json`
predicts its time within 15 % of the time measured around the pipeline call.

The steps sleep 0.6 s, long against the machine's noise; under load the measured time grows
by what the load costs q2pconf and Parsl, which the replay carries over from the run's own
records (its start-up, dispatch and result times). These tests (marked `timing`) run one after
another, after the parallel suite and never beside other tests (`make test`)."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from configs import config, htex, local, threads
from procs import new_token, program_env
from q2pconf._observe.recorded import from_run
from q2pconf._observe.replay import Pool, predict
from q2pconf._observe.runfiles import read

WIDTH, SECONDS = 4, 0.6
PROGRAM = """\
import json, sys, time
import replay_steps
for _ in range(int(sys.argv[3])):  # the last run is measured
    began = time.time()
    result = replay_steps.shaped(int(sys.argv[1]), float(sys.argv[2]))
    measured = time.time() - began
assert result == [6 + i for i in range(4)], result
print(json.dumps({"measured": measured, "trace": str(replay_steps.shaped.trace_path)}))
"""
CONFIGS = {
    "threads": config(threads("default", max_threads=2)),
    "htex": config(htex("default", max_workers_per_node=2, address="127.0.0.1",
                        provider=local(init_blocks=1, max_blocks=1)), strategy="none"),
    # no block at first: Parsl's strategy asks for one for the waiting steps
    "htex-scaling": config(htex("default", max_workers_per_node=2, address="127.0.0.1",
                                provider=local(init_blocks=0, min_blocks=0, max_blocks=1)),
                           strategy="simple"),
}


def traced_run(tmp_path: Path, name: str, runs: int = 1) -> tuple[dict[str, Any], str,
                                                                  dict[str, Any]]:
    """The last of `runs` runs in one fresh process under config `name`: its time measured
    around the call and its run.json, and what `q2pconf tune --json` says of it."""
    path = tmp_path / f"{name}.toml"
    path.write_text(CONFIGS[name])
    env = program_env(tmp_path, new_token(), path)
    ran = subprocess.run([sys.executable, "-c", PROGRAM, str(WIDTH), str(SECONDS), str(runs)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    run = answer["trace"].replace(".trace.tsv", ".run.json")
    tuned = subprocess.run([sys.executable, "-m", "q2pconf", "tune", run, "--json"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert tuned.returncode == 0, tuned.stderr
    return answer, run, json.loads(tuned.stdout)["current"]


@pytest.mark.timing
@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_prediction_of_a_runs_own_config_is_within_15_percent(tmp_path: Path, name: str):
    answer, run, current = traced_run(tmp_path, name)
    measured, predicted = answer["measured"], current["predicted_s"]
    print(f"{name}: measured {measured:.3f} s, run.json {current['measured_s']:.3f} s, "
          f"predicted {predicted:.3f} s ({predicted / measured - 1:+.1%})", current)
    # the run's own record of its time is the one measured around the call
    assert abs(current["measured_s"] - measured) < 0.2
    assert current["steps"] == 2 * WIDTH + 1 and current["executors"]["default"]["slots"] == 2
    # the body waits for the merge: the fan-out and the merge, at least 3 rounds of steps
    assert current["body"]["waits_s"] >= 3 * SECONDS and current["body"]["work_s"] >= 0
    assert abs(predicted - measured) <= 0.15 * measured
    assert_the_replay_follows_slots_and_inputs(Path(run), predicted)
    events = [json.loads(line) for line in
              Path(json.loads(Path(run).read_text())["events"]).read_text().splitlines()]
    kinds = {(e["kind"], e.get("state") or e.get("workers") or e.get("call")) for e in events}
    assert ("wait", WIDTH) in kinds  # the body's wait for the merge (call WIDTH)
    if name != "threads":  # the block asked for, and its workers registered: counted at most
        # once a second, so a busy machine may end the run between its two registering
        assert ("block", "PENDING") in kinds, events
        assert {n for kind, n in kinds if kind == "workers"} & {1, 2}, events


@pytest.mark.timing
def test_a_run_on_an_htex_already_up_has_no_start_up_to_replay(tmp_path: Path):
    """The second run of a program on one HTEX: its block and workers were up before the run
    (events marked `known`), so it has nothing to wait for at its start."""
    answer, _, current = traced_run(tmp_path, "htex", runs=2)
    pool = current["executors"]["default"]
    assert pool["start_s"] == 0 and pool["startup_s"] == 0, current
    measured, predicted = answer["measured"], current["predicted_s"]
    assert abs(predicted - measured) <= 0.15 * measured, (measured, current)


def assert_the_replay_follows_slots_and_inputs(run: Path, predicted: float) -> None:
    """The prediction comes from the run's shape: on one slot each fan-out takes 4 rounds,
    not 2; on 8 slots without its inputs, the merge would run beside the first fan-out."""
    found = from_run(read(run))
    assert predict(found.recording, found.pools) == pytest.approx(predicted, abs=0.002)

    def slots(count: int) -> dict[str, Pool]:
        return {label: replace(p, workers_per_block=count) for label, p in found.pools.items()}

    assert predict(found.recording, slots(1)) >= predicted + 4 * SECONDS - 0.05
    loose = {n: replace(call, inputs=()) for n, call in found.recording.calls.items()}
    assert (predict(replace(found.recording, calls=loose), slots(8))
            <= predict(found.recording, slots(8)) - SECONDS + 0.05)


POOR = config(threads("default", max_threads=1),
              htex("htex", max_workers_per_node=1, address="127.0.0.1",
                   provider=local(init_blocks=1, max_blocks=1)),
              mapping={"first": "htex"}, strategy="none")


@pytest.mark.timing
def test_a_rerun_under_the_tuned_config_takes_the_time_tune_predicted(tmp_path: Path):
    """The fan-out on an HTEX of one worker, the merge and the second fan-out on one thread:
    tune's config, rerun in a fresh process, takes within 20 % of the time tune predicted for
    it; the poor run's own prediction is within 15 % of its measured time."""
    seconds = 1.0
    poor = tmp_path / "poor.toml"
    poor.write_text(POOR)
    answer, run = _timed(tmp_path, poor, seconds)
    done = subprocess.run([sys.executable, "-m", "q2pconf", "tune", run, "--json"],
                          env=program_env(tmp_path, new_token()), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    current, tuned = summary["current"], summary["tuned"]
    print("poor:", answer["measured"], current, "tuned:", tuned)
    assert abs(current["predicted_s"] - answer["measured"]) <= 0.15 * answer["measured"]
    keys = {change["key"]: change["new"] for change in tuned["changes"]}
    assert keys["parsl.executors['default'].max_threads"] == WIDTH
    assert keys["parsl.executors['htex'].max_workers_per_node"] == WIDTH
    again, _ = _timed(tmp_path, Path(tuned["config"]), seconds)
    print(f"tuned: measured {again['measured']:.3f} s, predicted {tuned['predicted_s']:.3f} s")
    assert again["measured"] < 0.6 * answer["measured"]
    assert abs(tuned["predicted_s"] - again["measured"]) <= 0.2 * again["measured"]


def _timed(tmp_path: Path, config_path: Path, seconds: float) -> tuple[dict[str, Any], str]:
    """One run of the shaped pipeline in a fresh process under `config_path`: its time
    measured around the call, and its run.json."""
    env = program_env(tmp_path, new_token(), config_path)
    ran = subprocess.run([sys.executable, "-c", PROGRAM, str(WIDTH), str(seconds), "1"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    return answer, answer["trace"].replace(".trace.tsv", ".run.json")
