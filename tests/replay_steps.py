"""A pipeline the replay tests run: a fan-out, a merge the body waits for, a second fan-out
(importable by HTEX workers). The steps sleep: their times do not depend on the load."""
from __future__ import annotations

import time

from q2pconf import parallel_pipeline, step


@step
def first(index: int, seconds: float) -> int:
    time.sleep(seconds)
    return index


@step
def merge(values: list[int], seconds: float) -> int:
    time.sleep(seconds)
    return sum(values)


@step
def second(total: int, index: int, seconds: float) -> int:
    time.sleep(seconds)
    return total + index


@parallel_pipeline
def shaped(width: int, seconds: float) -> list[int]:
    total = merge([first(i, seconds) for i in range(width)], seconds)
    if total.result() < 0:  # the body waits for the merge: a wait the trace records
        return []
    return [second(total, i, seconds) for i in range(width)]
