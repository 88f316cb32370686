"""`q2pconf report`: one self-contained HTML page about a traced run.

A timeline (one lane per worker, grouped by host and batch job, one bar per step attempt, coloured
by step and marked when it failed), a table per step, the advice of `q2pconf._observe.advice`, and
the config the run used with where it came from. Inline CSS, SVG and a few lines of JavaScript; the
page loads nothing (its Content-Security-Policy forbids it).
"""
from __future__ import annotations

import colorsys
import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from q2pconf._observe import advice
from q2pconf._observe.charts import running_chart
from q2pconf._observe.failures import Failures, failures
from q2pconf._observe.runfiles import RunFiles, error_messages, read, seconds
from q2pconf._observe.spread import spread_table
from q2pconf._observe.tasks import STYLE as TASK_STYLE
from q2pconf._observe.tasks import painted_timeline, task_table
from q2pconf._observe.history import CACHED, CANCELLED, DEPENDENCY, DONE, FAILED

STATUSES = (DONE, CACHED, FAILED, DEPENDENCY, CANCELLED)  # a trace line's status, in order

WIDTH, LANE, LABEL = 1000, 18, 300  # timeline pixels: plot width, lane height, label column
EXECUTOR_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"]
SVG_BARS = 2000  # more attempts than this: the page paints the bars from numbers (a canvas)
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}
.incomplete{background:#fde2e2;border:1px solid #c00;padding:.5em;font-weight:bold}
#failures{background:#fde2e2;border:1px solid #c00;padding:0 .8em}#failures h2{margin-top:.5em}
.hit{color:#a00}.close{color:#a60}.idle{color:#246}
svg text{font:11px monospace}.group{font-weight:bold}
rect.failed{stroke:#c00;stroke-width:2}rect.unrun{opacity:.35}rect.bar:hover{opacity:.7}
pre{background:#f6f6f6;padding:.6em;overflow:auto;max-height:30em}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:12px;
height:12px;margin-right:4px;vertical-align:middle}
"""
SCRIPT = """
document.querySelectorAll('.legend span').forEach(function (item) {
  item.addEventListener('click', function () {
    var step = item.dataset.step;
    document.querySelectorAll('rect.bar').forEach(function (bar) {
      bar.style.opacity = (bar.dataset.step === step || bar.style.opacity === '0.15')
        ? '' : '0.15';
    });
  });
});
document.body.dataset.bars = document.querySelectorAll('rect.bar').length;
"""


def write_report(run: str | Path | None = None, output: Path | None = None) -> Path:
    """Write the report of a run (a `run.json` path; see `q2pconf._observe.runfiles.find`) and
    return its path: beside the run, or `output`."""
    from q2pconf._observe.runfiles import find

    files = read(find(None if run is None else str(run)))
    target = output or files.report_path
    try:
        target.write_text(render(files))
    except OSError as error:
        from q2pconf._base.errors import ConfigError

        raise ConfigError(target, "", f"cannot be written: {error.strerror or error}",
                          "write the report elsewhere: q2pconf report RUN -o FILE") from None
    return target


def render(run: RunFiles) -> str:
    meta = run.meta
    title = f"q2pconf run: {meta.get('pipeline', '?')} on {meta.get('host', '?')}"
    names = step_names(run)
    found = advice.findings(run)  # the Limits and the Tune section share them
    parts = [f"<h1>{_e(title)}</h1>", _failed(run, names), _summary(run, names),
             _advice(found), _tuning(run, found),
             _timeline(run, names), running_chart(run, EXECUTOR_COLOURS),
             _steps_table(run, names), spread_table(run, names), task_table(run, names),
             _config(meta.get("config") or {})]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{_e(title)}</title><style>{STYLE}{TASK_STYLE}</style></head>\n<body>\n"
            + "\n".join(parts) + f"\n<script>{SCRIPT}</script>\n</body></html>\n")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _colours(steps: set[str]) -> dict[str, str]:
    """Well-separated colours, one per step name (golden-ratio hues in name order)."""
    found = {}
    for index, step in enumerate(sorted(steps)):
        hue = (0.07 + index * 0.618034) % 1.0
        red, green, blue = colorsys.hls_to_rgb(hue, 0.5 + 0.1 * (index % 2), 0.65)
        found[step] = f"#{int(red * 255):02x}{int(green * 255):02x}{int(blue * 255):02x}"
    return found


def statuses(rows: list[dict[str, str]]) -> dict[str, int]:
    """Attempts per status, in STATUSES' order (any other status after them): the one count
    the header and the steps table both show."""
    counts = {status: 0 for status in STATUSES}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


MAIN = "__main__."  # the plugin part of a script's steps in the trace's `plugin.step` key


def step_names(run: RunFiles) -> dict[str, str]:
    """Each step's trace key -> the name the report shows: a script's steps by their own
    names (`alpha`, not `__main__.alpha`), unless another step has that name."""
    keys = {row["step"] for row in run.rows}
    names = {key: key[len(MAIN):] if key.startswith(MAIN) else key for key in keys}
    taken = [name for name in names.values()]
    return {key: key if taken.count(name) > 1 else name for key, name in names.items()}


def script_of(run: RunFiles) -> str | None:
    """The script a run's `__main__` steps come from (run.json's argv), if it names one."""
    argv = run.meta.get("argv") or []
    return Path(str(argv[0])).name if argv and str(argv[0]) not in ("", "-c", "-m") else None


def _summary(run: RunFiles, names: dict[str, str]) -> str:
    meta = run.meta
    counts = statuses(run.rows)
    status = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n)
    lines = [f"<p id='summary'>Started {_e(meta.get('started'))} by {_e(meta.get('user'))} "
             f"(pid {_e(meta.get('pid'))}): <code>{_e(' '.join(meta.get('argv') or []))}</code>"
             f"<br>Step attempts: {_e(status or 'none')}. Trace: <code>{_e(run.trace_path)}"
             "</code></p>"]
    mains = sorted(name for key, name in names.items() if key != name)
    if mains:
        script = script_of(run)
        lines.append(f'<p id="script-steps">Steps {_e(", ".join(mains))} are the script '
                     f"{_e(script or '__main__')}'s (its trace keys them "
                     f"<code>{_e(MAIN)}NAME</code>).</p>")
    if run.damaged:
        lines.append(f'<p class="incomplete" id="damaged">{run.damaged} damaged line(s) of the '
                     "trace were skipped (not whole lines of q2pconf's trace).</p>")
    if run.complete:
        lines.append(f"<p>Finished {_e(meta['finished'])}: {_e(meta.get('outcome'))}.</p>")
    else:
        lines.append('<p class="incomplete" id="incomplete">Incomplete run: it never recorded '
                     "its end (the process was killed, or it is still running). Only the "
                     "steps that finished before are shown.</p>")
    return "\n".join(lines)


def _failed(run: RunFiles, names: dict[str, str]) -> str:
    """First of all, for a run with failed steps: each failed call (error, where it ran, its
    attempts) and the calls that never ran because of it."""
    found = failures(run.rows, error_messages(run))
    if not found.failed:
        return ""
    items = "".join(_failure(failure.attempts, failure.message, names)
                    for failure in found.failed)
    return (f'<section id="failures"><h2>What failed</h2>'
            f"<ul>{items}</ul>{_unrun(found, names)}</section>")


def _failure(attempts: list[dict[str, str]], message: str | None,
             names: dict[str, str]) -> str:
    last = attempts[-1]
    error = last["error"] if last["error"] != "NA" else "an error"
    said = f": {_e(message)}" if message else " (the trace keeps no message)"
    tries = "; ".join(f"attempt {r['attempt']}: {r['status']}"
                      + ("" if r["error"] == "NA" else f" ({r['error']})") for r in attempts)
    return (f'<li class="failure" data-step="{_e(last["step"])}" data-call="{_e(last["call"])}" '
            f'data-attempts="{len(attempts)}" data-error="{_e(last["error"])}">'
            f"<b>{_e(names.get(last['step'], last['step']))}</b> call {_e(last['call'])}: "
            f"<b>{_e(error)}</b>{said}<br>on {_e(_where(last))}; {len(attempts)} attempt(s): "
            f"{_e(tries)}</li>")


def _where(row: dict[str, str]) -> str:
    if row["host"] == "NA":
        return f"executor {row['executor']} (it never started)"
    job = "" if row["job"] == "NA" else f", batch job {row['job']}"
    return (f"executor {row['executor']}, host {row['host']}{job}, pid {row['pid']} "
            f"{row['worker']}, wall {row['wall_s']} s")


def _unrun(found: Failures, names: dict[str, str]) -> str:
    """The calls that never ran because of the failures, per step."""
    if not found.unrun:
        return "<p id='unrun'>No other step was cancelled because of it.</p>"
    because = "it" if len(found.failed) == 1 else "them"
    parts = [f"{n} {_e(names.get(step, step))} ({what})"
             for counts, what in ((found.cancelled, "cancelled"),
                                  (found.dependency, "an input failed"))
             for step, n in counts.items()]
    return (f"<p id='unrun' data-count='{found.unrun}'>{found.unrun} step(s) never ran "
            f"because of {because}: {', '.join(parts)}.</p>")


def _advice(found: list[advice.Finding]) -> str:
    if not found:
        return ('<h2>Limits</h2><p id="advice">No step came close to a limit the config sets, '
                "and no step waited for a worker.</p>")
    items = [f'<li class="limit {f.level}" data-level="{f.level}" data-step="{_e(f.step)}" '
             f'data-executor="{_e(f.executor)}" data-setting="{_e(f.setting)}">'
             f"<b>{_e(f.level)}</b>: {_e(f.message)}. <b>Change</b>: <code>{_e(f.setting)}</code>"
             "</li>" for f in found]
    return '<h2>Limits</h2><ul id="advice">' + "".join(items) + "</ul>"


def _tuning(run: RunFiles, findings: list[advice.Finding]) -> str:
    """Beside the Limits: what `q2pconf tune` would change, and the predicted times."""
    from q2pconf._base.errors import ConfigError
    from q2pconf._observe.tune import show_seconds, tune

    try:
        found = tune([run], what_if=False, findings=lambda _: findings)
    except ConfigError as error:  # a trace too old to replay
        return f'<h2>Tune</h2><p id="tune">No prediction: {_e(error.problem)}.</p>'
    measured = "" if found.measured_s is None else f" (measured {found.measured_s:.1f} s)"
    head = (f'<h2>Tune</h2><p id="tune" data-current="{_seconds(found.current_s)}" '
            f'data-tuned="{_seconds(found.tuned_s)}">Predicted for this run\'s config: '
            f"{show_seconds(found.current_s)}{measured}. ")
    if not found.changes:
        return head + "The trace gives no reason to change the config.</p>"
    items = [f'<li data-key="{_e(c.key)}" data-new="{_e(str(c.new))}"><code>{_e(c.key)}'
             f"</code>: {_e(str(c.old))} &rarr; <b>{_e(str(c.new))}</b>: {_e(c.reason)}</li>"
             for c in found.changes]
    return (head + f"With these changes: {show_seconds(found.tuned_s)}. <code>q2pconf tune "
            f"{_e(str(run.meta_path))}</code> writes them to a config file.</p>"
            f'<ul id="tune-changes">{"".join(items)}</ul>')


def _seconds(value: float) -> str:
    return "" if value == float("inf") else f"{value:.3f}"


def lane_of(row: dict[str, str]) -> str:
    """The lane a trace row is drawn in: one per worker thread or process."""
    if row["started"] == "NA":
        return f"?/{row['executor']}/?/unknown worker"
    return f"{row['host']}/{row['job']}/{row['pid']}/{row['worker']}"


def _timeline(run: RunFiles, names: dict[str, str]) -> str:
    drawn = [r for r in map(_ended, run.rows, [run.meta.get("finished")] * len(run.rows))
             if seconds(r["finished"]) is not None
             and (r["started"] != "NA" or r["launched"] != "NA")]
    if not drawn:
        return "<h2>Timeline</h2><p>No step ran.</p>"
    starts = [seconds(r["submitted"]) or seconds(r["started"]) or seconds(r["launched"])
              for r in drawn]
    first = min(t for t in starts if t is not None)
    last = max(seconds(r["finished"]) or first for r in drawn)
    scale = WIDTH / max(last - first, 1e-3)
    lanes: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in drawn:
        lanes[lane_of(row)].append(row)
    colours = _colours({r["step"] for r in drawn})
    body, y, group = [], 20, None
    painted: list[list[float]] | None = None if len(drawn) <= SVG_BARS else []
    for lane in sorted(lanes, key=_lane_order):
        host, job, pid, worker = lane.split("/", 3)
        if (host, job) != group:
            group = (host, job)
            name = (f"never started, on executor {job}" if host == "?" else f"host {host}"
                    + ("" if job == "NA" else f", batch job {job}"))
            body.append(f'<text class="group" x="2" y="{y + 12}">{_e(name)}</text>')
            y += LANE
        if painted is None:
            body.append(_lane(lane, f"pid {pid} {worker}"[:40], lanes[lane], y, first, scale,
                              colours, names))
        else:
            body.append(f'<g class="lane" data-lane="{_e(lane)}"><text x="12" y="{y + 13}">'
                        f'{_e(f"pid {pid} {worker}"[:40])}</text></g>')
            painted.extend(_painted(lanes[lane], y, first, scale, list(colours)))
        y += LANE
    axis = _axis(last - first, scale, y)
    legend = "".join(f'<span data-step="{_e(s)}"><i style="background:{c}"></i>'
                     f"{_e(names.get(s, s))}</span>" for s, c in colours.items())
    legend += ('<span><i style="background:#999;height:3px"></i>queued: called, waiting for '
               "its inputs or a worker</span>")
    svg = (f'<svg id="timeline" width="{LABEL + WIDTH + 20}" height="{y + 30}" '
           f'xmlns="http://www.w3.org/2000/svg">{"".join(body)}{axis}</svg>')
    if painted is not None:
        svg = painted_timeline(svg, painted, list(colours.values()), LABEL + WIDTH + 20, y + 30)
    return f'<h2>Timeline</h2><p class="legend">{legend}</p>{svg}'


def _painted(rows: list[dict[str, str]], y: int, first: float, scale: float,
             steps: list[str]) -> list[list[float]]:
    """A lane's bars as numbers the page paints: [x, y, width, colour, kind (0 ran, 1 failed,
    2 never ran), queued from x (or -1)]."""
    found = []
    for row in rows:
        start = seconds(row["started"]) or seconds(row["launched"]) or first
        end = seconds(row["finished"]) or start
        called = seconds(row["submitted"])
        queued = -1.0 if called is None or called >= start or row["started"] == "NA" \
            else round(LABEL + (called - first) * scale, 1)
        unrun = row["status"] in (CANCELLED, DEPENDENCY)
        kind = 1 if row["status"] == FAILED else 2 if unrun else 0
        found.append([round(LABEL + (start - first) * scale, 1), y + 2,
                      round(max((end - start) * scale, 1.5), 1), steps.index(row["step"]),
                      kind, queued])
    return found


def _ended(row: dict[str, str], run_end: str | None) -> dict[str, str]:
    """A step the run's end cancelled, and which has no end time of its own, ended with it."""
    if row["finished"] != "NA" or not run_end or row["status"] not in (CANCELLED, DEPENDENCY):
        return row
    return {**row, "finished": run_end}


def _lane_order(lane: str) -> tuple[Any, ...]:
    host, job, pid, worker = lane.split("/", 3)
    return (host == "?", host, job, int(pid) if pid.isdigit() else 0, worker)


def _lane(lane: str, label: str, rows: list[dict[str, str]], y: int, first: float,
          scale: float, colours: dict[str, str], names: dict[str, str]) -> str:
    bars = []
    for row in rows:
        start = seconds(row["started"]) or seconds(row["launched"]) or first
        end = seconds(row["finished"]) or start
        x, width = LABEL + (start - first) * scale, max((end - start) * scale, 1.5)
        called = seconds(row["submitted"])
        if called is not None and called < start and row["started"] != "NA":
            bars.append(f'<rect class="queued" x="{LABEL + (called - first) * scale:.1f}" '
                        f'y="{y + LANE - 5}" width="{(start - called) * scale:.1f}" height="3" '
                        f'fill="#999"><title>queued {start - called:.3f} s</title></rect>')
        failed = row["status"] == FAILED
        unrun = row["status"] in (CANCELLED, DEPENDENCY)
        queue = "NA" if called is None or row["started"] == "NA" else f"{start - called:.3f}"
        tip = (f"{names.get(row['step'], row['step'])} call {row['call']} attempt "
               f"{row['attempt']}: {row['status']}"
               f"{'' if row['error'] == 'NA' else ' (' + row['error'] + ')'}, queued {queue} s, "
               f"wall {row['wall_s']} s, cpu {row['cpu_s']} s, peak {row['peak_rss_mib']} MiB")
        kind = " failed" if failed else " unrun" if unrun else ""
        bars.append(f'<rect class="bar{kind}" x="{x:.1f}" y="{y + 2}" '
                    f'width="{width:.1f}" height="{LANE - 4}" fill="{colours[row["step"]]}" '
                    f'data-step="{_e(row["step"])}" data-call="{_e(row["call"])}" '
                    f'data-attempt="{_e(row["attempt"])}" data-status="{_e(row["status"])}">'
                    f"<title>{_e(tip)}</title></rect>")
        if failed:
            bars.append(f'<text x="{x + width + 2:.1f}" y="{y + 13}" fill="#c00">✕</text>')
    return (f'<g class="lane" data-lane="{_e(lane)}"><text x="12" y="{y + 13}">{_e(label)}'
            f"</text>{''.join(bars)}</g>")


def _axis(span: float, scale: float, y: int) -> str:
    step = next((s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
                             7200, 21600, 86400) if span / s <= 10), 86400.0)
    ticks, t = [], 0.0
    while t <= span + 1e-9:
        x = LABEL + t * scale
        ticks.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="10" y2="{y}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="{y + 14}" text-anchor="middle">{t:g} s</text>')
        t += step
    return "".join(ticks)


def _queue(row: dict[str, str]) -> float | None:
    """Seconds from the call to the step's start (waiting for its inputs, then a worker)."""
    called, started = seconds(row["submitted"]), seconds(row["started"])
    return None if called is None or started is None else max(started - called, 0.0)


def _steps_table(run: RunFiles, names: dict[str, str]) -> str:
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in run.rows:
        groups[row["step"]].append(row)
    shown = list(statuses(run.rows))
    head = ("<tr><th>step</th><th>attempts</th>"
            + "".join(f"<th>{_e(s.replace('_', ' '))}</th>" for s in shown)
            + "<th>mean queue s</th><th>max queue s</th>"
            "<th>total wall s</th><th>mean wall s</th><th>max wall s</th>"
            "<th>max peak RSS MiB</th><th>CPU use %</th><th>executors</th></tr>")
    lines = []
    for step, rows in sorted(groups.items()):
        walls = [float(r["wall_s"]) for r in rows if r["wall_s"] != "NA"]
        cpus = [float(r["cpu_s"]) for r in rows if r["cpu_s"] != "NA"]
        peaks = [float(r["peak_rss_mib"]) for r in rows if r["peak_rss_mib"] != "NA"]
        counts = statuses(rows)
        queues = [q for q in map(_queue, rows) if q is not None]
        cells = [names.get(step, step), len(rows), *(counts.get(s, 0) for s in shown),
                 _f(sum(queues) / len(queues) if queues else None),
                 _f(max(queues, default=None)), _f(sum(walls)),
                 _f(sum(walls) / len(walls) if walls else None), _f(max(walls, default=None)),
                 _f(max(peaks, default=None)),
                 _f(100 * sum(cpus) / sum(walls) if walls and sum(walls) else None, 0),
                 ", ".join(sorted({r["executor"] for r in rows}))]
        lines.append(f'<tr data-step="{_e(step)}">'
                     + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return ('<h2>Steps</h2><table id="steps">' + head + "".join(lines) + "</table>"
            "<p><small>Peak RSS is a worker process's own peak for steps on process "
            "executors, and the whole program's peak for thread steps. CPU use is CPU time "
            "over wall time (100% = one core busy). Queue time is from the call to the "
            "start: waiting for the step's inputs, then for a worker.</small></p>")


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _config(config: dict[str, Any]) -> str:
    trail = "".join(f"<li>{_e(s['source'])}: {_e(s.get('path') or '-')}: {_e(s['note'])}</li>"
                    for s in config.get("trail") or [])
    mapping = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>"
                      for k, v in (config.get("mapping") or {}).items())
    text = config.get("text")
    used = config.get("path") or "the built-in default (in memory)"
    return (f'<h2>Config</h2><p id="config-source">Used: <code>{_e(used)}</code> '
            f'(source: {_e(config.get("source"))})</p>'
            f"<p>Lookup trail (places looked at first):</p><ul>{trail or '<li>none</li>'}</ul>"
            f"<p>Mapping:</p><table id='mapping'><tr><th>step</th><th>executor</th></tr>"
            f"{mapping or '<tr><td>none</td><td>default</td></tr>'}</table>"
            f"<p>Executors:</p><pre>{_e(json.dumps(config.get('executors'), indent=1))}</pre>"
            + ("" if text is None else f"<p>File:</p><pre id='config-text'>{_e(text)}</pre>"))
