"""What `q2pconf tune` writes and prints: the settings a new size takes, the commented config
file (checked as `q2pconf check` checks it before it is kept), and the summary (JSON or words).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from q2pconf._base.errors import ConfigError

from q2pconf._observe.replay import rounded
from q2pconf._observe.tune import show_seconds as _s

if TYPE_CHECKING:
    from q2pconf._observe.tune import Tuning

MARK = "Tuned by q2pconf"  # the first line of a file tune wrote (after "# "): tune may replace it
BARE = re.compile(r"[A-Za-z0-9_-]+")


def render(doc: dict[str, Any], comments: dict[tuple[str, ...], tuple[str, Any]],
           header: list[str]) -> str:
    """`doc` as TOML, each changed key with its reason above it and its old value after it
    (`comments`: where -> (reason, old value))."""
    out = [f"# {line}" if line else "#" for line in header]
    _table(out, doc, (), (), comments)
    return "\n".join(out).rstrip() + "\n"


def _table(out: list[str], table: dict[str, Any], where: tuple[str, ...],
           name: tuple[str, ...], comments: dict[tuple[str, ...], tuple[str, Any]],
           array: bool = False) -> None:
    plain = {k: v for k, v in table.items() if not isinstance(v, dict) and not _tables(v)}
    if name:
        out += ["", f"[[{_dotted(name)}]]" if array else f"[{_dotted(name)}]"]
    for key, value in plain.items():
        reason, old = comments.get(where + (key,), (None, None))
        if reason is not None:
            out += [("# tune: " if i == 0 else "#   ") + line
                    for i, line in enumerate(_wrap(reason))]
        out.append(_line(key, value) + ("" if reason is None else f"  # was {_was(old)}"))
    for key, value in table.items():
        if isinstance(value, dict):
            _table(out, value, where + (key,), name + (key,), comments)
        elif _tables(value):
            for item in value:
                label = str(item.get("label", ""))
                _table(out, item, where + (key, label), name + (key,), comments, array=True)


def _tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _line(key: str, value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({key: value}).strip()


def _dotted(name: tuple[str, ...]) -> str:
    return ".".join(part if BARE.fullmatch(part) else json.dumps(part) for part in name)


def _was(old: Any) -> str:
    return "unset" if old is None else _line("x", old)[4:]


def _wrap(text: str, width: int = 88) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]


def write(tuning: Tuning, output: Path, text: str) -> Path:
    """Check `text` as `q2pconf check` would, then write it to `output`; a file there that
    tune did not write is never replaced."""
    from q2pconf._base.files import write_new
    from q2pconf.config._settings import check, from_dict

    from_dict(tuning.doc, str(output))  # a ConfigError here is q2pconf's mistake: say it
    if output.exists() and not output.read_text(errors="replace").startswith(f"# {MARK}"):
        raise ConfigError(str(output), "", "exists and was not written by `q2pconf tune`: it "
                          "is left as it is", "name another file with -o FILE")
    try:
        if output.exists():
            os.unlink(output)
        write_new(output, text)
    except OSError as error:
        raise ConfigError(str(output), "", f"cannot be written: {error.strerror}",
                          "name a file in a directory you can write with -o FILE") from None
    check(output)
    return output


def default_output(tuning: Tuning) -> Path:
    """Beside the run's files: `<stem>.tuned.toml`."""
    meta = tuning.base.meta_path
    return meta.with_name(meta.name.removesuffix(".run.json") + ".tuned.toml")


def header(tuning: Tuning, runs: list[Any], output: Path) -> list[str]:
    measured = "" if tuning.measured_s is None else f" (measured {tuning.measured_s:.1f} s)"
    lines = [f"{MARK} from {len(runs)} traced run(s) of {tuning.base.meta.get('pipeline')}:",
             *[f"  {run.meta_path}" for run in runs],
             f"Predicted: {_s(tuning.current_s)} with the config the newest run used"
             f"{measured}; {_s(tuning.tuned_s)} with this one.",
             "Each change is marked `# tune:` with its reason. Check it:  q2pconf check "
             f"{output}", f"Use it:  QIIME2_CONFIG={output} python your_pipeline.py"]
    return lines + [line for note in tuning.notes for line in _wrap(f"Note: {note}")] + [""]


def tune_and_write(targets: list[str], output: str | None) -> dict[str, Any]:
    """`q2pconf tune`: tune the runs, write the config when there is a reason to change it,
    and return what `--json` prints."""
    from q2pconf._observe.recorded import current
    from q2pconf._observe.tune import load_runs, tune

    runs = load_runs(list(targets))
    tuning = tune(runs)
    written = None
    if tuning.changes:
        path = Path(output) if output else default_output(tuning)
        comments = {change.where: (change.reason, change.old) for change in tuning.changes}
        written = write(tuning, path, render(tuning.doc, comments, header(tuning, runs, path)))
    return {"run": str(tuning.base.meta_path), "runs": [str(r.meta_path) for r in runs],
            "current": current(tuning.base, tuning.found),
            "tuned": {"predicted_s": rounded(tuning.tuned_s),
                      "config": None if written is None else str(written),
                      "changes": [{"key": c.key, "old": c.old, "new": c.new,
                                   "reason": c.reason} for c in tuning.changes],
                      "notes": tuning.notes},
            "what_if": tuning.what_if}


def words(summary: dict[str, Any], what_if: bool) -> str:
    """The summary as `q2pconf tune` prints it."""
    now, tuned = summary["current"], summary["tuned"]
    lines = [f"run: {summary['run']}",
             f"  {now['steps']} steps; measured {_maybe(now['measured_s'])} (the pipeline call "
             f"to its return)",
             f"  predicted: {_maybe(now['predicted_s'])} with its own config"]
    if tuned["config"] is None:
        lines.append("no change: the trace gives no reason to change the config")
    else:
        lines[-1] += f", {_maybe(tuned['predicted_s'])} with the tuned one"
        lines.append(f"wrote {tuned['config']} (q2pconf check passes); changes:")
        for change in tuned["changes"]:
            lines.append(f"  {change['key']}: {_was(change['old'])} -> {_was(change['new'])}")
            lines += [f"      {line}" for line in _wrap(change["reason"], 80)]
    lines += [f"note: {note}" for note in tuned["notes"]]
    if what_if:
        lines += _what_if_table(summary["what_if"])
    return "\n".join(lines)


def _maybe(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def _what_if_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["what if: no step ran, so there is nothing to replay"]
    lines = ["what if (the tuned config, one executor's size changed):",
             f"  {'executor':<12} {'size':<11} {'predicted':>9}"]
    for row in rows:
        unit = "blocks" if "blocks" in row else "workers"
        fits = "" if row["fits"] else "  (more than the machine runs side by side)"
        lines.append(f"  {row['executor']:<12} {row[unit]:>3} {unit:<7} "
                     f"{_maybe(row['predicted_s']):>9}{fits}")
    return lines
