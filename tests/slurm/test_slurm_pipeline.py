"""@parallel_pipeline on a live single-node Slurm cluster: steps mapped or hinted to `htex`
run inside a Slurm job, and no job or process outlives the pipeline, however it ends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import q2pconf
import slurm_steps as steps
from configs import config, htex, threads
from configs import slurm as slurm_provider
from conftest import require_tool
from procs import TOKEN_VAR, new_token, parsl_children, program_env, tagged, wait_gone, written
from q2pconf.pipeline import _session as sessions
from q2pconf.config import check
from q2pconf._base.errors import ConfigError
from slurm_cluster import SlurmCluster, drain, node_cpus, wait_for

pytestmark = pytest.mark.slurm

TESTS = Path(__file__).parents[1]
ROOT = TESTS.parent
JOB_GONE = 15.0  # seconds for squeue to forget a cancelled or finished job
CHILD_TIMEOUT = 35.0


def write_config(directory: Path, launcher: str = "SingleNodeLauncher",
                 cmd_timeout: int = 10) -> Path:
    """An HTEX of one block of one node on the test cluster's debug partition, which steps
    named `square` are mapped to."""
    path = directory / f"slurm-{launcher}.toml"
    path.write_text(config(
        threads("default", max_threads=4),
        htex("htex", max_workers_per_node=2, address="127.0.0.1", provider=slurm_provider(
            partition="debug", walltime="00:02:00", nodes_per_block=1, init_blocks=1,
            min_blocks=0, max_blocks=1, cmd_timeout=cmd_timeout, exclusive=False,
            launcher=launcher)),
        strategy="simple", strategy_period=0.5, mapping={"square": "htex"}))
    return path


def jobs_gone(slurm: SlurmCluster) -> bool:
    return wait_for(lambda: not slurm.jobs(), JOB_GONE, 0.3)


@pytest.fixture
def token(slurm: SlurmCluster, clean_env: Path, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A token in this process's environment (so in every interchange, sbatch and job it starts);
    afterwards nothing of this test may keep running."""
    sessions.close()
    value = new_token()
    monkeypatch.setenv(TOKEN_VAR, value)
    yield value
    sessions.close()
    # Leave a clean cluster for the next test even when this one failed.
    leftovers = [process.pid for process in tagged(value)]
    leftovers += [int(line.split(":")[0]) for line in in_directory(tmp_path)]
    for pid in leftovers:
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    drain(slurm, grace=0.5)


@pytest.mark.parametrize("launcher", ["SrunLauncher", "SingleNodeLauncher"])
def test_mapped_and_hinted_steps_run_in_a_slurm_job(
        token: str, slurm: SlurmCluster, tmp_path: Path, launcher: str) -> None:
    with q2pconf.ParallelConfig(write_config(tmp_path, launcher)):
        result = steps.fan_out(6)
    assert result["remote"] == [0, 1, 4, 27, 64, 125]
    assert result["local"] == [-1, -2]
    [job] = result["remote_jobs"]  # one block: every htex step ran in the same job
    assert job.isdigit(), result
    assert result["local_jobs"] == ["None"] and result["merge_job"] is None
    ran = {(record.name, record.executor) for record in steps.fan_out.history}
    assert ran == {("square", "htex"), ("cube", "htex"), ("negate", "default"),
                   ("merge", "default")}
    assert {record.state for record in steps.fan_out.history} == {"exec_done"}

    sessions.close()
    assert jobs_gone(slurm), f"jobs left after close(): {slurm.jobs()}"
    assert wait_gone(token, 10) == []
    assert parsl_children() == []


def child_env(tmp_path: Path, token: str, path: Path) -> dict[str, str]:
    """What a user's shell would give the program: the config via QIIME2_CONFIG, SLURM_CONF
    (exported by the `slurm` fixture)."""
    return program_env(tmp_path, token, path)


def start_child(tmp_path: Path, token: str, code: str,
                launcher: str = "SingleNodeLauncher") -> subprocess.Popen[str]:
    """`python -c code` with stdout and stderr in files: an orphan holding a pipe open would
    otherwise hide the real failure behind a read that never ends."""
    env = child_env(tmp_path, token, write_config(tmp_path, launcher))
    assert env["SLURM_CONF"]  # from the slurm fixture: sbatch and squeue need it
    with open(tmp_path / "child.out", "w") as out, open(tmp_path / "child.err", "w") as err:
        return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path,
                                stdout=out, stderr=err, text=True)


def finish(child: subprocess.Popen[str], directory: Path,
           timeout: float = CHILD_TIMEOUT) -> tuple[str, str]:
    """The stdout and stderr of a child `start_child(directory, ...)` began, once it exited."""
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()  # it hung: its exit status fails the test, and nothing keeps running
        child.wait(timeout=30)
    return (directory / "child.out").read_text(), (directory / "child.err").read_text()


def test_child_exiting_normally_leaves_no_job_or_process(token: str, slurm: SlurmCluster,
                                                         tmp_path: Path) -> None:
    child = start_child(tmp_path, token, "import slurm_steps as s; print(s.fan_out(4))")
    out, err = finish(child, tmp_path)
    assert child.returncode == 0, err
    assert "'remote': [0, 1, 8, 27]" in out and "'remote_jobs': ['" in out
    assert "'remote_jobs': ['None']" not in out
    assert "Python is exiting with a DFK still running" not in err
    assert jobs_gone(slurm), f"jobs left: {slurm.jobs()}"
    assert survivors(token, tmp_path) == []


def test_child_with_a_failing_htex_step_exits_1_and_cleans_up(token: str, slurm: SlurmCluster,
                                                              tmp_path: Path) -> None:
    child = start_child(tmp_path, token, "import slurm_steps as s; s.failing_on_htex()")
    _, err = finish(child, tmp_path)
    assert child.returncode == 1, err
    assert "KeyError: 'no such sample'" in err
    assert "q2pconf: in step slurm_steps.explode('no such sample') on executor 'htex'" in err
    assert jobs_gone(slurm), f"jobs left: {slurm.jobs()}"
    assert survivors(token, tmp_path) == []


@pytest.mark.parametrize("launcher", ["SrunLauncher", "SingleNodeLauncher"])
def test_sigterm_cancels_the_slurm_job_and_its_workers(
        token: str, slurm: SlurmCluster, tmp_path: Path, launcher: str) -> None:
    flag = tmp_path / "holding"
    child = start_child(tmp_path, token, f"import slurm_steps as s; s.held({str(flag)!r}, 300)",
                        launcher)
    if not wait_for(lambda: written(flag) or child.poll() is not None, CHILD_TIMEOUT, 0.1):
        pytest.fail(f"the htex step never started: {finish(child, tmp_path, 1)}")
    assert child.poll() is None, finish(child, tmp_path)
    pid_text, job = flag.read_text().split()
    worker = psutil.Process(int(pid_text))
    assert job in slurm.jobs()  # the step runs inside a live Slurm job
    # Slurm passes the submitting environment into the job (sbatch --export=ALL), so the
    # token reaches the workers and the leak check below sees processes inside the job too.
    assert worker.environ().get(TOKEN_VAR) == token
    assert worker.pid in {process.pid for process in tagged(token)}
    # The leak check below can see both ends: the interchange (in this child's directory) and
    # the worker (in the job, which runs in the directory it was submitted from).
    running = in_directory(tmp_path)
    assert any("interchange" in line for line in running), running
    assert any(line.startswith(f"{worker.pid}:") for line in running), running

    child.send_signal(signal.SIGTERM)
    finish(child, tmp_path)
    assert child.returncode == -signal.SIGTERM
    assert jobs_gone(slurm), f"jobs left: {slurm.jobs()}"
    assert survivors(token, tmp_path) == []
    assert not _alive(worker)


@pytest.mark.parametrize("launcher", ["SrunLauncher", "SingleNodeLauncher"])
def test_sigkill_of_the_program_ends_the_slurm_job_within_seconds(
        token: str, slurm: SlurmCluster, tmp_path: Path, launcher: str) -> None:
    """Nothing can clean up after SIGKILL (the OOM killer): the interchange's guard sees its
    program gone and ends it; each worker pool's guard then finds the interchange's port
    closed and ends the pool, and the job ends with it instead of holding its allocation
    until the walltime."""
    flag = tmp_path / "holding"
    child = start_child(tmp_path, token, f"import slurm_steps as s; s.held({str(flag)!r}, 300)",
                        launcher)
    if not wait_for(lambda: written(flag) or child.poll() is not None, CHILD_TIMEOUT, 0.1):
        pytest.fail(f"the htex step never started: {finish(child, tmp_path, 1)}")
    job = flag.read_text().split()[1]
    assert job in slurm.jobs()
    child.kill()
    child.wait(timeout=10)
    # 10 s of refused connections (q2pconf._parsl.guard's default) and the job's own teardown
    assert wait_for(lambda: job not in slurm.jobs(), 45, 0.5), f"jobs left: {slurm.jobs()}"
    assert survivors(token, tmp_path, timeout=20) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_while_the_block_is_queued_cancels_the_pending_job(
        token: str, slurm: SlurmCluster, tmp_path: Path, signum: int) -> None:
    """Ctrl-C or a kill while the htex job still waits for a free node: the job leaves the
    queue too, it does not start later with nobody to talk to."""
    blocker = slurm.run("sbatch", "--parsable", "-c", str(node_cpus()), "--output", "/dev/null",
                        "--wrap", "sleep 120").strip()
    try:
        child = start_child(tmp_path, token, "import q2pconf._base.notice, slurm_steps as s; "
                            "q2pconf._base.notice.AFTER = 1.0; "  # seconds before a wait says so
                            f"s.held({str(tmp_path / 'f')!r}, 300)")
        if not wait_for(lambda: len(slurm.jobs()) == 2 or child.poll() is not None,
                        CHILD_TIMEOUT, 0.2):
            pytest.fail(f"no job was submitted: {finish(child, tmp_path, 1)}")
        [queued] = [job for job in slurm.jobs() if job != blocker]
        assert slurm.run("squeue", "-h", "-j", queued, "-o", "%T").strip() == "PENDING"
        # the wait says so, once: nothing fails while a job is pending, but nothing is silent
        said = f"(job {queued}) is still pending in the Slurm queue (`squeue -j {queued}`"
        if not wait_for(lambda: said in (tmp_path / "child.err").read_text()
                        or child.poll() is not None, 30, 0.2):
            pytest.fail(f"the pending job was never mentioned: {finish(child, tmp_path, 1)}")
        child.send_signal(signum)
        _, err = finish(child, tmp_path)
        assert child.returncode == -signum, err
        assert err.count(said) == 1, err
        assert wait_for(lambda: queued not in slurm.jobs(), JOB_GONE, 0.3), slurm.jobs()
        assert slurm.jobs() == [blocker]  # cancelled by the child, not by this test
    finally:
        slurm.run("scancel", blocker)
    assert jobs_gone(slurm), f"jobs left: {slurm.jobs()}"
    assert survivors(token, tmp_path) == []


def test_unusable_slurm_commands_are_not_blamed_on_the_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SlurmProvider runs `sacct -X` when it is created; with a wrong SLURM_CONF the Slurm
    clients retry for a minute, so the provider fails although every key is right."""
    require_tool("sacct")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "no-such-slurm.conf"))
    path = write_config(tmp_path, cmd_timeout=1)
    with pytest.raises(ConfigError) as caught:
        check(path).executor("htex")
    assert caught.value.key == "parsl.executors[1].provider"
    assert "sacct -X" in caught.value.problem
    assert "compare the keys" not in caught.value.fix and "SLURM_CONF" in caught.value.fix


def test_amplicon_example_runs_its_heavy_steps_in_slurm(token: str, slurm: SlurmCluster,
                                                        tmp_path: Path) -> None:
    path = write_config(tmp_path)
    env = child_env(tmp_path, token, path)
    del env["QIIME2_CONFIG"]  # the --parallel-config option alone chooses the file
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "amplicon.py"),
                           "--samples", "4", "--depth", "300", "--no-serial",
                           "--parallel-config", str(path)],
                          env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < CHILD_TIMEOUT
    assert f"config: {path} (source: explicit)" in done.stdout
    ran = {tuple(line.split()[:3]) for line in done.stdout.splitlines()
           if len(line.split()) == 5}
    assert ("denoise", "4", "htex") in ran and ("classify", "1", "htex") in ran, done.stdout
    assert ("merge", "1", "default") in ran, done.stdout
    # The htex block was a Slurm job submitted by this run (its script is in the run's cache).
    assert _jobs_submitted_from(slurm, tmp_path / "cache"), slurm.run("scontrol", "-o",
                                                                      "show", "jobs")
    assert jobs_gone(slurm), f"jobs left: {slurm.jobs()}"
    assert survivors(token, tmp_path) == []


def _jobs_submitted_from(slurm: SlurmCluster, directory: Path) -> list[str]:
    """Ids of the jobs slurmctld still remembers whose batch script lies under `directory`."""
    found = []
    for line in slurm.run("scontrol", "-o", "show", "jobs").splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if fields.get("Command", "").startswith(f"{directory}{os.sep}"):
            found.append(fields["JobId"])
    return found


def survivors(token: str, directory: Path, timeout: float = 10.0) -> list[str]:
    """This test's processes still alive after `timeout` seconds: tagged with its token, or
    working in its directory."""
    wait_for(lambda: not tagged(token) and not in_directory(directory), timeout)
    return [f"{p.pid}: {' '.join(p.cmdline())[:120]}" for p in tagged(token)] + \
        in_directory(directory)


def in_directory(directory: Path) -> list[str]:
    """Live processes working in `directory`: a child's interchange and its Slurm job inherit the
    child's working directory. (The token check alone misses the interchange: setproctitle
    blanks its environment.)"""
    found = []
    for process in psutil.process_iter():
        try:
            if Path(process.cwd()).is_relative_to(directory) and _alive(process):
                found.append(f"{process.pid}: {' '.join(process.cmdline())[:120]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
            continue
    return found


def _alive(process: psutil.Process) -> bool:
    """Running, not just an unreaped zombie (this machine's init may not reap orphans)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
