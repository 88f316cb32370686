"""The trace every pipeline run writes: one TSV line per step attempt, on real Parsl."""
from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import q2pconf
import trace_steps as steps
from configs import config, htex, local, threads
from conftest import readonly_command, require_tool
from q2pconf._base.cpus import machine, usable_cpus
from q2pconf._observe.advice import findings
from q2pconf._observe.runfiles import error_messages, read, seconds
from q2pconf._observe.trace import COLUMNS

TESTS = Path(__file__).parents[1]
ROOT = TESTS.parent
CHILD_TIMEOUT = 60.0


POOL = threads("default", max_threads=2)
ONE_BLOCK = local(init_blocks=1, max_blocks=1)
TRACED = config(POOL, htex("htex", max_workers_per_node=2, provider=ONE_BLOCK), strategy="none")


def write_config(tmp_path: Path, text: str = TRACED) -> Path:
    path = tmp_path / "traced.toml"
    path.write_text(text)
    return path


pytestmark = pytest.mark.usefixtures("fresh_session")


def rows_of(path: Path | None) -> list[dict[str, str]]:
    """The trace as csv reads it: a header, then one dict per attempt, no field missing."""
    assert path is not None and path.is_file()
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    for row in rows:
        assert None not in row and all(value != "" for value in row.values()), row
    return rows


def by_step(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["step"].rpartition(".")[2]: row for row in rows}


def check_times(row: dict[str, str], began: float, ended: float) -> None:
    """submitted <= launched <= started <= finished, all inside the run; wall = the span."""
    stamps = [seconds(row[k]) for k in ("submitted", "launched", "started", "finished")]
    assert all(stamp is not None for stamp in stamps), row
    assert stamps == sorted(stamps), row
    assert began - 0.01 <= stamps[0] and stamps[-1] <= ended + 0.01, (began, row, ended)
    assert abs(float(row["wall_s"]) - (stamps[3] - stamps[2])) < 0.01, row


def test_thread_and_htex_steps_record_where_and_what_they_used(tmp_path: Path) -> None:
    began = time.time()
    with q2pconf.ParallelConfig(write_config(tmp_path, config(
            POOL, htex("htex", max_workers_per_node=2, mem_per_worker=0.25, provider=ONE_BLOCK),
            strategy="none"))):
        pids = steps.usage(1.0)
    ended = time.time()
    rows = rows_of(steps.usage.trace_path)
    assert len(rows) == 6 and {row["status"] for row in rows} == {"done"}
    named = by_step(rows)
    for row in rows:
        check_times(row, began, ended)
        assert row["host"] == socket.gethostname() and row["attempt"] == "1"
        assert row["error"] == "NA" and row["job"] == "NA"
    assert sorted(int(row["call"]) for row in rows) == list(range(6))
    for name, pid in zip(("busy_thread", "nap_thread", "busy_htex", "nap_htex", "allocate",
                          "trivial"), pids):
        assert int(named[name]["pid"]) == pid, named[name]
    for name in ("busy_thread", "nap_thread"):
        row = named[name]
        assert (row["executor"], row["rss_of"]) == ("default", "process")
        assert row["worker"].startswith("ThreadPoolExecutor-")  # Parsl names its threads
        assert int(row["pid"]) == os.getpid()
    for name in ("busy_htex", "nap_htex", "allocate", "trivial"):
        row = named[name]
        assert (row["executor"], row["rss_of"]) == ("htex", "step")
        assert row["worker"].startswith("worker-") and int(row["pid"]) != os.getpid()
    # CPU: a busy step's CPU time is what it burnt, ~ its wall time on an idle core (the
    # machine may be shared: then the wall time grows, never the CPU time)
    for name in ("busy_thread", "busy_htex"):
        wall, cpu = float(named[name]["wall_s"]), float(named[name]["cpu_s"])
        # (a worker's process times tick at 10 ms: 0.99 s reads as well as 1.0 s)
        assert 0.97 <= cpu <= 1.1 and cpu <= wall + 0.02, named[name]
    for name in ("nap_thread", "nap_htex"):
        assert float(named[name]["cpu_s"]) < 0.05, named[name]
    # Memory: the step's own peak in a worker process
    big, small = float(named["allocate"]["peak_rss_mib"]), float(named["trivial"]["peak_rss_mib"])
    assert big >= 200 and small < big - 150, (big, small)
    # ... which the report holds against the 256 MiB each worker was given
    run = read(Path(str(steps.usage.trace_path).replace(".trace.tsv", ".run.json")))
    memory = [f for f in findings(run) if "mem_per_worker" in f.setting]
    assert [(f.step, f.level) for f in memory] in (
        [("trace_steps.allocate", "close")], [("trace_steps.allocate", "hit")]), memory


def test_each_step_on_a_worker_has_its_own_peak(tmp_path: Path) -> None:
    """A big step after a small one, a small one after a big one, and a smaller big one after
    a big one, on the same worker: each line shows the peak of its own step only."""
    with q2pconf.ParallelConfig(write_config(tmp_path, config(
            POOL, htex("htex", max_workers_per_node=1, provider=ONE_BLOCK), strategy="none"))):
        pids = steps.peaks()
    rows = sorted(rows_of(steps.peaks.trace_path), key=lambda row: int(row["call"]))
    assert [row["step"].rpartition(".")[2] for row in rows] == [
        "trivial", "allocate", "trivial", "allocate"]
    assert len(set(pids)) == 1 and {int(row["pid"]) for row in rows} == set(pids), rows
    assert {row["rss_of"] for row in rows} == {"step"}, rows
    small, big, small_after, smaller_big = (float(row["peak_rss_mib"]) for row in rows)
    assert big >= 200 and small < big - 150, rows
    assert small_after < big - 150 and abs(small_after - small) < 30, rows
    assert 100 <= smaller_big < big - 50, rows


IO_MIB = 8


def test_a_steps_io_and_its_childrens_is_counted(tmp_path: Path) -> None:
    """A worker step writing 8 MiB (synced) and reading them back, the same done by `dd`
    children of a worker step and of a thread step: each line counts its I/O in bytes
    (Linux's /proc/self/io, which counts the children a process waited for; a thread step's
    is its whole process's). The parent steps themselves write nearly nothing: a child's I/O
    left out could not reach the bounds."""
    require_tool("dd")
    data = tmp_path / "data"
    data.mkdir()
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        steps.io(str(data), IO_MIB)
    named = by_step(rows_of(steps.io.trace_path))
    size = IO_MIB * 2 ** 20
    on_disk = subprocess.run(["stat", "-f", "-c", "%T", str(data)], capture_output=True,
                             text=True, timeout=CHILD_TIMEOUT).stdout.strip() not in (
                                 "tmpfs", "ramfs")
    for name, rss_of, reads in (("write_read", "step", size), ("dd_htex", "step", 2 * size),
                                ("dd_thread", "process", 2 * size)):
        row = named[name]
        assert row["rss_of"] == rss_of, row
        counted = {key: int(row[key]) for key in ("rchar", "wchar", "read_bytes",
                                                  "write_bytes")}
        # dd reads /dev/zero, then the file: twice the size
        assert counted["rchar"] >= reads and counted["wchar"] >= size, (name, counted)
        assert counted["read_bytes"] >= 0
        # write_bytes: bytes made dirty for a disk (none on tmpfs)
        assert counted["write_bytes"] >= (size if on_disk else 0), (name, counted)
    # over the step only: the worker process's own start (Parsl's modules read) is not in it
    assert int(named["write_read"]["rchar"]) < size + 2 ** 20, named["write_read"]


def test_a_step_taking_the_kept_descriptor_gets_its_file_untouched(tmp_path: Path) -> None:
    """A worker keeps /proc/self/clear_refs open between steps: a step that closes that
    descriptor and opens a file of its own under the same number must find its file as it left
    it, and the next step on the worker still has its own peak."""
    mine = tmp_path / "mine.txt"
    with q2pconf.ParallelConfig(write_config(tmp_path, config(
            POOL, htex("htex", max_workers_per_node=1, provider=ONE_BLOCK), strategy="none"))):
        steps.descriptor_taken(str(mine))
    assert mine.read_bytes() == b""
    rows = sorted(rows_of(steps.descriptor_taken.trace_path), key=lambda row: int(row["call"]))
    assert [row["status"] for row in rows] == ["done", "done"], rows
    assert rows[1]["rss_of"] == "step" and 100 <= float(rows[1]["peak_rss_mib"]) < 150, rows


def test_run_json_records_the_config_and_how_the_run_ended(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    with q2pconf.ParallelConfig(path):
        steps.usage(0.1)
    run = read(Path(str(steps.usage.trace_path).replace(".trace.tsv", ".run.json")))
    assert run.complete and run.meta["outcome"] == "done" and run.meta["calls"] == 6
    assert run.meta["config"]["path"] == str(path)
    assert run.meta["config"]["source"] == "explicit"
    assert run.meta["config"]["text"] == path.read_text()
    assert run.meta["config"]["executors"]["htex"]["provider"]["max_blocks"] == 1
    assert Path(run.meta["run_dir"]) == steps.usage.trace_path.parent
    assert len(run.rows) == 6
    # the machine it ran on, as Parsl's worker pool counts it: what a tuned config must fit
    cpus, memory_gb = machine()
    assert run.meta["machine"] == {"cpus": cpus, "usable_cpus": usable_cpus(),
                                   "memory_gb": memory_gb}
    assert cpus >= usable_cpus() >= 1 and memory_gb > 0


def test_run_json_records_the_node_size_of_each_batch_provider(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Executors on Slurm and PBS, never started (only thread steps run): each one's node size
    is the config's where it sets it, else the batch job's this program runs in."""
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "3")
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "3072")  # MiB
    path = write_config(tmp_path, config(
        POOL, htex("slurm", max_workers_per_node=2,
                   provider={"class": "SlurmProvider", "cores_per_node": 8}),
        htex("pbs", max_workers_per_node=2, provider={"class": "PBSProProvider"}),
        strategy="none"))
    with q2pconf.ParallelConfig(path):
        steps.many_naps(2, 0.01)
    run = read(Path(str(steps.many_naps.trace_path).replace(".trace.tsv", ".run.json")))
    assert {row["executor"] for row in run.rows} == {"default"}
    assert run.meta["machine"]["batch_nodes"] == {
        "slurm": {"provider": "SlurmProvider", "cores_per_node": 8, "mem_per_node": 3,
                  "from": {"cores_per_node": "config", "mem_per_node": "SLURM_MEM_PER_NODE"}},
        "pbs": {"provider": "PBSProProvider", "cores_per_node": 3, "mem_per_node": 3,
                "from": {"cores_per_node": "SLURM_CPUS_ON_NODE",
                         "mem_per_node": "SLURM_MEM_PER_NODE"}}}
    monkeypatch.delenv("SLURM_CPUS_ON_NODE")
    monkeypatch.delenv("SLURM_MEM_PER_NODE")
    with q2pconf.ParallelConfig(path):
        steps.many_naps(1, 0.01)
    run = read(Path(str(steps.many_naps.trace_path).replace(".trace.tsv", ".run.json")))
    assert run.meta["machine"]["batch_nodes"]["pbs"] == {
        "provider": "PBSProProvider", "cores_per_node": None, "mem_per_node": None,
        "from": {"cores_per_node": None, "mem_per_node": None}}


def test_the_command_line_lists_runs_and_reports_the_last(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    from q2pconf.cli import main

    assert main(["report"]) == 2
    assert "no traced run is recorded" in capsys.readouterr().err
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        steps.many_naps(2, 0.0)
        with pytest.raises(KeyError):
            steps.failing()
    assert main(["info", "--runs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("  failing  failed, 2 step attempts")
    assert out[1] == f"  trace: {steps.failing.trace_path}"
    assert out[2].endswith("  many_naps  done, 2 step attempts")
    assert main(["report"]) == 0
    page = Path(capsys.readouterr().out.strip())
    assert page == steps.failing.trace_path.with_name("failing-2.report.html")
    assert 'data-status="failed"' in page.read_text()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no such run" in capsys.readouterr().err


def test_a_failing_step_and_the_step_that_never_ran(tmp_path: Path) -> None:
    began = time.time()
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        with pytest.raises(KeyError):
            steps.failing()
    ended = time.time()
    named = by_step(rows_of(steps.failing.trace_path))
    assert set(named) == {"broken", "after"}
    broken, after = named["broken"], named["after"]
    assert (broken["status"], broken["error"]) == ("failed", "KeyError")
    check_times(broken, began, ended)
    assert float(broken["wall_s"]) >= 0.04  # measured, though it raised
    assert (after["status"], after["error"]) == ("dependency_failed", "DependencyError")
    assert after["started"] == after["launched"] == after["wall_s"] == "NA"
    meta = json.loads(Path(str(steps.failing.trace_path).replace(".trace.tsv",
                                                                 ".run.json")).read_text())
    assert meta["outcome"] == "failed"
    # what it said, beside the trace (whose fields hold no spaces): for the report's failures
    said = error_messages(read(Path(meta["trace"].replace(".trace.tsv", ".run.json"))))
    assert said == {(broken["call"], broken["attempt"]): ("KeyError", "'no such sample'")}


def failed_on_one_thread(tmp_path: Path, pipeline: Any, *args: Any) -> list[dict[str, str]]:
    """The trace rows of `pipeline(*args)`, which raises KeyError, run on one thread and one
    HTEX worker (so steps queue behind the failing one)."""
    path = tmp_path / "one-thread.toml"
    path.write_text(config(threads("default", max_threads=1),
                           htex("htex", max_workers_per_node=1, provider=local()),
                           strategy="none"))
    with q2pconf.ParallelConfig(path):
        with pytest.raises(KeyError):
            pipeline(*args)
    return rows_of(pipeline.trace_path)


def test_steps_that_never_started_when_the_run_failed_are_cancelled(tmp_path: Path) -> None:
    rows = failed_on_one_thread(tmp_path, steps.failing_first, 4)
    assert len(rows) == 5 and rows[0]["status"] == "failed", rows
    statuses = sorted(row["status"] for row in rows[1:])
    assert statuses.count("cancelled") >= 3, statuses  # one nap may have started meanwhile
    assert {row["error"] for row in rows if row["status"] == "cancelled"} == {"NA"}


def test_pipelines_running_at_once_keep_separate_traces(tmp_path: Path) -> None:
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    first = q2pconf.parallel_pipeline(steps.many_naps.func)
    second = q2pconf.parallel_pipeline(steps.many_naps.func)
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        first(1, 0.0)  # the session is up: both calls below share it
        with ThreadPoolExecutor(2) as pool:
            calls = [pool.submit(contextvars.copy_context().run, run, 3, 0.1)
                     for run in (first, second)]
            assert [len(call.result(timeout=CHILD_TIMEOUT)) for call in calls] == [3, 3]
    assert first.trace_path != second.trace_path
    assert first.trace_path.parent == second.trace_path.parent  # one session, one directory
    for run in (first, second):
        assert sorted(row["call"] for row in rows_of(run.trace_path)) == ["0", "1", "2"]


def test_a_retried_step_has_a_line_per_attempt(tmp_path: Path) -> None:
    flag = tmp_path / "failed-once"
    with q2pconf.ParallelConfig(write_config(tmp_path, config(
            POOL, htex("htex", max_workers_per_node=2, provider=ONE_BLOCK), strategy="none",
            retries=1))):
        assert steps.retried(str(flag)) == "second attempt"
    rows = rows_of(steps.retried.trace_path)
    assert [(r["attempt"], r["status"], r["error"]) for r in rows] == [
        ("1", "failed", "RuntimeError"), ("2", "done", "NA")]
    assert rows[0]["task"] == rows[1]["task"] and rows[0]["call"] == rows[1]["call"] == "0"
    assert seconds(rows[0]["finished"]) <= seconds(rows[1]["started"])


def test_tracing_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("Q2PCONF_TRACE", "0")
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        assert steps.failing.serial is not None
        assert len(steps.usage(0.0)) == 6
    assert steps.usage.trace_path is None


def test_the_trace_reads_as_columns(tmp_path: Path) -> None:
    """`column -t` lines every field up: no value is empty or holds a space."""
    column = require_tool("column")
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        with pytest.raises(KeyError):
            steps.failing()
    done = subprocess.run([column, "-t", str(steps.failing.trace_path)], capture_output=True,
                          text=True, timeout=30, check=True)
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(len(line.split()) == len(COLUMNS) for line in lines)


KILLED = """
import sys, trace_steps, q2pconf
with q2pconf.ParallelConfig(sys.argv[1]):
    trace_steps.many_naps(40, 0.2)
"""


def test_a_run_killed_mid_way_leaves_a_trace_the_report_marks_incomplete(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)]),
           "Q2PCONF_PROGRESS": "0"}
    child = subprocess.Popen([sys.executable, "-c", KILLED, str(write_config(tmp_path))],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        trace = _wait_for_lines(tmp_path / "home" / ".cache", 4, child)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=CHILD_TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=CHILD_TIMEOUT)
    rows = rows_of(trace)
    assert 4 <= len(rows) < 40 and {row["status"] for row in rows} == {"done"}
    report = subprocess.run([sys.executable, "-m", "q2pconf", "report", str(trace)], env=env,
                            capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert report.returncode == 0, report.stderr
    page = Path(report.stdout.strip()).read_text()
    assert 'id="incomplete"' in page
    assert page.count('<rect class="bar') == len(rows)


def _wait_for_lines(cache: Path, count: int, child: subprocess.Popen[bytes]) -> Path:
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        for path in cache.rglob("*.trace.tsv"):
            if len(path.read_text().splitlines()) > count:
                return path
        time.sleep(0.05)
    raise AssertionError(f"no trace with {count} lines under {cache}")


UNWRITABLE = """
import trace_steps, q2pconf
print(trace_steps.many_naps(3, 0.0), trace_steps.many_naps.trace_path)
print(trace_steps.many_naps(2, 0.0), trace_steps.many_naps.trace_path)
"""


def full_command(directory: Path, command: list[str]) -> list[str]:
    """`command` run with a full 1 MiB file system mounted on `directory` (a private mount
    namespace: nothing stays mounted)."""
    require_tool("unshare")
    target = shlex.quote(str(directory))
    script = (f"mount -t tmpfs -o size=1m tmpfs {target} && "
              f"(dd if=/dev/zero of={target}/fill bs=4k 2>/dev/null; true) && "
              f"exec {' '.join(shlex.quote(part) for part in command)}")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


@pytest.mark.parametrize("make, problem", [(readonly_command, "Read-only file system"),
                                           (full_command, "No space left on device")])
def test_an_unwritable_cache_runs_with_one_warning_and_no_trace(tmp_path: Path, make, problem
                                                                ) -> None:
    cache = tmp_path / "home" / ".cache"
    cache.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)]),
           "Q2PCONF_PROGRESS": "0"}
    done = subprocess.run(make(cache, [sys.executable, "-c", UNWRITABLE]), env=env,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.endswith("] None") for line in lines), done.stdout
    assert done.stderr.count("no trace of this run is kept") == 1, done.stderr
    assert problem in done.stderr and "Logging error" not in done.stderr, done.stderr
    assert not list(cache.rglob("*"))


def test_steps_resumed_from_a_checkpoint_are_cached(tmp_path: Path) -> None:
    import pipeline_steps

    log = tmp_path / "calls.log"
    run = q2pconf.parallel_pipeline(pipeline_steps.counted.func, resume=True)
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        assert run(str(log), [1, 2]) == [10, 20]
        assert {row["status"] for row in rows_of(run.trace_path)} == {"done"}
        assert run(str(log), [1, 2, 3]) == [10, 20, 30]
    rows = rows_of(run.trace_path)
    assert sorted((row["status"], row["wall_s"] == "NA") for row in rows) == [
        ("cached", True), ("cached", True), ("done", False)]
    assert sorted(log.read_text().split()) == ["1", "2", "3"]


def test_a_dependency_failure_has_one_line_when_the_run_ends_while_parsl_handles_it(
        tmp_path: Path) -> None:
    """Parsl calls the retry handler for a step whose input failed, then fails its future for
    good. The run can end (and its trace close) in between, as it did about once in 100 runs
    of `failing`: the step had two lines then, the handler's and the close's. Here the two
    come in that order for certain: the handler's call, then the close, the future unset."""
    from concurrent.futures import Future

    from parsl.dataflow.errors import DependencyError

    from q2pconf._observe import trace as tracing
    from q2pconf.pipeline._session import retry_handler
    from q2pconf._base.keywords import TRACE_KEY

    trace = tracing.Trace(tmp_path, "run", {})
    failed: Future = Future()
    failed.set_exception(KeyError("no such sample"))
    waiting: Future = Future()  # Parsl's future of the dependent step, not yet failed
    task = {"id": 7, "try_id": 0, "depends": [failed], "executor": "default"}
    waiting.task_record = task  # type: ignore[attr-defined]
    key = trace.expect("steps.after", None)
    trace.watch(key, waiting)
    task["kwargs"] = {TRACE_KEY: key}
    failure = DependencyError([(KeyError("x"), "task 6")], 7)
    retry_handler()(failure, task)
    trace.close("failed")
    waiting.set_exception(failure)  # Parsl, after the handler
    assert [(r["step"], r["status"]) for r in rows_of(trace.path)] == [
        ("steps.after", "dependency_failed")]


@pytest.mark.parametrize("pipeline,args", [(steps.failing_first, (4,)), (steps.failing, ())],
                         ids=["cancelled-after-a-failure", "dependency-failed"])
def test_each_step_has_one_state_in_history_trace_and_report(tmp_path: Path, pipeline,
                                                             args) -> None:
    """A step cancelled after a failure was `pending` in run.history (or `failed`, when its
    queued thread-pool future was cancelled) while the trace said `cancelled`; the report's
    header said "4 cancelled, 1 failed" and its table "5 failed"."""
    import re

    from q2pconf._observe.history import STATES
    from q2pconf._observe.report import write_report

    rows = failed_on_one_thread(tmp_path, pipeline, *args)
    final = {row["call"]: row["status"] for row in rows}  # a call's last attempt
    history = [record.state for record in pipeline.history]
    assert "pending" not in history
    assert history == [STATES[final[str(call)]] for call in range(len(history))], (history, rows)
    assert len(history) == len(final)
    page = write_report(read(Path(str(pipeline.trace_path).replace(".trace.tsv", ".run.json")))
                        .meta_path).read_text()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    header = re.search(r"Step attempts: ([^.]*)\.", page)
    assert header is not None
    said = dict((status.replace(" ", "_"), int(n)) for n, status in
                (part.split(" ", 1) for part in header[1].split(", ")))
    assert said == counts
    heads = re.findall(r"<th>([^<]*)</th>", page.split('id="steps"')[1].split("</tr>")[0])
    table = {status: 0 for status in counts}
    for line in re.findall(r'<tr data-step="[^"]*">(.*?)</tr>', page):
        cells = dict(zip(heads, re.findall(r"<td>([^<]*)</td>", line)))
        for status in counts:
            table[status] += int(cells[status.replace("_", " ")])
    assert table == counts
