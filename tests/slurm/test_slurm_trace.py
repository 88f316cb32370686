"""The trace of a pipeline on the live single-node Slurm cluster: steps on `htex` ran inside a
Slurm job, and their lines carry its id."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

import q2pconf
import slurm_steps as steps
from configs import config, htex, threads
from configs import slurm as slurm_provider
from procs import parsl_children
from q2pconf.pipeline import _session as sessions
from slurm_cluster import SlurmCluster, drain, wait_for

pytestmark = pytest.mark.slurm


def test_htex_steps_in_a_slurm_job_carry_its_id(slurm: SlurmCluster, clean_env: Path,
                                                tmp_path: Path) -> None:
    path = tmp_path / "slurm.toml"
    path.write_text(config(
        threads("default", max_threads=2),
        htex("htex", max_workers_per_node=2, address="127.0.0.1", provider=slurm_provider(
            partition="debug", walltime="00:02:00", nodes_per_block=1, init_blocks=1,
            min_blocks=0, max_blocks=1, cmd_timeout=10, exclusive=False,
            launcher="SingleNodeLauncher")),
        strategy="simple", strategy_period=0.5, mapping={"square": "htex"}))
    sessions.close()
    try:
        with q2pconf.ParallelConfig(path):
            result = steps.fan_out(4)
    finally:
        sessions.close()
        drain(slurm, grace=0.5)
    [job] = result["remote_jobs"]
    with open(steps.fan_out.trace_path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert {row["status"] for row in rows} == {"done"} and len(rows) == 7
    remote = [row for row in rows if row["executor"] == "htex"]
    local = [row for row in rows if row["executor"] == "default"]
    assert len(remote) == 4 and len(local) == 3
    assert {row["job"] for row in remote} == {job}, remote
    assert {row["job"] for row in local} == {"NA"}
    assert all(row["rss_of"] == "step" and row["worker"].startswith("worker-") for row in remote)
    assert wait_for(lambda: not slurm.jobs(), 15, 0.3), slurm.jobs()
    assert parsl_children() == []
