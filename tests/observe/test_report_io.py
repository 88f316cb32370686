"""The report's I/O and capacity parts in real headless Chromium, from a real run on threads and
an HTEX: each step's I/O counters as box plots (raw only: no limit), and each executor's
workers and blocks up over time as step lines matching the run's events file; a trace from
before them (no I/O columns, no events file) still renders."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import q2pconf
import trace_steps as steps
from configs import config, htex, local, threads
from conftest import require_tool
from devtools import Browser
from procs import parsl_children
from q2pconf.pipeline import _session as sessions
from q2pconf._observe.report import write_report
from q2pconf._observe.runfiles import COLUMNS, IO, find, read

MIB = 2 ** 20
IO_MIB, NAPS, NAP = 4, 6, 1.0
EVENT = {"workers": "workers", "blocks": "block"}  # a line's kind -> its events' kind
SPREAD = """Array.from(document.querySelectorAll('#spread td.spread')).map(td => ({
  step: td.closest('tr').dataset.spread, metric: td.dataset.metric,
  median: Number(td.dataset.median), max: Number(td.dataset.max), limit: td.dataset.limitPct,
  boxes: td.querySelectorAll('svg rect').length}))"""
CHART = """(() => {
  const chart = document.getElementById('running');
  return {first: Number(chart.dataset.first), last: Number(chart.dataset.last),
    running: Array.from(chart.querySelectorAll('polyline')).map(l => l.dataset.executor),
    steps: Array.from(chart.querySelectorAll('path')).map(path => ({
      kind: path.getAttribute('class'), executor: path.dataset.executor,
      max: Number(path.dataset.max), drawn: path.getAttribute('d'),
      steps: path.dataset.steps.split(' ').map(p => p.split(':').map(Number))})),
    legend: document.querySelector('#running').previousElementSibling.textContent};
})()"""


@pytest.fixture
def browser(tmp_path: Path):
    opened = Browser(require_tool("chromium"), tmp_path / "profile")
    yield opened
    opened.close()


@pytest.fixture
def run(clean_env: Path, tmp_path: Path) -> Path:
    """A run of I/O steps on threads and an HTEX of one block of two workers, then naps on it
    long enough for its workers to be counted (Parsl polls every strategy_period: 1 s)."""
    path = tmp_path / "io.toml"
    path.write_text(config(threads("default", max_threads=2),
                           htex("htex", max_workers_per_node=2, address="127.0.0.1",
                                provider=local(init_blocks=1, max_blocks=1)),
                           strategy="none", strategy_period=1))
    data = tmp_path / "data"
    data.mkdir()
    sessions.close()
    try:
        with q2pconf.ParallelConfig(path):
            steps.io_and_naps(str(data), IO_MIB, NAPS, NAP)
    finally:
        sessions.close()
    assert parsl_children() == []
    return find(str(steps.io_and_naps.trace_path))


def test_each_steps_io_is_a_box_plot_raw_only(browser: Browser, run: Path) -> None:
    report = write_report(run)
    cells = {(c["step"], c["metric"]): c
             for c in browser.evaluate(browser.open(report.as_uri()), SPREAD)}
    rows = read(run).rows
    for row in rows:
        step = row["step"]
        for column in IO:
            if row["rss_of"] != "step":  # a thread step's are its whole process's: not shown
                assert (step, column) not in cells
                continue
            cell = cells[step, column]
            if step.endswith((".write_read", ".dd_htex")):  # one attempt each
                value = int(row[column]) / MIB
                assert cell["median"] == pytest.approx(value, rel=1e-4, abs=1e-4), cell
                assert cell["max"] == pytest.approx(value, rel=1e-4, abs=1e-4), cell
            assert cell["boxes"] == 1 and cell["limit"] == "", cell  # no limit: no % view
    assert cells["trace_steps.write_read", "wchar"]["max"] >= IO_MIB
    assert cells["trace_steps.dd_htex", "rchar"]["max"] >= 2 * IO_MIB  # its dd children's
    assert cells["trace_steps.nap_htex", "wchar"]["max"] < 1
    assert "a config sets no limit on I/O" in report.read_text()


def step_line(events: list[dict[str, Any]], executor: str, kind: str, first: float,
              last: float) -> list[tuple[float, int]]:
    """What the events file says the line must be: its value at `first`, then each change."""
    line, blocks = [(first, 0)], {}
    for event in sorted(events, key=lambda e: e["t"]):
        if event.get("executor") != executor or event["kind"] != EVENT[kind]:
            continue
        if kind == "blocks":
            blocks[event["block"]] = event["state"]
        value = event["workers"] if kind == "workers" else \
            sum(state == "RUNNING" for state in blocks.values())
        if event["t"] <= first:
            line = [(first, value)]
        elif event["t"] <= last and value != line[-1][1]:
            line.append((event["t"], value))
    return line


def test_workers_and_blocks_over_time_match_the_events_file(browser: Browser, run: Path,
                                                            tmp_path: Path) -> None:
    report = write_report(run)
    chart = browser.evaluate(browser.open(report.as_uri()), CHART)
    browser.screenshot(browser.open(report.as_uri()), tmp_path / "capacity.png")
    lines = {(line["executor"], line["kind"]): line for line in chart["steps"]}
    assert set(lines) == {("default", "workers"), ("htex", "workers"), ("htex", "blocks")}
    # a thread pool's workers: its max_threads, all along
    assert lines["default", "workers"]["steps"] == [[pytest.approx(chart["first"]), 2]]
    events = [json.loads(line) for line in
              Path(json.loads(run.read_text())["events"]).read_text().splitlines()]
    assert {e["workers"] for e in events if e["kind"] == "workers"} & {1, 2}, events
    for kind in ("workers", "blocks"):
        expected = step_line(events, "htex", kind, chart["first"], chart["last"])
        drawn = lines["htex", kind]["steps"]
        assert len(drawn) == len(expected), (kind, drawn, expected)
        for (t, value), (want_t, want) in zip(drawn, expected):
            assert value == want and t == pytest.approx(want_t, abs=1e-5), (kind, drawn)
        assert lines["htex", kind]["max"] == max(value for _, value in expected)
        assert lines["htex", kind]["drawn"].startswith("M")
    # its one block shows up (RUNNING) when a poll of Parsl's saw it so, which a short run
    # may end before (a loaded CI machine did); its workers registered in any case
    assert lines["htex", "blocks"]["max"] <= 1 and lines["htex", "workers"]["max"] >= 1
    assert "workers of htex" in chart["legend"] and "blocks up (RUNNING) of htex" in chart["legend"]


def test_a_trace_from_before_io_and_events_still_renders(browser: Browser, run: Path,
                                                         tmp_path: Path) -> None:
    """The files as q2pconf wrote them before: no inputs nor I/O columns, no events file."""
    meta = json.loads(run.read_text())
    old = tmp_path / "old"
    old.mkdir()
    trace = old / "io-1.trace.tsv"
    before = len(IO) + 1
    trace.write_text("".join(line.rsplit("\t", before)[0] + "\n"
                             for line in Path(meta["trace"]).read_text().splitlines()))
    assert trace.read_text().split("\n", 1)[0].split("\t") == list(COLUMNS[:-before])
    meta.pop("events")
    meta.update(trace=str(trace), columns=list(COLUMNS[:-before]))
    (old / "io-1.run.json").write_text(json.dumps(meta))
    report = write_report(old / "io-1.run.json")
    session = browser.open(report.as_uri())
    chart = browser.evaluate(session, CHART)
    assert {"default", "htex"} <= set(chart["running"])
    # the thread pool's workers are in its config; the HTEX's were in the events file only
    assert [(line["executor"], line["kind"]) for line in chart["steps"]] == [
        ("default", "workers")]
    metrics = {cell["metric"] for cell in browser.evaluate(session, SPREAD)}
    assert {"wall", "cpu", "peak"} <= metrics and not metrics & set(IO)
