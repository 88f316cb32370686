"""Usable CPUs: affinity, capped by cgroup v1/v2 quotas; the default's worker count."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from q2pconf._base.cpus import cgroup_cpu_quota, default_workers, usable_cpus


def python(code: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, **kwargs)


# -- CPU sizing ------------------------------------------------------------------------------

def test_usable_cpus_follows_cpu_affinity():
    code = ("import os; os.sched_setaffinity(0, {0}); "
            "from q2pconf._base.cpus import usable_cpus, default_workers; "
            "print(usable_cpus(), default_workers())")
    assert python(code).stdout.split() == ["1", "1"]


def test_the_default_gives_each_executor_usable_cpus_minus_one():
    """The product's rule and the seed's: usable CPUs - 1 threads and HTEX workers, at
    least 1, on 2 CPUs too (where it is 1 and 1)."""
    code = ("import os; os.sched_setaffinity(0, {0, 1}); "
            "from q2pconf.config._templates import vendored_dict; "
            "print(*(e.get('max_threads') or e.get('max_workers_per_node') "
            "for e in vendored_dict()['parsl']['executors']))")
    if len(os.sched_getaffinity(0)) >= 2:
        assert python(code).stdout.split() == ["1", "1"]


def test_usable_cpus_is_affinity_when_no_quota():
    assert usable_cpus(proc_cgroup="/nonexistent") == len(os.sched_getaffinity(0))
    assert default_workers() == max(usable_cpus() - 1, 1)


def cgroup_tree(root: Path, proc_line: str, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc = root / "proc-self-cgroup"
    proc.write_text(proc_line + "\n")
    return proc


QUOTAS = {
    "v2-limit": ("0::/user/job", {"user/job/cpu.max": "150000 100000\n"}, 1.5),
    "v2-unlimited": ("0::/user/job", {"user/job/cpu.max": "max 100000\n"}, None),
    "v2-parent-tighter": ("0::/a/b", {"a/b/cpu.max": "400000 100000\n",
                                      "a/cpu.max": "100000 100000\n"}, 1.0),
    "v2-container-root": ("0::/docker/abc", {"cpu.max": "200000 100000\n"}, 2.0),
    "v1-limit": ("4:cpu,cpuacct:/slurm/job1", {
        "cpu,cpuacct/slurm/job1/cpu.cfs_quota_us": "300000\n",
        "cpu,cpuacct/slurm/job1/cpu.cfs_period_us": "100000\n"}, 3.0),
    "v1-unlimited": ("4:cpu,cpuacct:/", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                                         "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, None),
    "no-cpu-controller": ("5:memory:/x", {"memory/x/memory.limit_in_bytes": "1\n"}, None),
}


@pytest.mark.parametrize("line,files,expected", QUOTAS.values(), ids=QUOTAS.keys())
def test_cgroup_quota(tmp_path, line, files, expected):
    proc = cgroup_tree(tmp_path, line, files)
    assert cgroup_cpu_quota(str(tmp_path), str(proc)) == expected


def test_quota_caps_usable_cpus_but_never_below_one(tmp_path):
    proc = cgroup_tree(tmp_path, "0::/j", {"j/cpu.max": "50000 100000\n"})
    assert usable_cpus(str(tmp_path), str(proc)) == 1
    proc = cgroup_tree(tmp_path, "0::/j", {"j/cpu.max": "100000000 100000\n"})
    assert usable_cpus(str(tmp_path), str(proc)) == len(os.sched_getaffinity(0))
