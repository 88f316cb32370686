"""Values of the right type that can never run a step are refused by `q2pconf check`, with the
file, the key path and a fix; values at the edge of what works still pass."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from configs import config, htex, local, slurm, threads
from q2pconf._catalog import accepted as catalog
from q2pconf.config import check
from q2pconf._base.errors import ConfigError

POOL = threads("default", max_threads=2)
CPUS = os.cpu_count() or 1  # as Parsl's worker pool counts them
MEMORY_GB = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "qiime2_config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        check(path)
    error = caught.value
    assert error.file == str(path) and error.fix
    return error


# (config text, key path of the error, a word the message must hold)
NEVER_RUNS = [
    (config(threads("default", max_threads=0)), "parsl.executors[0].max_threads", "at least 1"),
    (config(threads("default", max_threads=-3)), "parsl.executors[0].max_threads", "at least 1"),
    (config(POOL, htex("htex", max_workers_per_node=-1, provider=local()), strategy="none"),
     "parsl.executors[1].max_workers_per_node", "negative"),
    # the old name, translated to max_workers_per_node, is named as the file wrote it
    (config(POOL, htex("htex", max_workers=-2, provider=local()), strategy="none"),
     "parsl.executors[1].max_workers", "negative"),
    (config(POOL, htex("htex", max_workers_per_node=2, cores_per_worker=0, provider=local()),
            strategy="none"), "parsl.executors[1].cores_per_worker", "more than 0"),
    (config(POOL, htex("htex", max_workers_per_node=2, cores_per_worker=-0.5, provider=local()),
            strategy="none"), "parsl.executors[1].cores_per_worker", "more than 0"),
    (config(POOL, htex("htex", max_workers_per_node=2, mem_per_worker=-1, provider=local()),
            strategy="none"), "parsl.executors[1].mem_per_worker", "negative"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=local(max_blocks=0)),
            strategy="none"), "parsl.executors[1].provider.max_blocks", "for ever"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=local(nodes_per_block=0)),
            strategy="none"), "parsl.executors[1].provider.nodes_per_block", "without nodes"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=local(init_blocks=-1)),
            strategy="none"), "parsl.executors[1].provider.init_blocks", "negative"),
    (config(POOL, htex("htex", max_workers_per_node=2,
                       provider=local(min_blocks=3, max_blocks=2)), strategy="none"),
     "parsl.executors[1].provider.min_blocks", "max_blocks = 2"),
    (config(POOL, htex("htex", max_workers_per_node=2,
                       provider=local(init_blocks=4, max_blocks=2)), strategy="none"),
     "parsl.executors[1].provider.init_blocks", "max_blocks = 2"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=local(init_blocks=2)),
            strategy="none"), "parsl.executors[1].provider.init_blocks", "Parsl's default"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=local(parallelism=0)),
            strategy="none"), "parsl.executors[1].provider.parallelism", "no block starts"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=local(parallelism=2.5)),
            strategy="none"), "parsl.executors[1].provider.parallelism", "at most 1"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=local(cmd_timeout=0)),
            strategy="none"), "parsl.executors[1].provider.cmd_timeout", "time out"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=local(init_blocks=0)),
            strategy="None"), "parsl.executors[1].provider.init_blocks", "wait for ever"),
    (config(POOL, htex("htex", max_workers_per_node=2,
                       provider=local(init_blocks=0, min_blocks=0)), strategy="none"),
     "parsl.executors[1].provider.init_blocks", "strategy"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=local()), strategy="none",
            strategy_period=0), "parsl.strategy_period", "never pause"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=local()), strategy="none",
            usage_tracking=7), "parsl.usage_tracking", "0 to 3"),
    (config(POOL, htex("htex", max_workers_per_node=2, heartbeat_threshold=0, provider=local()),
            strategy="none"), "parsl.executors[1].heartbeat_threshold", "lost"),
    (config(POOL, htex("htex", max_workers_per_node=2, heartbeat_period=30,
                       heartbeat_threshold=10, provider=local()), strategy="none"),
     "parsl.executors[1].heartbeat_threshold", "between two heartbeats"),
    (config(POOL, htex("htex", max_workers_per_node=2, poll_period=-1, provider=local()),
            strategy="none"), "parsl.executors[1].poll_period", "0"),
    (config(POOL, htex("htex", max_workers_per_node=2, worker_port=70000, provider=local()),
            strategy="none"), "parsl.executors[1].worker_port", "65535"),
    (config(POOL, htex("htex", max_workers_per_node=2, worker_port_range=[55000, 54000],
                       provider=local()), strategy="none"),
     "parsl.executors[1].worker_port_range", "lower than"),
    (config(POOL, htex("htex", max_workers_per_node=2, interchange_port_range=[1, 2, 3],
                       provider=local()), strategy="none"),
     "parsl.executors[1].interchange_port_range", "two TCP ports"),
    (config(POOL, htex("htex", max_workers_per_node=2, interchange_port_range=[55000, 55002],
                       provider=local()), strategy="none"),
     "parsl.executors[1].interchange_port_range", "three ports"),
    (config(POOL, htex("htex", max_workers_per_node=2, worker_port_range=[54000, 54000.5],
                       provider=local()), strategy="none"),
     "parsl.executors[1].worker_port_range[1]", "whole number"),
    (config(POOL, htex("htex", max_workers_per_node=2, worker_ports=[54000, 54000],
                       provider=local()), strategy="none"),
     "parsl.executors[1].worker_ports", "two different"),
    (config(POOL, htex("htex", max_workers_per_node=2, address="localhost", provider=local()),
            strategy="none"), "parsl.executors[1].address", "not an IP address"),
    (config(POOL, htex("htex", max_workers_per_node=2, address="login-node.example.org",
                       provider=slurm()), strategy="none"),
     "parsl.executors[1].address", "no host names"),
    (config(POOL, htex("htex", max_workers_per_node=2, address="127.0.0.1 ", provider=local()),
            strategy="none"), "parsl.executors[1].address", "not an IP address"),
    (config(POOL, htex("htex", max_workers_per_node=2, address="192.0.2.1", provider=local()),
            strategy="none"), "parsl.executors[1].address", "not an address of this machine"),
    (config(POOL, htex("htex", max_workers_per_node=2, loopback_address="localhost",
                       provider=local()), strategy="none"),
     "parsl.executors[1].loopback_address", "not an IP address"),
    (config(POOL, htex("htex", max_workers_per_node=2, loopback_address="",
                       provider=local()), strategy="none"),
     "parsl.executors[1].loopback_address", "not an IP address"),
    (config(POOL, htex("htex", max_workers_per_node=2, loopback_address="192.0.2.1",
                       provider=local()), strategy="none"),
     "parsl.executors[1].loopback_address", "not an address of this machine"),
    (config(POOL, htex("htex", max_workers_per_node=2, cores_per_worker=CPUS + 1,
                       provider=local()), strategy="none"),
     "parsl.executors[1].cores_per_worker", "would start no worker"),
    (config(POOL, htex("htex", max_workers_per_node=2, mem_per_worker=MEMORY_GB * 2)),
     "parsl.executors[1].mem_per_worker", "would start no worker"),
    (config(POOL, htex("htex", max_workers_per_node=1, cpu_affinity="list:", provider=local()),
            strategy="none"), "parsl.executors[1].cpu_affinity", "not a group of CPU"),
    (config(POOL, htex("htex", max_workers_per_node=1, cpu_affinity="list:a,b",
                       provider=local()), strategy="none"),
     "parsl.executors[1].cpu_affinity", "not a group of CPU"),
    (config(POOL, htex("htex", max_workers_per_node=2, cpu_affinity="list:0:1:0",
                       provider=slurm()), strategy="none"),
     "parsl.executors[1].cpu_affinity", "more than max_workers_per_node = 2"),
    (config(POOL, htex("htex", max_workers_per_node=2, cores_per_worker=CPUS / 2,
                       cpu_affinity="list:0", provider=local()), strategy="none"),
     "parsl.executors[1].cpu_affinity", "1 group, but the local worker pool starts 2 workers"),
    (config(POOL, htex("htex", max_workers_per_node=1, cpu_affinity="list:99999",
                       provider=local()), strategy="none"),
     "parsl.executors[1].cpu_affinity", "holds no CPU"),
    (config(POOL, htex("htex", max_workers_per_node=CPUS * 2, cores_per_worker=0.5,
                       cpu_affinity="block", provider=local()), strategy="none"),
     "parsl.executors[1].cpu_affinity", f"with {CPUS * 2} workers on"),
    (config(POOL, htex("htex", max_workers_per_node=2, cores_per_worker=8,
                       provider=slurm(cores_per_node=4))),
     "parsl.executors[1].cores_per_worker", "no worker fits in a node"),
    (config(POOL, htex("htex", max_workers_per_node=2, mem_per_worker=4,
                       provider=slurm(mem_per_node=0))),
     "parsl.executors[1].mem_per_worker", "0 workers per node"),
    (config(POOL, htex("htex", max_workers_per_node=2, cpu_affinity="blocks", provider=local()),
            strategy="none"), "parsl.executors[1].cpu_affinity", "workers know"),
    (config(POOL, htex("htex", max_workers_per_node=2, prefetch_capacity=-1, provider=local()),
            strategy="none"), "parsl.executors[1].prefetch_capacity", "negative"),
    (config(POOL, htex("htex", max_workers_per_node=2, drain_period=0, provider=local()),
            strategy="none"), "parsl.executors[1].drain_period", "drain"),
    (config(POOL, htex("htex", max_workers_per_node=2, address_probe_timeout=-5,
                       provider=local()), strategy="none"),
     "parsl.executors[1].address_probe_timeout", "give up"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=local()), strategy="none",
            internal_tasks_max_threads=0), "parsl.internal_tasks_max_threads", "would not start"),
    (config(POOL, htex("htex", max_workers_per_node=2,
                       provider={"class": "PBSProProvider", "cpus_per_node": 0}),
            strategy="none"), "parsl.executors[1].provider.cpus_per_node", "without CPUs"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=slurm(status_batch_size=0)),
            strategy="none"), "parsl.executors[1].provider.status_batch_size", "status"),
]


HTEX_KEYS = catalog.parameters("executors", "HighThroughputExecutor")
# worker_port replaced worker_ports after Parsl 2024.12: a case only for a Parsl that has the key
NEVER_RUNS = [(text, key, word) for text, key, word in NEVER_RUNS
              if key.rpartition(".")[0] != "parsl.executors[1]"
              or key.rpartition(".")[2].partition("[")[0] in HTEX_KEYS]


@pytest.mark.parametrize("text, key, word", NEVER_RUNS,
                         ids=[case[1].rsplit(".", 1)[-1] + f"-{n}"
                              for n, case in enumerate(NEVER_RUNS)])
def test_a_value_that_can_never_run_is_refused(tmp_path, text, key, word):
    error = refused(tmp_path, text)
    assert error.key == key
    assert word in str(error)


@pytest.mark.parametrize("walltime, word", [
    ("2:00", "HH:MM:SS"), ("1-00:00:00", "HH:MM:SS"), ("01:75:00", "HH:MM:SS"),
    ("ten minutes", "HH:MM:SS"), ("00:00:30", "under a minute"), ("00:00:00", "under a minute"),
])
def test_a_walltime_parsl_cannot_read_or_run_is_refused(tmp_path, walltime, word):
    text = config(POOL, htex("htex", max_workers_per_node=2,
                             provider=slurm(partition="debug", walltime=walltime)),
                  strategy="none")
    error = refused(tmp_path, text)
    assert error.key == "parsl.executors[1].provider.walltime"
    assert word in error.problem
    assert "02:00:00" in error.fix


@pytest.mark.parametrize("executor", [
    # strategy simple starts blocks on demand
    htex("htex", max_workers_per_node=2, provider=local(init_blocks=0, max_blocks=2)),
    htex("htex", max_workers_per_node=2, provider=local(min_blocks=2, max_blocks=2,
                                                        init_blocks=2)),
    htex("htex", max_workers_per_node=2, provider=local(parallelism=0.25)),
    # oversubscription is allowed
    htex("htex", max_workers_per_node=2, cores_per_worker=0.5, provider=local()),
    htex("htex", max_workers_per_node=2, mem_per_worker=0, provider=local()),
    htex("htex", max_workers_per_node=2, cpu_affinity="list:0:1", provider=local()),
    htex("htex", max_workers_per_node=2, heartbeat_period=5, heartbeat_threshold=20,
         provider=local()),
    # plain text that stays on this machine
    htex("htex", max_workers_per_node=2, encrypted=False, address="127.0.0.1", provider=local()),
    # LocalProvider: q2pconf uses loopback
    htex("htex", max_workers_per_node=2, encrypted=False, provider=local()),
    # TOML arrays where Parsl wants tuples; three ports for the pipeline's three sockets
    htex("htex", max_workers_per_node=2, worker_port_range=[54000, 54002],
         interchange_port_range=[55000, 55003], provider=local()),
    # any loopback address, every address ("" is Parsl's probe of them all)
    htex("htex", max_workers_per_node=2, address="127.0.0.2", loopback_address="127.0.0.3",
         provider=local()),
    htex("htex", max_workers_per_node=2, address="0.0.0.0", provider=local()),
    htex("htex", max_workers_per_node=2, address="", provider=local()),
    # all of this machine's CPUs for one worker; a cluster's nodes are not this machine
    htex("htex", max_workers_per_node=1, cores_per_worker=CPUS, provider=local()),
    htex("htex", max_workers_per_node=1, cores_per_worker=CPUS * 16, mem_per_worker=MEMORY_GB * 4,
         provider=slurm(partition="debug")),
    htex("htex", max_workers_per_node=1, cores_per_worker=4, mem_per_worker=8,
         provider=slurm(partition="debug", cores_per_node=4, mem_per_node=8)),
])
def test_values_at_the_edge_of_what_works_pass(tmp_path, executor):
    settings = check(write(tmp_path, config(POOL, executor, strategy="simple")))
    settings.parsl_config()  # and Parsl builds it


def test_a_worker_port_range_holds_the_ports_the_interchange_binds(tmp_path):
    """Today's interchange binds one port for workers; Parsl 2024.12's two (tasks, results).
    Parsl binds in [first, second), so [54000, 54001] holds one port."""
    text = config(POOL, htex("htex", max_workers_per_node=2, worker_port_range=[54000, 54001],
                             provider=local()), strategy="none")
    if "worker_ports" in HTEX_KEYS:
        error = refused(tmp_path, text)
        assert error.key == "parsl.executors[1].worker_port_range"
        assert "two ports" in error.problem and "[54000, 55000]" in error.fix
    else:
        executor = check(write(tmp_path, text)).executor("htex")
        assert executor.worker_port_range == (54000, 54001)


@pytest.mark.parametrize("keys, key, word", [
    ({"checkpoint_mode": "periodic"}, "checkpoint_mode", "needs a checkpoint_period"),
    ({"checkpoint_mode": "periodic", "checkpoint_period": "10 minutes"}, "checkpoint_period",
     "HH:MM:SS"),
    ({"checkpoint_mode": "periodic", "checkpoint_period": "30:00"}, "checkpoint_period",
     "HH:MM:SS"),
    ({"checkpoint_mode": "periodic", "checkpoint_period": "00:00:00"}, "checkpoint_period",
     "without a pause"),
])
def test_a_checkpoint_period_parsl_cannot_read_is_refused(tmp_path, keys, key, word):
    """Old-style [parsl] keys: the error names the memoizer table on today's Parsl (where
    they moved), [parsl] itself on Parsl 2024.12."""
    error = refused(tmp_path, config(POOL, **keys))
    assert error.key in (f"parsl.{key}", f"parsl.memoizer.{key}")
    assert word in error.problem and "00:30:00" in error.fix


@pytest.mark.parametrize("mode, period", [("periodic", "00:30:00"), ("periodic", "1:00:00"),
                                          ("periodic", "0:90:0"), ("task_exit", "00:00:00"),
                                          ("dfk_exit", "every hour")])
def test_a_checkpoint_period_parsl_reads_or_ignores_passes(tmp_path, mode, period):
    """Only "periodic" reads the period."""
    text = config(POOL, checkpoint_mode=mode, checkpoint_period=period)
    check(write(tmp_path, text)).parsl_config()


def test_checkpoint_files_parsl_cannot_read_are_refused(tmp_path):
    """Parsl reads each directory's tasks.pkl at start; a missing one was a BadCheckpoint
    traceback from inside the run's start."""
    saved, empty = tmp_path / "runinfo" / "000" / "checkpoint", tmp_path / "empty"
    saved.mkdir(parents=True)
    empty.mkdir()
    (saved / "tasks.pkl").write_bytes(b"")  # Parsl reads an empty file as no tasks
    for directories, index in (([str(empty)], 0), ([str(saved), str(tmp_path / "gone")], 1)):
        error = refused(tmp_path, config(POOL, checkpoint_mode="task_exit",
                                         checkpoint_files=directories))
        assert error.key.endswith(f"checkpoint_files[{index}]")
        assert "tasks.pkl" in error.problem and "earlier run" in error.fix
    text = config(POOL, checkpoint_mode="task_exit", checkpoint_files=[str(saved)])
    check(write(tmp_path, text)).parsl_config()


def test_a_worker_port_in_use_here_is_refused(tmp_path):
    """The interchange died binding it, and the pipeline waited for ever."""
    key = "worker_port" if "worker_port" in HTEX_KEYS else "worker_ports"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        value = port if key == "worker_port" else [port, port + 1 if port < 65535 else port - 1]
        text = config(POOL, htex("htex", max_workers_per_node=2, provider=local(),
                                 **{key: value}), strategy="none")
        error = refused(tmp_path, text)
        assert error.key == f"parsl.executors[1].{key}"
        assert f"port {port} is in use" in error.problem and f"remove {key}" in error.fix
    check(write(tmp_path, text)).parsl_config()  # free again: it passes


def test_a_walltime_of_one_minute_and_all_the_node_s_memory_pass(tmp_path):
    text = config(POOL, htex("htex", max_workers_per_node=2, provider=slurm(
        partition="debug", walltime="00:01:00", mem_per_node=0)), strategy="none")
    assert check(write(tmp_path, text)).labels == ("default", "htex")


def test_an_empty_launch_command_still_launches_with_this_interpreter(tmp_path):
    """Parsl reads "" as its default command, which is not on PATH in an un-activated
    virtualenv: q2pconf's own command is used instead."""
    text = config(POOL, htex("htex", max_workers_per_node=2, launch_cmd="",
                             interchange_launch_cmd=[], provider=local()), strategy="none")
    executor = check(write(tmp_path, text)).executor("htex")
    assert executor.launch_cmd.startswith(sys.executable)
    assert executor.interchange_launch_cmd[0] == sys.executable


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.1.2.3"])
def test_unencrypted_traffic_beyond_this_machine_is_refused(tmp_path, address):
    text = config(POOL, htex("htex", max_workers_per_node=2, encrypted=False, address=address,
                             provider=local()), strategy="none")
    error = refused(tmp_path, text)
    assert error.key == "parsl.executors[1].encrypted"
    assert "pickle" in error.problem and "code" in error.problem
    assert "127.0.0.1" in error.fix


def test_unencrypted_on_a_cluster_without_address_is_refused(tmp_path):
    text = config(POOL, htex("htex", max_workers_per_node=2, encrypted=False,
                             provider=slurm(partition="debug")), strategy="none")
    error = refused(tmp_path, text)
    assert "every interface" in error.problem


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "q2pconf", *args], capture_output=True,
                          text=True, timeout=120)


def test_check_of_max_threads_zero_exits_2_with_one_message(tmp_path):
    """Today's failure: check said OK, the run died of a raw ValueError and an atexit
    traceback."""
    path = write(tmp_path, config(threads("default", max_threads=0)))
    done = run_cli("check", str(path))
    assert done.returncode == 2, done.stdout
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"{path}: parsl.executors[0].max_threads: is 0")


def test_zero_workers_per_node_is_one_per_core_in_the_summary(tmp_path):
    """Parsl reads max_workers_per_node = 0 as no cap (`0 or inf`): a worker per core."""
    path = write(tmp_path, config(POOL, htex("htex", max_workers_per_node=0, provider=local()),
                                  strategy="none"))
    done = run_cli("check", str(path))
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.strip().startswith("htex"))
    assert "workers: one per core" in line and "workers: 0" not in done.stdout
    executor = check(path).executor("htex")
    assert executor.max_workers_per_node == float("inf")  # what Parsl made of it


def test_the_summary_without_a_mapping_mentions_step_hints(tmp_path):
    text = config(POOL, htex("htex", max_workers_per_node=2, provider=local()), strategy="none")
    done = run_cli("check", str(write(tmp_path, text)))
    assert "every step runs on 'default'" not in done.stdout
    assert "@step(executor=...)" in done.stdout


# -- a setting in the wrong table ------------------------------------------------------------

@pytest.mark.parametrize("text, key, header", [
    (config(POOL, htex("htex", max_workers_per_node=2, init_blocks=2, provider=local()),
            strategy="none"), "parsl.executors[1].init_blocks", "[parsl.executors.provider]"),
    (config(POOL, htex("htex", max_workers_per_node=2, partition="short", provider=slurm()),
            strategy="none"), "parsl.executors[1].partition", "[parsl.executors.provider]"),
    (config(POOL, htex("htex", max_workers_per_node=2,
                       provider=local(max_workers_per_node=2)), strategy="none"),
     "parsl.executors[1].provider.max_workers_per_node", "[[parsl.executors]]"),
    (config(POOL, htex("htex", max_workers_per_node=2, provider=local()), strategy="none",
            max_threads=4), "parsl.max_threads", "[[parsl.executors]]"),
    (config(POOL, htex("htex", max_workers_per_node=2, strategy_period=1, provider=local()),
            strategy="none"), "parsl.executors[1].strategy_period", "[parsl]"),
])
def test_a_setting_in_the_wrong_table_is_told_where_it_belongs(tmp_path, text, key, header):
    error = refused(tmp_path, text)
    assert error.key == key
    assert error.problem.endswith(f"this belongs under {header}")
    assert error.fix.startswith("move it") and "did you mean" not in error.fix
    assert str(error).count(",") < 4  # not a list of the table's own keys


def test_a_misspelt_setting_still_gets_did_you_mean(tmp_path):
    error = refused(tmp_path, config(POOL, htex("htex", max_workers_per_node=2,
                                                provider=local(max_blocs=2)), strategy="none"))
    assert error.fix == "did you mean max_blocks?"
