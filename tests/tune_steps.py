"""Steps for the tune tests (importable by HTEX workers): one that keeps a CPU busy in Python,
one that holds memory."""
from __future__ import annotations

import time

from q2pconf import parallel_pipeline, step


@step
def spin(index: int, seconds: float) -> int:
    """Python computing (holding the GIL) for `seconds` of this thread's CPU time."""
    end = time.thread_time() + seconds
    count = 0
    while time.thread_time() < end:
        count += 1
    return index


@parallel_pipeline
def spinning(width: int, seconds: float) -> list[int]:
    return [spin(i, seconds) for i in range(width)]


@step
def hold(mib: int) -> int:
    block = bytearray(mib * 2**20)
    for offset in range(0, len(block), 4096):  # touch every page: resident, not just reserved
        block[offset] = 1
    time.sleep(0.2)
    return len(block) // 2**20


@parallel_pipeline
def holding(mib: int) -> int:
    return hold(mib)
