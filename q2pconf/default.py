"""The vendored default config, sized to this machine, and seeding it safely into a prefix."""
from __future__ import annotations

import errno
import math
import os
import stat
from pathlib import Path
from typing import Any

CONFIG_NAME = "qiime2_config.toml"
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
    """Workers per executor in the vendored default: usable CPUs - 1, at least 1."""
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


def htex_worker_key() -> str:
    """The HTEX keyword for workers per node that the installed Parsl accepts."""
    from q2pconf import catalog

    params = catalog.parameters("executors", "HighThroughputExecutor")
    return "max_workers_per_node" if "max_workers_per_node" in params else "max_workers"


def vendored_dict(workers: int | None = None) -> dict[str, Any]:
    """The seed document's default as a TOML-shaped dict."""
    n = default_workers() if workers is None else workers
    return {"parsl": {"strategy": "None", "executors": [
        {"class": "ThreadPoolExecutor", "label": "default", "max_threads": n},
        {"class": "HighThroughputExecutor", "label": "htex", htex_worker_key(): n,
         "provider": {"class": "LocalProvider"}},
    ]}}


TEMPLATE = """\
# QIIME 2 / q2pconf parallel configuration, written by q2pconf for this machine
# ({cpus} usable CPUs, so {workers} workers per executor). Edit it freely: nothing
# overwrites it. Check an edit with:  q2pconf check "{path}"
# Which file is in use, and why:      q2pconf info

[parsl]
# "None": each executor keeps the workers it starts with (no scaling).
strategy = "None"

# Threads inside the pipeline's own process: steps that are not mapped elsewhere.
[[parsl.executors]]
class = "ThreadPoolExecutor"
label = "default"
max_threads = {workers}

# Worker processes on this machine, for CPU-heavy steps. q2pconf starts them only
# when a step is sent here.
[[parsl.executors]]
class = "HighThroughputExecutor"
label = "htex"
{worker_key} = {workers}

[parsl.executors.provider]
class = "LocalProvider"

# Send steps to an executor by name. QIIME 2's form is  plugin = {{action = "label"}};
# a plain  step = "label"  works too.
# [parsl.executor_mapping]
# dada2 = {{ denoise_single = "htex" }}
"""


def vendored_toml(path: str | os.PathLike[str] = CONFIG_NAME, workers: int | None = None) -> str:
    """The commented default, as written to disk."""
    n = default_workers() if workers is None else workers
    return TEMPLATE.format(cpus=usable_cpus(), workers=n, worker_key=htex_worker_key(),
                           path=path)


def write_new(path: Path, text: str, mode: int = 0o644) -> bool:
    """Create `path` holding `text`, atomically, only if nothing is there yet.

    The text goes to a temporary file in the same directory, which is then hard-linked to
    `path`: the link fails if anything (a file, a symlink) already exists, so a file is never
    truncated, a symlink never followed, and racing writers leave one complete file.
    Returns True if this call created the file, False if it was already there.
    Raises OSError when the directory cannot be written.
    """
    import tempfile

    _make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
            return _write_exclusive(path, text, mode)
        return True
    finally:
        os.unlink(tmp)


def _make_dirs(directory: Path) -> None:
    """Create `directory` and missing parents, never writable by group or others (even under
    umask 000: whoever can write there can replace the config, which runs shell commands).
    Existing directories, symlinked ones included, are used as they are."""
    if directory.is_dir():
        return
    if directory.parent != directory:
        _make_dirs(directory.parent)
    try:
        os.mkdir(directory)
    except FileExistsError:  # a racing writer made it, or it is not a directory (fails later)
        return
    os.chmod(directory, stat.S_IMODE(os.stat(directory).st_mode) & ~0o022)


# Filesystems without hard links (some FUSE and network mounts) answer with these.
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


def _write_exclusive(path: Path, text: str, mode: int) -> bool:
    """Fallback without hard links: O_EXCL create; remove the file if writing fails."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)  # os.open's mode was reduced by the umask
            handle.write(text)
    except BaseException:
        os.unlink(path)
        raise
    return True


def seed_prefix(prefix: str | os.PathLike[str]) -> tuple[Path, bool]:
    """Seed `prefix/etc/qiime2_config.toml` with the default; (path, written now).

    Beside a file it writes, it leaves `.qiime2_config.toml.sha256` (sha256sum's format), so
    an uninstall can tell an untouched seed (safe to remove) from a file the user edited.
    """
    import hashlib

    path = Path(prefix, "etc", CONFIG_NAME)
    text = vendored_toml(path)
    written = write_new(path, text)
    if written:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        stamp = path.with_name(f".{CONFIG_NAME}.sha256")
        try:
            stamp.unlink()
        except FileNotFoundError:
            pass
        write_new(stamp, f"{digest}  {CONFIG_NAME}\n")
    return path, written
