"""Steps of a failed or interrupted pipeline run never start, wherever they wait.

Parsl cannot take back a task it has sent to an HTEX: it waits in the interchange or in a
worker's queue, and steps still waiting for their inputs are launched when those arrive. After
the run raised, they would all still run, results thrown away, and the next pipeline call in
the same program (a notebook, a loop over datasets) would queue behind them: minutes or hours
of nothing. So each step carries its run's marker, a path in the session's run directory
(which workers see: on a cluster it must be on a shared file system anyway). When the run
fails or is interrupted the marker is created, and a step that finds it skips its work and
raises `Abandoned` at once; Parsl does not retry it. A step already running runs to its end.

Imported on workers before every step: only the standard library.

    >>> run = Marker("/tmp/run/000")
    >>> skip_if_abandoned(run.path, remote=False)   # nothing happened: returns
    >>> run.abandon(); skip_if_abandoned(run.path, remote=False)
    Traceback (most recent call last):
    q2pconf._supervise.abandon.Abandoned: ...
"""
from __future__ import annotations

import itertools
import os

_ABANDONED: set[str] = set()  # markers of this process's abandoned runs (thread steps)
_NUMBERS = itertools.count()


class Abandoned(Exception):
    """A step that did not start: its pipeline run had already failed or been interrupted."""

    def __init__(self, marker: str = "") -> None:
        super().__init__(marker)
        self.marker = marker

    def __str__(self) -> str:
        return ("not started: an earlier step of this pipeline run failed, or the run was "
                "interrupted")


class Marker:
    """The marker of one pipeline run, under `run_dir`."""

    def __init__(self, run_dir: str) -> None:
        name = f"{os.getpid()}-{next(_NUMBERS)}-{os.urandom(4).hex()}"
        self.path = os.path.join(run_dir, "abandoned", name)

    def abandon(self) -> None:
        """Steps carrying this marker do not start from now on: in this process at once, on
        workers once the file exists (if it cannot be written, workers run what they hold)."""
        _ABANDONED.add(self.path)
        from q2pconf._base.paths import make_private_dirs

        try:
            make_private_dirs(os.path.dirname(self.path))
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError:
            pass  # a full or read-only disk: q2pconf._base.rundir has said so once already


def skip_if_abandoned(marker: str | None, remote: bool) -> None:
    """Raise Abandoned when the run `marker` names was abandoned. Where the step was pickled
    to (a worker), the file says so; in the pipeline's own process, the set does."""
    if marker is None:
        return
    if marker in _ABANDONED or (remote and os.path.exists(marker)):
        raise Abandoned(marker)
