"""Parsl's lines about each task, kept out of parsl.log unless asked for.

Parsl's DataFlowKernel logs about 17 lines for every task it runs (submitted, its inputs
gathered, launched, each change of state, where its output goes, whether it is memoized), and
an HTEX 4 more (the task's arguments, each message to and from its interchange): about 3 KB a
task in the run directory's parsl.log. Formatting and writing them took about three quarters
of the CPU Parsl spent on each of 16,000 one-line thread steps (benchmarks/README.md).
q2pconf's trace keeps each step's life in one line of about 0.25 KB, so those lines are left
out; every other line of parsl.log stays (the DataFlowKernel's start and cleanup, executors
and their blocks, a failed attempt, warnings, errors and their tracebacks).
`Q2PCONF_PARSL_TASK_LOG=1` keeps Parsl's lines about each task.

Parsl hook, checked against Parsl 2024.12.2 to 2026.10.26: the per-task lines are those below
WARNING logged by the functions in `PER_TASK` on the module loggers named there (a filter on
each logger; a function Parsl renames is simply no longer left out). The variable is read when
a session starts.
"""
from __future__ import annotations

import logging
import os

PER_TASK = {
    "parsl.dataflow.dflow": frozenset({
        "submit", "_add_input_deps", "_add_output_deps", "_update_task_state",
        "_complete_task", "_launch_if_ready_async", "launch_if_ready", "launch_task",
        "log_std_stream", "_log_std_streams"}),
    "parsl.dataflow.memoization": frozenset({
        "make_hash", "check_memo", "update_memo", "_update_memo"}),
    "parsl.process_loggers": frozenset({"wrapped"}),  # "Normal ending for ..." of each launch
    # an HTEX's: each task's arguments, and each message to and from its interchange
    "parsl.executors.high_throughput.executor": frozenset({"submit"}),
    "parsl.executors.high_throughput.zmq_pipes": frozenset({"put", "get"}),
}
VARIABLE = "Q2PCONF_PARSL_TASK_LOG"


class _PerTask(logging.Filter):
    """Drops a logger's records below WARNING from the functions named (when on)."""

    def __init__(self, functions: frozenset[str]) -> None:
        super().__init__()
        self.functions = functions
        self.on = True

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.on and record.levelno < logging.WARNING
                    and record.funcName in self.functions)


_FILTERS: list[_PerTask] = []


def leave_out_per_task_lines() -> None:
    """Install the filters once per process; each call reads Q2PCONF_PARSL_TASK_LOG again."""
    if not _FILTERS:
        for name, functions in PER_TASK.items():
            each = _PerTask(functions)
            logging.getLogger(name).addFilter(each)
            _FILTERS.append(each)
    keep = os.environ.get(VARIABLE, "").strip() not in ("", "0")
    for each in _FILTERS:
        each.on = not keep
