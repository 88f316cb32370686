"""The activation scripts (etc/conda/activate.d/q2pconf.*) sourced by real shells: they seed a
missing config through the environment's python, and otherwise stay silent and out of the way."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import readonly_command, require_tool
from q2pconf.config import check

pytestmark = pytest.mark.shells

ACTIVATE = Path(__file__).resolve().parents[2] / "etc" / "conda" / "activate.d"
CONFIG = "qiime2_config.toml"

# shell -> (activation script, command line that sources $SCRIPT and then writes $DONE)
SH = 'set -eu; set -o > "$OPTS.before"; . "$SCRIPT"; set -o > "$OPTS.after"; echo ok > "$DONE"'
SHELLS = {
    "bash": ("q2pconf.sh", ["--norc", "--noprofile", "-c", SH]),
    "dash": ("q2pconf.sh", ["-c", SH]),
    "zsh": ("q2pconf.sh", ["-f", "-c", SH]),
    "fish": ("q2pconf.fish", ["--no-config", "-c",
                              'source "$SCRIPT"; or exit 3; echo ok > "$DONE"']),
    "tcsh": ("q2pconf.csh", ["-f", "-c",
                             'source "$SCRIPT"; if ($status != 0) exit 3; echo ok > "$DONE"']),
}


@dataclass
class Env:
    """A fake conda environment (its path has a space) whose bin/python records each call."""

    prefix: Path
    calls: Path

    @property
    def config(self) -> Path:
        return self.prefix / "etc" / CONFIG

    def python_called(self) -> bool:
        return self.calls.exists()


@pytest.fixture
def env(tmp_path: Path) -> Env:
    prefix = tmp_path / "conda envs" / "my env"
    (prefix / "etc" / "conda" / "activate.d").mkdir(parents=True)
    (prefix / "bin").mkdir()
    calls = tmp_path / "python calls"
    recorder = prefix / "bin" / "python"
    # q2pconf comes from this interpreter's site-packages (the checkout, installed editable)
    recorder.write_text(f"#!/bin/sh\necho \"$*\" >> {shlex.quote(str(calls))}\n"
                        f"exec {shlex.quote(sys.executable)} \"$@\"\n")
    recorder.chmod(0o755)
    return Env(prefix, calls)


def activate(shell: str, tmp_path: Path, prefix: Path | None,
             wrap=lambda command: command) -> subprocess.CompletedProcess:
    """Source the shell's activation script as conda would, in a fresh non-interactive shell."""
    script, args = SHELLS[shell]
    environ = {k: v for k, v in os.environ.items() if k not in ("CONDA_PREFIX", "QIIME2_CONFIG")}
    environ.update(SCRIPT=str(ACTIVATE / script), DONE=str(tmp_path / "done"),
                   OPTS=str(tmp_path / "opts"), HOME=str(tmp_path))
    if prefix is not None:
        environ["CONDA_PREFIX"] = str(prefix)
    return subprocess.run(wrap([require_tool(shell), *args]), capture_output=True, text=True,
                          env=environ, cwd=tmp_path, timeout=120)


def survived(tmp_path: Path) -> bool:
    """The sourcing shell went on after the script (it did not exit or abort)."""
    return (tmp_path / "done").read_text() == "ok\n" if (tmp_path / "done").exists() else False


def options_unchanged(shell: str, tmp_path: Path) -> None:
    if SHELLS[shell][0] == "q2pconf.sh":
        before = (tmp_path / "opts.before").read_text()
        assert "errexit" in before and before == (tmp_path / "opts.after").read_text()


@pytest.mark.parametrize("shell", SHELLS)
def test_missing_config_is_seeded_silently(shell, env, tmp_path):
    done = activate(shell, tmp_path, env.prefix)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert survived(tmp_path)
    options_unchanged(shell, tmp_path)
    assert env.python_called()
    assert check(env.config).source == "explicit"  # a valid config
    assert (env.prefix / "etc" / f".{CONFIG}.sha256").is_file()
    assert not list(env.prefix.rglob("__pycache__"))


@pytest.mark.parametrize("shell", SHELLS)
def test_present_config_starts_no_interpreter(shell, env, tmp_path):
    env.config.write_bytes(b"# mine\n[parsl]\n")
    done = activate(shell, tmp_path, env.prefix)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert survived(tmp_path)
    options_unchanged(shell, tmp_path)
    assert not env.python_called()
    assert env.config.read_bytes() == b"# mine\n[parsl]\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_missing_python_does_not_fail_activation(shell, env, tmp_path):
    (env.prefix / "bin" / "python").unlink()
    done = activate(shell, tmp_path, env.prefix)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert survived(tmp_path)
    assert not env.config.exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_failing_seed_warns_once_and_activation_goes_on(shell, env, tmp_path):
    recorder = env.prefix / "bin" / "python"
    recorder.write_text(f"#!/bin/sh\necho called >> {shlex.quote(str(env.calls))}\n"
                        "echo 'Traceback: something broke' >&2\nexit 1\n")
    done = activate(shell, tmp_path, env.prefix)
    assert done.returncode == 0 and done.stdout == ""
    assert survived(tmp_path)
    options_unchanged(shell, tmp_path)
    assert env.python_called()
    [line] = done.stderr.splitlines()
    assert line.startswith("q2pconf: could not write ") and str(env.config) in line


@pytest.mark.parametrize("shell", SHELLS)
def test_read_only_environment_is_skipped_silently(shell, env, tmp_path):
    etc = env.prefix / "etc"
    done = activate(shell, tmp_path, env.prefix, wrap=lambda c: readonly_command(etc, c))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert survived(tmp_path)
    assert not env.python_called()
    assert not env.config.exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_no_conda_prefix_is_a_no_op(shell, tmp_path):
    done = activate(shell, tmp_path, None)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert survived(tmp_path)


@pytest.mark.parametrize("shell", SHELLS)
def test_dangling_symlink_is_left_alone(shell, env, tmp_path):
    env.config.symlink_to(tmp_path / "nowhere.toml")
    done = activate(shell, tmp_path, env.prefix)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert not env.python_called()
    assert env.config.is_symlink()


def test_every_tested_shell_is_installed_by_ci():
    listed = (Path(__file__).resolve().parents[2] / ".ci" / "apt-packages.txt").read_text()
    packages = {line.strip() for line in listed.splitlines()
                if line.strip() and not line.lstrip().startswith("#")}
    assert set(SHELLS) <= packages
