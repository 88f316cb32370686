"""The vendored default: CPU sizing, its text, and seeding it safely."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from configs import tomllib
from conftest import readonly_command
from q2pconf.default import (cgroup_cpu_quota, default_workers, seed_prefix, usable_cpus,
                             vendored_dict, vendored_toml, write_new)

CONFIG = "qiime2_config.toml"


def python(code: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, **kwargs)


# -- CPU sizing ------------------------------------------------------------------------------

def test_usable_cpus_follows_cpu_affinity():
    code = ("import os; os.sched_setaffinity(0, {0}); "
            "from q2pconf.default import usable_cpus, default_workers; "
            "print(usable_cpus(), default_workers())")
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


# -- the default's text ----------------------------------------------------------------------

def test_written_default_is_commented_toml_equal_to_the_dict():
    text = vendored_toml("/x/qiime2_config.toml", workers=3)
    assert text.count("\n#") >= 5
    assert tomllib.loads(text) == vendored_dict(workers=3)


def test_default_matches_the_seed_document_on_installed_parsl():
    doc = vendored_dict(workers=4)["parsl"]
    assert doc["strategy"] == "None"
    tpool, htex = doc["executors"]
    assert tpool == {"class": "ThreadPoolExecutor", "label": "default", "max_threads": 4}
    assert htex["class"] == "HighThroughputExecutor" and htex["label"] == "htex"
    assert htex["max_workers_per_node"] == 4 and "max_workers" not in htex
    assert htex["provider"] == {"class": "LocalProvider"}


# -- writing safely --------------------------------------------------------------------------

def test_write_new_creates_a_0644_file_and_missing_directories(tmp_path):
    target = tmp_path / "a" / "etc" / CONFIG
    assert write_new(target, "x = 1\n") is True
    assert target.read_text() == "x = 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == [CONFIG]  # no temp left


def test_existing_file_is_left_byte_for_byte(tmp_path):
    target = tmp_path / CONFIG
    target.write_bytes(b"# mine\n\x00odd")
    before = target.stat()
    assert write_new(target, "new") is False
    assert target.read_bytes() == b"# mine\n\x00odd"
    assert target.stat().st_mtime_ns == before.st_mtime_ns


@pytest.mark.parametrize("dangling", [True, False], ids=["dangling", "to-a-file"])
def test_symlink_at_the_target_is_not_followed(tmp_path, dangling):
    victim = tmp_path / "victim"
    if not dangling:
        victim.write_text("precious")
    link = tmp_path / "etc" / CONFIG
    link.parent.mkdir()
    link.symlink_to(victim)
    path, written = seed_prefix(tmp_path)
    assert written is False and link.is_symlink()
    assert victim.exists() is not dangling
    if not dangling:
        assert victim.read_text() == "precious"


def test_seed_leaves_a_checksum_of_what_it_wrote(tmp_path):
    path, written = seed_prefix(tmp_path)
    stamp = path.with_name(f".{CONFIG}.sha256")
    check = subprocess.run(["sha256sum", "--status", "-c", stamp.name], cwd=path.parent)
    assert written and check.returncode == 0
    path.write_text(path.read_text() + "# edited\n")
    check = subprocess.run(["sha256sum", "--status", "-c", stamp.name], cwd=path.parent)
    assert check.returncode != 0


def test_32_processes_seeding_at_once_leave_one_complete_file(clean_env):
    prefix = clean_env / "env"
    prefix.mkdir()
    env = {**os.environ, "CONDA_PREFIX": str(prefix)}
    code = ("import json; from q2pconf.config import load; s = load(); "
            "print(json.dumps([s.source, str(s.path), list(s.labels)]))")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(32)]
    answers = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    target = prefix / "etc" / CONFIG
    assert {tuple(a[1:2]) for a in answers} == {(str(target),)}
    assert {a[0] for a in answers} <= {"vendored", "conda"}
    assert all(a[2] == ["default", "htex"] for a in answers)
    assert sorted(p.name for p in target.parent.iterdir()) == [f".{CONFIG}.sha256", CONFIG]
    assert tomllib.loads(target.read_text()) == vendored_dict()


def test_read_only_prefix_falls_back_to_memory_with_one_warning(clean_env):
    prefix = clean_env / "env"
    prefix.mkdir()
    env = {**os.environ, "CONDA_PREFIX": str(prefix)}
    command = readonly_command(prefix, [sys.executable, "-m", "q2pconf", "info", "--json"])
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["source"] == "in-memory"
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert str(prefix / "etc" / CONFIG) in lines[0] and "q2pconf init --user" in lines[0]
    assert list(prefix.iterdir()) == []


def test_disk_full_leaves_no_partial_file(tmp_path):
    # RLIMIT_FSIZE makes the write fail part way, like a full disk
    code = ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100)); "
            "from pathlib import Path; from q2pconf.default import seed_prefix; "
            f"seed_prefix({str(tmp_path)!r})")
    run = python(code)
    assert run.returncode != 0 and "File too large" in run.stderr
    assert list((tmp_path / "etc").iterdir()) == []
