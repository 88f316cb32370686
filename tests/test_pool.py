"""q2pconf.pool: Parsl's worker pool, with its helper processes forked from a warm server."""
from __future__ import annotations

import json
import subprocess
import sys

# Runs q2pconf.pool's main with real arguments; notes what is imported when the forkserver
# is asked to start, lets it start, and stops there (before the pool would connect).
ORDER = """
import json, sys
from multiprocessing import forkserver
from q2pconf import pool

real = forkserver.ensure_running

def noted():
    seen = {"parsl_imported": "parsl" in sys.modules}
    real()
    print(json.dumps(seen), flush=True)
    raise SystemExit(0)

forkserver.ensure_running = noted
sys.argv = ["q2pconf.pool", pool.POOL, "-a", "127.0.0.1", "--port=1", "--cert_dir", "None"]
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
