"""A real single-node Slurm cluster (munged, slurmctld, slurmd) run from a temporary directory.

Nothing is installed: the Debian packages slurm-wlm and munge must be there (.ci/run installs
them). Without them the tests skip locally and fail under CI=true.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "scancel")
START_TIMEOUT = 30.0
DRAIN_GRACE = 5.0
STOP_TIMEOUT = 10.0

SLURM_CONF = """\
ClusterName=q2ptest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={dir}/munge.sock
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class SlurmCluster:
    """A running cluster: its directory, its slurm.conf, and the environment its clients need."""

    dir: Path
    conf: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def run(self, *command: str, timeout: float = 10.0) -> str:
        """Stdout of a Slurm client command (sinfo, squeue, ...) against this cluster."""
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.env})
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
        return done.stdout

    def jobs(self) -> list[str]:
        """Ids of the jobs still queued or running."""
        return self.run("squeue", "-h", "-o", "%i").split()

    def logs(self) -> str:
        parts = []
        for name in ("munged.out", "munged.log", "slurmctld.out", "slurmctld.log",
                     "slurmd.out", "slurmd.log"):
            path = self.dir / name
            text = path.read_text(errors="replace").strip() if path.exists() else ""
            if text:
                parts.append(f"--- {name} (last lines) ---\n" + "\n".join(text.splitlines()[-25:]))
        return "\n".join(parts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_cpus() -> int:
    """CPUs this process may use; never more than the hardware slurmd will report."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def wait_for(condition, timeout: float, period: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(period)
    return condition()


def start(directory: Path) -> SlurmCluster:
    """Write the configs and start the three daemons; return once the node is idle."""
    directory.chmod(0o755)  # munged refuses a socket directory others cannot enter
    for sub in ("state", "spool"):
        (directory / sub).mkdir()
    conf = directory / "slurm.conf"
    conf.write_text(SLURM_CONF.format(dir=directory, ctld_port=free_port(),
                                      slurmd_port=free_port(), cpus=node_cpus()))
    cluster = SlurmCluster(directory, conf, {"SLURM_CONF": str(conf)})
    env = {**os.environ, **cluster.env}
    key = directory / "munge.key"
    subprocess.run(["mungekey", "-c", "-k", str(key)], check=True, capture_output=True)
    try:
        cluster.procs["munged"] = _spawn(directory, "munged", [
            "munged", "--foreground", "--force", f"--socket={directory}/munge.sock",
            f"--key-file={key}", f"--pid-file={directory}/munged.pid",
            f"--log-file={directory}/munged.log", f"--seed-file={directory}/munged.seed"], env)
        if not wait_for(lambda: (directory / "munge.sock").exists(), START_TIMEOUT):
            raise TimeoutError("munged did not create its socket")
        cluster.procs["slurmctld"] = _spawn(directory, "slurmctld", ["slurmctld", "-D", "-i"],
                                            env)
        cluster.procs["slurmd"] = _spawn(directory, "slurmd",
                                         ["slurmd", "-D", "-N", "localhost"], env)
        if not wait_for(lambda: _idle(cluster), START_TIMEOUT, 0.3):
            raise TimeoutError(f"the node is {_node_state(cluster)!r}, not idle, "
                               f"after {START_TIMEOUT:.0f} s")
    except Exception as error:
        exited = {name: p.poll() for name, p in cluster.procs.items() if p.poll() is not None}
        logs = cluster.logs()
        stop(cluster)
        pytest.fail(f"the test Slurm cluster did not start: {error}\n"
                    f"exited daemons (exit codes): {exited or 'none'}\n{logs}", pytrace=False)
    return cluster


def _spawn(directory: Path, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
    out = open(directory / f"{name}.out", "ab")
    try:
        return subprocess.Popen(command, cwd=directory, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        out.close()


def _idle(cluster: SlurmCluster) -> bool:
    dead = [name for name, proc in cluster.procs.items() if proc.poll() is not None]
    if dead:
        raise RuntimeError(f"{', '.join(dead)} exited")
    return _node_state(cluster) == "idle"


def _node_state(cluster: SlurmCluster) -> str:
    try:
        return cluster.run("sinfo", "-h", "-o", "%t", timeout=5).strip()
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"


def drain(cluster: SlurmCluster, grace: float = DRAIN_GRACE) -> None:
    """Let jobs end on their own for `grace` seconds, then cancel whatever is left."""
    def empty() -> bool:
        try:
            return not cluster.jobs()
        except (RuntimeError, subprocess.TimeoutExpired):
            return True  # the controller is gone: nothing to wait for
    if wait_for(empty, grace, 0.5):
        return
    try:
        cluster.run("scancel", *cluster.jobs())
    except (RuntimeError, subprocess.TimeoutExpired):
        return
    wait_for(empty, STOP_TIMEOUT, 0.5)


def stop(cluster: SlurmCluster) -> None:
    """Stop slurmd, then slurmctld, then munged (slurmd retries for seconds without slurmctld)."""
    for name in ("slurmd", "slurmctld", "munged"):
        proc = cluster.procs.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A live single-node cluster (partition `debug`), shared by the whole session."""
    from conftest import require_tool  # imported late: conftest imports this module

    for tool in TOOLS:
        require_tool(tool)
    directory = Path(tempfile.mkdtemp(prefix="q2p-slurm-"))
    try:
        cluster = start(directory)  # on failure, its message already holds the logs
        try:
            yield cluster
        finally:
            drain(cluster)
            stop(cluster)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The session's cluster, with SLURM_CONF exported for this test (Parsl calls sbatch)."""
    for name, value in slurm_cluster.env.items():
        monkeypatch.setenv(name, value)
    return slurm_cluster
