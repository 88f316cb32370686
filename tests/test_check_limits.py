"""Values of the right type that can never run a step are refused by `q2pconf check`, with the
file, the key path and a fix; values at the edge of what works still pass."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from configs import two_executors
from q2pconf import catalog
from q2pconf.config import check
from q2pconf.errors import ConfigError

THREADS = '[[parsl.executors]]\nclass = "ThreadPoolExecutor"\nlabel = "default"\n'


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
    (THREADS + "max_threads = 0\n", "parsl.executors[0].max_threads", "at least 1"),
    (THREADS + "max_threads = -3\n", "parsl.executors[0].max_threads", "at least 1"),
    (two_executors(workers=-1), "parsl.executors[1].max_workers_per_node", "negative"),
    (two_executors(worker_key="max_workers", workers=-2),
     "parsl.executors[1].max_workers_per_node", "negative"),
    (two_executors(htex_extra="cores_per_worker = 0"), "parsl.executors[1].cores_per_worker",
     "more than 0"),
    (two_executors(htex_extra="cores_per_worker = -0.5"), "parsl.executors[1].cores_per_worker",
     "more than 0"),
    (two_executors(htex_extra="mem_per_worker = -1"), "parsl.executors[1].mem_per_worker",
     "negative"),
    (two_executors(extra="max_blocks = 0\n"), "parsl.executors[1].provider.max_blocks",
     "for ever"),
    (two_executors(extra="nodes_per_block = 0\n"), "parsl.executors[1].provider.nodes_per_block",
     "without nodes"),
    (two_executors(extra="init_blocks = -1\n"), "parsl.executors[1].provider.init_blocks",
     "negative"),
    (two_executors(extra="min_blocks = 3\nmax_blocks = 2\n"),
     "parsl.executors[1].provider.min_blocks", "max_blocks = 2"),
    (two_executors(extra="init_blocks = 4\nmax_blocks = 2\n"),
     "parsl.executors[1].provider.init_blocks", "max_blocks = 2"),
    (two_executors(extra="init_blocks = 2\n"), "parsl.executors[1].provider.init_blocks",
     "Parsl's default"),
    (two_executors(extra="parallelism = 0\n"), "parsl.executors[1].provider.parallelism",
     "no block starts"),
    (two_executors(extra="parallelism = 2.5\n"), "parsl.executors[1].provider.parallelism",
     "at most 1"),
    (two_executors(extra="cmd_timeout = 0\n"), "parsl.executors[1].provider.cmd_timeout",
     "time out"),
    (two_executors(strategy="None", extra="init_blocks = 0\n"),
     "parsl.executors[1].provider.init_blocks", "wait for ever"),
    (two_executors(strategy="none", extra="init_blocks = 0\nmin_blocks = 0\n"),
     "parsl.executors[1].provider.init_blocks", "strategy"),
    (two_executors(parsl_extra="strategy_period = 0"), "parsl.strategy_period", "never pause"),
    (two_executors(parsl_extra="usage_tracking = 7"), "parsl.usage_tracking", "0 to 3"),
    (two_executors(htex_extra="heartbeat_threshold = 0"),
     "parsl.executors[1].heartbeat_threshold", "lost"),
    (two_executors(htex_extra="heartbeat_period = 30\nheartbeat_threshold = 10"),
     "parsl.executors[1].heartbeat_threshold", "between two heartbeats"),
    (two_executors(htex_extra="poll_period = -1"), "parsl.executors[1].poll_period", "0"),
    (two_executors(htex_extra="worker_port = 70000"), "parsl.executors[1].worker_port", "65535"),
    (two_executors(htex_extra="worker_port_range = [55000, 54000]"),
     "parsl.executors[1].worker_port_range", "lower than"),
    (two_executors(htex_extra="interchange_port_range = [1, 2, 3]"),
     "parsl.executors[1].interchange_port_range", "two TCP ports"),
    (two_executors(htex_extra='cpu_affinity = "blocks"'), "parsl.executors[1].cpu_affinity",
     "workers know"),
    (two_executors(htex_extra="prefetch_capacity = -1"), "parsl.executors[1].prefetch_capacity",
     "negative"),
    (two_executors(htex_extra="drain_period = 0"), "parsl.executors[1].drain_period", "drain"),
    (two_executors(htex_extra="address_probe_timeout = -5"),
     "parsl.executors[1].address_probe_timeout", "give up"),
    (two_executors(parsl_extra="internal_tasks_max_threads = 0"),
     "parsl.internal_tasks_max_threads", "would not start"),
    (two_executors(provider="PBSProProvider", extra="cpus_per_node = 0\n"),
     "parsl.executors[1].provider.cpus_per_node", "without CPUs"),
    (two_executors(provider="SlurmProvider", extra="status_batch_size = 0\n"),
     "parsl.executors[1].provider.status_batch_size", "status"),
]


HTEX_KEYS = catalog.parameters("executors", "HighThroughputExecutor")
# worker_port replaced worker_ports after Parsl 2024.12: a case only for a Parsl that has the key
NEVER_RUNS = [(text, key, word) for text, key, word in NEVER_RUNS
              if key.rpartition(".")[0] != "parsl.executors[1]"
              or key.rpartition(".")[2] in HTEX_KEYS]


@pytest.mark.parametrize("text, key, word", NEVER_RUNS,
                         ids=[case[1].rsplit(".", 1)[-1] + f"-{n}"
                              for n, case in enumerate(NEVER_RUNS)])
def test_a_value_that_can_never_run_is_refused(tmp_path, text, key, word):
    error = refused(tmp_path, text)
    assert error.key == key
    assert word in str(error)


SLURM_TAIL = 'partition = "debug"\nwalltime = "{}"\n'


@pytest.mark.parametrize("walltime, word", [
    ("2:00", "HH:MM:SS"), ("1-00:00:00", "HH:MM:SS"), ("01:75:00", "HH:MM:SS"),
    ("ten minutes", "HH:MM:SS"), ("00:00:30", "under a minute"), ("00:00:00", "under a minute"),
])
def test_a_walltime_parsl_cannot_read_or_run_is_refused(tmp_path, walltime, word):
    text = two_executors(provider="SlurmProvider", extra=SLURM_TAIL.format(walltime))
    error = refused(tmp_path, text)
    assert error.key == "parsl.executors[1].provider.walltime"
    assert word in error.problem
    assert "02:00:00" in error.fix


@pytest.mark.parametrize("extra, htex_extra", [
    ("init_blocks = 0\nmax_blocks = 2\n", ""),          # strategy simple starts blocks on demand
    ("min_blocks = 2\nmax_blocks = 2\ninit_blocks = 2\n", ""),
    ("parallelism = 0.25\n", ""),
    ("", "cores_per_worker = 0.5"),                     # oversubscription is allowed
    ("", "mem_per_worker = 0"),
    ("", 'cpu_affinity = "list:0:1"'),
    ("", "heartbeat_period = 5\nheartbeat_threshold = 20"),
    ("", 'encrypted = false\naddress = "127.0.0.1"'),  # plain text that stays on this machine
    ("", "encrypted = false"),                          # LocalProvider: q2pconf uses loopback
])
def test_values_at_the_edge_of_what_works_pass(tmp_path, extra, htex_extra):
    text = two_executors(strategy="simple", extra=extra, htex_extra=htex_extra)
    settings = check(write(tmp_path, text))
    settings.parsl_config()  # and Parsl builds it


def test_a_walltime_of_one_minute_and_all_the_node_s_memory_pass(tmp_path):
    text = two_executors(provider="SlurmProvider",
                         extra=SLURM_TAIL.format("00:01:00") + "mem_per_node = 0\n")
    assert check(write(tmp_path, text)).labels == ("default", "htex")


def test_an_empty_launch_command_still_launches_with_this_interpreter(tmp_path):
    """Parsl reads "" as its default command, which is not on PATH in an un-activated
    virtualenv: q2pconf's own command is used instead."""
    text = two_executors(htex_extra='launch_cmd = ""\ninterchange_launch_cmd = []')
    htex = check(write(tmp_path, text)).executor("htex")
    assert htex.launch_cmd.startswith(sys.executable)
    assert htex.interchange_launch_cmd[0] == sys.executable


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.1.2.3"])
def test_unencrypted_traffic_beyond_this_machine_is_refused(tmp_path, address):
    text = two_executors(htex_extra=f'encrypted = false\naddress = "{address}"')
    error = refused(tmp_path, text)
    assert error.key == "parsl.executors[1].encrypted"
    assert "pickle" in error.problem and "code" in error.problem
    assert "127.0.0.1" in error.fix


def test_unencrypted_on_a_cluster_without_address_is_refused(tmp_path):
    text = two_executors(provider="SlurmProvider", htex_extra="encrypted = false",
                         extra='partition = "debug"\n')
    error = refused(tmp_path, text)
    assert "every interface" in error.problem


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "q2pconf", *args], capture_output=True,
                          text=True, timeout=120)


def test_check_of_max_threads_zero_exits_2_with_one_message(tmp_path):
    """Today's failure: check said OK, the run died of a raw ValueError and an atexit
    traceback."""
    path = write(tmp_path, THREADS + "max_threads = 0\n")
    done = run_cli("check", str(path))
    assert done.returncode == 2, done.stdout
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"{path}: parsl.executors[0].max_threads: is 0")


def test_zero_workers_per_node_is_one_per_core_in_the_summary(tmp_path):
    """Parsl reads max_workers_per_node = 0 as no cap (`0 or inf`): a worker per core."""
    path = write(tmp_path, two_executors(workers=0))
    done = run_cli("check", str(path))
    assert done.returncode == 0, done.stderr
    htex = next(line for line in done.stdout.splitlines() if line.strip().startswith("htex"))
    assert "workers: one per core" in htex and "workers: 0" not in done.stdout
    executor = check(path).executor("htex")
    assert executor.max_workers_per_node == float("inf")  # what Parsl made of it


def test_the_summary_without_a_mapping_mentions_step_hints(tmp_path):
    done = run_cli("check", str(write(tmp_path, two_executors())))
    assert "every step runs on 'default'" not in done.stdout
    assert "@step(executor=...)" in done.stdout


# -- a setting in the wrong table ------------------------------------------------------------

@pytest.mark.parametrize("text, key, header", [
    (two_executors(htex_extra="init_blocks = 2"), "parsl.executors[1].init_blocks",
     "[parsl.executors.provider]"),
    (two_executors(htex_extra='partition = "short"', provider="SlurmProvider"),
     "parsl.executors[1].partition", "[parsl.executors.provider]"),
    (two_executors(extra="max_workers_per_node = 2\n"),
     "parsl.executors[1].provider.max_workers_per_node", "[[parsl.executors]]"),
    (two_executors(parsl_extra="max_threads = 4"), "parsl.max_threads", "[[parsl.executors]]"),
    (two_executors(htex_extra="strategy_period = 1"), "parsl.executors[1].strategy_period",
     "[parsl]"),
])
def test_a_setting_in_the_wrong_table_is_told_where_it_belongs(tmp_path, text, key, header):
    error = refused(tmp_path, text)
    assert error.key == key
    assert error.problem.endswith(f"this belongs under {header}")
    assert error.fix.startswith("move it") and "did you mean" not in error.fix
    assert str(error).count(",") < 4  # not a list of the table's own keys


def test_a_misspelt_setting_still_gets_did_you_mean(tmp_path):
    error = refused(tmp_path, two_executors(extra="max_blocs = 2\n"))
    assert error.fix == "did you mean max_blocks?"
