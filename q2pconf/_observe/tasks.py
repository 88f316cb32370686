"""The report's task table: every step attempt, sortable and filterable, for 100,000 steps.

The attempts are embedded once as compact JSON (repeated words such as step names numbered
once) and the page's own script draws only the rows on screen: a 100,000-step run's table is a
few MB and opens at once, where one HTML row per attempt would be tens of MB of markup.
"""
from __future__ import annotations

import html
import json
from typing import Any

from q2pconf._observe.runfiles import RunFiles, seconds

# Columns of the table: (heading, kind); a "word" column holds an index into the word list.
COLUMNS = (("step", "word"), ("call", "num"), ("attempt", "num"), ("status", "word"),
           ("error", "word"), ("executor", "word"), ("where", "word"), ("called s", "num"),
           ("queue s", "num"), ("wall s", "num"), ("CPU %", "num"), ("peak RSS MiB", "num"))
WIDTHS = (16, 5, 5, 9, 9, 7, 19, 6, 6, 6, 5, 7)  # % of the table's width, per column
ROW = 20  # pixels a table row takes; the script draws the rows within the scrolled window

STYLE = """
#task-scroll{height:420px;overflow:auto;border:1px solid #ccc;position:relative}
#task-scroll table,#task-headings{table-layout:fixed;width:100%}
#task-scroll table{position:absolute;top:0;left:0}
#task-scroll td,#task-headings th{height:19px;white-space:nowrap;overflow:hidden;
text-overflow:ellipsis;padding:0 6px;font-variant-numeric:tabular-nums}
#task-head th{cursor:pointer;user-select:none;background:#f6f6f6}
#task-head th[data-sort=up]:after{content:' \\25b2'}
#task-head th[data-sort=down]:after{content:' \\25bc'}
"""

SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('task-data').textContent);
  var words = data.words, kinds = data.kinds, rows = data.rows, ROW = data.row;
  var shown = rows.slice(), key = -1, up = true;
  var scroll = document.getElementById('task-scroll');
  var spacer = document.getElementById('task-spacer');
  var body = document.getElementById('task-body');
  var filter = document.getElementById('task-filter');
  var count = document.getElementById('task-count');
  function text(row, i) {
    var value = row[i];
    if (value === null) return '-';
    return kinds[i] === 'word' ? words[value] : String(value);
  }
  function draw() {
    var first = Math.floor(scroll.scrollTop / ROW);
    var last = Math.min(shown.length, first + Math.ceil(scroll.clientHeight / ROW) + 2);
    var out = [];
    for (var r = first; r < last; r++) {
      var cells = [];
      for (var i = 0; i < kinds.length; i++) {
        cells.push('<td>' + escape(text(shown[r], i)) + '</td>');
      }
      out.push('<tr data-row="' + r + '">' + cells.join('') + '</tr>');
    }
    body.parentNode.style.top = (first * ROW) + 'px';
    body.innerHTML = out.join('');
    body.dataset.first = first;
  }
  function escape(s) {
    return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  }
  function refresh() {
    spacer.style.height = (shown.length * ROW + ROW) + 'px';
    scroll.style.height = Math.min(420, (shown.length + 1) * ROW + 2) + 'px';
    count.textContent = shown.length + ' of ' + rows.length + ' attempts';
    scroll.dataset.shown = shown.length;
    draw();
  }
  function order() {
    if (key < 0) return;
    var k = key, sign = up ? 1 : -1, word = kinds[k] === 'word';
    shown.sort(function (a, b) {
      var x = a[k], y = b[k];
      if (x === null || y === null) return (x === null) - (y === null);
      if (word) { x = words[x]; y = words[y]; }
      return (x < y ? -1 : x > y ? 1 : 0) * sign;
    });
  }
  document.querySelectorAll('#task-head th').forEach(function (th, i) {
    th.addEventListener('click', function () {
      up = key === i ? !up : true;
      key = i;
      document.querySelectorAll('#task-head th').forEach(function (other) {
        other.removeAttribute('data-sort');
      });
      th.dataset.sort = up ? 'up' : 'down';
      order();
      refresh();
    });
  });
  filter.addEventListener('input', function () {
    var terms = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var matches = words.map(function (w) { return String(w).toLowerCase(); });
    shown = terms.length === 0 ? rows.slice() : rows.filter(function (row) {
      return terms.every(function (term) {
        for (var i = 0; i < kinds.length; i++) {
          var v = row[i];
          if (v === null) continue;
          if ((kinds[i] === 'word' ? matches[v] : String(v)).indexOf(term) >= 0) return true;
        }
        return false;
      });
    });
    order();
    scroll.scrollTop = 0;
    refresh();
  });
  scroll.addEventListener('scroll', draw);
  refresh();
})();
"""


def _where(row: dict[str, str]) -> str:
    if row["host"] == "NA":
        return "not started"
    job = "" if row["job"] == "NA" else f" job {row['job']}"
    return f"{row['host']}{job} pid {row['pid']} {row['worker']}"


def _number(value: str, digits: int = 3) -> float | None:
    return None if value == "NA" else round(float(value), digits)


def task_data(run: RunFiles, names: dict[str, str]) -> dict[str, Any]:
    """The attempts as arrays: words (names, statuses, errors, places) numbered once."""
    words: dict[str, int] = {}

    def word(text: str) -> int:
        return words.setdefault(text, len(words))

    called = [seconds(r["submitted"]) for r in run.rows]
    first = min((t for t in called if t is not None), default=0.0)
    rows = []
    for row, call_time in zip(run.rows, called):
        started = seconds(row["started"])
        wall, cpu = _number(row["wall_s"]), _number(row["cpu_s"])
        rows.append([word(names.get(row["step"], row["step"])), int(row["call"]),
                     int(row["attempt"]), word(row["status"]),
                     word("" if row["error"] == "NA" else row["error"]),
                     word(row["executor"]), word(_where(row)),
                     None if call_time is None else round(call_time - first, 3),
                     None if call_time is None or started is None
                     else round(max(started - call_time, 0.0), 3),
                     wall, None if not wall or cpu is None else round(100 * cpu / wall),
                     _number(row["peak_rss_mib"], 1)])
    return {"words": list(words), "kinds": [kind for _, kind in COLUMNS], "row": ROW,
            "rows": rows}


def task_table(run: RunFiles, names: dict[str, str]) -> str:
    """The section: a filter box, the header, the scrolled window, the data and its script."""
    data = json.dumps(task_data(run, names), separators=(",", ":"), allow_nan=False)
    data = data.replace("</", "<\\/")  # never closes the script element it sits in
    colgroup = ("<colgroup>" + "".join(f'<col style="width:{w}%">' for w in WIDTHS)
                + "</colgroup>")
    head = "".join(f'<th data-kind="{kind}">{html.escape(name)}</th>' for name, kind in COLUMNS)
    return ("<h2>Tasks</h2><p><input id='task-filter' type='search' "
            "placeholder='filter: words all in a row, e.g. failed htex' size='40'> "
            "<span id='task-count'></span> <small>(click a heading to sort)</small></p>"
            f"<table id='task-headings'>{colgroup}<thead id='task-head'><tr>{head}</tr></thead>"
            "</table>"
            f"<div id='task-scroll'><div id='task-spacer'></div><table>{colgroup}"
            "<tbody id='task-body'></tbody></table></div>"
            f'<script type="application/json" id="task-data">{data}</script>'
            f"<script>{SCRIPT}</script>")


PAINT = """
(function () {
  var canvas = document.getElementById('timeline-bars');
  var data = JSON.parse(document.getElementById('timeline-data').textContent);
  var pen = canvas.getContext('2d'), bars = data.bars, colours = data.colours;
  for (var i = 0; i < bars.length; i++) {
    var bar = bars[i];
    if (bar[5] >= 0) {
      pen.fillStyle = '#999';
      pen.fillRect(bar[5], bar[1] + 11, bar[0] - bar[5], 3);
    }
    pen.globalAlpha = bar[4] === 2 ? 0.35 : 1;
    pen.fillStyle = colours[bar[3]];
    pen.fillRect(bar[0], bar[1], bar[2], 14);
    if (bar[4] === 1) {
      pen.strokeStyle = '#c00';
      pen.lineWidth = 2;
      pen.strokeRect(bar[0], bar[1], bar[2], 14);
    }
    pen.globalAlpha = 1;
  }
  canvas.dataset.bars = bars.length;
})();
"""


def painted_timeline(svg: str, bars: list[list[float]], colours: list[str], width: int,
                     height: int) -> str:
    """The timeline of a large run: the SVG's lanes and axis, its bars painted on a canvas
    over it from numbers (about 30 bytes a bar, where an SVG bar is 400)."""
    data = json.dumps({"bars": bars, "colours": colours}, separators=(",", ":"))
    return (f'<div style="position:relative">{svg}<canvas id="timeline-bars" width="{width}" '
            f'height="{height}" style="position:absolute;left:0;top:0;pointer-events:none">'
            f'</canvas></div><script type="application/json" id="timeline-data">'
            f"{data}</script><script>{PAINT}</script>")  # numbers and colours: no "</"
