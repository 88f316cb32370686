"""Commented configs for batch clusters (Slurm, PBS Pro); a human adapts them to a site."""
from __future__ import annotations

import os

from q2pconf.default import htex_worker_key

HEADER = """\
# QIIME 2 / q2pconf parallel configuration for a {scheduler} cluster, written by
# `q2pconf init --template {name}`. Adapt it to your site, then check it with:
#     q2pconf check "{path}"
# Run the pipeline where you can submit jobs (a login node, or inside a small job).
# Steps mapped to "htex" (below) run inside {scheduler} jobs that Parsl submits when
# steps are waiting and cancels once they have been idle for max_idletime seconds.
# Every other step runs on "default": threads in the pipeline's own process.

[parsl]
# "htex_auto_scale" (or "simple") starts jobs on demand, so init_blocks can be 0.
# With "none", only init_blocks jobs are ever started: set init_blocks >= 1 then.
strategy = "htex_auto_scale"
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
