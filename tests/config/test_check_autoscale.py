"""`q2pconf check` warns about strategy "htex_auto_scale" exactly where Parsl cancels blocks
whose workers are still starting (q2pconf/config/_autoscale.py), naming the fix; the templates and
configs where it cannot happen pass without a warning. The churn itself is shown on the live
Slurm cluster (test_slurm_multinode.py: the template under "htex_auto_scale" submitted 29 jobs
in 60 s for one step)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from configs import config, htex, local, slurm, threads
from q2pconf.config import check
from q2pconf.config._templates import render

POOL = threads("default", max_threads=2)
AUTO = "htex_auto_scale"


def warnings_for(tmp_path: Path, text: str) -> tuple[str, ...]:
    path = tmp_path / "qiime2_config.toml"
    path.write_text(text, encoding="utf-8")
    return check(path).warnings


CHURNS = {
    "a job of 4 workers": config(POOL, htex("htex", max_workers_per_node=4, provider=slurm()),
                                 strategy=AUTO, strategy_period=5),
    "two nodes of one worker": config(POOL, htex("htex", max_workers_per_node=1, provider=slurm(
        nodes_per_block=2)), strategy=AUTO),
    "one worker per core": config(POOL, htex("htex", provider=slurm(cores_per_node=8)),
                                  strategy=AUTO),
    # 5 to 7 steps: a second job is started, and cancelled while it starts
    "min_blocks = 1, long max_idletime": config(
        POOL, htex("htex", max_workers_per_node=4, provider=slurm(min_blocks=1, max_blocks=4)),
        strategy=AUTO, max_idletime=3600),
    # workers on this machine take about a second to connect; q2pconf looks every 0.2 s unset
    "local, period unset": config(POOL, htex("htex", max_workers_per_node=2, provider=local(
        init_blocks=0, max_blocks=1)), strategy=AUTO),
    "local, period 1 s": config(POOL, htex("htex", max_workers_per_node=2, provider=local(
        init_blocks=0, max_blocks=1)), strategy=AUTO, strategy_period=1),
}


@pytest.mark.parametrize("text", CHURNS.values(), ids=CHURNS.keys())
def test_auto_scale_that_cancels_starting_blocks_is_warned_with_the_fix(
        tmp_path: Path, text: str) -> None:
    [warning] = warnings_for(tmp_path, text)
    assert warning.startswith(f"{tmp_path / 'qiime2_config.toml'}: parsl.strategy: ")
    assert "'htex' block" in warning and "not connected" in warning
    assert warning.endswith('Fix: strategy = "simple" (blocks on demand, cancelled after '
                            "max_idletime seconds without a waiting step)")


SAFE = {
    "simple": config(POOL, htex("htex", max_workers_per_node=4, provider=slurm()),
                     strategy="simple"),
    "none": config(POOL, htex("htex", max_workers_per_node=4, provider=slurm(init_blocks=1)),
                   strategy="none"),
    "one worker per block": config(POOL, htex("htex", max_workers_per_node=1, provider=slurm()),
                                   strategy=AUTO),
    "one core's worth per job": config(POOL, htex("htex", max_workers_per_node=4,
                                                  cores_per_worker=4,
                                                  provider=slurm(cores_per_node=4)),
                                       strategy=AUTO),
    "max_blocks = min_blocks": config(POOL, htex("htex", max_workers_per_node=4, provider=slurm(
        min_blocks=2, max_blocks=2)), strategy=AUTO),
    "local, period 5 s": config(POOL, htex("htex", max_workers_per_node=2, provider=local()),
                                strategy=AUTO, strategy_period=5),
    "threads only": config(POOL, strategy=AUTO),
}


@pytest.mark.parametrize("text", SAFE.values(), ids=SAFE.keys())
def test_no_warning_where_no_starting_block_is_cancelled(tmp_path: Path, text: str) -> None:
    assert warnings_for(tmp_path, text) == ()


@pytest.mark.parametrize("name", ["slurm", "pbs"])
def test_the_batch_templates_pass_without_it_and_warned_before(tmp_path: Path,
                                                               name: str) -> None:
    text = render(name, tmp_path / "qiime2_config.toml")
    assert text.count('\nstrategy = "simple"\n') == 1
    assert warnings_for(tmp_path, text) == ()
    before = text.replace('\nstrategy = "simple"\n', f'\nstrategy = "{AUTO}"\n')
    [warning] = warnings_for(tmp_path, before)
    assert "jobs submitted and cancelled again and again" in warning


def test_check_prints_it_on_stderr_and_still_passes(tmp_path: Path) -> None:
    path = tmp_path / "qiime2_config.toml"
    path.write_text(CHURNS["a job of 4 workers"], encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "q2pconf", "check", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"warning: {path}: parsl.strategy: "), done.stderr
    assert "every 5 s" in done.stderr and "(4)" in done.stderr
