"""Traced runs on disk: what `run.json` records of the config, the index of runs, reading back.

A run is its `<stem>.run.json` (see `q2pconf._observe.trace`); its trace and report sit beside it.
`runinfo_root()/runs.log` lists the runs of this user, newest last.
"""
from __future__ import annotations

import csv
import datetime
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from q2pconf._base.errors import ConfigError
from q2pconf._base.paths import runinfo_root

# The columns of a run's trace (q2pconf._observe.trace writes it, this module reads it back): here,
# so that this module needs nothing of the trace's writer.
IO = ("rchar", "wchar", "read_bytes", "write_bytes")  # bytes, as Nextflow's trace names them
COLUMNS = ("step", "call", "task", "attempt", "executor", "status", "error", "submitted",
           "launched", "started", "finished", "wall_s", "cpu_s", "peak_rss_mib", "rss_of",
           "host", "pid", "worker", "job", "walltime_s", "inputs", *IO)
# The columns of traces written by older versions (before the I/O counters, before `inputs`):
# read as traces whose missing columns are NA.
OLDER = {COLUMNS[:-len(IO)]: IO, COLUMNS[:-len(IO) - 1]: ("inputs", *IO)}
INDEX = "runs.log"
# Parsl's providers that submit batch jobs (their nodes are not this machine), and where a
# batch job tells its own node's size: (config key, variable, to the key's unit).
BATCH_PROVIDERS = ("SlurmProvider", "PBSProProvider", "TorqueProvider", "LSFProvider",
                   "GridEngineProvider", "CondorProvider")
JOB_SIZE = (("cores_per_node", "SLURM_CPUS_ON_NODE", 1.0),
            ("mem_per_node", "SLURM_MEM_PER_NODE", 1 / 1024))  # MiB -> GB
# Settings the report compares usage with, as the config names them.
LIMIT_KEYS = ("max_threads", "max_workers_per_node", "max_workers_per_block", "cores_per_worker",
              "mem_per_worker", "walltime", "mem_per_node", "cores_per_node", "nodes_per_block",
              "init_blocks", "min_blocks", "max_blocks", "max_idletime")


@dataclass
class RunFiles:
    """A run read back: its `run.json`, its trace rows, and whether it ended."""

    meta_path: Path
    meta: dict[str, Any]
    rows: list[dict[str, str]]
    damaged: int = 0  # trace lines skipped: not a whole line of q2pconf's trace

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("finished"))

    @property
    def trace_path(self) -> Path:
        return Path(self.meta.get("trace") or str(self.meta_path).replace(".run.json",
                                                                          ".trace.tsv"))

    @property
    def report_path(self) -> Path:
        return Path(str(self.meta_path).replace(".run.json", ".report.html"))


def index_path() -> Path:
    return Path(runinfo_root(), INDEX)


def config_meta(session: Any) -> dict[str, Any]:
    """The config a session runs with: file, lookup trail, mapping, executors and their text."""
    settings = session.settings
    if settings is None:  # a ready parsl.Config
        return {"path": None, "source": "parsl.Config", "trail": [], "text": None,
                "mapping": dict(session.mapping),
                "executors": {label: _live_executor(executor)
                              for label, executor in session.dfk.executors.items()
                              if not label.startswith("_")}}
    return {"path": None if settings.path is None else str(settings.path),
            "source": settings.source,
            "trail": [{"source": s.source, "path": None if s.path is None else str(s.path),
                       "note": s.note} for s in settings.trail],
            "text": _config_text(settings), "mapping": dict(session.mapping),
            "executors": {label: _spec(spec) for label, spec in settings.plan.executors.items()}}


def batch_nodes(executors: dict[str, Any],
                environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Per executor on a batch provider, the size of its nodes (what a tuned config must fit):
    `cores_per_node` and `mem_per_node` (GB) from the config where it sets them, else what
    the batch job this program runs in has (`SLURM_CPUS_ON_NODE`, `SLURM_MEM_PER_NODE`), else
    None; `from` says where each came from."""
    found = {}
    for label, table in executors.items():
        provider = table.get("provider") if isinstance(table, dict) else None
        kind = str(provider.get("class", "")).rpartition(".")[2] \
            if isinstance(provider, dict) else ""
        if kind not in BATCH_PROVIDERS:
            continue
        node: dict[str, Any] = {"provider": kind, "from": {}}
        for key, variable, scale in JOB_SIZE:
            value, source = _positive(provider.get(key)), "config"
            if value is None:
                told = _positive(environ.get(variable))
                value, source = (None, None) if told is None else \
                    (_positive(told * scale), variable)
            node[key], node["from"][key] = value, source
        found[label] = node
    return found


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not 0 < number < float("inf"):
        return None
    return int(number) if number.is_integer() else number


def _spec(spec: Any) -> Any:
    """A checked config table (validate.ObjectSpec) as plain JSON data."""
    if isinstance(spec, list):
        return [_spec(item) for item in spec]
    if not hasattr(spec, "cls") or not hasattr(spec, "kwargs"):
        return spec if isinstance(spec, (str, int, float, bool, type(None))) else str(spec)
    return {"class": spec.cls, **{key: _spec(value) for key, value in spec.kwargs.items()}}


def _live_executor(executor: Any) -> dict[str, Any]:
    """The limits a built Parsl executor holds (when it was handed over ready-made)."""
    found: dict[str, Any] = {"class": type(executor).__name__}
    for key in LIMIT_KEYS:
        value = getattr(executor, key, None)
        if isinstance(value, (int, float, str)) and value != float("inf"):
            found[key] = value
    provider = getattr(executor, "provider", None)
    if provider is not None:
        found["provider"] = {"class": type(provider).__name__,
                             **{key: getattr(provider, key) for key in LIMIT_KEYS
                                if isinstance(getattr(provider, key, None), (int, float, str))}}
    return found


def _config_text(settings: Any) -> str | None:
    if settings.path is not None:
        from q2pconf.config._settings import checked_text  # what the session was checked from

        return checked_text(settings)
    from q2pconf.config._templates import vendored_toml

    return vendored_toml()


def recent(limit: int = 10) -> list[Path]:
    """`run.json` paths of this user's latest runs that still exist, newest first."""
    try:
        text = index_path().read_text(errors="replace")
    except OSError:
        return []
    lines = [line for line in text.splitlines() if "\0" not in line]  # damaged: passed over
    found: list[Path] = []
    for line in reversed(lines):
        path = Path(line.rpartition("\t")[2])
        if path.is_file() and path not in found:
            found.append(path)
            if len(found) == limit:
                break
    return found


def find(run: str | None) -> Path:
    """The `run.json` a command line names: none (the last run), a run.json, a trace, or a
    directory holding runs (its newest)."""
    if run is None:
        latest = recent(1)
        if not latest:
            raise ConfigError(index_path(), "", "no traced run is recorded",
                              "run a pipeline first, or name a run: q2pconf report PATH")
        return latest[0]
    path = Path(run)
    if path.is_dir():
        runs = sorted(path.rglob("*.run.json"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise ConfigError(path, "", "holds no traced run (*.run.json)",
                              "name a run.json or trace.tsv file, or its directory")
        return runs[-1]
    if path.name.endswith(".trace.tsv"):
        path = path.with_name(path.name[:-len(".trace.tsv")] + ".run.json")
    if not path.is_file():
        raise ConfigError(path, "", "no such run", "see `q2pconf info --runs` for the recent runs")
    return path


def read(meta_path: Path) -> RunFiles:
    """A run and its trace rows; a trace cut short (the process was killed) reads up to its
    last whole line, and a damaged line is skipped (counted in `damaged`). A `run.json` that
    is empty, cut short or not a run record is a ConfigError naming it."""
    run = RunFiles(meta_path, _meta(meta_path), [])
    try:
        text = run.trace_path.read_text(errors="replace")
    except OSError:
        return run
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]  # a line half written when the process died
    # a NUL (garbage on disk) stops Python 3.10's csv: make it a damaged line like any other
    reader = csv.DictReader(text.replace("\0", "\ufffd").splitlines(), delimiter="\t")
    header = None if reader.fieldnames is None else tuple(reader.fieldnames)
    if header is not None and header != COLUMNS and header not in OLDER:
        raise _damaged(run.trace_path, "its first line is not the header of q2pconf's trace")
    missing = OLDER.get(header, ()) if header is not None else ()
    for row in reader:
        if missing and None not in row:
            row.update(dict.fromkeys(missing, "NA"))
        if _whole(row):
            run.rows.append(row)
        else:
            run.damaged += 1
    return run


def events(run: RunFiles) -> list[dict[str, Any]]:
    """The records of the run's events file (q2pconf._observe.trace), as written; a damaged
    line is left out, a missing file gives none."""
    found = []
    try:
        with open(str(run.meta.get("events"))) as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    found.append(event)
    except (OSError, UnicodeDecodeError):
        return []
    return found


def error_messages(run: RunFiles) -> dict[tuple[str, str], tuple[str, str]]:
    """(call, attempt) as the trace writes them -> (error type, message) of each failed
    attempt whose message the events file holds."""
    return {(str(e.get("call")), str(e.get("attempt"))): (str(e.get("error")),
                                                          str(e.get("message")))
            for e in events(run) if e.get("kind") == "error"}


def readable(paths: list[Path]) -> list[RunFiles]:
    """The runs among `paths` that can be read; one warning for each that cannot."""
    from q2pconf._base.errors import warn

    found = []
    for path in paths:
        try:
            found.append(read(path))
        except ConfigError as error:
            warn(str(error).replace("\n  Fix:", " Fix:"))
    return found


# What each field of run.json holds, where q2pconf reads it.
META_TYPES: dict[str, Any] = {
    "trace": str, "config": dict, "argv": list, "pipeline": str, "started": str,
    "finished": str, "outcome": str, "events": str, "called": (int, float),
    "returned": (int, float), "body_returned": (int, float), "machine": dict}
TIMES = ("submitted", "launched", "started", "finished")
NUMBERS = ("wall_s", "cpu_s", "peak_rss_mib", "walltime_s", *IO)


def _meta(path: Path) -> dict[str, Any]:
    """run.json's record, or the ConfigError saying why it is none."""
    try:
        meta = json.loads(path.read_text())
    except OSError as error:
        raise _damaged(path, f"cannot be read: {error.strerror or error}") from None
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError
        what = "is empty" if isinstance(error, json.JSONDecodeError) and not error.doc.strip() \
            else f"is not whole JSON ({error})"
        raise _damaged(path, f"{what}: the run's record was cut short or damaged") from None
    if not isinstance(meta, dict):
        raise _damaged(path, "holds no run record (a JSON object)")
    wrong = next((key for key, kind in META_TYPES.items()
                  if meta.get(key) is not None and not isinstance(meta[key], kind)), None)
    if wrong is not None:
        raise _damaged(path, f"is damaged: its {wrong!r} is {type(meta[wrong]).__name__}")
    return meta


def _damaged(path: Path, problem: str) -> ConfigError:
    return ConfigError(path, "", problem, "name another run (`q2pconf info --runs` lists "
                       "them), or remove this one's files")


def _whole(row: dict[str, str | None]) -> bool:
    """A trace line with every field, its times and numbers readable."""
    if None in row.values() or None in row:
        return False
    try:
        for key in TIMES:
            seconds(row[key])
        for key in NUMBERS:
            if row[key] != "NA":
                float(row[key])  # type: ignore[arg-type]
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def seconds(stamp: str | None) -> float | None:
    """An ISO time from the trace as seconds since the epoch; None for NA."""
    if not stamp or stamp == "NA":
        return None
    return datetime.datetime.fromisoformat(stamp).timestamp()


def calls_text(numbers: list[int]) -> str:
    """Call numbers as the trace's `inputs` field: sorted ranges (`0-3,7`), `-` for none."""
    if not numbers:
        return "-"
    ordered = sorted(set(numbers))
    parts = []
    first = last = ordered[0]
    for number in ordered[1:]:
        if number != last + 1:
            parts.append(str(first) if first == last else f"{first}-{last}")
            first = number
        last = number
    parts.append(str(first) if first == last else f"{first}-{last}")
    return ",".join(parts)


def calls(text: str | None) -> list[int] | None:
    """The call numbers of an `inputs` field; None when unknown (NA, an older trace) or
    damaged."""
    if text is None or text == "NA":
        return None
    if text == "-":
        return []
    found: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.partition("-")
            found.extend(range(int(first), int(last or first) + 1))
    except ValueError:
        return None
    return found
