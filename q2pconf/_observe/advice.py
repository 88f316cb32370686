"""Compare what a run's steps used with the limits its config set, and name what to change.

Each rule reads the trace rows (`q2pconf._observe.runfiles.RunFiles`) and the executors recorded in
`run.json`; a finding names the step, what happened and the setting to change. The one set of
rules behind both the report's Limits section and `q2pconf tune`: a finding that can say the
new value also carries it (`where`, `value`), which tune (q2pconf._observe.tune) writes.
"""
from __future__ import annotations

import re
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from q2pconf._observe.runfiles import RunFiles, seconds

CLOSE = 0.8  # a step that used this share of a limit "came close" to it
LOST = ("ManagerLost", "WorkerLost", "BadStateException")  # a worker died under the step
WAIT_SHARE = 0.1  # waiting counts when it is this share of the run's wall time
MIN_WAIT = 1.0  # seconds
HEADROOM = 1.5  # a new limit is what the longest or biggest step used, times this
MORE_WORKERS = "raise it (more workers)"  # the finding `q2pconf tune` answers with a number
COMPUTES, ONE_CPU = 0.3, 1.3  # a thread pool's calls of a step that kept about one CPU busy
# were computing in Python: at most a bit more than one (the time the GIL is let go), and at
# least 0.3 (a loaded machine gives them less than one; steps that wait use next to none)


@dataclass(frozen=True)
class Finding:
    """One piece of advice: `level` is "hit", "close" or "idle"."""

    level: str
    step: str
    executor: str
    message: str
    setting: str
    # the config key the new value goes to, ("parsl", "executors", label, key...) or
    # ("parsl", "executor_mapping", "plugin.step"), and that value; () when a person chooses
    where: tuple[str, ...] = ()
    value: Any = None


def findings(run: RunFiles) -> list[Finding]:
    executors = run.meta.get("config", {}).get("executors", {})
    found: list[Finding] = []
    for rule in (_step_walltime, _provider_walltime, _memory, _cores, _lost, _waiting,
                 _computing_threads):
        found.extend(rule(run.rows, executors))
    return found


def number(value: str | None) -> float | None:
    try:
        return None if value in (None, "", "NA") else float(value)  # type: ignore[arg-type]
    except ValueError:
        return None


def _step_walltime(rows: list[dict[str, str]], executors: dict[str, Any]) -> list[Finding]:
    worst: dict[str, tuple[str, float, float]] = {}
    for row in rows:
        limit, wall = number(row["walltime_s"]), number(row["wall_s"])
        if limit is None:
            continue
        hit = row["error"] == "AppTimeout" or (wall is not None and wall >= limit)
        if hit or (wall is not None and wall >= CLOSE * limit):
            level = "hit" if hit else "close"
            if row["step"] not in worst or level == "hit":
                worst[row["step"]] = (level, wall or limit, limit)
    return [Finding(level, step, _executor_of(rows, step),
                    f"{step} {'hit' if level == 'hit' else 'came close to'} its time limit "
                    f"({wall:.1f} s of {limit:g} s)",
                    f"@step(walltime=...) on {step.rpartition('.')[2]}: raise it above "
                    f"{limit:g} s, or split the step")
            for step, (level, wall, limit) in worst.items()]


def _executor_of(rows: list[dict[str, str]], step: str) -> str:
    return next((row["executor"] for row in rows if row["step"] == step), "NA")


def scheduler_seconds(text: Any) -> float | None:
    """A scheduler walltime ("HH:MM:SS", "D-HH:MM:SS", minutes) in seconds."""
    match = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(?:(\d+):)?(\d+)", str(text).strip())
    if match is None:
        return None
    days, *parts = match.groups()
    numbers = [int(p) for p in parts if p is not None]
    if len(numbers) == 1 and days is None:  # plain minutes, as Slurm reads them
        return numbers[0] * 60.0
    while len(numbers) < 3:
        numbers.insert(0, 0)
    hours, minutes, secs = numbers
    return (int(days or 0) * 24 + hours) * 3600.0 + minutes * 60 + secs


def _provider(executors: dict[str, Any], label: str) -> dict[str, Any]:
    provider = executors.get(label, {}).get("provider")
    return provider if isinstance(provider, dict) else {}


def _provider_walltime(rows: list[dict[str, str]], executors: dict[str, Any]) -> list[Finding]:
    """Steps (or a job's whole life) near the batch job's walltime."""
    found = []
    jobs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        start, end = seconds(row["started"]), seconds(row["finished"])
        if row["job"] != "NA" and start is not None and end is not None:
            jobs[(row["executor"], row["job"])] += [start, end]
    for (label, job), times in jobs.items():
        limit = scheduler_seconds(_provider(executors, label).get("walltime"))
        if limit is None or max(times) - min(times) < CLOSE * limit:
            continue
        used = max(times) - min(times)
        level = "hit" if used >= 0.98 * limit else "close"
        wanted = hms(math.ceil(used * HEADROOM / 60) * 60)
        found.append(Finding(level, "*", label, f"batch job {job} ran steps for {used:.0f} s of "
                             f"its {limit:.0f} s walltime",
                             f"parsl.executors['{label}'].provider.walltime: raise it to "
                             f"{wanted}", ("parsl", "executors", label, "provider", "walltime"),
                             wanted))
    return found


def hms(seconds: float) -> str:
    """Seconds as a scheduler's "HH:MM:SS"."""
    whole = int(math.ceil(seconds))
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _workers_per_node(executor: dict[str, Any]) -> float | None:
    for key in ("max_workers_per_node", "max_workers_per_block", "max_threads"):
        if isinstance(executor.get(key), (int, float)):
            return float(executor[key])
    provider = executor.get("provider") or {}
    cores = provider.get("cores_per_node") if isinstance(provider, dict) else None
    if isinstance(cores, (int, float)):
        return cores / float(executor.get("cores_per_worker") or 1)
    return None


def _memory_budget(executor: dict[str, Any]) -> tuple[float, str] | None:
    """MiB one worker may use, and the setting that sets it."""
    if isinstance(executor.get("mem_per_worker"), (int, float)):
        return executor["mem_per_worker"] * 1024.0, "mem_per_worker"
    provider = executor.get("provider") or {}
    memory = provider.get("mem_per_node") if isinstance(provider, dict) else None
    workers = _workers_per_node(executor)
    if isinstance(memory, (int, float)) and workers:
        return memory * 1024.0 / workers, "provider.mem_per_node"
    return None


def _memory(rows: list[dict[str, str]], executors: dict[str, Any]) -> list[Finding]:
    worst: dict[tuple[str, str], float] = {}
    for row in rows:
        peak = number(row["peak_rss_mib"])
        if peak is not None and row["rss_of"] == "step":
            key = (row["step"], row["executor"])
            worst[key] = max(peak, worst.get(key, 0.0))
    found = []
    for (step, label), peak in worst.items():
        budget = _memory_budget(executors.get(label, {}))
        if budget is None or peak < CLOSE * budget[0]:
            continue
        level = "hit" if peak >= budget[0] else "close"
        wanted = gib(peak)
        takes = _takes(executors.get(label, {}).get("class"), "executors", "mem_per_worker")
        found.append(Finding(level, step, label, f"{step} peaked at {peak:.0f} MiB of the "
                             f"{budget[0]:.0f} MiB each worker of '{label}' has",
                             f"parsl.executors['{label}'].{budget[1]}: raise it, or lower "
                             "max_workers_per_node" + (f" (mem_per_worker = {wanted} gives "
                                                       "each worker room)" if takes else ""),
                             ("parsl", "executors", label, "mem_per_worker") if takes else (),
                             wanted if takes else None))
    return found


def gib(peak_mib: float) -> float:
    """GB a worker needs for a step that peaked at `peak_mib`, with headroom, to 0.1 GB."""
    return max(math.ceil(peak_mib * HEADROOM / 1024 * 10) / 10, 0.1)


def _cores(rows: list[dict[str, str]], executors: dict[str, Any]) -> list[Finding]:
    """Steps keeping more cores busy than a worker was given."""
    worst: dict[tuple[str, str], float] = {}
    for row in rows:
        wall, cpu = number(row["wall_s"]), number(row["cpu_s"])
        if wall and cpu and wall >= 1.0 and row["rss_of"] == "step":
            key = (row["step"], row["executor"])
            worst[key] = max(cpu / wall, worst.get(key, 0.0))
    found = []
    for (step, label), cores in worst.items():
        given = float(executors.get(label, {}).get("cores_per_worker") or 1)
        if cores >= 1.5 * given and _takes(executors.get(label, {}).get("class"), "executors",
                                           "cores_per_worker"):
            found.append(Finding("close", step, label, f"{step} kept {cores:.1f} cores busy; "
                                 f"each worker of '{label}' is given {given:g}",
                                 f"parsl.executors['{label}'].cores_per_worker: set it to "
                                 f"{round(cores)}",
                                 ("parsl", "executors", label, "cores_per_worker"), round(cores)))
    return found


def _computing_threads(rows: list[dict[str, str]],
                       executors: dict[str, Any]) -> list[Finding]:
    """Steps on a thread pool whose calls, together, kept one CPU busy while any of them ran:
    Python's GIL lets one thread compute at a time, so a local HTEX (worker processes) runs
    them side by side. (Calls that kept more than one CPU busy released the GIL: not these.)"""
    target = local_htex(executors)
    if target is None:
        return []
    found = []
    for (step, label), mine in sorted(_thread_calls(rows, executors).items()):
        share, span = cpu_share(mine)
        if span >= MIN_WAIT and COMPUTES <= share <= ONE_CPU:
            found.append(Finding(
                "idle", step, label, f"{step}'s {len(mine)} call(s) on the threads of "
                f"'{label}' kept {share:.0%} of one CPU busy while they ran: Python's "
                "GIL, one thread computes at a time", f"parsl.executor_mapping: map "
                f"{step.rpartition('.')[2]} to '{target}' (worker processes, side by side)",
                ("parsl", "executor_mapping", step), target))
    return found


def cpu_share(calls: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(CPUs the calls, (start, end, CPU seconds), kept busy while any of them ran; that time)."""
    span = _union([(start, end) for start, end, _ in calls])
    return (sum(cpu for _, _, cpu in calls) / span if span > 0 else 0.0), span


def gil_bound(rows: list[dict[str, str]], executors: dict[str, Any], label: str) -> bool:
    """The steps on thread pool `label` computed in Python, together: more threads would not
    run them faster (one thread computes at a time)."""
    mine = [call for (_, where), calls in _thread_calls(rows, executors).items()
            if where == label for call in calls]
    share, span = cpu_share(mine)
    return span > 0 and COMPUTES <= share <= ONE_CPU


def _thread_calls(rows: list[dict[str, str]],
                  executors: dict[str, Any]) -> dict[tuple[str, str], list[tuple]]:
    """(step, executor) -> (start, end, CPU seconds) of each attempt on a thread pool."""
    found: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for row in rows:
        start, end, cpu = seconds(row["started"]), seconds(row["finished"]), number(row["cpu_s"])
        if (start is not None and end is not None and cpu is not None
                and executors.get(row["executor"], {}).get("class") == "ThreadPoolExecutor"):
            found[(row["step"], row["executor"])].append((start, end, cpu))
    return found


def _union(spans: list[tuple[float, float]]) -> float:
    """The time covered by at least one of `spans`."""
    total, reach = 0.0, -math.inf
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def local_htex(executors: dict[str, Any]) -> str | None:
    """The label of an HTEX whose workers run on this machine (a LocalProvider), if any."""
    return next((label for label, spec in executors.items()
                 if spec.get("class") == "HighThroughputExecutor"
                 and _provider(executors, label).get("class", "LocalProvider") == "LocalProvider"),
                None)


def _lost(rows: list[dict[str, str]], executors: dict[str, Any]) -> list[Finding]:
    found = []
    for step, label in sorted({(r["step"], r["executor"]) for r in rows if r["error"] in LOST}):
        executor = executors.get(label, {})
        limits = [f"provider.{key}" for key in ("mem_per_node", "walltime")
                  if _takes(_provider(executors, label).get("class", "LocalProvider"),
                            "provider", key)]
        setting = (f"parsl.executors['{label}'].{' or '.join(limits)}: raise it"
                   if limits else "the memory its steps need: free some on this machine")
        if _takes(executor.get("class"), "executors", "max_workers_per_node"):
            setting += ", or lower max_workers_per_node"
        found.append(Finding("hit", step, label, f"a worker of '{label}' died while running "
                             f"{step} (killed for memory, or its batch job ended)", setting))
    return found


def _takes(cls: Any, kind: str, key: str) -> bool:
    """The installed Parsl's class `cls` (of `kind`) takes `key`: advice names only settings
    a config can set (a LocalProvider has no mem_per_node nor walltime)."""
    from q2pconf._catalog import accepted as catalog

    try:
        return isinstance(cls, str) and key in catalog.parameters(kind, cls)
    except catalog.NotInParsl:
        return False


def _waiting(rows: list[dict[str, str]], executors: dict[str, Any]) -> list[Finding]:
    """Steps handed to an executor that waited to start: for a busy worker, or while workers
    sat idle (blocks still starting, or none asked for)."""
    by_label: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_label[row["executor"]].append(row)
    starts = [t for t in (seconds(r["submitted"]) for r in rows) if t is not None]
    ends = [t for t in (seconds(r["finished"]) for r in rows) if t is not None]
    span = max(ends) - min(starts) if starts and ends else 0.0
    found = []
    for label, mine in by_label.items():
        finding = _executor_waiting(label, mine, executors.get(label, {}), span)
        if finding is not None:
            found.append(finding)
    return found


def _executor_waiting(label: str, rows: list[dict[str, str]], executor: dict[str, Any],
                      span: float) -> Finding | None:
    runs, waits = [], []
    for row in rows:
        launched, start, end = (seconds(row[k]) for k in ("launched", "started", "finished"))
        if start is not None and end is not None:
            runs.append((start, end))
            if launched is not None and start > launched:
                waits.append((launched, start))
    if not runs:
        return None
    first = min(start for start, _ in runs)  # before it, the executor had no worker yet
    starting = [(a, min(b, first)) for a, b in waits if a < first]
    waits = [(max(a, first), b) for a, b in waits if b > first]
    if not _significant(waits, span):
        return _starting(label, executor, starting) if _significant(starting, span) else None
    waited = sum(b - a for a, b in waits)
    lanes = len({(r["host"], r["pid"], r["worker"]) for r in rows if r["started"] != "NA"})
    capacity = _capacity(executor) or lanes
    busy = _busy_during(runs, waits) / waited
    if busy < capacity - 0.5:
        return Finding("idle", "*", label, f"steps waited {waited:.1f} s in all to start on "
                       f"'{label}' while on average {capacity - busy:.1f} of its {capacity:g} "
                       "workers sat idle or were not started yet",
                       _idle_setting(label, executor))
    return Finding("idle", "*", label, f"steps waited {waited:.1f} s in all for a free worker "
                   f"of '{label}' (all {capacity:g} busy)",
                   f"parsl.executors['{label}'].{_size_key(executor)}: {MORE_WORKERS}")


def _significant(waits: list[tuple[float, float]], span: float) -> bool:
    return bool(waits) and (max(b - a for a, b in waits) >= MIN_WAIT
                            and sum(b - a for a, b in waits) >= WAIT_SHARE * span)


def _starting(label: str, executor: dict[str, Any],
              waits: list[tuple[float, float]]) -> Finding:
    """Steps that waited only for the executor's first workers to start."""
    longest = max(b - a for a, b in waits)
    provider = (executor.get("provider") or {}).get("class", "LocalProvider")
    if provider == "LocalProvider":
        setting = (f"nothing for long runs: '{label}' starts when a step first needs it; map "
                   "short steps to a thread pool, or keep one program running many pipelines")
    else:
        setting = (f"parsl.executors['{label}'].provider.init_blocks / min_blocks (a job "
                   "queued before the steps arrive), or a shorter strategy_period under [parsl]")
    return Finding("idle", "*", label, f"steps waited up to {longest:.1f} s for '{label}' to "
                   f"start its first workers ({provider})", setting)


def _capacity(executor: dict[str, Any]) -> float | None:
    workers = _workers_per_node(executor)
    if workers is None or "max_threads" in executor:
        return workers
    provider = executor.get("provider") or {}
    blocks = provider.get("max_blocks", 1) if isinstance(provider, dict) else 1
    nodes = provider.get("nodes_per_block", 1) if isinstance(provider, dict) else 1
    return workers * float(blocks or 1) * float(nodes or 1)


def _size_key(executor: dict[str, Any]) -> str:
    if "max_threads" in executor or executor.get("class") == "ThreadPoolExecutor":
        return "max_threads"
    return "max_workers_per_node (or provider.max_blocks)"


def _idle_setting(label: str, executor: dict[str, Any]) -> str:
    if executor.get("class") == "ThreadPoolExecutor":
        return f"parsl.executors['{label}'].max_threads: the pool was smaller than it looked"
    return (f"parsl.executors['{label}'].provider.min_blocks / max_blocks: keep blocks of "
            "workers up while steps wait (and a shorter strategy_period under [parsl])")


def _busy_during(runs: list[tuple[float, float]], waits: list[tuple[float, float]]) -> float:
    """The integral, over every waiting interval, of how many steps were running."""
    events = sorted([(a, 1) for a, _ in runs] + [(b, -1) for _, b in runs])
    times, counts, areas = [], [], [0.0]
    level = 0
    for index, (when, change) in enumerate(events):
        if index:
            areas.append(areas[-1] + level * (when - times[-1]))
        level += change
        times.append(when)
        counts.append(level)
    if not times:
        return 0.0

    def area(at: float) -> float:
        import bisect

        i = bisect.bisect_right(times, at) - 1
        if i < 0:
            return 0.0
        return areas[i] + counts[i] * (at - times[i])

    return sum(area(b) - area(a) for a, b in waits)
