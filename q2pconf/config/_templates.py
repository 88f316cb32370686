"""Every config text q2pconf writes: the vendored default and the cluster templates.

`q2pconf init --template NAME` writes `render(NAME, path)`; seeding writes `vendored_toml`.

    >>> from q2pconf.config._templates import TEMPLATES, vendored_dict
    >>> sorted(TEMPLATES)
    ['local', 'pbs', 'slurm']
    >>> [e["label"] for e in vendored_dict(workers=1)["parsl"]["executors"]]
    ['default', 'htex']
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from q2pconf._base.cpus import default_workers, usable_cpus
from q2pconf._base.paths import CONFIG_NAME

from typing import Any

# -- the vendored default (the seed document's executors, sized to this machine) ---------------


def htex_worker_key() -> str:
    """The HTEX keyword for workers per node that the installed Parsl accepts."""
    from q2pconf._catalog import accepted as catalog

    params = catalog.parameters("executors", "HighThroughputExecutor")
    return "max_workers_per_node" if "max_workers_per_node" in params else "max_workers"


def vendored_dict(workers: int | None = None) -> dict[str, Any]:
    """The seed document's default as a TOML-shaped dict: usable CPUs - 1 workers for each
    executor (at least 1), or `workers` when given."""
    n = default_workers() if workers is None else workers
    return {"parsl": {"strategy": "None", "executors": [
        {"class": "ThreadPoolExecutor", "label": "default", "max_threads": n},
        {"class": "HighThroughputExecutor", "label": "htex", htex_worker_key(): n,
         "provider": {"class": "LocalProvider"}},
    ]}}


LOCAL = """\
# QIIME 2 / q2pconf parallel configuration, written by q2pconf for this machine
# ({cpus} usable CPUs, so {workers} workers per executor). Edit it freely: nothing
# overwrites it. Check an edit with:  q2pconf check "{path}"
# Which file is in use, and why:      q2pconf info

[parsl]
# "None": each executor keeps the workers it starts with (no scaling).
strategy = "None"

# Threads inside the pipeline's own process: steps that are not mapped elsewhere.
# Usable CPUs - 1 (QIIME 2's rule: one CPU stays with the program itself).
[[parsl.executors]]
class = "ThreadPoolExecutor"
label = "default"
max_threads = {workers}

# Worker processes on this machine, for CPU-heavy steps. q2pconf starts them only
# when a step is sent here. Usable CPUs - 1 as well.
[[parsl.executors]]
class = "HighThroughputExecutor"
label = "htex"
{worker_key} = {workers}

[parsl.executors.provider]
class = "LocalProvider"

# Send steps to an executor by name. QIIME 2's form is  plugin = {{action = "label"}};
# a plain  step = "label"  works too.
# [parsl.executor_mapping]
# dada2 = {{ denoise_single = "htex" }}
"""


def vendored_toml(path: str | os.PathLike[str] = CONFIG_NAME, workers: int | None = None) -> str:
    """The commented default, as written to disk."""
    n = default_workers() if workers is None else workers
    return LOCAL.format(cpus=usable_cpus(), workers=n, worker_key=htex_worker_key(), path=path)


# -- batch clusters (Slurm, PBS Pro): a human adapts these to a site ---------------------------

HEADER = """\
# QIIME 2 / q2pconf parallel configuration for a {scheduler} cluster, written by
# `q2pconf init --template {name}`. Adapt it to your site, then check it with:
#     q2pconf check "{path}"
# Run the pipeline where you can submit jobs (a login node, or inside a small job).
# Steps mapped to "htex" (below) run inside {scheduler} jobs that Parsl submits when
# steps are waiting and cancels once they have been idle for max_idletime seconds.
# Every other step runs on "default": threads in the pipeline's own process.

[parsl]
# "simple" submits jobs when steps wait (so init_blocks can be 0) and cancels them once
# no step has waited or run on "htex" for max_idletime seconds. Not "htex_auto_scale":
# while fewer steps wait than a job has workers, it cancels any job whose workers have not
# connected yet (still queued, or starting) at its next look and submits a new one, again
# and again (`q2pconf check` warns about it).
# With "none", only init_blocks jobs are ever started: set init_blocks >= 1 then.
strategy = "simple"
# Seconds between looks at the queue: lower starts jobs sooner, polls {scheduler} more.
strategy_period = 5
max_idletime = 120

# Light steps: threads on the machine running the pipeline (often a shared login node,
# so keep this small).
[[parsl.executors]]
class = "ThreadPoolExecutor"
label = "default"
max_threads = 2

# Heavy steps: worker processes inside batch jobs, one job ("block") per node.
[[parsl.executors]]
class = "HighThroughputExecutor"
label = "htex"
# Workers per node; keep it equal to the cores each job asks for below.
{worker_key} = 4
# The address jobs use to reach this machine. Unset, Parsl offers all of its addresses.
# If jobs start but no step ever runs, name the interface the compute nodes can reach:
# address = {{ class = "address_by_interface", ifname = "ib0" }}
"""

SLURM = """\

[parsl.executors.provider]
class = "SlurmProvider"
# Unset, jobs go to the cluster's default partition and account (`sinfo -s` lists them).
# partition = "short"
# account = "my_project"
# qos = "normal"
walltime = "01:00:00"
nodes_per_block = 1
# Share nodes with other jobs: ask for cores (and memory) instead of whole nodes.
exclusive = false
cores_per_node = 4
# mem_per_node = 16    # GB per job
"""

SLURM_LAUNCHER = """
# srun starts one worker pool per node of the job.
[parsl.executors.provider.launcher]
class = "SrunLauncher"
"""

PBS = """\

[parsl.executors.provider]
# PBS Pro. For Torque, use class = "TorqueProvider" (no cpus_per_node or
# select_options: put resource requests in scheduler_options instead).
class = "PBSProProvider"
# Unset, jobs go to the server's default queue (`qstat -Q` lists them).
# queue = "workq"
# account = "my_project"
walltime = "01:00:00"
nodes_per_block = 1
# Becomes  #PBS -l select=<nodes_per_block>:ncpus=<cpus_per_node><select_options>
cpus_per_node = 4
# select_options = "mem=16gb"
# scheduler_options = "#PBS -l place=scatter"
"""

PBS_LAUNCHER = """
# One worker pool per job; for nodes_per_block > 1 use class = "MpiExecLauncher".
[parsl.executors.provider.launcher]
class = "SingleNodeLauncher"
"""

# What every batch provider's table ends with: jobs on demand, and how workers start.
JOBS = """\
# No job until a step needs one; at most max_blocks jobs at a time.
init_blocks = 0
min_blocks = 0
max_blocks = 4
# Shell lines each job runs before its workers. Workers start with the full path of the
# Python running the pipeline (it must exist on the compute nodes too, e.g. on a shared
# filesystem), so no environment needs activating; add what your steps' tools need:
# worker_init = "module load cuda; source ~/miniforge3/bin/activate qiime2"
worker_init = ""
# Seconds to wait for {commands} on a busy {server}.
cmd_timeout = {timeout}
"""

MAPPING = """
# Send steps to an executor by name. QIIME 2's form is  plugin = {action = "label"};
# a plain  step = "label"  works too. Unmapped steps run on "default".
# [parsl.executor_mapping]
# dada2 = { denoise_single = "htex", denoise_paired = "htex" }
"""


def slurm_toml(path: str | os.PathLike[str] = "qiime2_config.toml") -> str:
    """The commented Slurm template."""
    jobs = JOBS.format(commands="sbatch/squeue/scancel", server="controller", timeout=60)
    return _render("Slurm", "slurm", path) + SLURM + jobs + SLURM_LAUNCHER + MAPPING


def pbs_toml(path: str | os.PathLike[str] = "qiime2_config.toml") -> str:
    """The commented PBS Pro template."""
    jobs = JOBS.format(commands="qsub/qstat/qdel", server="server", timeout=120)
    return _render("PBS Pro", "pbs", path) + PBS + jobs + PBS_LAUNCHER + MAPPING


def _render(scheduler: str, name: str, path: str | os.PathLike[str]) -> str:
    return HEADER.format(scheduler=scheduler, name=name, path=path,
                         worker_key=htex_worker_key())


# name -> function of the target path returning the file's text
TEMPLATES: dict[str, Callable[[Path], str]] = {
    "local": vendored_toml,
    "slurm": slurm_toml,
    "pbs": pbs_toml,
}


def render(name: str, path: Path) -> str:
    """The text `q2pconf init --template NAME` writes to `path`."""
    return TEMPLATES[name](path)
