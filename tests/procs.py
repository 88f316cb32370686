"""Process-tree checks: find every process a test started, even after it was orphaned."""
from __future__ import annotations

import os
import time
import uuid

import psutil

TOKEN_VAR = "Q2PCONF_TEST_TOKEN"


def new_token() -> str:
    return uuid.uuid4().hex


def tagged(token: str) -> list[psutil.Process]:
    """Live processes whose environment carries `token` (inherited by interchange and
    workers, so orphans reparented to init are found too)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid != os.getpid() and process.environ().get(TOKEN_VAR) == token:
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_gone(token: str, timeout: float = 20.0) -> list[str]:
    """Command lines of `token`'s processes still alive after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = tagged(token)
        if not alive or time.monotonic() > deadline:
            return [" ".join(_cmdline(p)) for p in alive]
        time.sleep(0.2)


def parsl_children() -> list[str]:
    """Interchange and worker pool processes below this process."""
    names = []
    for child in psutil.Process().children(recursive=True):
        text = " ".join(_cmdline(child))
        if "interchange" in text or "process_worker_pool" in text:
            names.append(text)
    return names


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ["<gone>"]
