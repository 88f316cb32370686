"""How many CPUs this process may use, how many workers the vendored default gives each
executor, and the CPUs and memory of this machine as Parsl's worker pool counts them.

    >>> from q2pconf._base.cpus import usable_cpus, default_workers
    >>> usable_cpus() >= 1 and default_workers() == max(usable_cpus() - 1, 1)
    True
"""
from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = "/sys/fs/cgroup"


def usable_cpus(cgroup_root: str = CGROUP_ROOT, proc_cgroup: str = "/proc/self/cgroup") -> int:
    """CPUs this process may use: its CPU affinity, capped by a cgroup v1/v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def default_workers() -> int:
    """Workers per executor in the vendored default (the seed's rule, as QIIME 2 computes it):
    usable CPUs - 1, at least 1."""
    return max(usable_cpus() - 1, 1)


def cgroup_cpu_quota(cgroup_root: str = CGROUP_ROOT,
                     proc_cgroup: str = "/proc/self/cgroup") -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup and its ancestors, if any."""
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: one unified hierarchy
            limits += _quotas(Path(cgroup_root), path, _v2_quota)
        elif "cpu" in controllers.split(","):
            limits += _quotas(Path(cgroup_root, controllers), path, _v1_quota)
            limits += _quotas(Path(cgroup_root, "cpu"), path, _v1_quota)
    return min(limits) if limits else None


def _quotas(mount: Path, path: str, read) -> list[float]:
    """Quotas along `path` and its ancestors; in a container the path may be the mount itself."""
    found = []
    parts = [p for p in path.strip("/").split("/") if p]
    for depth in range(len(parts), -1, -1):
        quota = read(mount.joinpath(*parts[:depth]))
        if quota is not None:
            found.append(quota)
    return found


def _v2_quota(directory: Path) -> float | None:
    try:
        limit, period = (directory / "cpu.max").read_text().split()[:2]
        return None if limit == "max" else int(limit) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        limit = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
        return None if limit <= 0 or period <= 0 else limit / period
    except (OSError, ValueError):
        return None


def machine() -> tuple[float | None, float | None]:
    """CPUs and GB of memory as Parsl's worker pool counts them (PARSL_CORES and
    PARSL_MEMORY_GB win, as in the pool): os.cpu_count, not the affinity; total memory here,
    a bound on the available memory the pool divides. A run records them (run.json)."""
    try:
        cores = float(os.environ.get("PARSL_CORES") or os.cpu_count() or 0) or None
        memory = float(os.environ.get("PARSL_MEMORY_GB")
                       or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError, AttributeError):  # an odd variable, or no sysconf (Windows)
        return None, None
    return cores, memory
