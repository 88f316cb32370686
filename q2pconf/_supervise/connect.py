"""Workers that never reach the pipeline: a block runs, but no worker pool ever connects.

On a cluster this is the first failure users meet: the HTEX's `address` (or every address
Parsl offers when it is unset) is not one the compute nodes can reach, so jobs start, their
workers give up (or wait), new jobs replace them, and no step ever starts. The rule: once
`heartbeat_threshold` seconds (the HTEX setting after which Parsl itself gives up on a silent
worker pool) have passed since a block of the executor was first seen running, and no worker
pool of that executor has ever registered, the pipeline fails with a message saying so and how
to set `address`. The clock is not reset when that block ends: workers that cannot connect
end their job, and the next one would start the wait again. Meanwhile, a wait that lasts
(q2pconf._base.notice.AFTER) is said once, with the same fix.

On this machine (a LocalProvider) the workers reach the interchange at 127.0.0.1, and q2pconf
sets `heartbeat_threshold` to a day (a paused laptop must not lose its workers): a worker pool
that has not connected after LOCAL_CONNECT_S awake seconds is stuck or failed, and the
pipeline fails then, naming the pool's output, instead of waiting a day.
"""
from __future__ import annotations

import time
from typing import Any

from q2pconf._base import notice
from q2pconf._supervise.interchange import interchange_alive
from q2pconf._base.errors import ExecutorFailed

CHECK_EVERY = 1.0  # seconds between looks at the interchange's managers
ASK_TIMEOUT = 10.0  # seconds an interchange has to answer; a dead one never does
POLL_EVERY = 2.0  # seconds between asking the batch system about the blocks (squeue, ...)
LOCAL_CONNECT_S = 120.0  # awake seconds a local worker pool may take to connect; read at
# each look, so a test's program may shorten it first


class WorkersUnreachable(ExecutorFailed):
    """An executor's blocks run, but none of their workers ever connected to the pipeline."""

    def __init__(self, label: str, problem: str, fix: str) -> None:
        super().__init__(label, f"has no worker connected: {problem}", "", fix)


class ConnectWatch:
    """Watches one HTEX until a worker pool has registered; after that it costs nothing."""

    def __init__(self, label: str, executor: Any, config_file: str | None) -> None:
        self.label = label
        self.executor = executor
        self.config_file = config_file
        self.reached = False
        self.first_running: tuple[str, float] | None = None  # a job id, when seen running
        self._awake = notice.Awake()
        self._awake_since = 0.0  # the awake clock when first_running was seen
        self._next_check = 0.0
        self._next_poll = 0.0
        self._quiet = notice.Quiet(self._waiting_text)

    def check(self, now: float | None = None) -> None:
        """Raise WorkersUnreachable when a block has run for the grace with no worker."""
        now = time.monotonic() if now is None else now
        if self.reached or now < self._next_check or not self._waiting():
            return
        self._next_check = now + CHECK_EVERY
        awake = self._awake.now()
        if _managers(self.executor):
            self.reached = True
            return
        if now >= self._next_poll:
            self._next_poll = now + POLL_EVERY
            self._note_running(now)
        if self.first_running is None:
            return
        job, since = self.first_running
        if now - since >= float(self.executor.heartbeat_threshold):
            raise WorkersUnreachable(self.label, self._problem(job, now - since), self._fix())
        if self._local() and awake - self._awake_since >= LOCAL_CONNECT_S:
            raise WorkersUnreachable(self.label, self._local_problem(awake - self._awake_since),
                                     self._local_fix())
        self._quiet.look(job)

    def _local(self) -> bool:
        return type(self.executor.provider).__name__ == "LocalProvider"

    def _local_problem(self, seconds: float) -> str:
        return (f"its worker pool on this machine started {seconds:.0f} s ago and never "
                f"connected to the interchange at {self._offered()}: the pool is stuck or "
                "failed as it started")

    def _local_fix(self) -> str:
        return (f"read the pool's output in {self._scripts()} (its .err file says why it did not "
                "start: a worker_init that does not return, an environment whose Python "
                "lacks Parsl), then run again")

    def _waiting(self) -> bool:
        """Steps wait on this executor, and its interchange is alive to be asked."""
        return bool(getattr(self.executor, "tasks", None)) and interchange_alive(self.executor)

    def _note_running(self, now: float) -> None:
        if self.first_running is not None:
            return
        jobs = [job for job in dict(self.executor.blocks_to_job_id).values() if job]
        if not jobs:
            return
        for job, status in zip(jobs, self.executor.provider.status(jobs)):
            if status.state.name == "RUNNING":
                self.first_running = (job, now)
                self._awake_since = self._awake.now()
                return

    def _problem(self, job: str, seconds: float) -> str:
        provider = type(self.executor.provider).__name__.replace("Provider", "")
        return (f"{provider} job {job} started {seconds:.0f} s ago "
                f"(heartbeat_threshold = {self.executor.heartbeat_threshold:g}), but none of "
                f"its workers reached this machine at {self._offered()}")

    def _waiting_text(self, seconds: float) -> str:
        job, _ = self.first_running or ("?", 0.0)
        provider = type(self.executor.provider).__name__.replace("Provider", "")
        return (f"executor {self.label!r}: {provider} job {job} has run {seconds:.0f} s, and "
                f"none of its workers has reached this machine at {self._offered()} yet. "
                "Workers still starting need nothing; if they cannot reach that address, the "
                f"run fails after heartbeat_threshold = {self.executor.heartbeat_threshold:g} "
                "s saying how to set `address` (Ctrl-C now ends it)")

    def _offered(self) -> str:
        address = getattr(self.executor, "address", None)
        if address:
            return f"{address} (the executor's address)"
        offered = sorted(getattr(self.executor, "all_addresses", ()) or ())
        return f"any of {', '.join(offered) or 'its addresses'} (address unset)"

    def _scripts(self) -> str:
        """Where the blocks' own output is: their submit scripts' directory."""
        return getattr(self.executor.provider, "script_dir", None) or \
            "the run directory's submit_scripts/"

    def _fix(self) -> str:
        where = f" in {self.config_file}" if self.config_file else ""
        scripts = self._scripts()
        return ("the compute nodes cannot reach that address. Set the address they reach"
                f"{where}, on the [[parsl.executors]] table labelled {self.label!r}: "
                'address = { class = "address_by_interface", ifname = "<interface>" } '
                "(`ip -brief addr` lists this machine's interfaces; the one on the cluster's "
                "network, often ib0 or eth0) or address = \"<IP>\". The workers' own output "
                f"is in {scripts}")


class ConnectWatches:
    """One ConnectWatch per HTEX a session has started, created as they appear."""

    def __init__(self, config_file: str | None) -> None:
        self.config_file = config_file
        self.watches: dict[str, ConnectWatch] = {}

    def check(self, executors: dict[str, Any]) -> None:
        for label, executor in list(executors.items()):
            if not hasattr(executor, "connected_managers") or \
                    getattr(executor, "provider", None) is None:
                continue  # a thread pool, or an executor without blocks
            watch = self.watches.get(label)
            if watch is None or watch.executor is not executor:
                watch = self.watches[label] = ConnectWatch(label, executor, self.config_file)
            watch.check()


def _managers(executor: Any) -> list[Any]:
    """The interchange's managers, or none when it does not answer in ASK_TIMEOUT seconds.
    The interchange can die between the liveness check and the question (its guard notices
    within a fraction of a second); Parsl's own call would then wait for ever."""
    try:
        return list(executor.command_client.run("MANAGERS", timeout_s=ASK_TIMEOUT))
    except Exception:  # timed out, or the client is closed or was broken by a timeout
        return []
