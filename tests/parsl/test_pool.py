"""q2pconf._parsl.pool: Parsl's worker pool, with its helper processes forked from a warm server."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from configs import config, htex, local, threads
from procs import config_env, new_token, wait_gone

# Runs q2pconf._parsl.pool's main with real arguments; notes what is imported when the forkserver
# is asked to start, lets it start, and stops there (before the pool would connect).
ORDER = """
import json, sys
from multiprocessing import forkserver
from q2pconf._parsl import pool

real = forkserver.ensure_running

def noted():
    seen = {"parsl_imported": "parsl" in sys.modules}
    real()
    print(json.dumps(seen), flush=True)
    raise SystemExit(0)

forkserver.ensure_running = noted
sys.argv = ["q2pconf._parsl.pool", pool.POOL, "-a", "127.0.0.1", "--port=1", "--cert_dir", "None"]
pool.main()
"""


def test_the_forkserver_starts_before_the_pool_imports_parsl() -> None:
    """Both the pool and its forkserver import Parsl (~0.4 s each); started in this order the
    two imports run side by side on two CPUs instead of one after the other, which was most
    of what an HTEX's first result waited for beyond the interchange."""
    done = subprocess.run([sys.executable, "-c", ORDER], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"parsl_imported": False}


@pytest.mark.parametrize("length", ["short", "long"])
def test_a_pool_leaves_nothing_in_the_temporary_directory(tmp_path: Path, length: str) -> None:
    """multiprocessing's sockets (the forkserver's, the pool's manager's) live in a directory
    that only a clean exit removes, and a pool always ends by a signal: the guard gives the
    pool a directory of its own and removes it (one was left per block before). A TMPDIR too
    long for a socket's path is passed over for /tmp."""
    scratch = Path(tempfile.mkdtemp(prefix="q2t-")) if length == "short" else tmp_path / "t"
    scratch.mkdir(exist_ok=True)
    token = new_token()
    env = config_env(tmp_path, token, CONFIG, TMPDIR=str(scratch), ABANDON_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert wait_gone(token) == []
    try:
        assert sorted(p.name for p in scratch.iterdir()) == []
    finally:
        shutil.rmtree(scratch)


CONFIG = config(threads("default"), htex("htex", max_workers_per_node=2, provider=local()),
                strategy="none")
RUN = """\
from q2pconf import parallel_pipeline, step
import abandon_steps as steps
assert steps.one("x") == "x"
"""


PROBE = """
import inspect, json, threading, zmq
from q2pconf._parsl import pool
from parsl.executors.high_throughput import probe

context = zmq.Context()
router = context.socket(zmq.ROUTER)  # as the interchange's socket for managers
port = router.bind_to_random_port("tcp://127.0.0.1")
seen = []

def answer():
    identity, _ = router.recv_multipart()
    seen.append(identity.decode(errors="replace"))
    router.send_multipart([identity, b""])

threading.Thread(target=answer, daemon=True).start()
pool.probe_without_the_managers_identity()
if "identity" not in inspect.signature(probe.probe_addresses).parameters:
    print(json.dumps({"old": True}))  # a probe that takes no identity: nothing to change
else:
    url = probe.probe_addresses(context, {f"tcp://127.0.0.1:{port}"}, timeout_ms=20000,
                                identity=b"manager-1")
    print(json.dumps({"url": url, "port": port, "seen": seen}))
"""


def test_the_pools_probe_leaves_the_managers_identity_free() -> None:
    """The interchange refuses a connection under an identity still in use: the probe of the
    interchange's address must not take the identity the manager then connects with."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    if answer.get("old"):  # Parsl 2024.12: its probe connects under an identity of its own
        return
    assert answer["url"] == f"tcp://127.0.0.1:{answer['port']}"
    assert len(answer["seen"]) == 1 and answer["seen"] != ["manager-1"], answer
