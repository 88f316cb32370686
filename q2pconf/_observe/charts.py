"""Small charts of a run for the report: the steps running over time, per executor, and the
steps waiting (called, not started: waiting for their inputs or for a worker). Drawn as SVG
polylines of at most `COLUMNS` points each, whatever the number of steps."""
from __future__ import annotations

import html
from collections import defaultdict

from q2pconf._observe.runfiles import RunFiles, seconds

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


def running_chart(run: RunFiles, colours: list[str]) -> str:
    """The chart's section: one line per executor, and a dashed one for the steps waiting."""
    spans = _intervals(run)
    if not spans:
        return ""
    first = min(start for found in spans.values() for start, _ in found)
    last = max(end for found in spans.values() for _, end in found)
    width = max(last - first, 1e-3)
    lines, legend = [], []
    peaks = {label: _peaks(found, first, width) for label, found in sorted(spans.items())}
    top = max(max(found) for found in peaks.values()) or 1
    for index, (label, found) in enumerate(peaks.items()):
        colour = "#888" if label == WAITING else colours[index % len(colours)]
        points = " ".join(f"{LEFT + (c + 0.5) * WIDTH / COLUMNS:.1f},"
                          f"{10 + HEIGHT * (1 - n / top):.1f}" for c, n in enumerate(found))
        dash = ' stroke-dasharray="4 3"' if label == WAITING else ""
        lines.append(f'<polyline class="running" data-executor="{html.escape(label)}" '
                     f'data-max="{max(found)}" fill="none" stroke="{colour}" '
                     f'stroke-width="1.5"{dash} points="{points}"/>')
        name = "steps waiting to start" if label == WAITING else f"running on {label}"
        legend.append(f'<span><i style="background:{colour}"></i>{html.escape(name)} '
                      f"(at most {max(found)})</span>")
    axis = (f'<text x="{LEFT - 6}" y="14" text-anchor="end">{top}</text>'
            f'<text x="{LEFT - 6}" y="{10 + HEIGHT}" text-anchor="end">0</text>'
            f'<line x1="{LEFT}" x2="{LEFT + WIDTH}" y1="{10 + HEIGHT}" y2="{10 + HEIGHT}" '
            f'stroke="#ccc"/><text x="{LEFT + WIDTH}" y="{HEIGHT + 26}" text-anchor="end">'
            f"{width:.3g} s</text>")
    return (f'<h2>Steps running over time</h2><p class="legend">{"".join(legend)}</p>'
            f'<svg id="running" width="{LEFT + WIDTH + 20}" height="{HEIGHT + 32}" '
            f'xmlns="http://www.w3.org/2000/svg">{axis}{"".join(lines)}</svg>')
