"""`q2pconf check` passing means the config can start, shown on a real HTEX in a child process.

Each refused case was taken by Parsl by type and then stopped the interchange, or started no
worker, while the pipeline waited for ever: now `q2pconf check` and the pipeline itself end at
once with one message naming the file and the key. Port ranges, which Parsl wants as tuples,
now run instead of failing at start."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from configs import config, htex, local
from procs import config_env, new_token, wait_gone

RUN = "import pipeline_steps as s; print(s.threads_only(2))"  # two steps on 'default'
CPUS = os.cpu_count() or 1  # as Parsl's worker pool counts them


def run_pipeline(tmp_path: Path, executor: dict[str, object]) -> subprocess.CompletedProcess[str]:
    """The pipeline on `executor` (labelled default) in a child; no process of it may stay."""
    token, work = new_token(), tmp_path / "work"
    work.mkdir()
    env = config_env(tmp_path, token, config(executor, strategy="none"))
    done = subprocess.run([sys.executable, "-c", RUN], cwd=work, env=env, capture_output=True,
                          text=True, timeout=180)
    assert not wait_gone(token, 20, work)
    return done


# Before: the interchange died on ipaddress("localhost"), or the local pool started no worker
# (more CPUs per worker than the machine has; an affinity list the workers cannot read).
NEVER_STARTED = [("address", "localhost"), ("loopback_address", "localhost"),
                 ("cores_per_worker", CPUS + 1), ("cpu_affinity", "list:")]


@pytest.mark.parametrize("arg, value", NEVER_STARTED, ids=[arg for arg, _ in NEVER_STARTED])
def test_a_config_that_never_started_is_one_message_from_check_and_pipeline(tmp_path, arg, value):
    executor = htex("default", max_workers_per_node=1, provider=local(), **{arg: value})
    path = tmp_path / "config.toml"
    path.write_text(config(executor, strategy="none"), encoding="utf-8")
    checked = subprocess.run([sys.executable, "-m", "q2pconf", "check", str(path)],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 2, checked.stdout
    assert checked.stderr.startswith(f"{path}: parsl.executors[0].{arg}: ")
    assert "Traceback" not in checked.stderr and "\n  Fix: " in checked.stderr
    done = run_pipeline(tmp_path, executor)  # before: no result, ever
    assert done.returncode == 1 and not done.stdout
    last = done.stderr.strip().splitlines()
    assert any(line.startswith("q2pconf.ConfigError: ") and
               f"parsl.executors[0].{arg}: " in line for line in last), done.stderr[-2000:]


def test_port_ranges_written_in_the_file_run(tmp_path):
    """Before: Parsl's typeguard refused the TOML arrays (lists, not tuples) at start."""
    executor = htex("default", max_workers_per_node=1, worker_port_range=[54000, 55000],
                    interchange_port_range=[55000, 56000], provider=local())
    done = run_pipeline(tmp_path, executor)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[0, 2]"
