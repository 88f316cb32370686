"""The replay of a recorded run (q2pconf._observe.replay) on hand-made records, where the answer is
known exactly; the trace's `inputs` field; and a trace written before `inputs`, the events file
and the run's call times existed, which `q2pconf report` still reports and `q2pconf tune`
names as too old (its files: a real run's, rewritten as the older q2pconf wrote them)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

import q2pconf
import replay_steps
from configs import config, threads
from q2pconf._observe.replay import CALL, WAIT, WORK, Call, Pool, Recording, predict, window_of
from q2pconf._observe.runfiles import COLUMNS, IO, calls, calls_text, read


def fan(width: int, seconds: float, executor: str = "t") -> dict[int, Call]:
    """A fan-out of `width` calls, then one merging them all: calls 0..width."""
    found = {i: Call(i, executor, seconds) for i in range(width)}
    found[width] = Call(width, executor, seconds, tuple(range(width)))
    return found


def submit_all(calls_: dict[int, Call]) -> list[tuple[str, float]]:
    return [(CALL, number) for number in sorted(calls_)]


@pytest.mark.parametrize("slots,expected", [(1, 5.0), (2, 3.0), (3, 3.0), (4, 2.0), (8, 2.0)])
def test_a_fan_out_and_merge_takes_rounds_of_its_slots(slots, expected):
    steps = fan(4, 1.0)
    assert predict(Recording(steps, submit_all(steps)), {"t": Pool("t", slots)}) == expected


def test_the_body_works_waits_and_returns_as_recorded():
    """0.5 s of work, four calls, a wait for the merge (it ends at 0.5 + 2 + 2 = 4.5), 0.25 s
    more work, 0.1 s to return; results take 0.05 s to come back."""
    steps = fan(4, 1.0)
    steps[4] = Call(4, "t", 2.0, (0, 1, 2, 3))
    body = [(WORK, 0.5), *submit_all(steps), (WAIT, 4), (WORK, 0.25)]
    recording = Recording(steps, body, result_s=0.05, tail_s=0.1)
    # fan-out: 0.5 -> 2.5 (two rounds of two); results back at 2.55; merge 2.55 -> 4.55,
    # back at 4.6; the body works until 4.85, and returns 0.1 s later
    assert predict(recording, {"t": Pool("t", 2)}) == pytest.approx(4.95)


def test_work_after_a_wait_overlaps_the_steps_not_waited_for():
    """The body waits for call 0 only; call 1 runs on while it works."""
    steps = {0: Call(0, "t", 1.0), 1: Call(1, "t", 3.0)}
    body = [(CALL, 0), (CALL, 1), (WAIT, 0), (WORK, 1.0)]
    assert predict(Recording(steps, body), {"t": Pool("t", 2)}) == 3.0
    assert predict(Recording(steps, body), {"t": Pool("t", 1)}) == 4.0  # 0, then 1 (1 -> 4)


def test_a_chain_is_its_durations_and_the_hops_between():
    steps = {0: Call(0, "t", 1.0), 1: Call(1, "h", 2.0, (0,)), 2: Call(2, "t", 0.5, (1,))}
    pools = {"t": Pool("t", 4, dispatch_s=0.01), "h": Pool("h", 4, dispatch_s=0.1)}
    recording = Recording(steps, submit_all(steps), result_s=0.02)
    assert predict(recording, pools) == pytest.approx(1.01 + 0.02 + 2.1 + 0.02 + 0.51 + 0.02)


def test_slots_come_up_per_block_after_their_start_up():
    """Two blocks of two workers requested at 0.5 s, up 1.5 s later; then 4 steps at once."""
    steps = fan(4, 1.0, "h")
    pool = Pool("h", 2, init_blocks=2, max_blocks=2, start_s=0.5, startup_s=1.5)
    assert predict(Recording(steps, submit_all(steps)), {"h": pool}) == 4.0


def test_the_strategy_adds_blocks_for_waiting_steps_at_its_ticks():
    """No block at first; the steps come at 0.5 s, so at the next look (1 s; the strategy
    looks every period from 0) two blocks of one worker each are asked for the four waiting
    steps (max_blocks 2), up 1 s later: two rounds, then the merge."""
    steps = fan(4, 1.0, "h")
    pool = Pool("h", 1, init_blocks=0, max_blocks=2, startup_s=1.0, period_s=1.0)
    body = [(WORK, 0.5)] + submit_all(steps)
    assert predict(Recording(steps, body), {"h": pool}) == 2.0 + 2.0 + 1.0
    # steps there at a look are seen by it
    assert predict(Recording(steps, submit_all(steps)), {"h": pool}) == 1.0 + 2.0 + 1.0


def test_no_slot_ever_is_an_infinite_time():
    steps = fan(2, 1.0, "h")
    never = Pool("h", 2, init_blocks=0, max_blocks=2, period_s=None)  # strategy "none"
    assert predict(Recording(steps, submit_all(steps)), {"h": never}) == math.inf


def test_a_full_window_holds_the_body_until_half_of_it_is_left():
    """Window 2 on 4 slots: two steps in flight hold the body until one is left; so the
    eight steps run two at a time, not four."""
    steps = {i: Call(i, "t", 1.0) for i in range(8)}
    body = submit_all(steps) + [(WORK, 0.5)]
    assert predict(Recording(steps, body), {"t": Pool("t", 4)}, window=2) == 4.0
    assert predict(Recording(steps, body), {"t": Pool("t", 4)}, window=math.inf) == 2.0
    assert window_of([Pool("t", 4), Pool("h", 8, max_blocks=100)]) == 4 * (4 + 800)


def test_a_step_on_an_executor_without_a_pool_gets_one_slot():
    steps = {0: Call(0, "gone", 1.0), 1: Call(1, "gone", 1.0)}
    assert predict(Recording(steps, submit_all(steps)), {}) == 2.0


def test_a_hundred_thousand_steps_replay_in_seconds():
    """A fan-out of 50,000, a merge, a second fan-out of 50,000 on 64 slots."""
    width = 50_000
    steps = fan(width, 0.01)
    steps.update({width + 1 + i: Call(width + 1 + i, "t", 0.01, (width,))
                  for i in range(width - 1)})
    body = [(WORK, 0.001)] + submit_all(steps)
    began = time.process_time()
    answer = predict(Recording(steps, body), {"t": Pool("t", 64)}, window=math.inf)
    spent = time.process_time() - began
    rounds = math.ceil(width / 64)
    assert answer == pytest.approx(0.001 + rounds * 0.01 + 0.01 + math.ceil((width - 1) / 64)
                                   * 0.01)
    print(f"replay of {len(steps)} steps: {spent:.2f} s of CPU")
    assert spent < 10


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=50))
def test_inputs_read_back_as_written(numbers):
    text = calls_text(numbers)
    assert "\t" not in text and " " not in text
    assert calls(text) == sorted(set(numbers))


def test_inputs_are_ranges_and_unknown_is_none():
    assert calls_text([7, 0, 1, 2, 3, 3]) == "0-3,7"
    assert calls_text([]) == "-" and calls("-") == []
    assert calls("NA") is None and calls("1-x") is None


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "q2pconf", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def run(tmp_path: Path, fresh_session: None) -> Path:
    """The run.json of a real traced run: fan-out, merge, second fan-out on two threads."""
    path = tmp_path / "threads.toml"
    path.write_text(config(threads("default", max_threads=2)))
    with q2pconf.ParallelConfig(path):
        assert replay_steps.shaped(3, 0.01) == [3, 4, 5]
    return Path(str(replay_steps.shaped.trace_path).replace(".trace.tsv", ".run.json"))


def test_each_step_names_the_calls_it_waited_for(run):
    rows = read(run).rows
    inputs = {row["step"].rpartition(".")[2] + row["call"]: row["inputs"] for row in rows}
    assert inputs == {"first0": "-", "first1": "-", "first2": "-", "merge3": "0-2",
                      "second4": "3", "second5": "3", "second6": "3"}
    events = [json.loads(line) for line in Path(json.loads(run.read_text())["events"]).open()]
    waits = [e for e in events if e["kind"] == "wait"]
    assert [e["call"] for e in waits] == [3] and waits[0]["until"] >= waits[0]["t"]


def test_a_trace_from_before_inputs_is_reported_and_tune_says_it_is_too_old(run, tmp_path):
    """The files as q2pconf wrote them before: no `inputs` column, no events file, no call
    times in run.json."""
    meta = json.loads(run.read_text())
    old = tmp_path / "old"
    old.mkdir()
    trace = old / "shaped-1.trace.tsv"
    lines = Path(meta["trace"]).read_text().splitlines()
    before = len(IO) + 1  # the columns added since: inputs, then the I/O counters
    trace.write_text("".join(line.rsplit("\t", before)[0] + "\n" for line in lines))
    assert trace.read_text().split("\n", 1)[0].split("\t") == list(COLUMNS[:-before])
    for key in ("events", "called", "returned", "body_returned"):
        meta.pop(key)
    meta.update(trace=str(trace), columns=list(COLUMNS[:-before]))
    (old / "shaped-1.run.json").write_text(json.dumps(meta))
    assert [row["inputs"] for row in read(old / "shaped-1.run.json").rows] == ["NA"] * 7
    reported = cli("report", str(old / "shaped-1.run.json"))
    assert reported.returncode == 0, reported.stderr
    assert "merge" in (old / "shaped-1.report.html").read_text()
    tuned = cli("tune", str(old / "shaped-1.run.json"), "--json")
    assert tuned.returncode == 2 and tuned.stdout == ""
    assert tuned.stderr.startswith(f"{old / 'shaped-1.run.json'}: was traced by an older "
                                   "q2pconf"), tuned.stderr
    assert "Fix: run the pipeline again with this q2pconf" in tuned.stderr


def test_tune_json_gives_the_measured_and_predicted_time(run):
    done = cli("tune", str(run), "--json")
    assert done.returncode == 0, done.stderr
    current = json.loads(done.stdout)["current"]
    assert current["steps"] == 7 and current["executors"]["default"]["slots"] == 2
    assert current["measured_s"] > 0 and current["predicted_s"] > 0
    text = cli("tune", str(run))
    assert text.returncode == 0 and "with its own config" in text.stdout
