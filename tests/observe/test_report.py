"""`q2pconf report` opened in a real browser (headless Chromium over the DevTools protocol):
every step has a bar in its worker's lane, the limit a step hit is named, nothing is fetched."""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

import q2pconf
import trace_steps as steps
from configs import config, htex, local, threads
from conftest import require_tool
from devtools import Browser
from procs import parsl_children
from q2pconf.pipeline import _session as sessions
from q2pconf._observe.report import lane_of, write_report
from q2pconf._observe.runfiles import find, read

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PAGE_FACTS = """(() => ({
  bars: Array.from(document.querySelectorAll('rect.bar')).map(bar => ({
    lane: bar.closest('g.lane').dataset.lane, step: bar.dataset.step, call: bar.dataset.call,
    attempt: bar.dataset.attempt, status: bar.dataset.status})),
  advice: Array.from(document.querySelectorAll('#advice li')).map(item => ({
    level: item.dataset.level, step: item.dataset.step, setting: item.dataset.setting})),
  counted: document.body.dataset.bars,
  incomplete: document.getElementById('incomplete') !== null,
}))()"""


@pytest.fixture
def browser(tmp_path: Path):
    chromium = require_tool("chromium")
    opened = Browser(chromium, tmp_path / "profile")
    yield opened
    opened.close()


@pytest.fixture
def report(clean_env: Path, tmp_path: Path) -> Path:
    """The report of a run with thread and HTEX steps, ended by a step that hit its walltime."""
    from parsl.app.errors import AppTimeout

    path = tmp_path / "report.toml"
    path.write_text(config(threads("default", max_threads=2),
                           htex("htex", max_workers_per_node=2,
                                provider=local(init_blocks=1, max_blocks=1)),
                           strategy="none"))
    sessions.close()
    try:
        with q2pconf.ParallelConfig(path):
            with pytest.raises(AppTimeout):
                steps.mixed(3)
    finally:
        sessions.close()
    assert parsl_children() == []
    return write_report(find(str(steps.mixed.trace_path)))


def test_every_step_has_a_bar_in_its_workers_lane(browser: Browser, report: Path,
                                                  tmp_path: Path) -> None:
    session = browser.open(report.as_uri())
    facts = browser.evaluate(session, PAGE_FACTS)
    shot = browser.screenshot(session, tmp_path / "report.png")
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report.png")
    rows = read(find(str(report).replace(".report.html", ".run.json"))).rows
    assert len(rows) == 7
    expected = sorted((lane_of(r), r["step"], r["call"], r["attempt"], r["status"])
                      for r in rows)
    drawn = sorted((b["lane"], b["step"], b["call"], b["attempt"], b["status"])
                   for b in facts["bars"])
    assert drawn == expected
    assert facts["counted"] == "7"  # the page's own script ran
    lanes = {lane for lane, *_ in drawn}
    assert len({lane for lane in lanes if f"/{os.getpid()}/" in lane}) >= 1  # threads here
    assert any("/worker-" in lane for lane in lanes)  # HTEX workers elsewhere
    assert not facts["incomplete"]
    assert {"level": "hit", "step": "trace_steps.overrun",
            "setting": "@step(walltime=...) on overrun: raise it above 1 s, or split the step"
            } in facts["advice"]


def test_the_report_fetches_nothing(browser: Browser, report: Path, tmp_path: Path) -> None:
    session = browser.open(report.as_uri())
    assert browser.requests(session) == [report.as_uri()]
    # The same check sees a page that does fetch something (so it can fail).
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><img src="http://192.0.2.1/pixel.png">')
    other = browser.open(control.as_uri())
    assert "http://192.0.2.1/pixel.png" in browser.requests(other)


def test_the_example_writes_its_report_and_prints_where(clean_env: Path, tmp_path: Path
                                                        ) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "Q2PCONF_PROGRESS": "0", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, str(root / "examples" / "amplicon.py"), "--samples",
                           "2", "--depth", "100", "--no-serial"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    paths = {line.split(":", 1)[0]: Path(line.split(":", 1)[1].strip())
             for line in done.stdout.splitlines() if line.startswith(("trace:", "report:"))}
    assert paths["report"].name.endswith(".report.html"), done.stdout
    assert paths["report"].parent == paths["trace"].parent
    assert f"q2pconf: report: {paths['report']}" in done.stderr
    page = paths["report"].read_text()
    assert 'id="timeline"' in page and "__main__.denoise" in page
    assert "<td>denoise</td>" in page and "<td>__main__.denoise</td>" not in page
    assert "are the script amplicon.py's" in page


FAILURE_FACTS = """(() => ({
  first: document.querySelector('h1').nextElementSibling.id,
  failures: Array.from(document.querySelectorAll('#failures li.failure')).map(item => ({
    step: item.dataset.step, error: item.dataset.error, attempts: item.dataset.attempts,
    text: item.textContent})),
  unrun: document.getElementById('unrun').dataset.count,
  header: document.getElementById('summary').textContent
    .match(/Step attempts: ([^.]*)[.]/)[1],
  table: Object.fromEntries(Array.from(document.querySelectorAll('#steps tr:first-child th'))
    .map((th, i) => [th.textContent, Array.from(document.querySelectorAll('#steps tr'))
      .slice(1).reduce((sum, tr) => sum + (Number(tr.children[i].textContent) || 0), 0)])),
  failedBars: document.querySelectorAll('rect.bar.failed').length,
  unrunBars: document.querySelectorAll('rect.bar.unrun').length,
}))()"""


def test_a_failed_run_shows_first_what_failed_and_counts_alike(browser: Browser,
                                                               clean_env: Path,
                                                               tmp_path: Path) -> None:
    """One step fails while four wait for the one thread: the report opens with the failed
    step (its error, where it ran, its attempts) and the four it cancelled; the header, the
    table, the list and the timeline all count 1 failed and 4 cancelled (a table once said
    5 failed, counting the cancelled ones as failed)."""
    path = tmp_path / "one-thread.toml"
    path.write_text(config(threads("default", max_threads=1)))
    sessions.close()
    try:
        with q2pconf.ParallelConfig(path):
            with pytest.raises(KeyError):
                steps.failing_first(4)
    finally:
        sessions.close()
    report = write_report(find(str(steps.failing_first.trace_path)))
    facts = browser.evaluate(browser.open(report.as_uri()), FAILURE_FACTS)
    assert facts["first"] == "failures"
    [failure] = facts["failures"]
    assert failure["step"] == "trace_steps.broken" and failure["error"] == "KeyError"
    assert "KeyError: 'at once'" in failure["text"]  # what it said (kept in the events file)
    assert failure["attempts"] == "1"
    [broken] = [row for row in read(find(str(report).replace(".report.html", ".run.json"))).rows
                if row["status"] == "failed"]
    assert f"host {socket.gethostname()}, pid {os.getpid()} {broken['worker']}" in failure["text"]
    assert broken["worker"].startswith("ThreadPoolExecutor-")
    assert facts["unrun"] == "4"
    assert facts["header"] == "1 failed, 4 cancelled"
    assert facts["table"]["failed"] == 1 and facts["table"]["cancelled"] == 4
    assert facts["table"]["attempts"] == 5
    assert facts["failedBars"] == 1 and facts["unrunBars"] == 4


def test_a_step_past_its_walltime_is_what_failed(browser: Browser, report: Path) -> None:
    facts = browser.evaluate(browser.open(report.as_uri()), FAILURE_FACTS)
    assert facts["first"] == "failures"
    assert [(f["step"], f["error"]) for f in facts["failures"]] == [
        ("trace_steps.overrun", "AppTimeout")]
    assert facts["header"] == "6 done, 1 failed" and facts["table"]["failed"] == 1


RUNNING = """Object.fromEntries(Array.from(document.querySelectorAll('#running polyline'))
  .map(line => [line.dataset.executor, Number(line.dataset.max)]))"""


def test_the_steps_running_over_time_per_executor(browser: Browser, report: Path) -> None:
    """Three naps on two threads run two at a time; three HTEX steps on two workers at most
    two at a time; the naps and HTEX steps called at once waited to start."""
    running = browser.evaluate(browser.open(report.as_uri()), RUNNING)
    assert running["default"] == 2
    assert 1 <= running["htex"] <= 2
    assert running["waiting"] >= 1


SPREAD = """Array.from(document.querySelectorAll('#spread td.spread')).map(td => ({
  step: td.closest('tr').dataset.spread, metric: td.dataset.metric,
  median: Number(td.dataset.median),
  max: Number(td.dataset.max), limit: td.dataset.limitPct,
  boxes: td.querySelectorAll('svg rect').length}))"""


def test_the_spread_of_each_step_raw_and_against_its_limit(browser: Browser, report: Path
                                                           ) -> None:
    import statistics

    spread = browser.evaluate(browser.open(report.as_uri()), SPREAD)
    rows = read(find(str(report).replace(".report.html", ".run.json"))).rows
    walls = {step: [float(r["wall_s"]) for r in rows if r["step"] == step]
             for step in {r["step"] for r in rows}}
    shown = {(cell["step"], cell["metric"]): cell for cell in spread}
    for step, found in walls.items():
        cell = shown[step, "wall"]
        assert cell["boxes"] == 1
        assert cell["median"] == pytest.approx(statistics.median(found), abs=1e-3)
        assert cell["max"] == pytest.approx(max(found), abs=1e-3)
    assert float(shown["trace_steps.overrun", "wall"]["limit"]) >= 95  # @step(walltime=1)
    assert shown["trace_steps.nap_thread", "wall"]["limit"] == ""  # no limit set
    assert shown["trace_steps.busy_htex", "cpu"]["limit"] != ""  # of cores_per_worker's 1
    assert ("trace_steps.busy_htex", "peak") in shown  # a worker's own peak
    assert ("trace_steps.nap_thread", "peak") not in shown  # the program's: not the step's


def test_a_step_whose_input_failed_is_named_under_what_failed(clean_env: Path,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "threads.toml"
    path.write_text(config(threads("default", max_threads=2)))
    sessions.close()
    try:
        with q2pconf.ParallelConfig(path):
            with pytest.raises(KeyError):
                steps.failing()
    finally:
        sessions.close()
    page = write_report(find(str(steps.failing.trace_path))).read_text()
    failed = page.split('<section id="failures">')[1].split("</section>")[0]
    assert 'data-step="trace_steps.broken"' in failed and 'data-error="KeyError"' in failed
    assert ("1 step(s) never ran because of it: 1 trace_steps.after (an input failed)."
            in failed)
