"""Every block an executor launched is in Parsl's record of its blocks' states.

Parsl hook, checked against Parsl 2024.12.2 to 2026.10.26: a block executor keeps its blocks'
last known states in `_status`, which its `poll_facade` replaces with the provider's answer for
the blocks in `blocks_to_job_id`, and to which `scale_out_facade` adds each block it launches,
as pending. Parsl's strategy decides from `_status` whether to launch more blocks, and its
close cancels the blocks `_status` holds. q2pconf launches a config's first blocks from the
thread that starts the executor, while Parsl's poller thread may be polling: a poll that read
the blocks just before the launch and stores its answer just after leaves the new block out
until the next poll, seconds to a minute later. Meanwhile the strategy may launch another
block, and a run ending then left the block running (a pool stuck in its worker_init, a batch
job in the queue). Such a block is counted back in, as pending, after each poll
(q2pconf._observe.blocks wraps `poll_facade`) and before the close (q2pconf._supervise.closing).
"""
from __future__ import annotations

from typing import Any


def count_every_block(executor: Any) -> None:
    """Add each block `executor` launched but `_status` lacks, as pending (a poll's race)."""
    status = getattr(executor, "_status", None)
    if status is None:
        return
    missing = [block for block in list(getattr(executor, "blocks_to_job_id", None) or {})
               if block not in status]
    if not missing:
        return
    from parsl.jobs.states import JobState, JobStatus

    for block in missing:
        status.setdefault(block, JobStatus(JobState.PENDING))
