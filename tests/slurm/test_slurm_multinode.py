"""Pipelines across the nodes of a live three-host Slurm cluster (tests/slurm_cluster.py builds it
in network namespaces): one job on two nodes, workers that cannot reach the pipeline, a node lost
mid-run, the pipeline killed outright. The pipeline runs in a child process inside the
controller's namespace, as it would on a login node; afterwards no job and no process is left."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import tomli_w

from configs import tomllib
from procs import program_env, tagged, new_token, written
from slurm_cluster import (SlurmCluster, drain, kill_node, node_cpus, revive_dead_nodes,
                           wait_for)

pytestmark = pytest.mark.slurm_multinode

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "how-to" / "cluster.md").read_text()  # "Several nodes per job"
CHILD_TIMEOUT = 60.0
JOB_GONE = 15.0


def readme_example() -> str:
    """The docs' multi-node config (docs/how-to/cluster.md), exactly as printed there."""
    [text] = [block for block in re.findall(r"```toml\n(.*?)```", GUIDE, flags=re.S)
              if "nodes_per_block = 2" in block]
    return text


def readme_doc() -> dict[str, Any]:
    """The docs' multi-node config as a dict, for a test to change one key of."""
    return tomllib.loads(readme_example())


def htex_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The table of the executor labelled htex."""
    [table] = [e for e in doc["parsl"]["executors"] if e.get("label") == "htex"]
    return table


def write_config(directory: Path, config: str | dict[str, Any]) -> Path:
    """A config file: a text as it is, a dict written as TOML."""
    path = directory / "qiime2_config.toml"
    path.write_text(config if isinstance(config, str) else tomli_w.dumps(config))
    return path


@pytest.fixture
def token(multinode: SlurmCluster) -> Iterator[str]:
    """A token for this test's processes; afterwards the cluster is left empty even when the
    test failed (its own assertions say whether it was before this cleanup)."""
    value = new_token()
    yield value
    revive_dead_nodes(multinode)
    for line in multinode.strays():
        _kill(int(line.split(":")[0]))
    for process in tagged(value):
        _kill(process.pid)
    drain(multinode, grace=0.5)


def _kill(pid: int) -> None:
    try:
        psutil.Process(pid).kill()
    except psutil.NoSuchProcess:
        pass


def start(cluster: SlurmCluster, directory: Path, token: str, path: Path,
          code: str) -> subprocess.Popen[str]:
    """`python -c code` in the controller's namespace (as on a login node), with the config in
    QIIME2_CONFIG and SLURM_CONF exported; output in files under `directory`."""
    env = program_env(directory, token, path, **cluster.env)
    with open(directory / "out", "w") as out, open(directory / "err", "w") as err:
        return subprocess.Popen(cluster.command(sys.executable, "-c", code), env=env,
                                cwd=directory, stdout=out, stderr=err, text=True)


def finish(child: subprocess.Popen[str], directory: Path,
           timeout: float = CHILD_TIMEOUT) -> tuple[str, str]:
    """The child's stdout and stderr once it exited; a child still running after `timeout`
    is killed (its exit status then fails the test)."""
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=30)
    return (directory / "out").read_text(), (directory / "err").read_text()


def run(cluster: SlurmCluster, directory: Path, token: str, path: Path, code: str,
        timeout: float = CHILD_TIMEOUT) -> tuple[int, str, str]:
    child = start(cluster, directory, token, path, code)
    out, err = finish(child, directory, timeout)
    return child.returncode, out, err


def assert_clean(cluster: SlurmCluster, token: str) -> None:
    """No job in the queue, and no process left in the cluster or carrying the token."""
    assert wait_for(lambda: not cluster.jobs(), JOB_GONE, 0.3), f"jobs left: {cluster.jobs()}"
    assert wait_for(lambda: not cluster.strays() and not tagged(token), 10, 0.3), \
        cluster.strays() + [" ".join(p.cmdline()) for p in tagged(token)]


SPREAD = ("import slurm_steps as s, json; r = s.spread({n}, 'meeting', {seconds}); "
          "print(json.dumps(r)); print(json.dumps([(x.name, x.executor, x.state) "
          "for x in s.spread.history]))")


def spread(n: int, seconds: float = 0.0) -> str:
    return SPREAD.format(n=n, seconds=seconds)


def results(out: str) -> tuple[list[dict], list[list[str]]]:
    lines = out.strip().splitlines()
    return json.loads(lines[-2]), json.loads(lines[-1])


def test_readme_example_fans_out_over_two_nodes_in_one_job(
        multinode: SlurmCluster, tmp_path: Path, token: str) -> None:
    code, out, err = run(multinode, tmp_path, token, write_config(tmp_path, readme_example()),
                         spread(8))
    assert code == 0, err
    found, history = results(out)
    assert [row["value"] for row in found] == [i * i for i in range(8)]
    assert {row["host"] for row in found} == {"node1", "node2"}
    assert {row["node"] for row in found} == {"0", "1"}
    [job] = {row["job"] for row in found}  # one Slurm job held both nodes
    assert job.isdigit()
    assert history == [["where", "htex", "exec_done"]] * 8
    assert_clean(multinode, token)


def test_workers_reach_the_pipeline_without_an_address(
        multinode: SlurmCluster, tmp_path: Path, token: str) -> None:
    """Unset, Parsl offers every address of this host; the workers find the one that works."""
    doc = readme_doc()
    assert htex_of(doc).pop("address") == {"class": "address_by_interface", "ifname": "ib0"}
    code, out, err = run(multinode, tmp_path, token, write_config(tmp_path, doc), spread(4))
    assert code == 0, err
    found, _ = results(out)
    assert [row["value"] for row in found] == [0, 1, 4, 9]
    assert {row["host"] for row in found} == {"node1", "node2"}
    assert_clean(multinode, token)


def test_unreachable_address_fails_in_bounded_time_saying_how_to_fix_it(
        multinode: SlurmCluster, tmp_path: Path, token: str) -> None:
    """The interface named is one the nodes cannot reach (loopback): the job runs, no worker
    ever connects, and the pipeline says so after heartbeat_threshold seconds."""
    doc = readme_doc()
    assert htex_of(doc)["address"] == {"class": "address_by_interface", "ifname": "ib0"}
    htex_of(doc).update(address={"class": "address_by_interface", "ifname": "lo"},
                        heartbeat_threshold=15)
    path = write_config(tmp_path, doc)
    began = time.monotonic()
    # a wait that lasts says so once, before the failure (here after 3 s, not 60)
    code, _, err = run(multinode, tmp_path, token, path,
                       "import q2pconf._base.notice as notice; notice.AFTER = 3.0\n" + spread(2))
    took = time.monotonic() - began
    assert code == 1, err
    assert took < 55, f"took {took:.0f} s"
    assert err.count("none of its workers has reached this machine at 127.0.0.1") == 1, err
    assert err.index("has reached this machine") < err.index("no worker connected")
    assert "no worker connected" in err, err
    assert "127.0.0.1" in err and "address_by_interface" in err and str(path) in err, err
    assert "Traceback" not in err.split("no worker connected")[-1]
    assert_clean(multinode, token)


LOST_NODE = {"heartbeat_period": 1, "heartbeat_threshold": 12}


def lose_node_mid_run(cluster: SlurmCluster, directory: Path, token: str,
                      doc: dict[str, Any]) -> tuple[int, str, str]:
    """Run 6 steps of 4 s over both nodes; once steps run on both, kill everything on node2
    (its slurmd, the job's step and the workers), then bring its slurmd back after the
    pipeline ended (a job holding a dead node leaves the queue only when the node answers).
    The HTEX of `doc` gets LOST_NODE's heartbeat settings."""
    htex_of(doc).update(LOST_NODE)
    child = start(cluster, directory, token, write_config(directory, doc), spread(6, 4))
    meeting = directory / "meeting"
    both = wait_for(lambda: child.poll() is not None or len(
        {p.name.rsplit("-", 1)[0] for p in meeting.glob("*")}) == 2, CHILD_TIMEOUT, 0.1)
    assert both and child.poll() is None, finish(child, directory, 1)
    kill_node(cluster, "node2")
    out, err = finish(child, directory)
    revive_dead_nodes(cluster)
    return child.returncode, out, err


def test_steps_on_a_lost_node_run_again_on_the_other_with_retries(
        multinode: SlurmCluster, tmp_path: Path, token: str) -> None:
    doc = readme_doc()
    assert doc["parsl"]["retries"] == 1
    code, out, err = lose_node_mid_run(multinode, tmp_path, token, doc)
    assert code == 0, err
    found, history = results(out)
    assert [row["value"] for row in found] == [i * i for i in range(6)]
    lost = {int(p.name.rsplit("-", 1)[1]) for p in (tmp_path / "meeting").glob("node2-*")}
    assert lost, "no step ran on node2"
    assert {found[i]["host"] for i in lost} == {"node1"}, found  # each ran again on node1
    assert history == [["where", "htex", "exec_done"]] * 6
    assert_clean(multinode, token)


def test_a_lost_node_without_retries_fails_naming_the_node_and_the_step(
        multinode: SlurmCluster, tmp_path: Path, token: str) -> None:
    doc = readme_doc()
    assert doc["parsl"]["retries"] == 1
    doc["parsl"]["retries"] = 0
    began = time.monotonic()
    code, _, err = lose_node_mid_run(multinode, tmp_path, token, doc)
    assert code == 1, err
    assert time.monotonic() - began < CHILD_TIMEOUT
    assert "ManagerLost" in err and "node2" in err, err
    assert "q2pconf: in step slurm_steps.where(" in err, err
    assert_clean(multinode, token)


KILLED_JOB_GONE = 30.0  # "within seconds": the pools give up on a dead interchange after ~10 s;
#                         the example's walltime is 30 min


def test_killing_the_pipeline_ends_its_slurm_job_within_seconds(
        multinode: SlurmCluster, tmp_path: Path, token: str) -> None:
    """SIGKILL leaves the pipeline no chance to cancel its job: the worker pools must notice
    that the interchange is gone and end the job themselves."""
    child = start(multinode, tmp_path, token, write_config(tmp_path, readme_example()),
                  spread(4, 300))
    meeting = tmp_path / "meeting"
    both = wait_for(lambda: child.poll() is not None or len(
        {p.name.rsplit("-", 1)[0] for p in meeting.glob("*")}) == 2, CHILD_TIMEOUT, 0.1)
    assert both and child.poll() is None, finish(child, tmp_path, 1)
    [job] = multinode.jobs()
    child.kill()
    finish(child, tmp_path)
    assert wait_for(lambda: job not in multinode.jobs(), KILLED_JOB_GONE, 0.3), \
        f"job {job} still queued {KILLED_JOB_GONE:g} s after the pipeline was killed"
    assert_clean(multinode, token)


def edited(text: str, *changes: tuple[str, str]) -> str:
    """`text` with each (old, new) made; each old line must be there exactly once."""
    for old, new in changes:
        assert text.count(old) == 1, f"the template no longer says {old!r}"
        text = text.replace(old, new)
    return text


def slurm_template(directory: Path, token: str, *changes: tuple[str, str]) -> str:
    """`q2pconf init --template slurm`, changed only where its comments invite it: workers per
    node = the nodes' cores, a shorter strategy_period, and the address line uncommented (this
    cluster's interface is ib0, as in the comment); then `changes`."""
    done = subprocess.run([sys.executable, "-m", "q2pconf", "init", "--prefix", str(directory),
                           "--template", "slurm"], capture_output=True, text=True, timeout=30,
                          env=program_env(directory, token))
    assert done.returncode == 0, done.stderr
    cores = str(node_cpus())
    return edited((directory / "etc" / "qiime2_config.toml").read_text(),
                  ("max_workers_per_node = 4", f"max_workers_per_node = {cores}"),
                  ("cores_per_node = 4", f"cores_per_node = {cores}"),
                  ("strategy_period = 5", "strategy_period = 1"),
                  ('# address = { class = "address_by_interface", ifname = "ib0" }',
                   'address = { class = "address_by_interface", ifname = "ib0" }'), *changes)


def test_slurm_template_edited_where_its_comments_say_runs_on_both_nodes(
        multinode: SlurmCluster, tmp_path: Path, token: str) -> None:
    """The template as a user adapts it: one job per node, two jobs."""
    code, out, err = run(multinode, tmp_path, token,
                         write_config(tmp_path, slurm_template(tmp_path, token)), spread(8))
    assert code == 0, err
    found, history = results(out)
    assert [row["value"] for row in found] == [i * i for i in range(8)]
    assert {row["host"] for row in found} == {"node1", "node2"}
    assert len({row["job"] for row in found}) == 2  # nodes_per_block = 1: one job per node
    assert history == [["where", "htex", "exec_done"]] * 8
    assert_clean(multinode, token)


CUBES = "import slurm_steps as s, json; print(json.dumps(s.cubes({n})))"


@pytest.mark.parametrize("steps", [1, 3])
def test_slurm_template_submits_only_the_jobs_fewer_steps_than_workers_need(
        multinode: SlurmCluster, tmp_path: Path, token: str, steps: int) -> None:
    """Fewer steps than workers, and jobs whose workers connect later than strategy_period
    (a queue wait; here a slow worker_init). Under "htex_auto_scale" (the template before)
    Parsl cancelled each such job at its next look and submitted another: 28 jobs in 60 s
    for one step. Now one job per node's worth of steps, and the results."""
    text = slurm_template(tmp_path, token, ('worker_init = ""', 'worker_init = "sleep 3"'))
    before = len(multinode.submitted())
    code, out, err = run(multinode, tmp_path, token, write_config(tmp_path, text),
                         CUBES.format(n=steps))
    jobs = multinode.submitted()[before:]
    assert code == 0, f"{len(jobs)} jobs submitted\n{err}"
    assert 1 <= len(jobs) <= -(-steps // node_cpus()), f"{len(jobs)} jobs: {jobs}"
    found = json.loads(out.strip().splitlines()[-1])
    assert [value for value, _, _ in found] == [i ** 3 for i in range(steps)]
    assert {job for _, job, _ in found} <= set(jobs)
    assert_clean(multinode, token)


INNER_SESSION = '''
import json, os, time

def test_hold(multinode):
    record = {"daemons": [p.pid for p in multinode.procs.values()],
              "namespaces": list(multinode.namespaces), "dir": str(multinode.dir)}
    with open(os.environ["INNER_FLAG"], "w") as flag:
        json.dump(record, flag)
    time.sleep(120)
'''


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_an_interrupted_session_leaves_nothing_behind(
        multinode: SlurmCluster, tmp_path: Path, signum: int) -> None:
    """Another pytest session builds its own cluster, then is killed mid-test. On SIGTERM its
    fixture tears the cluster down; after SIGKILL the next cluster start removes the leftovers
    (its daemons, namespaces and directory)."""
    import netns
    from slurm_cluster import clean_leftovers

    (tmp_path / "test_inner.py").write_text(INNER_SESSION)
    flag = tmp_path / "flag.json"
    env = program_env(tmp_path, new_token(), INNER_FLAG=str(flag))
    inner = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "conftest",
                              "-p", "no:cacheprovider", str(tmp_path / "test_inner.py")],
                             cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: written(flag) or inner.poll() is not None, CHILD_TIMEOUT), \
            "the inner session never reached its test"
        made = json.loads(flag.read_text())
        assert set(made["namespaces"]) <= set(netns.existing())
        inner.send_signal(signum)  # the pytest process only: its daemons would live on
        inner.wait(timeout=CHILD_TIMEOUT)
    finally:
        if inner.poll() is None:
            inner.kill()
    if signum == signal.SIGKILL:
        clean_leftovers()
    assert not set(made["namespaces"]) & set(netns.existing())
    assert [pid for pid in made["daemons"] if psutil.pid_exists(pid) and
            psutil.Process(pid).status() != psutil.STATUS_ZOMBIE] == []
    assert not Path(made["dir"]).exists()
    assert multinode.node_states() == {"node1": "idle", "node2": "idle"}  # ours untouched


NAPS = ("import slurm_steps as s, json; r = s.naps({n}, {seconds}); print(json.dumps(r)); "
        "print(str(s.naps.trace_path).replace('.trace.tsv', '.run.json'))")


def tune_json(cluster: SlurmCluster, directory: Path, token: str, run_json: str) -> dict:
    """`q2pconf tune RUN --json` where Slurm can be asked (the controller's namespace)."""
    done = subprocess.run(cluster.command(sys.executable, "-m", "q2pconf", "tune", run_json,
                                          "-o", str(directory / "tuned.toml"), "--json"),
                          env=program_env(directory, token, **cluster.env),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.timing
def test_tune_gives_the_blocks_the_partition_holds_and_the_rerun_takes_its_prediction(
        multinode: SlurmCluster, tmp_path: Path, token: str) -> None:
    """Four 3 s steps on one block of one node with one worker: tune asks for as many blocks
    as the partition has nodes (two: sinfo says so; not the four the steps could use), all at
    the start (strategy "none"), and a rerun under its config takes within 20 % of the time
    it predicted."""
    doc = readme_doc()
    doc["parsl"].update(strategy="none")
    doc["parsl"].pop("max_idletime")
    htex_of(doc).update(max_workers_per_node=1)
    htex_of(doc)["provider"].update(nodes_per_block=1, init_blocks=1, max_blocks=1)
    poor = tmp_path / "poor"
    poor.mkdir()
    code, out, err = run(multinode, poor, token, write_config(poor, doc), NAPS.format(
        n=4, seconds=3.0), timeout=120)
    assert code == 0, err
    summary = tune_json(multinode, tmp_path, token, out.strip().splitlines()[-1])
    current, tuned = summary["current"], summary["tuned"]
    assert abs(current["predicted_s"] - current["measured_s"]) <= 0.15 * current["measured_s"]
    changes = {change["key"]: change["new"] for change in tuned["changes"]}
    assert changes == {"parsl.executors['htex'].provider.max_blocks": 2,
                       "parsl.executors['htex'].provider.init_blocks": 2}, summary
    assert [row["fits"] for row in summary["what_if"]] == [True, True, False, False]
    again = tmp_path / "again"
    again.mkdir()
    code, out, err = run(multinode, again, token, Path(tuned["config"]), NAPS.format(
        n=4, seconds=3.0), timeout=120)
    assert code == 0, err
    assert len({row["host"] for row in json.loads(out.strip().splitlines()[-2])}) == 2
    rerun = tune_json(multinode, again, token, out.strip().splitlines()[-1])["current"]
    print(f"poor {current}, tuned {tuned['predicted_s']}, rerun {rerun}")
    assert abs(tuned["predicted_s"] - rerun["measured_s"]) <= 0.2 * rerun["measured_s"]
    assert_clean(multinode, token)
