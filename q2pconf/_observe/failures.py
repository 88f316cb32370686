"""What failed in a run, read from its trace: the report shows it first.

A call failed when its last attempt's status is `failed`; the steps that never ran because of
it are the `cancelled` (the run ended first) and `dependency_failed` (an input failed) ones.
The trace keeps the error's type; its message comes from the run's events file
(q2pconf._observe.runfiles.error_messages), when the run was traced by a q2pconf that keeps it.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from q2pconf._observe.history import CANCELLED, DEPENDENCY, FAILED


@dataclass
class Failure:
    """One call whose last attempt failed, with all its attempts (oldest first)."""

    attempts: list[dict[str, str]]
    message: str | None = None  # what the last attempt's error said, when it was kept

    @property
    def last(self) -> dict[str, str]:
        return self.attempts[-1]


@dataclass
class Failures:
    """The run's failed calls, and the calls that never ran because of them, per step."""

    failed: list[Failure] = field(default_factory=list)
    cancelled: dict[str, int] = field(default_factory=dict)
    dependency: dict[str, int] = field(default_factory=dict)

    @property
    def unrun(self) -> int:
        return sum(self.cancelled.values()) + sum(self.dependency.values())


def attempts_by_call(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """Each call's attempts, oldest first."""
    calls: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        calls[row["call"]].append(row)
    for attempts in calls.values():
        attempts.sort(key=lambda row: int(row["attempt"]) if row["attempt"].isdigit() else 0)
    return calls


def failures(rows: list[dict[str, str]],
             messages: dict[tuple[str, str], tuple[str, str]] | None = None) -> Failures:
    """The failures of a run's trace rows (each failed attempt counts once in the header's and
    the table's `failed`; here each failed call is listed once, with its attempts), with what
    each said: `messages` by (call, attempt) as runfiles.error_messages gives them."""
    found = Failures()
    cancelled: dict[str, int] = defaultdict(int)
    dependency: dict[str, int] = defaultdict(int)
    for attempts in attempts_by_call(rows).values():
        status = attempts[-1]["status"]
        if status == FAILED:
            said = (messages or {}).get((attempts[-1]["call"], attempts[-1]["attempt"]))
            found.failed.append(Failure(attempts, None if said is None else said[1]))
        elif status == CANCELLED:
            cancelled[attempts[-1]["step"]] += 1
        elif status == DEPENDENCY:
            dependency[attempts[-1]["step"]] += 1
    found.failed.sort(key=lambda failure: failure.last["finished"])
    found.cancelled, found.dependency = dict(sorted(cancelled.items())), dict(
        sorted(dependency.items()))
    return found
