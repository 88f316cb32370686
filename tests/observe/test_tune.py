"""`q2pconf tune` on real traced runs: the config it writes (each change with its reason, the file
passing `q2pconf check`), what it leaves alone, what it never writes, and its JSON. The rerun
under a tuned config, timed against the prediction, is in test_replay_timing.py. The tests of
steps computing on threads read CPU shares, which a loaded machine lowers: marked `timing`,
they run after the parallel suite, one at a time (`make test`)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import q2pconf
import replay_steps
import tune_steps
from configs import config, htex, local, threads, tomllib
from conftest import require_tool
from devtools import Browser
from q2pconf._observe.report import write_report

CPUS = os.cpu_count() or 1


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "q2pconf", *args], capture_output=True,
                          text=True, timeout=120)


def traced(path: Path, text: str, pipeline, *args) -> Path:
    """Run `pipeline(*args)` under the config `text`; the run's run.json."""
    path.write_text(text)
    with q2pconf.ParallelConfig(path):
        pipeline(*args)
    return Path(str(pipeline.trace_path).replace(".trace.tsv", ".run.json"))


def tuned(run: Path, *more: str) -> dict:
    done = cli("tune", str(run), *more, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def changes(summary: dict) -> dict[str, object]:
    return {change["key"]: change["new"] for change in summary["tuned"]["changes"]}


def test_a_poor_config_gets_the_workers_its_steps_waited_for(tmp_path, fresh_session):
    """Four steps at a time waited on one thread: tune writes four, with its reason and the
    old value beside it, in a file `q2pconf check` passes; the prediction says the gain."""
    run = traced(tmp_path / "poor.toml", config(threads("default", max_threads=1)),
                 replay_steps.shaped, 4, 0.4)  # the last of a fan-out waits over a second
    summary = tuned(run)
    assert changes(summary) == {"parsl.executors['default'].max_threads": 4}, summary
    change = summary["tuned"]["changes"][0]
    assert "waited" in change["reason"] and "replay" in change["reason"]
    assert summary["tuned"]["predicted_s"] < 0.6 * summary["current"]["predicted_s"]
    written = Path(summary["tuned"]["config"])
    assert written == run.with_name(run.name.replace(".run.json", ".tuned.toml"))
    text = written.read_text()
    assert "max_threads = 4  # was 1\n" in text and "\n# tune: steps waited" in text
    assert tomllib.loads(text)["parsl"]["executors"][0]["max_threads"] == 4
    checked = cli("check", str(written))
    assert checked.returncode == 0 and "workers: 4" in checked.stdout, checked.stderr
    sizes = {row["workers"]: row["predicted_s"] for row in summary["what_if"]}
    assert set(sizes) == {1, 2, 4, 8} and sizes[1] > sizes[2] > sizes[4] == sizes[8]
    assert all(row["fits"] for row in summary["what_if"])  # sleeping steps: 4 per CPU fit
    words = cli("tune", str(run), "--what-if")
    assert words.returncode == 0, words.stderr
    assert "max_threads: 1 -> 4" in words.stdout and "what if" in words.stdout


def test_a_trace_with_no_reason_to_change_changes_nothing(tmp_path, fresh_session):
    run = traced(tmp_path / "fine.toml", config(threads("default", max_threads=4)),
                 replay_steps.shaped, 4, 0.3)
    summary = tuned(run)
    assert summary["tuned"]["config"] is None and summary["tuned"]["changes"] == []
    assert not list(run.parent.glob("*.tuned.toml"))
    words = cli("tune", str(run))
    assert "no change: the trace gives no reason to change the config" in words.stdout


def test_a_file_tune_did_not_write_is_never_replaced(tmp_path, fresh_session):
    run = traced(tmp_path / "poor.toml", config(threads("default", max_threads=1)),
                 replay_steps.shaped, 4, 0.2)
    mine = tmp_path / "mine.toml"
    mine.write_text("# my own config\n")
    refused = cli("tune", str(run), "-o", str(mine))
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith(f"{mine}: exists and was not written by `q2pconf tune`")
    assert "Fix: name another file with -o FILE" in refused.stderr
    assert mine.read_text() == "# my own config\n"
    again = tmp_path / "tuned.toml"
    for _ in range(2):  # its own file, tune replaces
        assert tuned(run, "-o", str(again))["tuned"]["config"] == str(again)
    nowhere = cli("tune", str(run), "-o", str(mine / "x.toml"))  # a file is no directory
    assert nowhere.returncode == 2 and "cannot be written" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr


@pytest.mark.timing  # CPU shares: measured on a machine running nothing else
def test_steps_computing_on_threads_move_to_worker_processes(tmp_path, fresh_session):
    """Steps holding the GIL on two threads: tune maps them to the local HTEX, and gives it no
    more workers than the machine's CPUs (they compute). (This machine has 2 CPUs or more.)"""
    text = config(threads("default", max_threads=2),
                  htex("htex", max_workers_per_node=1, provider=local()))
    run = traced(tmp_path / "threads.toml", text, tune_steps.spinning, 4, 1.0)
    summary = tuned(run)
    found = changes(summary)
    assert found.get("parsl.executor_mapping.spin") == "htex", summary
    reason = next(c["reason"] for c in summary["tuned"]["changes"]
                  if c["key"] == "parsl.executor_mapping.spin")
    assert "of one CPU busy" in reason and "one thread computes at a time" in reason
    workers = found.get("parsl.executors['htex'].max_workers_per_node", 1)
    assert workers == min(4, CPUS) and "parsl.executors['htex'].cores_per_worker" not in found
    assert [row for row in summary["what_if"] if row["executor"] == "htex"
            and row["workers"] > CPUS and row["fits"]] == []
    # replayed side by side, as long as their CPU time: 2 rounds of 1 s, not 4
    assert summary["tuned"]["predicted_s"] < summary["current"]["predicted_s"] - 0.5
    if CPUS > 1:
        sizes = {row["workers"]: row["predicted_s"] for row in summary["what_if"]
                 if row["executor"] == "htex"}
        assert sizes[1] - sizes[2] == pytest.approx(2 * 1.0, abs=0.2), sizes
    assert cli("check", summary["tuned"]["config"]).returncode == 0


def test_a_step_near_its_workers_memory_gets_room(tmp_path, fresh_session):
    """A step that peaked at 200 MiB of a worker's 0.2 GB: tune gives the workers room (1.5
    times the peak), in a file `q2pconf check` passes."""
    text = config(htex("htex", max_workers_per_node=1, mem_per_worker=0.2,
                       address="127.0.0.1", provider=local()),
                  threads("default", max_threads=1), mapping={"hold": "htex"})
    run = traced(tmp_path / "memory.toml", text, tune_steps.holding, 200)
    summary = tuned(run)
    memory = changes(summary).get("parsl.executors['htex'].mem_per_worker")
    assert memory is not None and 0.29 <= memory <= 0.5, summary
    reason = next(c["reason"] for c in summary["tuned"]["changes"]
                  if c["key"].endswith("mem_per_worker"))
    assert "hold peaked at" in reason and "MiB" in reason
    assert cli("check", summary["tuned"]["config"]).returncode == 0


@pytest.mark.timing  # CPU shares: measured on a machine running nothing else
def test_a_move_the_replay_finds_no_faster_is_a_note_not_a_change(tmp_path, fresh_session):
    """Two short calls computing on one thread: in worker processes, the HTEX's start costs
    more than running them side by side saves."""
    text = config(threads("default", max_threads=1),
                  htex("htex", max_workers_per_node=1, provider=local()))
    run = traced(tmp_path / "short.toml", text, tune_steps.spinning, 2, 0.5)
    summary = tuned(run)
    assert summary["tuned"]["changes"] == [] and summary["tuned"]["config"] is None, summary
    note, = summary["tuned"]["notes"]
    assert "tune_steps.spin's 2 call(s)" in note and "it stays where it is" in note


def test_several_runs_tune_the_newest_runs_config(tmp_path, fresh_session):
    old = traced(tmp_path / "one.toml", config(threads("default", max_threads=1)),
                 replay_steps.shaped, 2, 0.2)
    new = traced(tmp_path / "two.toml", config(threads("default", max_threads=1)),
                 replay_steps.shaped, 4, 0.2)
    summary = tuned(old, str(new))
    assert summary["run"] == str(new) and summary["runs"] == [str(old), str(new)]
    assert changes(summary) == {"parsl.executors['default'].max_threads": 4}


TUNE_FACTS = """(() => ({
  current: Number(document.getElementById('tune').dataset.current),
  tuned: Number(document.getElementById('tune').dataset.tuned),
  changes: Array.from(document.querySelectorAll('#tune-changes li')).map(li => [li.dataset.key,
    li.dataset.new]),
  limitsFirst: document.getElementById('advice').compareDocumentPosition(
    document.getElementById('tune')) === Node.DOCUMENT_POSITION_FOLLOWING,
}))()"""


def test_the_report_shows_tunes_changes_and_predictions_after_the_limits(
        tmp_path, fresh_session):
    chromium = require_tool("chromium")
    run = traced(tmp_path / "poor.toml", config(threads("default", max_threads=1)),
                 replay_steps.shaped, 4, 0.4)
    summary = tuned(run)
    browser = Browser(chromium, tmp_path / "profile")
    try:
        facts = browser.evaluate(browser.open(write_report(run).as_uri()), TUNE_FACTS)
    finally:
        browser.close()
    assert facts["changes"] == [["parsl.executors['default'].max_threads", "4"]], facts
    assert facts["current"] == pytest.approx(summary["current"]["predicted_s"], abs=0.002)
    assert facts["tuned"] == pytest.approx(summary["tuned"]["predicted_s"], abs=0.002)
    assert facts["limitsFirst"] is True


# QIIME 2's spelling of an HTEX's worker count, from before Parsl renamed it
OLD_QIIME2 = config(threads("default", max_threads=1),
                    htex("htex", max_workers=1, address="127.0.0.1", provider=local()),
                    mapping={"first": "htex"}, strategy="None")


def test_an_old_qiime2_files_worker_count_is_written_under_todays_name(tmp_path,
                                                                       fresh_session):
    """QIIME 2's `max_workers`: tune's file says max_workers_per_node, and passes `check`
    without the old spelling's warning."""
    run = traced(tmp_path / "old.toml", OLD_QIIME2, replay_steps.shaped, 4, 0.4)
    summary = tuned(run)
    assert changes(summary)["parsl.executors['htex'].max_workers_per_node"] == 4, summary
    text = Path(summary["tuned"]["config"]).read_text()
    assert "max_workers_per_node = 4  # was 1" in text and "\nmax_workers =" not in text
    checked = cli("check", summary["tuned"]["config"])
    assert checked.returncode == 0 and "warning" not in checked.stderr, checked.stderr


def test_an_htex_with_no_initial_block_gets_one_when_it_starts(tmp_path, fresh_session):
    """No initial block and a strategy that looks every 3 s: the steps waited for its first
    look. Tune asks for one block at the executor's start, as the replay finds it faster."""
    text = config(threads("default", max_threads=2),
                  htex("htex", max_workers_per_node=2, address="127.0.0.1",
                       provider=local(init_blocks=0, min_blocks=0, max_blocks=1)),
                  mapping={"first": "htex", "merge": "htex", "second": "htex"},
                  strategy="simple", strategy_period=3)
    run = traced(tmp_path / "late.toml", text, replay_steps.shaped, 2, 0.3)
    summary = tuned(run)
    found = changes(summary)
    assert found.get("parsl.executors['htex'].provider.init_blocks") == 1, summary
    reason = next(c["reason"] for c in summary["tuned"]["changes"]
                  if c["key"].endswith("init_blocks"))
    assert "strategy's first look" in reason and "asked for at once" in reason
    assert summary["tuned"]["predicted_s"] <= summary["current"]["predicted_s"] - 1.0
    assert cli("check", summary["tuned"]["config"]).returncode == 0


def test_a_run_that_did_not_record_its_machine_is_sized_for_this_one(tmp_path, fresh_session):
    run = traced(tmp_path / "poor.toml", config(threads("default", max_threads=1)),
                 replay_steps.shaped, 4, 0.4)
    meta = json.loads(run.read_text())
    del meta["machine"]  # as a q2pconf before run.json's machine wrote it
    run.write_text(json.dumps(meta))
    summary = tuned(run)
    assert changes(summary) == {"parsl.executors['default'].max_threads": 4}, summary
    assert any("did not record its machine" in note for note in summary["tuned"]["notes"])
