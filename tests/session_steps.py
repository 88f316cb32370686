"""Steps and pipelines the session-registry tests run (importable by HTEX workers)."""
from __future__ import annotations

import os
import time

from flags import write_flag
from q2pconf import parallel_pipeline, step


@step
def hold(started: str, flag: str, timeout: float = 60.0) -> bool:
    """Say it started (its pid in `started`), then wait up to `timeout` s for `flag`."""
    write_flag(started, str(os.getpid()))
    deadline = time.monotonic() + timeout
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.path.exists(flag)


@step
def double(value: int) -> int:
    return 2 * value


@parallel_pipeline
def held(started: str, flag: str) -> object:
    return hold(started, flag)


@parallel_pipeline
def doubled(n: int) -> object:
    return [double(i) for i in range(n)]


@parallel_pipeline(resume=True)
def doubled_resumable(n: int) -> object:
    return [double(i) for i in range(n)]
