"""Per step, the spread of its attempts' wall time, CPU use, peak RSS and I/O: a box plot each
(quartiles, median, min to max), raw and as a % of what the config allows (its
`@step(walltime=...)` or batch job walltime, `cores_per_worker`, the worker's share of memory;
none for I/O).
The rules that read those limits are the advice's (q2pconf._observe.advice), not a copy."""
from __future__ import annotations

import html
from collections import defaultdict
from typing import Any, Callable

from q2pconf._observe.advice import _memory_budget, _provider, number, scheduler_seconds
from q2pconf._observe.runfiles import IO, RunFiles

BOX_WIDTH, BOX_HEIGHT = 160, 16
MIB = 2 ** 20


def _wall(row: dict[str, str]) -> float | None:
    return number(row["wall_s"])


def _cpu(row: dict[str, str]) -> float | None:
    wall, cpu = number(row["wall_s"]), number(row["cpu_s"])
    return None if not wall or cpu is None else 100.0 * cpu / wall


def _peak(row: dict[str, str]) -> float | None:
    return number(row["peak_rss_mib"]) if row["rss_of"] == "step" else None


def _wall_limit(row: dict[str, str], executors: dict[str, Any]) -> float | None:
    own = number(row["walltime_s"])
    walltime = _provider(executors, row["executor"]).get("walltime") or ""
    return own if own is not None else scheduler_seconds(walltime)


def _cpu_limit(row: dict[str, str], executors: dict[str, Any]) -> float | None:
    executor = executors.get(row["executor"], {})
    return 100.0 * float(executor.get("cores_per_worker") or 1)


def _peak_limit(row: dict[str, str], executors: dict[str, Any]) -> float | None:
    budget = _memory_budget(executors.get(row["executor"], {}))
    return None if budget is None else budget[0]


def _io(column: str) -> Callable[[dict[str, str]], float | None]:
    """An I/O counter of the trace in MiB, for worker steps (a thread step's is its whole
    process's, as its peak is)."""
    def measure(row: dict[str, str]) -> float | None:
        value = number(row.get(column))
        return None if value is None or row["rss_of"] != "step" else value / MIB
    return measure


def _no_limit(row: dict[str, str], executors: dict[str, Any]) -> float | None:
    return None  # a config sets no limit on I/O


Limit = Callable[[dict[str, str], dict[str, Any]], "float | None"]
Metric = tuple[str, str, Callable[[dict[str, str]], "float | None"], Limit]
METRICS: tuple[Metric, ...] = (
    ("wall", "wall time s", _wall, _wall_limit),
    ("cpu", "CPU % (100 = one core)", _cpu, _cpu_limit),
    ("peak", "peak RSS MiB (worker steps)", _peak, _peak_limit),
    *((column, f"{column} MiB (worker steps)", _io(column), _no_limit) for column in IO),
)


def quartiles(values: list[float]) -> tuple[float, float, float, float, float]:
    """min, lower quartile, median, upper quartile, max (linear between order statistics)."""
    ordered = sorted(values)

    def at(share: float) -> float:
        place = share * (len(ordered) - 1)
        low = int(place)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (place - low)

    return ordered[0], at(0.25), at(0.5), at(0.75), ordered[-1]


def _box(five: tuple[float, ...], top: float) -> str:
    x = [2 + (BOX_WIDTH - 4) * value / top for value in five]
    mid = BOX_HEIGHT / 2
    return (f'<svg width="{BOX_WIDTH}" height="{BOX_HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
            f'<line x1="{x[0]:.1f}" x2="{x[4]:.1f}" y1="{mid}" y2="{mid}" stroke="#666"/>'
            f'<rect x="{x[1]:.1f}" y="3" width="{max(x[3] - x[1], 1):.1f}" '
            f'height="{BOX_HEIGHT - 6}" fill="#cde" stroke="#468"/>'
            f'<line x1="{x[2]:.1f}" x2="{x[2]:.1f}" y1="2" y2="{BOX_HEIGHT - 2}" '
            'stroke="#024" stroke-width="2"/></svg>')


def spread_table(run: RunFiles, names: dict[str, str]) -> str:
    """The section: a row per step, a box plot and its numbers per metric."""
    executors = run.meta.get("config", {}).get("executors", {}) or {}
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    shares: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in run.rows:
        for key, _, measure, limit in METRICS:
            value = measure(row)
            if value is None:
                continue
            values[row["step"], key].append(value)
            allowed = limit(row, executors)
            if allowed:
                shares[row["step"], key].append(100.0 * value / allowed)
    if not values:
        return ""
    tops = {key: max(max(found) for (_, k), found in values.items() if k == key) or 1.0
            for key in {k for _, k in values}}
    shown = [metric for metric in METRICS if metric[0] in tops]  # none: an older trace's I/O
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _, _ in shown)
    lines = [_spread_row(step, names, values, shares, tops, shown)
             for step in sorted({step for step, _ in values})]
    return ('<h2>Spread per step</h2><table id="spread"><tr><th>step</th>' + head + "</tr>"
            + "".join(lines) + "</table><p><small>Each box: the middle half of the attempts, "
            "the median as a bar, the line from the least to the most; each metric on one "
            "scale for all steps. Under it: median and max, and the most of what the config "
            "allows (% of the walltime, of cores_per_worker's cores, of the worker's memory)."
            " The I/O counters (bytes read and written by the step's worker process and the "
            "tools it ran: rchar and wchar by read and write calls, read_bytes and write_bytes "
            "from and for a disk) are raw only: a config sets no limit on I/O.</small></p>")


def _spread_row(step: str, names: dict[str, str], values: dict[tuple[str, str], list[float]],
                shares: dict[tuple[str, str], list[float]], tops: dict[str, float],
                shown: list[Metric]) -> str:
    cells = []
    for key, _, _, _ in shown:
        found = values.get((step, key))
        if not found:
            cells.append("<td>-</td>")
            continue
        five = quartiles(found)
        most = max(shares.get((step, key)) or [], default=None)
        share = "" if most is None else f", max {most:.0f}% of limit"
        cells.append(f'<td class="spread" data-metric="{key}" data-median="{five[2]:.6g}" '
                     f'data-max="{five[4]:.6g}" data-limit-pct="'
                     f'{"" if most is None else f"{most:.6g}"}">{_box(five, tops[key])}<br>'
                     f"<small>median {five[2]:.3g}, max {five[4]:.3g}{share}</small></td>")
    return (f'<tr data-spread="{html.escape(step)}"><td>{html.escape(names.get(step, step))}</td>'
            + "".join(cells) + "</tr>")
