"""Parsl's HTEX worker pool, started faster: its helper processes fork from a warm server.

`python -m q2pconf._parsl.pool parsl.executors.high_throughput.process_worker_pool ARGS` runs
Parsl's pool with ARGS (its name stays on the command line, where tools look for it), unchanged but
for one thing. Parsl's pool starts a multiprocessing manager and then one process per worker with
the "spawn" method: each is a new interpreter importing Parsl again, one after the other (~0.4 s
each on a small machine, the largest part of an HTEX's start-up). Here they come from a "forkserver"
started first, which imports the pool's module once, on another CPU while this process imports it
too; the manager and the workers are then forked from that clean, single-threaded server in
milliseconds. A forked worker is a child of the server, in the pool's process group: it watches the
pool's pid as Parsl's workers do, and goes with the block.
"""
from __future__ import annotations

import os
import runpy
import sys
import tempfile
import warnings
from typing import Any

from q2pconf._parsl.guard import SCRATCH_VAR

POOL = "parsl.executors.high_throughput.process_worker_pool"

# Each forked process runs the (preloaded) pool module again as its __mp_main__, which is
# intended; without this, runpy says so on the block's stderr once per process. This module is
# preloaded into the forkserver for this line.
warnings.filterwarnings("ignore", f"'{POOL}' found in sys.modules", RuntimeWarning)


def warm_context() -> object | None:
    """A forkserver context preloading the pool's module, its server already starting;
    None where there is no forkserver (the pool then spawns, as Parsl does)."""
    import multiprocessing

    try:
        context = multiprocessing.get_context("forkserver")
    except ValueError:
        return None
    context.set_forkserver_preload(["q2pconf._parsl.load", "q2pconf._parsl.pool", POOL])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return context


def no_probe_for_one_address() -> None:
    """Parsl 2024.12's pool probes the interchange's addresses even when it is given one, and
    that probe attaches its connection monitor only after connecting: when the connection is
    quicker, the event is missed and the pool exits 30 s later ("Failed to find a viable
    address to connect to interchange"). With one address there is nothing to choose: use it.
    Newer Parsl (its probe takes `timeout_ms`) is left as it is."""
    import inspect

    from parsl.executors.high_throughput import probe

    original = probe.probe_addresses
    if "timeout" not in inspect.signature(original).parameters:
        return

    def probe_addresses(addresses: list[str], task_port: int, timeout: int = 120) -> Any:
        if len(addresses) == 1:
            return addresses[0]
        return original(addresses, task_port, timeout=timeout)

    probe.probe_addresses = probe_addresses  # the pool module imports it by name below


def probe_without_the_managers_identity() -> None:
    """Newer Parsl's pool probes the interchange with the identity its manager then connects
    with. The interchange's ROUTER socket refuses a second connection under an identity still
    in use, so when a loaded interchange has not yet seen the probe's connection close, the
    manager's own connection is refused: it never registers and waits for ever (seen in CI:
    "Failed to connect to interchange", then nothing). The probe needs no identity (Parsl
    uses it only to log the probe): here it connects under one of its own. Checked against
    Parsl 2026.10; Parsl 2024.12's probe takes none."""
    import inspect

    from parsl.executors.high_throughput import probe

    original = probe.probe_addresses
    if "identity" not in inspect.signature(original).parameters:
        return

    def probe_addresses(*args: Any, identity: bytes | None = None, **kwargs: Any) -> Any:
        return original(*args, **kwargs)

    probe.probe_addresses = probe_addresses  # the pool module imports it by name below


def main() -> None:
    if sys.argv[1:2] != [POOL]:
        sys.exit(f"usage: python -m q2pconf._parsl.pool {POOL} ARGS")
    del sys.argv[1]
    import logging

    logging.raiseExceptions = False  # a full run directory: no traceback per record (typecache)
    scratch = os.environ.pop(SCRATCH_VAR, None)  # not for the workers or their steps
    if scratch:  # multiprocessing's sockets go where the guard removes them (see there)
        tempfile.tempdir = scratch
    # The server first: it imports Parsl on another CPU while this process does (below). The
    # probe patch imports Parsl; called before this, it made the two imports one after the
    # other (~0.4 s more to the first result).
    context = warm_context()
    import q2pconf._parsl.load  # noqa: F401 - Parsl, as every q2pconf process imports it
    no_probe_for_one_address()
    probe_without_the_managers_identity()
    if context is not None:
        import parsl.multiprocessing

        # The pool module reads this name when it is imported below.
        parsl.multiprocessing.SpawnContext = context  # type: ignore[assignment]
    runpy.run_module(POOL, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
