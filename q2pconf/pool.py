"""Parsl's HTEX worker pool, started faster: its helper processes fork from a warm server.

`python -m q2pconf.pool parsl.executors.high_throughput.process_worker_pool ARGS` runs Parsl's
pool with ARGS (its name stays on the command line, where tools look for it), unchanged but
for one thing. Parsl's pool starts a multiprocessing manager and then one process
per worker with the "spawn" method: each is a new interpreter importing Parsl again, one after
the other (~0.4 s each on a small machine, the largest part of an HTEX's start-up). Here they
come from a "forkserver" started first, which imports the pool's module once, on another CPU
while this process imports it too; the manager and the workers are then forked from that clean,
single-threaded server in milliseconds. A forked worker is a child of the server, in the pool's
process group: it watches the pool's pid as Parsl's workers do, and goes with the block.
"""
from __future__ import annotations

import runpy
import sys
import warnings

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
    context.set_forkserver_preload(["q2pconf.pool", POOL])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return context


def main() -> None:
    if sys.argv[1:2] != [POOL]:
        sys.exit(f"usage: python -m q2pconf.pool {POOL} ARGS")
    del sys.argv[1]
    context = warm_context()
    if context is not None:
        import parsl.multiprocessing

        # The pool module reads this name when it is imported below.
        parsl.multiprocessing.SpawnContext = context  # type: ignore[assignment]
    runpy.run_module(POOL, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
