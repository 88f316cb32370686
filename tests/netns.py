"""Network namespaces for the multi-node test cluster: made, listed and removed by name.

Every namespace this module makes is named `q2pmn-<owner pid>-<role>`, so two test sessions on
one machine never share one, and a later session can tell the leftovers of an interrupted one
(whose owner is dead) from those of a session still running. All links and addresses live inside
these namespaces; the root namespace gets none.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil

PREFIX = "q2pmn"
NETNS_DIR = Path("/run/netns")
TIMEOUT = 10.0
_OWNED = re.compile(rf"^{PREFIX}-(\d+)-")


def name(role: str, owner: int | None = None) -> str:
    """The namespace `role` of the session run by process `owner` (this one by default)."""
    return f"{PREFIX}-{owner if owner is not None else os.getpid()}-{role}"


def path(netns: str) -> str:
    return str(NETNS_DIR / netns)


def ip(*args: str) -> str:
    """`ip ARGS`, failing loudly (with ip's own message) when it does."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def existing() -> list[str]:
    """Every namespace `ip netns` knows, ours or not."""
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def add(netns: str) -> None:
    ip("netns", "add", netns)
    ip("-n", netns, "link", "set", "lo", "up")


def inside(netns: str) -> list[int]:
    """Pids of the processes whose network namespace is `netns`."""
    try:
        return [int(pid) for pid in ip("netns", "pids", netns).split()]
    except RuntimeError:
        return []  # already gone


def kill_inside(netns: str, timeout: float = TIMEOUT) -> None:
    """SIGKILL every process in `netns` and wait until they are gone (or zombies)."""
    pids = inside(netns)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.1)


def delete(netns: str) -> None:
    """Remove `netns` (its links go with it); a namespace already gone is fine."""
    if netns in existing():
        kill_inside(netns)
        ip("netns", "delete", netns)


def release_dir(made_it: bool) -> None:
    """Unmount /run/netns if we created it and no namespace is left in it (`ip netns add`
    mounts it on itself the first time)."""
    if not made_it or not NETNS_DIR.is_dir() or any(NETNS_DIR.iterdir()):
        return
    subprocess.run(["umount", str(NETNS_DIR)], capture_output=True, timeout=TIMEOUT)
    try:
        NETNS_DIR.rmdir()
    except OSError:
        pass


def orphaned() -> dict[int, list[str]]:
    """Our namespaces whose owner process is gone, by owner pid."""
    found: dict[int, list[str]] = {}
    for netns in existing():
        match = _OWNED.match(netns)
        if match and not _running(int(match.group(1))):
            found.setdefault(int(match.group(1)), []).append(netns)
    return found


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
