"""Parsl's "htex_auto_scale" strategy cancels blocks that are still starting: warned at check.

At each strategy look (every `strategy_period` seconds) with steps waiting but fewer than the
worker slots of the blocks queued or running, and more blocks than min_blocks,
"htex_auto_scale" scales in (parsl/jobs/strategy.py, "case 4b"). HTEX's `scale_in` counts a
block with no connected worker as idle for ever (BlockInfo idle=inf), so such a block (a job
still queued, or whose workers still start) is cancelled whatever `max_idletime` says. Parsl
2024.12.2 asks for ceil(...) blocks, at least 1; later releases (Parsl PR #3721, the fix of
issue #3696 "Infinite loop of scaling in and out") round down to 0 in the usual case, and
`scale_in(0, max_idletime)` cancels every such block (its loop compares the count chosen with
the count asked for only after choosing one, so 0 never stops it). The step still waits, so
the next look submits a new job, again every period until a job connects within one.
Measured: 28 Slurm jobs in 60 s for one step (2026.10.26), 51 LocalProvider blocks in 30 s
(2024.12.2); see docs/how-to/cluster.md (use strategy "simple").

It cannot happen when a block has one worker slot (the blocks started never exceed the steps
waiting), or when max_blocks <= min_blocks (Parsl never scales in). On a batch scheduler a job
may wait in the queue for any time, so the warning stands whatever the period; workers on this
machine (LocalProvider) connect within seconds, so there only a shorter look is warned about.
"""
from __future__ import annotations

import math

from q2pconf.config._limits import effective, number

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from q2pconf.config._plan import ObjectSpec, Report

# Seconds worker pools on this machine may take to connect (more on a loaded machine).
LOCAL_START = 5.0
HTEX_CLASSES = ("HighThroughputExecutor", "MPIExecutor")


def warn(checker: Report, options: dict[str, Any], executors: dict[str, ObjectSpec]) -> None:
    """Warn, for each executor the trap applies to, with the fix."""
    if options.get("strategy") != "htex_auto_scale":
        return
    for label, spec in executors.items():
        provider = spec.kwargs.get("provider")
        if spec.cls not in HTEX_CLASSES or not hasattr(provider, "kwargs"):
            continue
        slots = _block_slots(spec, provider)
        if slots <= 1 or not _scales_in(provider) or not _slow_start(options, provider):
            continue
        checker.warn("parsl.strategy", _message(label, slots, options, provider))


def _block_slots(spec: ObjectSpec, provider: ObjectSpec) -> float:
    """Worker slots per block as HTEX counts them (infinite when unknown: one per core)."""
    from q2pconf._catalog import accepted as catalog

    if spec.cls == "MPIExecutor":
        workers = spec.kwargs.get("max_workers_per_block", 1)
        return workers if number(workers) else math.inf
    workers = spec.kwargs.get("max_workers_per_node", spec.kwargs.get("max_workers"))
    slots = workers if number(workers) and workers > 0 else math.inf
    cores = provider.kwargs.get("cores_per_node")
    per_worker = spec.kwargs.get("cores_per_worker", 1)
    if number(cores) and cores > 0 and number(per_worker) and per_worker > 0:
        slots = min(slots, math.floor(cores / per_worker))
    nodes = effective(provider.kwargs, catalog.parameters(provider.kind, provider.cls),
                      "nodes_per_block")
    return slots * (nodes if number(nodes) else 1)


def _scales_in(provider: ObjectSpec) -> bool:
    from q2pconf._catalog import accepted as catalog

    params = catalog.parameters(provider.kind, provider.cls)
    least, most = (effective(provider.kwargs, params, arg) for arg in ("min_blocks", "max_blocks"))
    return not (number(least) and number(most) and most <= least)


def _slow_start(options: dict[str, Any], provider: ObjectSpec) -> bool:
    """Whether a block may take longer than a strategy period to connect. Unset, the period is
    q2pconf's session default (q2pconf.pipeline._session.SESSION_DEFAULTS), well under a second."""
    period = options.get("strategy_period")
    return provider.cls != "LocalProvider" or not number(period) or period < LOCAL_START


def _message(label: str, slots: float, options: dict[str, Any], provider: ObjectSpec) -> str:
    period = options.get("strategy_period")
    every = f"every {period:g} s" if number(period) else "every strategy_period seconds"
    size = f"{slots:g}" if slots != math.inf else "one per core"
    where = "jobs" if provider.cls != "LocalProvider" else "blocks"
    return (f'"htex_auto_scale" cancels any {label!r} block whose workers have not connected '
            f"by its next look ({every}) while fewer steps wait than a block's workers "
            f"({size}), then submits another: {where} submitted and cancelled again and "
            'again while the steps wait. Fix: strategy = "simple" (blocks on demand, '
            "cancelled after max_idletime seconds without a waiting step)")
