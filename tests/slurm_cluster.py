"""A real single-node Slurm cluster (munged, slurmctld, slurmd) run from a temporary directory.

Nothing is installed: the Debian packages slurm-wlm and munge must be there (.ci/run installs
them). Without them the tests skip locally and fail under CI=true.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

import netns

TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "scancel")
NAMESPACE_TOOLS = ("ip", "nsenter", "unshare", "hostname", "umount")
START_TIMEOUT = 30.0
DRAIN_GRACE = 5.0
STOP_TIMEOUT = 10.0

SLURM_CONF = """\
ClusterName=q2ptest
SlurmctldHost={ctld_host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={dir}/munge.sock
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool{node_dir}
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd{node_suffix}.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd{node_suffix}.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
KillWait=5
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
SINGLE_NODE = "NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN"


@dataclass
class SlurmCluster:
    """A running cluster: its directory, its slurm.conf, and the environment its clients need.

    A multi-node cluster lives in network namespaces: `netns` is the controller's, where every
    client (squeue, sbatch, the pipeline itself) must run; `command()` puts a command there."""

    dir: Path
    conf: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    netns: str | None = None
    namespaces: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ("localhost",)

    def command(self, *argv: str) -> list[str]:
        """`argv` as run from the controller's network (unchanged on a single-node cluster)."""
        if self.netns is None:
            return list(argv)
        return ["nsenter", f"--net={netns.path(self.netns)}", *argv]

    def run(self, *command: str, timeout: float = 10.0) -> str:
        """Stdout of a Slurm client command (sinfo, squeue, ...) against this cluster."""
        done = subprocess.run(self.command(*command), capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **self.env})
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
        return done.stdout

    def jobs(self) -> list[str]:
        """Ids of the jobs still queued or running."""
        return self.run("squeue", "-h", "-o", "%i").split()

    def submitted(self) -> list[str]:
        """Ids of every job submitted to this cluster so far, from slurmctld's log (accounting
        is off, so sacct knows none): cancelled ones included."""
        log = (self.dir / "slurmctld.log").read_text(errors="replace")
        return re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", log)

    def node_states(self) -> dict[str, str]:
        """Each node's short state (idle, alloc, down*, ...)."""
        lines = self.run("sinfo", "-h", "-N", "-o", "%N %t", timeout=5).split("\n")
        return dict(line.split() for line in lines if line.strip())

    def strays(self) -> list[str]:
        """Processes inside this cluster's namespaces other than its daemons: what a test left
        behind (an interchange, a worker, a job step). Empty on a single-node cluster."""
        daemons = {proc.pid for proc in self.procs.values()}
        found = []
        for pid in sorted({pid for ns in self.namespaces for pid in netns.inside(ns)} - daemons):
            try:
                process = psutil.Process(pid)
                text = " ".join(process.cmdline())
                helper = process.ppid() in daemons and "slurmscriptd" in text  # slurmctld's own
                if process.status() != psutil.STATUS_ZOMBIE and not helper:
                    found.append(f"{pid}: {text[:120]}")
            except psutil.NoSuchProcess:
                continue
        return found

    def logs(self) -> str:
        parts = []
        for path in sorted(self.dir.glob("*.out")) + sorted(self.dir.glob("*.log")):
            text = path.read_text(errors="replace").strip()
            if text:
                parts.append(f"--- {path.name} (last lines) ---\n"
                             + "\n".join(text.splitlines()[-25:]))
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
    conf = _prepare(directory, ctld_host="localhost", ctld_port=free_port(),
                    slurmd_port=free_port(), node_dir="", node_suffix="",
                    nodes=SINGLE_NODE.format(cpus=node_cpus()))
    cluster = SlurmCluster(directory, conf, {"SLURM_CONF": str(conf)})
    return _boot(cluster, {"slurmctld": ["slurmctld", "-D", "-i"],
                           "slurmd": ["slurmd", "-D", "-N", "localhost"]})


def _prepare(directory: Path, **settings: object) -> Path:
    """The cluster's directories and slurm.conf (with `settings` filled in)."""
    directory.chmod(0o755)  # munged refuses a socket directory others cannot enter
    for sub in ("state", "spool"):
        (directory / sub).mkdir(exist_ok=True)
    conf = directory / "slurm.conf"
    conf.write_text(SLURM_CONF.format(dir=directory, **settings))
    return conf


def _boot(cluster: SlurmCluster, daemons: dict[str, list[str]]) -> SlurmCluster:
    """Start munged, then `daemons` (name: command); return once every node is idle."""
    directory = cluster.dir
    env = {**os.environ, **cluster.env}
    key = directory / "munge.key"
    try:
        subprocess.run(["mungekey", "-c", "-k", str(key)], check=True, capture_output=True,
                       timeout=START_TIMEOUT)
        cluster.procs["munged"] = _spawn(directory, "munged", [
            "munged", "--foreground", "--force", f"--socket={directory}/munge.sock",
            f"--key-file={key}", f"--pid-file={directory}/munged.pid",
            f"--log-file={directory}/munged.log", f"--seed-file={directory}/munged.seed"], env)
        if not wait_for(lambda: (directory / "munge.sock").exists(), START_TIMEOUT):
            raise TimeoutError("munged did not create its socket")
        for name, command in daemons.items():
            cluster.procs[name] = _spawn(directory, name, command, env)
        if not wait_for(lambda: _idle(cluster), START_TIMEOUT, 0.3):
            raise TimeoutError(f"the nodes are {_node_state(cluster)!r}, not idle, "
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
    """"idle" when every node is; else what sinfo says about them."""
    try:
        states = set(cluster.node_states().values())
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        return f"unknown ({error})"
    return " ".join(sorted(states)) or "no nodes"


def settle(cluster: SlurmCluster, timeout: float = START_TIMEOUT) -> bool:
    """Wait until the queue is empty and every node idle (a finished job's nodes are busy
    for a moment after it leaves the queue)."""
    return wait_for(lambda: not cluster.jobs() and _node_state(cluster) == "idle", timeout, 0.2)


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
    """Stop the slurmds, then slurmctld, then munged (slurmd retries for seconds without
    slurmctld); then remove the cluster's namespaces with whatever still runs in them."""
    order = sorted(cluster.procs, key=lambda name: ("slurmd", "slurmctld", "munged").index(
        name.split("-")[0]))
    for name in order:
        _stop_daemon(cluster.procs[name])
    for ns in cluster.namespaces:
        netns.delete(ns)
    if cluster.namespaces:
        ledger = _read_ledger(cluster.dir)
        netns.release_dir(ledger.get("made_netns_dir", False))


def _stop_daemon(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


# --- A three-host cluster (controller + two compute nodes) in network namespaces -------------
# Recipe: ../shared/notes/slurm-multinode.md. Each host is a network namespace with its own
# hostname (a UTS namespace per daemon); the controller's namespace holds a bridge named `ib0`
# (10.77.0.1), each node one veth end named `eth0` (10.77.0.11, .12). No route leads out of these
# namespaces, so nothing a test starts there can reach the real network.

MULTINODE_PREFIX = "q2p-slurm-mn-"
BRIDGE = "ib0"  # the interface the docs' example names: compute nodes reach the pipeline on it
CONTROLLER_IP = "10.77.0.1"
NODES = {"node1": "10.77.0.11", "node2": "10.77.0.12"}
MULTI_NODE = "NodeName={name} NodeAddr={ip} NodeHostname={name} CPUs={cpus} State=UNKNOWN"
HOSTNAME_THEN_EXEC = 'hostname "$0" && exec "$@"'


def in_host(ns: str, hostname: str, command: list[str]) -> list[str]:
    """`command` in network namespace `ns`, in a new UTS namespace named `hostname`. Every step
    execs, so the pid Popen sees is the command's own. (Not `ip netns exec`: it remounts /sys,
    which hides the cgroup tree slurmd needs.)"""
    return ["nsenter", f"--net={netns.path(ns)}", "unshare", "--uts", "sh", "-c",
            HOSTNAME_THEN_EXEC, hostname, *command]


def multinode_dir(owner: int | None = None) -> Path:
    return Path(tempfile.gettempdir(), f"{MULTINODE_PREFIX}{owner or os.getpid()}")


def start_multinode() -> SlurmCluster:
    """Build the namespaces and start munged, slurmctld and two slurmds; return once both
    nodes are idle. On failure everything made so far is removed."""
    clean_leftovers()
    directory = multinode_dir()
    if directory.exists():
        raise RuntimeError(f"{directory} exists: one multi-node cluster per process")
    directory.mkdir()
    ctl, *hosts = [netns.name(role) for role in ("ctl", "n1", "n2")]
    _write_ledger(directory, {"owner": os.getpid(),
                              "made_netns_dir": not netns.NETNS_DIR.exists()})
    cluster = SlurmCluster(directory, directory / "slurm.conf",
                           {"SLURM_CONF": str(directory / "slurm.conf")}, netns=ctl,
                           namespaces=(ctl, *hosts), nodes=tuple(NODES))
    try:
        _network(ctl, hosts)
        for node in NODES:
            (directory / "spool" / node).mkdir(parents=True)
        lines = [MULTI_NODE.format(name=node, ip=ip, cpus=node_cpus())
                 for node, ip in NODES.items()]
        _prepare(directory, ctld_host=f"ctl({CONTROLLER_IP})", ctld_port=6817,
                 slurmd_port=6818, node_dir="/%n", node_suffix="-%n", nodes="\n".join(lines))
    except Exception as error:
        stop(cluster)
        pytest.fail(f"could not build the test cluster's namespaces: {error}", pytrace=False)
    daemons = {"slurmctld": in_host(ctl, "ctl", ["slurmctld", "-D", "-i"])}
    for node, ns in zip(NODES, hosts):
        daemons[f"slurmd-{node}"] = in_host(ns, node, ["slurmd", "-D", "-N", node])
    return _boot(cluster, daemons)


def _network(ctl: str, hosts: list[str]) -> None:
    """The namespaces, the bridge in the controller's and one veth pair per node."""
    for ns in (ctl, *hosts):
        netns.add(ns)
    netns.ip("-n", ctl, "link", "add", BRIDGE, "type", "bridge")
    netns.ip("-n", ctl, "addr", "add", f"{CONTROLLER_IP}/24", "dev", BRIDGE)
    netns.ip("-n", ctl, "link", "set", BRIDGE, "up")
    for index, (ns, address) in enumerate(zip(hosts, NODES.values()), 1):
        # Created inside the namespaces: the root namespace never sees either end.
        netns.ip("-n", ctl, "link", "add", f"veth{index}", "type", "veth", "peer", "name",
                 "eth0", "netns", ns)
        netns.ip("-n", ctl, "link", "set", f"veth{index}", "master", BRIDGE, "up")
        netns.ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        netns.ip("-n", ns, "link", "set", "eth0", "up")


def set_link(cluster: SlurmCluster, node: str, up: bool) -> None:
    """Cut (or restore) `node`'s only link, on the controller's side."""
    index = list(NODES).index(node) + 1
    netns.ip("-n", cluster.netns or "", "link", "set", f"veth{index}", "up" if up else "down")


def kill_node(cluster: SlurmCluster, node: str) -> None:
    """Kill everything on `node`: its slurmd, job steps and workers."""
    netns.kill_inside(cluster.namespaces[1 + list(NODES).index(node)])
    cluster.procs[f"slurmd-{node}"].wait(timeout=STOP_TIMEOUT)


def revive_node(cluster: SlurmCluster, node: str) -> None:
    """Start `node`'s slurmd again and wait until Slurm calls every node idle (a job the dead
    node held ends only once its slurmd answers again)."""
    ns = cluster.namespaces[1 + list(NODES).index(node)]
    cluster.procs[f"slurmd-{node}"] = _spawn(
        cluster.dir, f"slurmd-{node}", in_host(ns, node, ["slurmd", "-D", "-N", node]),
        {**os.environ, **cluster.env})
    if not wait_for(lambda: _idle(cluster), START_TIMEOUT, 0.3):
        raise TimeoutError(f"after reviving {node} the nodes are {_node_state(cluster)!r}")


def revive_dead_nodes(cluster: SlurmCluster) -> None:
    """Start again every slurmd that is no longer running."""
    for node in cluster.nodes:
        proc = cluster.procs.get(f"slurmd-{node}")
        if proc is not None and proc.poll() is not None:
            revive_node(cluster, node)


def _write_ledger(directory: Path, record: dict[str, object]) -> None:
    (directory / "ledger.json").write_text(json.dumps(record))


def _read_ledger(directory: Path) -> dict[str, object]:
    try:
        return json.loads((directory / "ledger.json").read_text())
    except (OSError, ValueError):
        return {}


def clean_leftovers() -> None:
    """Remove what an interrupted earlier session (its owner process gone) left: daemons,
    namespaces, the /run/netns mount if it made it, and its directory."""
    owners = set(netns.orphaned())
    for path in Path(tempfile.gettempdir()).glob(f"{MULTINODE_PREFIX}*"):
        owner = path.name.removeprefix(MULTINODE_PREFIX)
        if owner.isdigit() and not psutil.pid_exists(int(owner)):
            owners.add(int(owner))
    for owner in owners:
        directory = multinode_dir(owner)
        _kill_munged(directory)
        for ns in netns.orphaned().get(owner, []):
            netns.delete(ns)
        netns.release_dir(bool(_read_ledger(directory).get("made_netns_dir")))
        shutil.rmtree(directory, ignore_errors=True)


def _kill_munged(directory: Path) -> None:
    """munged runs in the root namespace: find it by its pid file, check it is that one."""
    try:
        process = psutil.Process(int((directory / "munged.pid").read_text().split()[0]))
        if str(directory) in " ".join(process.cmdline()):
            process.kill()
    except (OSError, ValueError, IndexError, psutil.Error):
        pass


# --- Fixtures ---------------------------------------------------------------------------------

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


@pytest.fixture(scope="session")
def slurm_multinode_cluster() -> Iterator[SlurmCluster]:
    """A live three-host cluster in namespaces (partition `debug`: node1, node2), shared by the
    session. It is removed after the last test, at interpreter exit, and on SIGTERM, whatever
    comes first; a later session removes what a killed one left."""
    from conftest import IN_CI, require_tool

    if os.geteuid() != 0:  # only root may make network namespaces
        (pytest.fail if IN_CI else pytest.skip)("the multi-node Slurm cluster needs root")
    for tool in TOOLS + NAMESPACE_TOOLS:
        require_tool(tool)
    cluster = start_multinode()
    remove = _remover(cluster)
    atexit.register(remove)
    previous = signal.signal(signal.SIGTERM, functools.partial(_removed_on_signal, remove))
    try:
        yield cluster
    finally:
        signal.signal(signal.SIGTERM, previous)
        remove()
        atexit.unregister(remove)


def _remover(cluster: SlurmCluster):
    """A function that tears the cluster down once, however often it is called."""
    done: list[bool] = []

    def remove() -> None:
        if done:
            return
        done.append(True)
        try:
            drain(cluster)
        finally:
            stop(cluster)
            shutil.rmtree(cluster.dir, ignore_errors=True)
    return remove


def _removed_on_signal(remove, signum: int, frame: object) -> None:
    """SIGTERM (CI's timeout, say): tear down, then die of it as we would have."""
    remove()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@pytest.fixture
def multinode(slurm_multinode_cluster: SlurmCluster,
              monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The multi-node cluster, with SLURM_CONF exported for this test. Run its clients and the
    pipeline through `multinode.command(...)`, never directly: the root namespace has no route
    to the cluster."""
    for name, value in slurm_multinode_cluster.env.items():
        monkeypatch.setenv(name, value)
    return slurm_multinode_cluster
