"""The report's advice: each rule on the trace rows of a run and the limits its config set.

The rows are what a trace holds (the trace tests check real runs write them; the report test
checks a real walltime hit end to end); here each rule meets the cases that trigger it and the
near misses that must not."""
from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pytest

from q2pconf._observe.advice import Finding, findings
from q2pconf._observe.runfiles import RunFiles
from q2pconf._observe.trace import COLUMNS

T0 = 1_800_000_000.0


def stamp(offset: float) -> str:
    """A time as the trace writes it: local ISO 8601 with milliseconds and the UTC offset."""
    moment = datetime.datetime.fromtimestamp(T0 + offset).astimezone()
    return moment.isoformat(timespec="milliseconds")


def row(step: str = "p.s", executor: str = "htex", start: float = 0.0, wall: float = 1.0,
        launched: float | None = None, **fields: Any) -> dict[str, str]:
    values = {column: "NA" for column in COLUMNS}
    values.update(step=step, executor=executor, status="done", submitted=stamp(0),
                  launched=stamp(start if launched is None else launched),
                  started=stamp(start), finished=stamp(start + wall), wall_s=f"{wall:.3f}",
                  cpu_s="0.1", peak_rss_mib="50.0", rss_of="step", host="h", pid="7",
                  worker="worker-0", call="0", task="0", attempt="1")
    values.update({key: str(value) for key, value in fields.items()})
    return values


def run(rows: list[dict[str, str]], executors: dict[str, Any]) -> list[Finding]:
    return findings(RunFiles(Path("x.run.json"), {"config": {"executors": executors}}, rows))


HTEX = {"class": "HighThroughputExecutor", "max_workers_per_node": 4,
        "provider": {"class": "SlurmProvider", "mem_per_node": 1, "walltime": "00:01:00",
                     "max_blocks": 1}}


@pytest.mark.parametrize("peak, level", [(150.0, None), (210.0, "close"), (300.0, "hit")])
def test_memory_against_the_workers_share_of_mem_per_node(peak: float, level: str | None
                                                          ) -> None:
    found = [f for f in run([row(peak_rss_mib=peak)], {"htex": HTEX})
             if "mem_per_node" in f.setting]
    assert [f.level for f in found] == ([] if level is None else [level])
    if found:
        assert "256 MiB" in found[0].message and found[0].step == "p.s"
        # an HTEX takes mem_per_worker: 1.5 times the peak, in GB to 0.1 above
        assert found[0].where == ("parsl", "executors", "htex", "mem_per_worker")
        assert found[0].value == {210.0: 0.4, 300.0: 0.5}[peak]


def test_thread_steps_peak_is_the_programs_and_is_not_judged() -> None:
    assert run([row(peak_rss_mib=900, rss_of="process")], {"htex": HTEX}) == []


def test_a_batch_job_running_up_to_its_walltime() -> None:
    rows = [row(start=0, wall=30, job="42"), row(start=30, wall=29.5, job="42")]
    [found] = [f for f in run(rows, {"htex": HTEX}) if "walltime" in f.setting]
    assert found.level == "hit" and "batch job 42" in found.message
    assert found.setting.startswith("parsl.executors['htex'].provider.walltime")
    # the value tune writes: 1.5 times the 59.5 s the job ran steps, to the minute above
    assert found.where == ("parsl", "executors", "htex", "provider", "walltime")
    assert found.value == "00:02:00" and found.setting.endswith("raise it to 00:02:00")
    assert not [f for f in run(rows[:1], {"htex": HTEX}) if "walltime" in f.setting]


def test_a_step_using_more_cores_than_its_worker_has() -> None:
    [found] = run([row(wall=2.0, cpu_s=3.9)], {"htex": HTEX})
    assert found.setting == "parsl.executors['htex'].cores_per_worker: set it to 2"
    assert (found.where, found.value) == (("parsl", "executors", "htex", "cores_per_worker"), 2)
    assert run([row(wall=2.0, cpu_s=2.0)], {"htex": HTEX}) == []


def test_a_worker_lost_under_a_step() -> None:
    [found] = run([row(status="failed", error="ManagerLost", started="NA", wall_s="NA")],
                  {"htex": HTEX})
    assert found.level == "hit" and "died" in found.message
    assert found.setting == ("parsl.executors['htex'].provider.mem_per_node or "
                             "provider.walltime: raise it, or lower max_workers_per_node")


LOCAL_HTEX = {"class": "HighThroughputExecutor", "max_workers_per_node": 4,
              "provider": {"class": "LocalProvider"}}
# Every rule's trigger: a lost worker, a step over its cores, over its memory, waiting steps.
TRIGGERS = [row(status="failed", error="ManagerLost", started="NA", wall_s="NA"),
            row(wall=2.0, cpu_s=3.9), row(peak_rss_mib=5000.0),
            row(launched=0, start=5, wall=1.0, job="1"),
            row(step="p.t", start=0, wall=119.0, walltime_s=120, job="1")]
EXECUTORS = {"slurm": HTEX, "local": LOCAL_HTEX, "local-mem": {**LOCAL_HTEX, "mem_per_worker": 1},
             "threads": {"class": "ThreadPoolExecutor", "max_threads": 2}}


def named_settings(setting: str, executor: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, class, keyword) for each setting of the executor's table an advice names:
    "parsl.executors['htex'].provider.a or provider.b: raise it, or lower c"."""
    head, _, rest = setting.partition(": ")
    prefix = "parsl.executors['htex']."
    if not head.startswith(prefix):
        return []
    names = re.split(r" or | / ", head[len(prefix):])
    names += re.findall(r"lower (\w+)", rest)
    provider = executor.get("provider", {}).get("class", "LocalProvider")
    return [("provider", provider, name[len("provider."):]) if name.startswith("provider.")
            else ("executors", executor["class"], name.split(" ")[0]) for name in names]


@pytest.mark.parametrize("executor", EXECUTORS.values(), ids=EXECUTORS.keys())
def test_advice_names_only_settings_the_executor_and_provider_take(executor) -> None:
    """A LocalProvider has no mem_per_node nor walltime: a lost worker was told to raise
    them, and following that is refused by the check."""
    from q2pconf._catalog import accepted as catalog

    found = run(TRIGGERS, {"htex": executor})
    assert found
    for finding in found:
        for kind, cls, name in named_settings(finding.setting, executor):
            assert name in catalog.parameters(kind, cls), finding.setting


def test_steps_waiting_for_a_busy_worker_ask_for_more_workers() -> None:
    threads = {"class": "ThreadPoolExecutor", "max_threads": 1}
    rows = [row(executor="default", launched=0, start=i, wall=1.0, worker="T_0")
            for i in range(4)]
    [found] = run(rows, {"default": threads})
    assert "all 1 busy" in found.message and found.setting.startswith(
        "parsl.executors['default'].max_threads")


def test_steps_waiting_for_the_first_workers_ask_for_blocks_up_front() -> None:
    rows = [row(launched=0, start=5, wall=1.0, worker=f"worker-{i}") for i in range(2)]
    [found] = run(rows, {"htex": HTEX})
    assert "to start its first workers (SlurmProvider)" in found.message
    assert "init_blocks" in found.setting
    local = {**HTEX, "provider": {"class": "LocalProvider"}}
    [found] = run(rows, {"htex": local})
    assert found.setting.startswith("nothing for long runs")


def test_steps_waiting_while_started_workers_sat_idle() -> None:
    """Two workers ran from t=0; a step handed over at t=1 started only at t=4."""
    rows = [row(start=0, wall=1.0, worker="worker-0"), row(start=0, wall=1.0, worker="worker-1"),
            row(launched=1, start=4, wall=1.0, worker="worker-0")]
    [found] = run(rows, {"htex": {**HTEX, "max_workers_per_node": 2}})
    assert "sat idle" in found.message and "min_blocks" in found.setting


def test_a_step_within_every_limit_gets_no_advice() -> None:
    assert run([row(), row(start=1.0, step="p.t", walltime_s=10)], {"htex": HTEX}) == []


THREADS = {"class": "ThreadPoolExecutor", "max_threads": 2}
LOCAL_HTEX = {"class": "HighThroughputExecutor", "provider": {"class": "LocalProvider"}}


@pytest.mark.parametrize("cpu, moved", [(1.9, True), (1.0, True), (0.1, False), (3.6, False)])
def test_steps_computing_on_threads_are_mapped_to_the_local_htex(cpu: float, moved: bool
                                                                 ) -> None:
    """Two calls side by side for 2 s on two threads: together about one CPU busy (the GIL)
    is a move; next to no CPU (they wait) or two CPUs (they let the GIL go) is not."""
    rows = [row(step="p.spin", executor="default", start=0, wall=2.0, cpu_s=cpu / 2,
                rss_of="process", worker=f"t{i}") for i in range(2)]
    found = [f for f in run(rows, {"default": THREADS, "htex": LOCAL_HTEX})
             if f.where[:2] == ("parsl", "executor_mapping")]
    assert [(f.where, f.value) for f in found] == (
        [(("parsl", "executor_mapping", "p.spin"), "htex")] if moved else [])
    assert not [f for f in run(rows, {"default": THREADS, "htex": HTEX})
                if f.where[:2] == ("parsl", "executor_mapping")]  # no local HTEX to map to
