"""Seeding the default safely: atomic, never over a file or through a link, read-only prefixes."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import pytest

from configs import tomllib
from conftest import readonly_command
from q2pconf._base.files import write_new
from q2pconf.config._seed import seed_prefix
from q2pconf.config._templates import vendored_dict

CONFIG = "qiime2_config.toml"


def python(code: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, **kwargs)


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
    check = subprocess.run(["sha256sum", "--status", "-c", stamp.name], cwd=path.parent, timeout=60)
    assert written and check.returncode == 0
    path.write_text(path.read_text() + "# edited\n")
    check = subprocess.run(["sha256sum", "--status", "-c", stamp.name], cwd=path.parent, timeout=60)
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
            "from pathlib import Path; from q2pconf.config._seed import seed_prefix; "
            f"seed_prefix({str(tmp_path)!r})")
    run = python(code)
    assert run.returncode != 0 and "File too large" in run.stderr
    assert list((tmp_path / "etc").iterdir()) == []


def test_seed_prefix_refuses_a_prefix_that_does_not_exist(tmp_path):
    """The library call too: nothing is created under a mistyped prefix."""
    from q2pconf._base.errors import ConfigError

    with pytest.raises(ConfigError, match="the --prefix directory does not exist"):
        seed_prefix(tmp_path / "typo" / "env")
    assert list(tmp_path.iterdir()) == []
