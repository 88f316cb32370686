"""Notice while a pipeline waits that its steps can never run, and say why.

The rule: steps waiting on an executor with no block pending or running fail after a few
seconds when nothing can start one (strategy "none", max_blocks = 0), and after
Q2PCONF_STALL_TIMEOUT seconds (default 60) otherwise; Q2PCONF_STALL_TIMEOUT=0 turns these
checks off. An executor that Parsl gave up on (its blocks failed: `pool_failed` explains it)
has its tasks failed by Parsl itself; so has one whose interchange died (closing).
Only state Parsl keeps in this process is read (the executor's flags and block statuses):
nothing here sends a command to an interchange, which would block for ever if it is dead.

A pause is not a stall: the grace periods count only time this process was awake to look
(q2pconf._base.notice.Awake: Ctrl-Z then `fg`, a laptop's sleep), so a state seen just before a
pause does not fail the run the moment it goes on, before Parsl has polled its blocks again.
And a block Parsl has launched but whose status its last poll has not got yet counts as
pending (see `_statuses`).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from q2pconf._supervise import closing, interchange
from q2pconf._base.errors import ExecutorFailed
from q2pconf._base.notice import Awake, Quiet

STALL_VAR = "Q2PCONF_STALL_TIMEOUT"
DEFAULT_STALL = 60.0
SETTLE = 5.0  # seconds a certain stall must last: the strategy may not have started blocks yet
TAIL_LINES = 12
SHOWN_BLOCKS = 3
NO_STRATEGY = (None, "none")


@dataclass(frozen=True)
class Problem:
    """Why an executor cannot run its waiting steps, and how long that must last to count."""

    text: str
    fix: str
    grace: float


def stall_limit() -> float | None:
    """Seconds without any block before a pipeline fails ($Q2PCONF_STALL_TIMEOUT; 0: None,
    never)."""
    raw = os.environ.get(STALL_VAR, "").strip()
    if not raw:
        return DEFAULT_STALL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise ValueError(f"{STALL_VAR}={raw!r} is not a number of seconds: set it to a "
                         "positive number, 0 to wait for ever, or unset it for 60")
    return value or None


class Watchdog:
    """Asks, each time the waiting pipeline wakes, whether its executors can still run it."""

    def __init__(self, dfk: Any) -> None:
        self.dfk = dfk
        self.limit = stall_limit()
        self._since: dict[str, float] = {}
        self._clock = Awake()
        self._queued: dict[str, Quiet] = {}  # said once per executor: its blocks wait in a queue

    def check(self, waits_on: Callable[[str], bool]) -> None:
        """Raise ExecutorFailed when an executor this run `waits_on` has been unable to make
        progress for its problem's grace period."""
        # A dead interchange: its executor's tasks fail now, naming it (interchange.InterchangeDied)
        closing.check_interchanges(self.dfk)
        now = self._clock.now()
        for label, executor in list(self.dfk.executors.items()):
            problem = _problem(executor, self.dfk.config, self.limit)
            if problem is None:
                self._since.pop(label, None)
                self._look_queued(label, executor, waits_on)
                continue
            since = self._since.setdefault(label, now)
            if now - since >= problem.grace and waits_on(label):
                raise ExecutorFailed(label, problem.text, blocks_report(executor), problem.fix)

    def _look_queued(self, label: str, executor: Any, waits_on: Callable[[str], bool]) -> None:
        """Steps wait on an executor none of whose blocks runs yet, but one is pending (a batch
        queue: for hours, maybe): no failure, but said once (q2pconf._base.notice)."""
        quiet = self._queued.get(label)
        if quiet is None:
            quiet = self._queued[label] = Quiet(lambda s: _queued_text(label, executor, s))
        pending = _pending_only(executor)
        if pending is None or not waits_on(label):
            quiet.begin()
        elif quiet.due(pending) and _started(executor, pending[1]):
            quiet.said = True  # Parsl polls a batch system once a minute: it was behind
            _poll_soon(executor)
        else:
            quiet.look(pending)


def _pending_only(executor: Any) -> tuple[str, str] | None:
    """(block, job id) of the first pending block of an executor with tasks and no block
    running, or None."""
    if getattr(executor, "provider", None) is None or not executor.tasks:
        return None
    statuses = _statuses(executor)
    if any(s.state.name == "RUNNING" for s in statuses.values()):
        return None
    jobs = getattr(executor, "blocks_to_job_id", {})
    waiting = [(block, str(jobs.get(block, "?")))
               for block, status in statuses.items() if not status.terminal]
    return waiting[0] if waiting else None


def _started(executor: Any, job: str) -> bool:
    """Whether the batch system says `job` has left the queue (one question, asked once)."""
    try:
        [status] = executor.provider.status([job])
    except Exception:  # the batch system does not answer: what Parsl knows stands
        return False
    return status.state.name == "RUNNING" or status.terminal


def _poll_soon(executor: Any) -> None:
    """Have Parsl poll `executor`'s blocks at its next strategy tick, not up to its provider's
    polling interval later (a minute for Slurm): the batch system says a block Parsl still
    counts as pending has left the queue, so a block that ended before its workers connected
    fails the run now, through Parsl's own error handler (pool_failed then names its stderr).
    Parsl hook: BlockProviderExecutor.poll_facade polls when time.time() reaches
    _last_poll_time + status_polling_interval (Parsl 2024.12.2 to 2026.10.26): 0 is long ago."""
    if hasattr(executor, "_last_poll_time"):
        executor._last_poll_time = 0.0


def _queued_text(label: str, executor: Any, seconds: float) -> str:
    block, job = _pending_only(executor) or ("?", "?")
    queue = type(executor.provider).__name__.replace("Provider", "") or "batch"
    return (f"executor {label!r}: steps have waited {seconds:.0f} s for a block to start; "
            f"block {block} (job {job}) is still pending in the {queue} queue (`squeue -j "
            f"{job}` or the queue's own command says why). Nothing fails while it is pending; "
            "Ctrl-C ends the run and cancels the job")


def _problem(executor: Any, config: Any, limit: float | None) -> Problem | None:
    """What stops `executor` from running the tasks it holds, if anything."""
    provider = getattr(executor, "provider", None)
    if provider is None or not executor.tasks:  # a thread pool, or nothing waits on it
        return None
    if executor.bad_state_is_set:  # Parsl has failed its tasks itself (see pool_failed)
        return None
    if limit is None or any(not s.terminal for s in _statuses(executor).values()):
        return None  # a block is pending or running: it may yet run the steps
    why = _cannot_scale(config.strategy, provider)
    if why is not None:
        settle = max(SETTLE, 3 * float(getattr(config, "strategy_period", 1) or 1))
        return Problem(f"has no block pending or running, and {why}", BLOCKS_FIX,
                       min(settle, limit))
    return Problem(f"has had no block pending or running for {limit:g} s", BLOCKS_FIX, limit)


def _statuses(executor: Any) -> dict[str, Any]:
    """Parsl's last poll of `executor`'s blocks (`status_facade`), with each block it has
    launched since (`blocks_to_job_id`) that the poll has not got as pending. Parsl's poller
    thread replaces the whole dict each poll: one that read the blocks just before a launch
    and stored its answer just after drops the new block until its next poll (5 s later for a
    LocalProvider, longer for a batch system), while the block's pool runs."""
    from parsl.jobs.states import JobState, JobStatus

    found = dict(executor.status_facade)
    for block in list(getattr(executor, "blocks_to_job_id", {})):
        found.setdefault(block, JobStatus(JobState.PENDING))
    return found


def _cannot_scale(strategy: str | None, provider: Any) -> str | None:
    max_blocks = getattr(provider, "max_blocks", 1)
    if max_blocks <= 0:
        return f"max_blocks = {max_blocks} allows none"
    if strategy in NO_STRATEGY:
        return 'strategy "none" starts none after the first init_blocks'
    return None


POOL_FIX = ("the block's stderr above says why; check worker_init and launch_cmd under the "
            "executor's provider, and that the interpreter exists on the nodes")
BLOCKS_FIX = ('set init_blocks >= 1 (with strategy = "none"), or strategy = "simple" with '
              "max_blocks >= 1; on a cluster, check that jobs are accepted (sbatch, squeue). "
              f"{STALL_VAR} sets how long to wait (seconds; 0 waits for ever, as Parsl does)")


def pool_failed(executor: Any, label: str, error: BaseException) -> BaseException:
    """Parsl's BadStateException ("check the submit_scripts directory") as ExecutorFailed,
    naming each failed block's stderr file with its last lines, or the interchange that died."""
    if executor is None or getattr(executor, "provider", None) is None:
        return error
    cause = executor.executor_exception
    if isinstance(cause, interchange.InterchangeDied):
        failed = ExecutorFailed(label, f"lost its interchange: {cause}", "",
                                "see that log; run the pipeline again")
    elif type(cause).__name__ == "TooManyJobFailuresError":  # Parsl's block error handler
        failed = ExecutorFailed(label, "could not start its worker pool",
                                blocks_report(executor), POOL_FIX)
    else:
        return error
    failed.__cause__ = error
    return failed


# Parsl's terminal job states in words (HTEX calls a job that ended before any of its workers
# registered MISSING, whatever the batch system said).
ENDED = {"MISSING": "ended before its workers connected", "FAILED": "failed",
         "COMPLETED": "ended", "CANCELLED": "was cancelled", "TIMEOUT": "reached its walltime",
         "SCALED_IN": "was scaled in"}


def blocks_report(executor: Any) -> str:
    """The last failed blocks: job id, state, exit status, stderr file and its last lines."""
    jobs = getattr(executor, "blocks_to_job_id", {})
    failed = [(block, status) for block, status in executor.status_facade.items()
              if status.terminal]
    lines = []
    for block, status in failed[-SHOWN_BLOCKS:]:
        state = status.state.name
        text = f"  block {block} (job {jobs.get(block, '?')}) {ENDED.get(state, state)}"
        if status.exit_code is not None:
            text += f", exit status {status.exit_code}"
        lines.append(text)
        if status.stderr_path:  # Parsl's message would only say "see submit_scripts"
            lines += _stderr_lines(status.stderr_path)
        elif status.message:
            lines.append(f"    {status.message.strip().splitlines()[0]}")
    return "\n".join(lines)


def _stderr_lines(path: str) -> list[str]:
    tail = last_lines(path, TAIL_LINES)
    if tail is None:
        return [f"    stderr: {path} (cannot be read)"]
    if not tail:
        return [f"    stderr: {path} (empty)"]
    return [f"    stderr: {path}, last lines:", *(f"      {line}" for line in tail)]


def last_lines(path: str, count: int, limit: int = 8192) -> list[str] | None:
    """The last `count` lines of a file (reading at most its last `limit` bytes), or None."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - limit))
            data = handle.read(limit)
    except OSError:
        return None
    lines = data.decode("utf-8", "replace").splitlines()
    if size > limit and lines:
        lines = lines[1:]  # the first one is probably cut
    return [line[:300] for line in lines if line.strip()][-count:]
