"""Small charts of a run for the report: the steps running over time, per executor, and the
steps waiting (called, not started: waiting for their inputs or for a worker). Drawn as SVG
polylines of at most `COLUMNS` points each, whatever the number of steps. Beside them, as step
lines (SVG paths), each executor's workers and blocks up (RUNNING) from the run's events file
(q2pconf._observe.blocks); a thread pool's workers are its `max_threads` all along."""
from __future__ import annotations

import html
from collections import defaultdict
from typing import Any

from q2pconf._observe.runfiles import RunFiles, events, seconds

COLUMNS = 500  # points a line has at most: the highest count within each slice of time
WIDTH, HEIGHT, LEFT = 1000, 120, 300  # plot pixels, as the timeline's (its label column)
WAITING = "waiting"


def _intervals(run: RunFiles) -> dict[str, list[tuple[float, float]]]:
    """Per executor, when its steps ran; under WAITING, when steps waited to start."""
    found: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in run.rows:
        called, started = seconds(row["submitted"]), seconds(row["started"])
        ended = seconds(row["finished"])
        if started is not None and ended is not None:
            found[row["executor"]].append((started, max(ended, started)))
            if called is not None and called < started:
                found[WAITING].append((called, started))
    return found


def _peaks(spans: list[tuple[float, float]], first: float, width: float) -> list[int]:
    """The highest number of overlapping spans within each of COLUMNS slices of time."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans],
                    key=lambda event: (event[0], event[1]))
    peaks, count, index = [0] * COLUMNS, 0, 0
    for column in range(COLUMNS):
        edge = first + (column + 1) * width / COLUMNS
        top = count
        while index < len(events) and events[index][0] < edge:
            count += events[index][1]
            top = max(top, count)
            index += 1
        peaks[column] = top
    return peaks


Steps = list[tuple[float, int]]  # a step line: (time, value from then on), in time order
CAPACITY = (("workers", "workers", "2 2"), ("blocks", "blocks up (RUNNING)", "7 2 1 2"))


def _capacity(run: RunFiles, first: float, last: float) -> dict[tuple[str, str], Steps]:
    """(executor, "workers" or "blocks") -> its step line from `first` to `last`: the value at
    `first` is the last one told before (events of a session already up); 0 before any."""
    told: dict[tuple[str, str], Steps] = defaultdict(list)
    states: dict[str, dict[str, str]] = defaultdict(dict)
    for event in sorted(events(run), key=lambda e: e.get("t") or 0.0):
        executor, t = event.get("executor"), event.get("t")
        if not isinstance(executor, str) or not isinstance(t, (int, float)):
            continue
        if event.get("kind") == "workers" and isinstance(event.get("workers"), int):
            told[executor, "workers"].append((t, event["workers"]))
        elif event.get("kind") == "block":
            states[executor][str(event.get("block"))] = str(event.get("state"))
            up = sum(1 for state in states[executor].values() if state == "RUNNING")
            told[executor, "blocks"].append((t, up))
    for label, table in _thread_pools(run).items():
        told[label, "workers"] = [(first, table)]
    return {key: _clamped(found, first, last) for key, found in told.items()}


def _thread_pools(run: RunFiles) -> dict[str, int]:
    """The run's thread pools (of its config) and their threads."""
    executors: dict[str, Any] = (run.meta.get("config") or {}).get("executors") or {}
    return {label: table["max_threads"] for label, table in executors.items()
            if isinstance(table, dict) and "ThreadPool" in str(table.get("class"))
            and isinstance(table.get("max_threads"), int)}


def _clamped(found: Steps, first: float, last: float) -> Steps:
    """The step line within [first, last]: the value at `first`, then each change."""
    value = 0
    for t, told in found:
        if t > first:
            break
        value = told
    steps = [(first, value)]
    for t, told in found:
        if first < t <= last and told != steps[-1][1]:
            steps.append((t, told))
    return steps


def _step_path(steps: Steps, first: float, width: float, top: int) -> str:
    """SVG path data of a step line across the plot."""
    def x(t: float) -> str:
        return f"{LEFT + (t - first) * WIDTH / width:.1f}"

    def y(value: int) -> str:
        return f"{10 + HEIGHT * (1 - value / top):.1f}"

    parts = [f"M{x(steps[0][0])} {y(steps[0][1])}"]
    for t, value in steps[1:]:
        parts.append(f"H{x(t)}V{y(value)}")
    parts.append(f"H{LEFT + WIDTH}")
    return "".join(parts)


def _capacity_lines(capacity: dict[tuple[str, str], Steps], colour_of: dict[str, str],
                    first: float, width: float, top: int) -> tuple[list[str], list[str]]:
    """The step lines and their legend entries."""
    lines, legend = [], []
    for (label, kind), steps in sorted(capacity.items()):
        name, dash = next((name, dash) for k, name, dash in CAPACITY if k == kind)
        most = max(value for _, value in steps)
        points = " ".join(f"{t:.6f}:{value}" for t, value in steps)
        colour = colour_of[label]
        lines.append(f'<path class="{kind}" data-executor="{html.escape(label)}" '
                     f'data-max="{most}" data-steps="{points}" fill="none" stroke="{colour}" '
                     f'stroke-width="1" stroke-dasharray="{dash}" '
                     f'd="{_step_path(steps, first, width, top)}"/>')
        legend.append(f'<span><i style="background:{colour};height:3px"></i>'
                      f"{html.escape(f'{name} of {label}')} (at most {most})</span>")
    return lines, legend


def running_chart(run: RunFiles, colours: list[str]) -> str:
    """The chart's section: one line per executor, and a dashed one for the steps waiting;
    each executor's workers and blocks up as step lines."""
    spans = _intervals(run)
    if not spans:
        return ""
    first = min(start for found in spans.values() for start, _ in found)
    last = max(end for found in spans.values() for _, end in found)
    width = max(last - first, 1e-3)
    lines, legend = [], []
    peaks = {label: _peaks(found, first, width) for label, found in sorted(spans.items())}
    capacity = _capacity(run, first, last)
    labels = sorted(set(peaks) | {label for label, _ in capacity})
    colour_of = {label: colours[index % len(colours)] for index, label in enumerate(labels)}
    top = max([max(found) for found in peaks.values()]
              + [value for steps in capacity.values() for _, value in steps]) or 1
    for label, found in peaks.items():
        colour = "#888" if label == WAITING else colour_of[label]
        points = " ".join(f"{LEFT + (c + 0.5) * WIDTH / COLUMNS:.1f},"
                          f"{10 + HEIGHT * (1 - n / top):.1f}" for c, n in enumerate(found))
        dash = ' stroke-dasharray="4 3"' if label == WAITING else ""
        lines.append(f'<polyline class="running" data-executor="{html.escape(label)}" '
                     f'data-max="{max(found)}" fill="none" stroke="{colour}" '
                     f'stroke-width="1.5"{dash} points="{points}"/>')
        name = "steps waiting to start" if label == WAITING else f"running on {label}"
        legend.append(f'<span><i style="background:{colour}"></i>{html.escape(name)} '
                      f"(at most {max(found)})</span>")
    drawn, named = _capacity_lines(capacity, colour_of, first, width, top)
    lines += drawn
    legend += named
    axis = (f'<text x="{LEFT - 6}" y="14" text-anchor="end">{top}</text>'
            f'<text x="{LEFT - 6}" y="{10 + HEIGHT}" text-anchor="end">0</text>'
            f'<line x1="{LEFT}" x2="{LEFT + WIDTH}" y1="{10 + HEIGHT}" y2="{10 + HEIGHT}" '
            f'stroke="#ccc"/><text x="{LEFT + WIDTH}" y="{HEIGHT + 26}" text-anchor="end">'
            f"{width:.3g} s</text>")
    return (f'<h2>Steps running, workers and blocks over time</h2>'
            f'<p class="legend">{"".join(legend)}</p>'
            f'<svg id="running" data-first="{first:.6f}" data-last="{last:.6f}" '
            f'width="{LEFT + WIDTH + 20}" height="{HEIGHT + 32}" '
            f'xmlns="http://www.w3.org/2000/svg">{axis}{"".join(lines)}</svg>')
