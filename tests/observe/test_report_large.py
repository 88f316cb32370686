"""The report of a 10,000-step run in real headless Chromium: small, quick to open, and its task
table sorts (a click on a heading) and filters (typed words) while drawing only the rows on
screen. The run is written by the trace's own writer (tests/synthetic_runs.py)."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from conftest import require_tool
from devtools import Browser
from q2pconf._observe.report import write_report
from synthetic_runs import write_run

STEPS = 10_000
MAX_BYTES = 2_000_000  # a tenth of the 20 MB budget of a 100,000-step report
MAX_SECONDS = 5.0  # from navigation to the load event, scripts run (the 100,000-step budget)
TABLE = """(() => {
  const scroll = document.getElementById('task-scroll');
  return {shown: Number(scroll.dataset.shown), count: document.getElementById('task-count')
    .textContent, rows: Array.from(document.querySelectorAll('#task-body tr')).map(tr =>
    Array.from(tr.children).map(td => td.textContent)),
    headings: Array.from(document.querySelectorAll('#task-head th')).map(th => th.textContent)};
})()"""


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(write_run(tmp_path_factory.mktemp("large"), STEPS))


@pytest.fixture
def browser(tmp_path: Path):
    opened = Browser(require_tool("chromium"), tmp_path / "profile", timeout=60.0)
    yield opened
    opened.close()


def trace_rows(report: Path) -> list[dict[str, str]]:
    with open(str(report).replace(".report.html", ".trace.tsv"), newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def click(browser: Browser, session: str, selector: str) -> None:
    """A real mouse click (pressed and released) in the middle of the element."""
    box = browser.evaluate(session, f"(() => {{ const e = document.querySelector({selector!r});"
                                    " e.scrollIntoView(); const r = e.getBoundingClientRect();"
                                    " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    for kind in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                  "button": "left", "clickCount": 1}, session)


def test_a_10000_step_report_is_small_and_opens_quickly(browser: Browser, large: Path) -> None:
    assert large.stat().st_size < MAX_BYTES, large.stat().st_size
    began = time.monotonic()
    session = browser.open(large.as_uri())
    took = time.monotonic() - began
    assert took < MAX_SECONDS, took
    facts = browser.evaluate(session, TABLE)
    attempts = len(trace_rows(large))
    assert attempts > STEPS  # some failed once, then ran again
    assert facts["shown"] == attempts and facts["count"] == f"{attempts} of {attempts} attempts"
    assert 10 <= len(facts["rows"]) <= 40  # only the rows on screen are drawn
    assert facts["rows"][0][:3] == ["denoise", "0", "1"]  # the script's steps by their names
    running = browser.evaluate(session, "Array.from(document.querySelectorAll("
                               "'#running polyline')).map(l => [l.dataset.executor, "
                               "l.dataset.max, l.points.numberOfItems])")
    assert running[0] == ["htex", "8", 500]  # its 8 workers busy at once, in 500 points
    painted = browser.evaluate(session, "document.getElementById('timeline-bars').dataset.bars")
    assert painted == str(attempts)  # every attempt's bar, painted from numbers


def test_the_task_table_sorts_on_a_click(browser: Browser, large: Path) -> None:
    session = browser.open(large.as_uri())
    walls = sorted(float(row["wall_s"]) for row in trace_rows(large))
    column = browser.evaluate(session, TABLE)["headings"].index("wall s")
    heading = f"#task-head th:nth-child({column + 1})"
    click(browser, session, heading)
    rising = [float(row[column]) for row in browser.evaluate(session, TABLE)["rows"]]
    assert rising == walls[:len(rising)]
    click(browser, session, heading)  # again: the other way
    falling = [float(row[column]) for row in browser.evaluate(session, TABLE)["rows"]]
    assert falling == walls[::-1][:len(falling)]


def test_the_task_table_filters_on_typed_words(browser: Browser, large: Path) -> None:
    session = browser.open(large.as_uri())
    failed = [row for row in trace_rows(large) if row["status"] == "failed"]
    assert failed
    browser.evaluate(session, "document.getElementById('task-filter').focus()")
    browser.send("Input.insertText", {"text": "memoryerror classify"}, session)
    facts = browser.evaluate(session, TABLE)
    expected = [row for row in failed if row["step"] == "__main__.classify"]
    assert facts["shown"] == len(expected) > 0
    assert all(row[0] == "classify" and row[4] == "MemoryError" for row in facts["rows"])
    assert len(facts["rows"]) == min(len(expected), len(facts["rows"]))
