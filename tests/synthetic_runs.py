"""Traced runs of many steps written without running them: each line by the trace's own writer
(`q2pconf._observe.trace.Trace.record`), so the files are in the trace's format; for report
tests at 10,000 and more steps, which no real run here makes in test time."""
from __future__ import annotations

import datetime
import json
import random
from pathlib import Path

import tomli_w

from q2pconf._observe import history, trace as tracing
from q2pconf._observe.measure import Usage

STEPS = ("__main__.denoise", "__main__.classify", "q2_feature_table.merge", "q2_types.import")
WORKERS = 8
HTEX = {"class": "HighThroughputExecutor", "label": "htex", "max_workers_per_node": WORKERS,
        "provider": {"class": "LocalProvider"}}


def write_run(directory: Path, steps: int, seed: int = 21) -> Path:
    """A finished run of `steps` independent steps on 8 HTEX workers (1 in 50 failed once,
    then done), all called at the start, on a machine of 8 CPUs; returns its run.json."""
    chance = random.Random(seed)
    meta = {"pipeline": "synthetic", "started": "2026-12-06T10:00:00.000+00:00",
            "finished": None, "outcome": None, "host": "node1", "pid": 1, "user": "tester",
            "argv": ["amplicon.py"],
            "config": {"path": None, "source": "synthetic", "trail": [], "mapping": {},
                       "executors": {"htex": HTEX}, "text": tomli_w.dumps(
                           {"parsl": {"strategy": "none", "executors": [HTEX]}})}}
    start = datetime.datetime(2026, 12, 6, 10, 0, tzinfo=datetime.timezone.utc).timestamp()
    meta.update(called=start, body_returned=start + steps * 0.001,
                machine={"cpus": 8.0, "usable_cpus": 8, "memory_gb": 32.0})
    run = tracing.Trace(directory, "synthetic-1", meta)
    free = [start] * WORKERS
    for call in range(steps):
        name = STEPS[call % len(STEPS)]
        entry = tracing.Entry(run, name, call, None, "-")
        attempts = 2 if chance.random() < 0.02 else 1
        for attempt in range(attempts):
            worker = min(range(WORKERS), key=free.__getitem__)
            begun, wall = free[worker], chance.uniform(0.5, 5.0)
            free[worker] = begun + wall
            usage = Usage(begun, wall, wall * chance.uniform(0.2, 1.0), chance.randint(50, 900)
                          * 1024, "step", "node1", 1000 + worker, f"worker-{worker}", None,
                          tuple(chance.randint(0, 2 ** 30) for _ in range(4)))
            task = {"id": call, "try_id": attempt, "executor": "htex",
                    "time_invoked": _when(start + call * 0.001),
                    "try_time_launched": _when(max(begun - 0.01, start + call * 0.001))}
            failed = attempt + 1 < attempts
            run.record(entry, task, history.FAILED if failed else history.DONE,
                       "MemoryError" if failed else None, usage)
    run.close("done")
    written = json.loads(run.meta_path.read_text())  # the call returned with its last step
    written["returned"] = max(free) + 0.01
    run.meta_path.write_text(json.dumps(written))
    return run.meta_path


def _when(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds)
