"""Steps for tests/test_abandon.py (importable by workers through PYTHONPATH): each leaves a
file named after its argument in $ABANDON_DIR when it runs, so the test sees what ran."""
from __future__ import annotations

import os
import time
from pathlib import Path

from q2pconf import parallel_pipeline, step


def _ran(name: str) -> None:
    Path(os.environ["ABANDON_DIR"], name).touch()


@step(executor="htex")
def fail(name: str) -> None:
    _ran(name)
    raise ValueError(f"{name} failed on purpose")


@step(executor="htex")
def slow(name: str, *after: object) -> str:
    _ran(name)
    time.sleep(1)
    return name


@step
def slow_thread(name: str, seconds: float) -> str:
    time.sleep(seconds)
    _ran(name)
    return name


@parallel_pipeline
def queued_behind_a_failure(n: int) -> list[str]:
    """One HTEX worker: the failing step first, then `n` slow steps queued behind it."""
    first = fail("failed")
    return [first] + [slow(f"queued-{i}") for i in range(n)]


@parallel_pipeline
def waiting_on_a_success() -> list[str]:
    """A step waiting for a slow thread step that succeeds, while an HTEX step fails (long
    before: the HTEX starts in about a second)."""
    made = slow_thread("input", 6)
    return [slow("dependent", made), fail("failed")]


@parallel_pipeline
def one(name: str) -> str:
    return slow(name)
