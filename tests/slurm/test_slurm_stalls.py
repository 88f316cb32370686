"""On the live single-node Slurm cluster: a block whose worker pool cannot start fails the
pipeline with the job's own stderr file and its last lines, and leaves no job or process."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from configs import config, htex, threads
from configs import slurm as slurm_provider
from procs import new_token, program_env, tagged
from slurm_cluster import SlurmCluster, drain, wait_for

pytestmark = pytest.mark.slurm

# Parsl polls Slurm's status once a minute (SlurmProvider). The waiting pipeline asks Slurm
# itself about a block still pending in Parsl's eyes after q2pconf._base.notice.AFTER seconds (here
# 3, not 60): it has left the queue, so Parsl polls at its next tick, sees the failed job and
# gives up on the executor. Its own once-a-minute poll stays the safety net.
CHILD_TIMEOUT = 150.0
REPORT = """\
import json, sys, time
import q2pconf, q2pconf._base.notice as notice, session_steps as s
notice.AFTER = 3.0  # seconds before a wait asks the batch system (and says so)
began = time.monotonic()
try:
    with q2pconf.ParallelConfig(sys.argv[1], mapping={"hold": "htex"}):
        s.held(sys.argv[2], sys.argv[3])
except Exception as error:
    print(json.dumps({"type": type(error).__name__, "message": str(error),
                      "seconds": time.monotonic() - began}), flush=True)
"""


# One block of one node on the test cluster's debug partition.
BLOCK = dict(partition="debug", walltime="00:05:00", nodes_per_block=1, init_blocks=1,
             max_blocks=1, cmd_timeout=10, exclusive=False, launcher="SingleNodeLauncher")


@pytest.mark.parametrize("executor,shown", [
    (htex("htex", max_workers_per_node=2, address="127.0.0.1", provider=slurm_provider(
        **BLOCK, worker_init="echo no module cuda >&2; exit 3")), "no module cuda"),
    (htex("htex", max_workers_per_node=2, address="127.0.0.1", provider=slurm_provider(**BLOCK),
          launch_cmd="/no/such/python -m parsl.executors.high_throughput.process_worker_pool"),
     "/no/such/python: No such file or directory"),
], ids=["worker_init", "no-interpreter"])
def test_a_slurm_block_that_cannot_start_names_its_stderr_file(
        slurm: SlurmCluster, clean_env: Path, tmp_path: Path, executor: dict[str, object],
        shown: str) -> None:
    path = tmp_path / "slurm.toml"
    path.write_text(config(threads("default", max_threads=2), executor, strategy="simple",
                           strategy_period=0.5))
    token, work = new_token(), tmp_path / "work"
    work.mkdir()
    try:
        child = subprocess.run(
            [sys.executable, "-c", REPORT, str(path), str(tmp_path / "started"),
             str(tmp_path / "flag")], cwd=work, capture_output=True, text=True,
            timeout=CHILD_TIMEOUT, env=program_env(tmp_path, token))
        assert child.returncode == 0, child.stderr
        assert wait_for(lambda: not slurm.jobs(), 15, 0.3), slurm.jobs()
        assert wait_for(lambda: not tagged(token, work), 15), tagged(token, work)
    finally:
        for process in tagged(token, work):
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        drain(slurm, grace=0.5)
    answer = json.loads(child.stdout)
    assert answer["type"] == "ExecutorFailed", answer
    message = answer["message"]
    assert "executor 'htex' could not start its worker pool" in message
    stderr = re.search(r"stderr: (\S+\.stderr), last lines:\n(.*)", message)
    assert stderr, message
    assert Path(stderr[1]).is_file() and shown in stderr[2]
