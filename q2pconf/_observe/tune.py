"""From traced runs to a better config, and the time the same pipeline would take with it.

Two sources of changes, each with its reason:
- the rules the report's Limits section shows (q2pconf._observe.advice): memory, cores,
  batch walltime, a step computing on threads; every finding that names a new value;
- the worker slots of each executor the steps ran on, sized by replaying the newest run
  (q2pconf._observe.replay) on 1, 2, 3, 4, 6, 8 ... workers (on a batch system: blocks) and
  taking the fewest within 5 % of the best time. Never more than the machine the trace came
  from runs side by side: steps that kept a CPU busy get at most its CPUs (per
  `cores_per_worker`); steps that waited (sleep, I/O, a remote service) at most four workers
  a CPU, and never more than its memory holds at their peak. A batch system's blocks grow at
  most four times, and on Slurm never past the nodes of the partition (asked of `sinfo`).
The prediction carries over what the run measured (start-up, dispatch, the body's work). A
step moved from threads to worker processes is replayed with its CPU time as its duration.
"""
from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from q2pconf._base.errors import ConfigError
from q2pconf._observe import advice
from q2pconf._observe.recorded import Replayable, from_run, read_events, slots_of
from q2pconf._observe.replay import Pool, Recording, predict, rounded
from q2pconf._observe.runfiles import RunFiles

NEAR_BEST = 0.05  # the fewest slots whose predicted time is within this share of the best
GAIN, GAIN_S = 0.05, 0.5  # a size changes only for this share and these seconds faster
WAITING_CPU = 0.5  # steps using less of a CPU than this wait rather than compute
PER_CPU = 4  # at most this many waiting workers per CPU
MEMORY_SHARE = 0.8  # workers at their steps' peak fill at most this share of the memory
MORE_BLOCKS = 4  # blocks grow at most this many times
SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
HTEX_STARTUP_S = 1.0  # an HTEX the run never started: the start-up assumed (measured here)
WHAT_IF = (1, 2, 4, 8)


@dataclass(frozen=True)
class Change:
    """One setting changed: its place in the file, old and new value, and why."""

    where: tuple[str, ...]  # ("parsl", "executors", label, key...) or a mapping's key path
    old: Any
    new: Any
    reason: str

    @property
    def key(self) -> str:
        if self.where[:2] == ("parsl", "executors"):
            return f"parsl.executors['{self.where[2]}']." + ".".join(self.where[3:])
        return ".".join(self.where)


@dataclass
class Machine:
    """What the trace's machine runs side by side (run.json's `machine`; else this one's)."""

    cpus: float
    memory_gb: float | None
    recorded: bool


@dataclass
class Tuning:
    """What `q2pconf tune` found: the tuned document, its changes, and the predictions."""

    base: RunFiles
    doc: dict[str, Any]
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    current_s: float = math.inf
    tuned_s: float = math.inf
    measured_s: float | None = None
    what_if: list[dict[str, Any]] = field(default_factory=list)
    found: Replayable | None = None


def tune(runs: list[RunFiles], what_if: bool = True,
         findings: Callable[[RunFiles], list[advice.Finding]] = advice.findings) -> Tuning:
    """Tune the config of the newest of `runs` (all of them give the rules their steps);
    `what_if`: also predict each executor at 1, 2, 4, 8 slots (blocks); `findings`: the
    shared rules' findings of a run (a caller that has them already passes them)."""
    base = max(runs, key=lambda run: str(run.meta.get("started", "")))
    found = from_run(base)
    tuning = Tuning(base, document(base), measured_s=found.measured_s, found=found)
    tuning.current_s = predict(found.recording, found.pools)
    model = _Model(base, found, tuning.doc, machine_of(base))
    if not model.machine.recorded:
        tuning.notes.append("the run did not record its machine (an older q2pconf traced "
                            "it): the sizes fit this machine's CPUs and memory instead")
    for run in runs:
        model.apply_rules(tuning, findings(run))
    model.size_all(tuning)
    for where, finding in model.moves:
        model.try_move(tuning, where, finding)
    tuning.tuned_s = model.predicted()
    tuning.what_if = model.what_if() if what_if else []
    return tuning


def machine_of(run: RunFiles) -> Machine:
    recorded = run.meta.get("machine") or {}
    cpus, memory = recorded.get("cpus"), recorded.get("memory_gb")
    if isinstance(cpus, (int, float)) and cpus > 0:
        return Machine(float(cpus), memory if isinstance(memory, (int, float)) else None, True)
    from q2pconf._base.cpus import machine

    here, memory_here = machine()
    return Machine(here or 1.0, memory_here, False)


def document(run: RunFiles) -> dict[str, Any]:
    """The config the run used, as a TOML document (the built-in default's when it had none);
    its executors written out when the file held only a mapping."""
    from q2pconf._base.tomlfile import read_toml
    from q2pconf.config._templates import vendored_dict

    config = run.meta.get("config") or {}
    text = config.get("text")
    if text is None and config.get("source") == "parsl.Config":
        raise ConfigError(run.meta_path, "", "ran with a parsl.Config made in Python, not a "
                          "config file: tune has no file to start from",
                          "run the pipeline with a qiime2_config.toml, then tune that run")
    doc = read_toml(str(run.meta_path), text.encode()) if isinstance(text, str) else {}
    doc = copy.deepcopy(doc) if doc.get("parsl") else vendored_dict()
    section = doc["parsl"]
    if "executors" not in section:
        section["executors"] = vendored_dict(_threads_of(config))["parsl"]["executors"]
    return doc


def _threads_of(config: dict[str, Any]) -> int | None:
    spec = (config.get("executors") or {}).get("default") or {}
    return spec.get("max_threads") if isinstance(spec.get("max_threads"), int) else None


def tables(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Label -> the executor's table in `doc` (the same dicts: a change edits the document)."""
    return {str(table.get("label")): table for table in doc["parsl"]["executors"]
            if isinstance(table, dict)}


def get(doc: dict[str, Any], where: tuple[str, ...]) -> Any:
    node: Any = doc
    for index, part in enumerate(where):
        if where[:index] == ("parsl", "executors"):
            node = tables(doc).get(part, {})
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def put(doc: dict[str, Any], where: tuple[str, ...], value: Any) -> None:
    parent = get(doc, where[:-1]) if where[:-1] != ("parsl", "executor_mapping") else \
        doc["parsl"].setdefault("executor_mapping", {})
    if parent is None and len(where) > 3:  # a provider table the executor did not have
        put(doc, where[:-1], {})
        parent = get(doc, where[:-1])
    parent[where[-1]] = value


class _Model:
    """The newest run's recording, the tuned document, and the pools the replay uses."""

    def __init__(self, base: RunFiles, found: Replayable, doc: dict[str, Any],
                 machine: Machine) -> None:
        self.base, self.found, self.doc, self.machine = base, found, doc, machine
        self.rows = _calls(base)
        self.calls = dict(found.recording.calls)
        self.waited: dict[str, str] = {}  # label -> the shared rules' finding of busy workers
        called = base.meta.get("called") or 0.0
        self.started = {e.get("executor"): e["t"] for e in read_events(base, called)
                        if e.get("kind") == "executor" and e["t"] >= 0}  # label -> its start
        self.moves: list[tuple[tuple[str, ...], advice.Finding]] = []  # mapping changes to try

    def apply_rules(self, tuning: Tuning, found: list[advice.Finding]) -> None:
        """Every finding of the shared rules that names a new value, once per setting (the
        largest value); the others are notes."""
        for finding in found:
            if finding.setting.endswith(advice.MORE_WORKERS):  # sizing says how many
                self.waited.setdefault(finding.executor, finding.message)
                continue
            if not finding.where:
                note = f"{finding.message}: {finding.setting}"
                if note not in tuning.notes:
                    tuning.notes.append(note)
                continue
            where = self._where(finding.where)
            if where[1] == "executor_mapping":
                if (where, finding.value) not in [(w, f.value) for w, f in self.moves]:
                    self.moves.append((where, finding))
            else:
                self._set(tuning, where, finding.value, f"{finding.message}")

    def _where(self, where: tuple[str, ...]) -> tuple[str, ...]:
        """A mapping's key as the user writes it: the step's name, or "plugin.step" when two
        steps of the trace share the name."""
        if where[1] != "executor_mapping":
            return where
        name = where[2].rpartition(".")[2]
        steps = {row["step"] for row in self.rows.values()}
        same = [step for step in steps if step.rpartition(".")[2] == name]
        return where[:2] + ((name if len(same) <= 1 else where[2]),)

    def _set(self, tuning: Tuning, where: tuple[str, ...], value: Any, reason: str) -> None:
        for index, change in enumerate(tuning.changes):
            if change.where == where:
                if _larger(value, change.new):
                    tuning.changes[index] = replace(change, new=value, reason=reason)
                    put(self.doc, where, value)
                return
        old = get(self.doc, where)
        if old == value:
            return
        put(self.doc, where, value)
        tuning.changes.append(Change(where, old, value, reason))

    def try_move(self, tuning: Tuning, where: tuple[str, ...],
                 finding: advice.Finding) -> None:
        """Map a step computing on threads to a local HTEX (its calls replayed there, each as
        long as its CPU time: on threads they shared one CPU), its workers sized again; kept
        only when the replay predicts it faster."""
        if self.machine.cpus < 2:
            tuning.notes.append(f"{finding.message}: the machine has one CPU, so worker "
                                "processes would not run it faster")
            return
        kept = (copy.deepcopy(self.doc), dict(self.calls), list(tuning.changes))
        before = self.predicted()
        self._set(tuning, where, finding.value, finding.message)
        for number, row in self.rows.items():
            if row["step"] == finding.step and number in self.calls:
                self.calls[number] = replace(self.calls[number], executor=finding.value,
                                             duration=row["cpu"] or self.calls[number].duration)
        self.size_all(tuning)
        after = self.predicted()
        if _faster(after, before):
            index = next(i for i, c in enumerate(tuning.changes) if c.where == where)
            tuning.changes[index] = replace(tuning.changes[index], reason=(
                f"{finding.message}; the replay of the run predicts {show_seconds(after)} "
                f"with its calls in worker processes, {show_seconds(before)} without"))
            return
        self.doc, self.calls, tuning.changes = kept
        tuning.doc = self.doc
        tuning.notes.append(f"{finding.message}, but in worker processes the replay of the run "
                            f"predicts {show_seconds(after)}, not faster than "
                            f"{show_seconds(before)}: it stays where it is")

    def recording(self) -> Recording:
        return replace(self.found.recording, calls=self.calls)

    def pools(self, sizes: dict[str, int] | None = None) -> dict[str, Pool]:
        """A pool per executor the calls run on, under the tuned document (`sizes`: slots
        per block, or blocks on a batch system, to try instead)."""
        labels = sorted({call.executor for call in self.calls.values()})
        found = {}
        for label in labels:
            table = tables(self.doc).get(label, {})
            pool = self._pool(label, table)
            size = (sizes or {}).get(label)
            if size is not None:
                pool = _sized(pool, table, size)
            found[label] = pool
        return found

    def _pool(self, label: str, table: dict[str, Any]) -> Pool:
        measured = self.found.pools.get(label)
        slots = slots_of(table, self.machine.cpus, self.machine.memory_gb)
        provider = table.get("provider") if isinstance(table.get("provider"), dict) else {}
        init = int(provider.get("init_blocks", 1)) if provider else 1
        blocks = max(int(provider.get("max_blocks", 1)), init) if provider else 1
        if measured is not None:
            slots = slots or measured.workers_per_block
            start = measured.start_s
            if measured.init_blocks == 0 and init > 0:  # its first block, asked for at once
                start = self.started.get(label, start)
            return replace(measured, workers_per_block=slots, init_blocks=init,
                           max_blocks=blocks, start_s=start)
        first = min((c.number for c in self.calls.values() if c.executor == label), default=0)
        thread = table.get("class") == "ThreadPoolExecutor"
        return Pool(label, slots or 1, init, blocks, start_s=0.0 if thread else
                    self._submitted(first), startup_s=0.0 if thread else HTEX_STARTUP_S)

    def _submitted(self, number: int) -> float:
        return self.rows.get(number, {}).get("submitted", 0.0)

    def predicted(self, sizes: dict[str, int] | None = None) -> float:
        return predict(self.recording(), self.pools(sizes))

    def size_all(self, tuning: Tuning) -> None:
        for label in sorted({call.executor for call in self.calls.values()}):
            table = tables(self.doc).get(label)
            if table is not None:
                _first_block(self, tuning, label, table)
                _size(self, tuning, label, table)

    def what_if(self) -> list[dict[str, Any]]:
        """The tuned config's predicted time with one executor at 1, 2, 4, 8 ... slots."""
        rows = []
        for label in sorted({call.executor for call in self.calls.values()}):
            table = tables(self.doc).get(label, {})
            unit = "blocks" if _batch(table) else "workers"
            cap = _cap(self, label, table)
            for size in sorted(set(WHAT_IF) | {_current_size(self, label, table)}):
                seconds = self.predicted({label: size})
                rows.append({"executor": label, unit: size, "predicted_s": rounded(seconds),
                             "fits": size <= cap})
        return rows


def _calls(run: RunFiles) -> dict[int, dict[str, Any]]:
    """Per call of the run: its step, CPU seconds (all attempts), peak RSS, submitted time."""
    from q2pconf._observe.runfiles import seconds

    called = run.meta.get("called") or 0.0
    found: dict[int, dict[str, Any]] = {}
    for row in run.rows:
        entry = found.setdefault(int(row["call"]), {"step": row["step"], "cpu": 0.0,
                                                    "submitted": 0.0})
        entry["cpu"] += advice.number(row["cpu_s"]) or 0.0
        submitted = seconds(row["submitted"])
        if submitted is not None:
            entry["submitted"] = submitted - called
    return found


def _larger(value: Any, than: Any) -> bool:
    if isinstance(value, str) and isinstance(than, str):
        return (advice.scheduler_seconds(value) or 0) > (advice.scheduler_seconds(than) or 0)
    try:
        return value > than
    except TypeError:
        return False


def _batch(table: dict[str, Any]) -> bool:
    provider = table.get("provider")
    return isinstance(provider, dict) and provider.get("class", "LocalProvider") != \
        "LocalProvider"


def _sized(pool: Pool, table: dict[str, Any], size: int) -> Pool:
    if not _batch(table):
        return replace(pool, workers_per_block=size)
    strategy_none = pool.period_s is None
    return replace(pool, max_blocks=size, init_blocks=size if strategy_none else
                   min(pool.init_blocks, size))


def _current_size(model: _Model, label: str, table: dict[str, Any]) -> int:
    pool = model.pools()[label]
    return pool.max_blocks if _batch(table) else pool.workers_per_block


def _faster(after: float, before: float) -> bool:
    """A change is worth making: the replay predicts it GAIN and GAIN_S faster."""
    return after < min(before * (1 - GAIN), before - GAIN_S)


def _size(model: _Model, tuning: Tuning, label: str, table: dict[str, Any]) -> None:
    """The fewest slots (blocks) within NEAR_BEST of the best predicted time, up to the cap."""
    current = _current_size(model, label, table)
    cap = _cap(model, label, table)
    tried = {size: model.predicted({label: size})
             for size in sorted({s for s in SIZES if s <= cap} | {cap, min(current, cap)})}
    best = min(tried.values())
    chosen = min(size for size, seconds in tried.items() if seconds <= best * (1 + NEAR_BEST))
    now = model.predicted()
    if current <= cap and not (_faster(tried[chosen], now) or
                               (_batch(table) and chosen < current and tried[chosen] <= now)):
        return
    for where, value, reason in size_changes(model, label, table, current, chosen,
                                             (now, tried[chosen])):
        model._set(tuning, where, value, reason)


def _first_block(model: _Model, tuning: Tuning, label: str, table: dict[str, Any]) -> None:
    """An HTEX with no initial block waits for the strategy's first look to ask for one:
    init_blocks = 1 asks when the executor starts, kept when the replay finds it faster."""
    provider = table.get("provider")
    pool = model.found.pools.get(label)
    if not isinstance(provider, dict) or pool is None or pool.period_s is None or \
            int(provider.get("init_blocks", 1)) != 0 or label not in model.started:
        return
    before = model.predicted()
    provider["init_blocks"] = 1
    after = model.predicted()
    provider["init_blocks"] = 0
    if _faster(after, before):
        model._set(tuning, ("parsl", "executors", label, "provider", "init_blocks"), 1,
                   f"with no initial block, the first one was asked for only at the "
                   f"strategy's first look, {pool.start_s - model.started[label]:.1f} s after "
                   f"'{label}' started; the replay of the run predicts {show_seconds(after)} "
                   f"with one asked for at once, {show_seconds(before)} without")


def _cap(model: _Model, label: str, table: dict[str, Any]) -> int:
    """The most slots (blocks) the trace's machine (cluster) runs side by side for these
    steps: see the module's docstring."""
    if _batch(table):
        provider = table.get("provider") or {}
        cap = max(int(provider.get("max_blocks", 1)) * MORE_BLOCKS, MORE_BLOCKS)
        nodes = cluster_nodes(provider)
        if nodes:  # more blocks than the partition holds would wait in the queue
            cap = min(cap, max(nodes // int(provider.get("nodes_per_block", 1) or 1), 1))
        return cap
    current = _current_size(model, label, table)
    if table.get("class") == "ThreadPoolExecutor" and advice.gil_bound(
            model.base.rows, model.base.meta.get("config", {}).get("executors", {}), label):
        return current  # more threads would not help: the replay cannot see the GIL
    mine = [c for c in model.calls.values() if c.executor == label]
    wall = sum(c.duration for c in mine)
    cpu = sum(min(model.rows.get(c.number, {}).get("cpu", 0.0), c.duration) for c in mine)
    per_worker = float(table.get("cores_per_worker") or 1)
    if wall > 0 and cpu >= WAITING_CPU * wall:  # they compute
        return max(int(model.machine.cpus // max(per_worker, 1.0)), 1)
    cap = int(PER_CPU * model.machine.cpus)
    peak = _peak_mib(model.base, label)
    if peak and model.machine.memory_gb:
        cap = min(cap, int(MEMORY_SHARE * model.machine.memory_gb * 1024 // peak))
    return max(cap, 1)


@functools.lru_cache(maxsize=None)
def _sinfo_nodes(partition: str) -> int | None:
    """Nodes in a Slurm partition (the default one for ""), as `sinfo` says here; None
    where Slurm cannot be asked (not a login node, no sinfo, no answer in 10 s)."""
    import subprocess

    command = ["sinfo", "--noheader", "--format=%D"]
    if partition:
        command += ["--partition", partition]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    counts = [int(line) for line in done.stdout.split() if line.isdigit()]
    return sum(counts) if done.returncode == 0 and counts else None


def cluster_nodes(provider: dict[str, Any]) -> int | None:
    """How many nodes the batch system can give this provider's blocks (Slurm: its partition's
    nodes, asked of sinfo); None when unknown."""
    if provider.get("class") != "SlurmProvider":
        return None
    return _sinfo_nodes(str(provider.get("partition") or ""))


def _peak_mib(run: RunFiles, label: str) -> float:
    peaks = [advice.number(row["peak_rss_mib"]) for row in run.rows
             if row["executor"] == label and row["rss_of"] == "step"]
    return max((p for p in peaks if p is not None), default=0.0)


def size_changes(model: _Model, label: str, table: dict[str, Any], current: int, chosen: int,
                 times: tuple[float, float]) -> list[tuple[tuple[str, ...], Any, str]]:
    """The settings that give executor `label` `chosen` slots (blocks), each with its reason."""
    where = ("parsl", "executors", label)
    threads = "max_threads" in table or table.get("class") == "ThreadPoolExecutor"
    unit = "blocks" if _batch(table) else ("threads" if threads else "workers")
    why = (f"the replay of the run predicts {show_seconds(times[1])} with {chosen} {unit}, "
           f"{show_seconds(times[0])} with {current}")
    if label in model.waited:
        why = f"{model.waited[label]}; {why}"
    if unit == "blocks":
        return _block_changes(model, where, table, chosen, why)
    if unit == "threads":
        return [(where + ("max_threads",), chosen, why)]
    from q2pconf.config._templates import htex_worker_key

    key = htex_worker_key()
    old_key = "max_workers" if key == "max_workers_per_node" else "max_workers_per_node"
    if old_key in table:  # an old file's spelling: written under today's name
        table[key] = table.pop(old_key)
        why += f" (written as {key}, today's name for {old_key})"
    found = [(where + (key,), chosen, why)]
    per_worker = float(table.get("cores_per_worker") or 1)
    if chosen > model.machine.cpus // per_worker:  # only steps that wait get past _cap
        share = math.floor(model.machine.cpus / chosen * 100) / 100
        found.append((where + ("cores_per_worker",), share,
                      f"its steps kept under {WAITING_CPU:.0%} of a CPU busy (they wait "
                      f"more than they compute), and Parsl's local pool starts at most CPUs / "
                      f"cores_per_worker workers: {chosen} on the {model.machine.cpus:g} CPUs "
                      f"(at most {_cap(model, label, table)} fit)"))
    return found


def _block_changes(model: _Model, where: tuple[str, ...], table: dict[str, Any], chosen: int,
                   why: str) -> list[tuple[tuple[str, ...], Any, str]]:
    provider = table.get("provider") or {}
    found = [(where + ("provider", "max_blocks"), max(chosen, int(provider.get(
        "init_blocks", 1))), why)]
    if model.pools()[where[2]].period_s is None:  # strategy "none": only the first blocks
        found.append((where + ("provider", "init_blocks"), chosen,
                      'strategy "none" adds no block while the run goes on: ' + why))
    return found


def show_seconds(seconds: float) -> str:
    return "no end (a step gets no worker)" if math.isinf(seconds) else f"{seconds:.1f} s"


def load_runs(targets: list[str | None]) -> list[RunFiles]:
    from q2pconf._observe.runfiles import find, read

    runs = [read(find(target)) for target in (targets or [None])]
    if not runs:
        raise ConfigError("", "", "no run to tune", "run a pipeline, then `q2pconf tune`")
    return runs
