"""Steps and pipelines the Slurm pipeline tests run (importable by workers inside Slurm jobs)."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from q2pconf import parallel_pipeline, step


def _here(value: int) -> tuple[int, str | None, int]:
    return value, os.environ.get("SLURM_JOB_ID"), os.getpid()


@step
def square(i: int) -> tuple[int, str | None, int]:
    """Sent to `htex` by the config's `[parsl.executor_mapping]`, not by a hint."""
    return _here(i * i)


@step(executor="htex")
def cube(i: int) -> tuple[int, str | None, int]:
    """Sent to `htex` by its own hint."""
    return _here(i ** 3)


@parallel_pipeline
def cubes(n: int) -> list[tuple[int, str | None, int]]:
    """n `cube` steps on `htex`, nothing else."""
    return [cube(i) for i in range(n)]


@step
def negate(i: int) -> tuple[int, str | None, int]:
    """Left on `default` (threads in this process)."""
    return _here(-i)


@step
def merge(remote: list[tuple[int, str | None, int]],
          local: list[tuple[int, str | None, int]]) -> dict[str, object]:
    """Runs on `default` once every fan-out step is done."""
    return {"remote": [value for value, _, _ in remote],
            "local": [value for value, _, _ in local],
            "remote_jobs": sorted({str(job) for _, job, _ in remote}),
            "local_jobs": sorted({str(job) for _, job, _ in local}),
            "merge_job": os.environ.get("SLURM_JOB_ID")}


@parallel_pipeline
def fan_out(n: int) -> dict[str, object]:
    """n/2 mapped and n/2 hinted steps on `htex`, two on `default`, and a merge."""
    half = n // 2
    remote = [square(i) for i in range(half)] + [cube(i) for i in range(half, n)]
    return merge(remote, [negate(1), negate(2)])


@step(executor="htex")
def explode(sample: str) -> None:
    raise KeyError(sample)


@parallel_pipeline
def failing_on_htex() -> object:
    return [cube(2), explode("no such sample")]


@step(executor="htex")
def hold(flag: str, seconds: float) -> int:
    """Write this worker's pid and Slurm job id to `flag`, then sleep."""
    Path(flag).write_text(f"{os.getpid()} {os.environ.get('SLURM_JOB_ID')}")
    time.sleep(seconds)
    return os.getpid()


@parallel_pipeline
def held(flag: str, seconds: float) -> object:
    return [hold(flag, seconds), negate(3)]


@step(executor="htex")
def where(i: int, meeting: str, seconds: float = 0.0) -> dict[str, object]:
    """i*i and the host, Slurm job and node id it ran on. Each call waits (up to 60 s) until
    calls on two different hosts have started, so a fan-out provably uses both nodes."""
    host = socket.gethostname()
    Path(meeting, f"{host}-{i}").write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and \
            len({name.rsplit("-", 1)[0] for name in os.listdir(meeting)}) < 2:
        time.sleep(0.1)
    time.sleep(seconds)
    return {"value": i * i, "host": host, "job": os.environ.get("SLURM_JOB_ID"),
            "node": os.environ.get("SLURM_NODEID")}


@parallel_pipeline
def spread(n: int, meeting: str, seconds: float = 0.0) -> list[dict[str, object]]:
    """n `where` steps on `htex`."""
    Path(meeting).mkdir(exist_ok=True)
    return [where(i, meeting, seconds) for i in range(n)]


@step(executor="htex")
def nap(i: int, seconds: float) -> dict[str, object]:
    """Sleep `seconds`; the host and Slurm job it ran on."""
    time.sleep(seconds)
    return {"value": i, "host": socket.gethostname(), "job": os.environ.get("SLURM_JOB_ID")}


@parallel_pipeline
def naps(n: int, seconds: float) -> list[dict[str, object]]:
    """n `nap` steps on `htex`, at once."""
    return [nap(i, seconds) for i in range(n)]
