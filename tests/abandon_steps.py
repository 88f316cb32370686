"""Steps for tests/supervise/test_abandon.py (importable by workers through PYTHONPATH): each
leaves a
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
def after_the_run_failed(name: str) -> str:
    """Returns once this process has abandoned a run and its marker file exists, so the run
    has failed before this step's dependents launch, on a machine however busy (a fixed sleep
    was not enough: the HTEX may take longer to start than the sleep lasts)."""
    deadline = time.monotonic() + 120
    while not _marker_written() and time.monotonic() < deadline:
        time.sleep(0.05)
    _ran(name)
    return name


def _marker_written() -> bool:
    from q2pconf._supervise import abandon

    return any(os.path.exists(path) for path in list(abandon._ABANDONED))


@parallel_pipeline
def queued_behind_a_failure(n: int) -> list[str]:
    """One HTEX worker: the failing step first, then `n` slow steps queued behind it."""
    first = fail("failed")
    return [first] + [slow(f"queued-{i}") for i in range(n)]


@parallel_pipeline
def waiting_on_a_success() -> list[str]:
    """A step waiting for a thread step that succeeds once the run has failed (an HTEX step
    fails; the thread step finishes only after the run was abandoned)."""
    made = after_the_run_failed("input")
    return [slow("dependent", made), fail("failed")]


@parallel_pipeline
def one(name: str) -> str:
    return slow(name)
