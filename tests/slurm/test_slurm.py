"""HTEX on a live single-node Slurm cluster, configured from a q2pconf file."""
from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import tomli_w

from configs import config, htex, threads, tomllib
from configs import slurm as slurm_provider
from procs import TOKEN_VAR, new_token, tagged
from q2pconf.config import check
from slurm_cluster import SlurmCluster, drain, wait_for

pytestmark = pytest.mark.slurm

RESULT_TIMEOUT = 25
HTEX_PROCESSES = ("process_worker_pool", "interchange")


def write_config(directory: Path, launcher: str) -> Path:
    """An HTEX of one block of one node on the test cluster's debug partition."""
    path = directory / "qiime2_config.toml"
    path.write_text(config(
        threads("default", max_threads=2),
        htex("htex", max_workers_per_node=2, address="127.0.0.1", provider=slurm_provider(
            partition="debug", walltime="00:05:00", nodes_per_block=1, init_blocks=1,
            max_blocks=1, cmd_timeout=10, exclusive=False, worker_init="",
            launcher=launcher)),
        strategy="simple", strategy_period=1))
    return path


def htex_processes(token: str, work: Path) -> list[str]:
    """Command lines of this test's HTEX interchanges and worker pools: those carrying its
    token or working in its directory (procs.tagged; a Slurm job inherits both from sbatch),
    never another program's that happens to run at the same time."""
    found = []
    for proc in tagged(token, work):
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if any(name in cmdline for name in HTEX_PROCESSES):
            found.append(f"{proc.pid}: {cmdline[:160]}")
    return found


@pytest.fixture
def dfk_on(slurm: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Load a config file into Parsl; on the way out, clean up and check nothing is left."""
    import parsl

    # Workers unpickle the apps below by reference: let them import this module.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))
    token, work = new_token(), tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv(TOKEN_VAR, token)  # inherited by the interchange and the jobs
    monkeypatch.chdir(work)  # so is this: the interchange's own title blanks its environment
    loaded = []

    def load(path: Path):
        built = check(path).parsl_config(run_dir=str(tmp_path / "runinfo"))
        loaded.append(parsl.load(built))
        return loaded[-1]

    load.processes = lambda: htex_processes(token, work)  # type: ignore[attr-defined]
    yield load
    for dfk in loaded:
        dfk.cleanup()
    parsl.clear()
    assert wait_for(lambda: not slurm.jobs(), 15, 0.5), f"jobs left: {slurm.jobs()}"
    assert wait_for(lambda: not htex_processes(token, work), 10, 0.5), \
        htex_processes(token, work)


def slurm_job_id() -> str | None:
    import os

    return os.environ.get("SLURM_JOB_ID")


def interpreter() -> tuple[str, str | None]:
    import os
    import shutil
    import sys

    return sys.executable, shutil.which("process_worker_pool.py") or os.environ.get("PATH")


@pytest.mark.parametrize("launcher", ["SrunLauncher", "SingleNodeLauncher"])
def test_htex_steps_run_inside_slurm_jobs(dfk_on, tmp_path: Path, launcher: str):
    from parsl import python_app

    dfk_on(write_config(tmp_path, launcher))
    on_htex = python_app(slurm_job_id, executors=["htex"])()
    on_threads = python_app(slurm_job_id, executors=["default"])()
    job = on_htex.result(timeout=RESULT_TIMEOUT)
    assert job is not None and job.isdigit(), job
    assert on_threads.result(timeout=RESULT_TIMEOUT) is None
    # what the teardown's check looks for is found: it could see one left behind
    running = " ".join(dfk_on.processes())
    assert all(name in running for name in HTEX_PROCESSES), running


def test_workers_start_without_the_interpreter_on_path(
        dfk_on, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Batch jobs start in a login shell without the env activated: no entry points on PATH."""
    from parsl import python_app

    stripped = [d for d in os.environ["PATH"].split(os.pathsep)
                if d and not Path(d, "process_worker_pool.py").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(stripped))
    assert shutil.which("process_worker_pool.py") is None
    assert shutil.which("sbatch") is not None
    dfk_on(write_config(tmp_path, "SingleNodeLauncher"))
    executable, worker_path = python_app(interpreter, executors=["htex"])() \
        .result(timeout=RESULT_TIMEOUT)
    assert executable == sys.executable
    assert worker_path == os.environ["PATH"]  # the job saw the stripped PATH, no entry point


def test_slurm_template_starts_a_job_on_demand(dfk_on, slurm: SlurmCluster, tmp_path: Path):
    """The `init --template slurm` file, sized down to this node: no job until a step waits."""
    from parsl import python_app

    from q2pconf.config._templates import render

    path = tmp_path / "qiime2_config.toml"
    doc = tomllib.loads(render("slurm", path))
    [htex_table] = [e for e in doc["parsl"]["executors"] if e["label"] == "htex"]
    sizes = (doc["parsl"]["strategy_period"], htex_table["max_workers_per_node"],
             htex_table["provider"]["cores_per_node"])
    assert sizes == (5, 4, 4)
    doc["parsl"]["strategy_period"] = 1
    htex_table["max_workers_per_node"] = htex_table["provider"]["cores_per_node"] = 1
    path.write_text(tomli_w.dumps(doc))
    dfk_on(path)
    time.sleep(1.5)  # past a strategy tick with nothing waiting
    assert slurm.jobs() == []
    job = python_app(slurm_job_id, executors=["htex"])().result(timeout=RESULT_TIMEOUT)
    assert job is not None and job.isdigit()


def test_drain_cancels_jobs_left_behind(slurm: SlurmCluster):
    """What the fixture's teardown relies on: a job that would outlive the session is cancelled."""
    slurm.run("sbatch", "--wrap", "sleep 300", "--output", "/dev/null")
    assert wait_for(lambda: bool(slurm.jobs()), 5)
    drain(slurm, grace=0.5)
    assert slurm.jobs() == []
