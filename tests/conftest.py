"""Shared fixtures: isolated lookup environments, required tools, process-tree checks."""
from __future__ import annotations

import os
import shlex
import shutil
import signal
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LOOKUP_VARS = ("QIIME2_CONFIG", "CONDA_PREFIX", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS",
               "XDG_CACHE_HOME")


def _take_back_ignored_signals() -> None:
    """A suite started under `nohup`, or as a background job of a script (`cmd &`), inherits
    SIGHUP or SIGINT ignored, and so would every program a test starts: a pipeline rightly
    keeps an ignored signal ignored, and the tests that send it would wait for an end that
    never comes. The programs the tests start get the defaults a terminal gives."""
    for signum, default in ((signal.SIGHUP, signal.SIG_DFL),
                            (signal.SIGINT, signal.default_int_handler)):
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, default)


_take_back_ignored_signals()


def require_tool(name: str) -> str:
    """Path of `name` on PATH; skip the test without it, but fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME, XDG dirs and CONDA_PREFIX pointing into tmp_path; nothing of the real machine."""
    for name in LOOKUP_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "etc-xdg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    return tmp_path


@pytest.fixture
def fresh_session(clean_env: Path):
    """The test starts without a Parsl session and leaves none (nor its processes) behind."""
    from procs import parsl_children
    from q2pconf.pipeline import _session as sessions

    sessions.close()
    yield
    sessions.close()
    assert parsl_children() == []


def readonly_command(directory: Path, command: list[str]) -> list[str]:
    """`command` run with `directory` mounted read-only, in a private mount namespace.

    Root ignores file modes, so a chmod cannot make a directory unwritable for these tests;
    a read-only bind mount can, and the private namespace leaves nothing mounted afterwards.
    """
    require_tool("unshare")
    quoted = " ".join(shlex.quote(part) for part in command)
    target = shlex.quote(str(directory))
    script = (f"mount --bind {target} {target} && "
              f"mount -o remount,bind,ro {target} {target} && exec {quoted}")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def check_where_its_interface_is(path: Path) -> bool:
    """A config naming an interface this machine lacks (the cluster examples' `ib0`, which
    `q2pconf check` requires where the pipeline runs) is checked in a network namespace that
    has it, as the Slurm test cluster's controller does: False when it names none missing."""
    import re
    import subprocess
    import sys

    from q2pconf.config._local_limits import interfaces

    named = re.search(r'^address = .*ifname = "(\w+)"', path.read_text(), flags=re.M)
    if named is None or named[1] in interfaces():
        return False
    require_tool("unshare")
    require_tool("ip")
    name = named[1]
    setup = (f"ip link add {name} type bridge && ip addr add 10.77.0.1/24 dev {name} && "
             f"ip link set {name} up")
    done = subprocess.run(["unshare", "-rn", "sh", "-c", f'{setup} && exec "$0" -m q2pconf '
                           'check "$1"', sys.executable, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    return True


from slurm_cluster import (  # noqa: E402,F401  (fixtures for the slurm markers)
    multinode, slurm, slurm_cluster, slurm_multinode_cluster)

# Tests that must share one pytest-xdist worker (`make test` runs the suite in parallel with
# --dist loadgroup): group name -> the markers and the fixtures that put a test in it. A
# group's session fixtures then start once, on that worker. The Slurm clusters use fixed
# addresses, ports and namespace names, so every Slurm test runs in one group; the conda
# tests share the package their session fixture builds.
XDIST_GROUPS = {"slurm": ({"slurm", "slurm_multinode"},
                          {"slurm_cluster", "slurm_multinode_cluster"}),
                "conda": (set(), {"built", "channel"})}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the marks into node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marks = {mark.name for mark in item.iter_markers()}
        for group, (markers, fixtures) in XDIST_GROUPS.items():
            if marks & markers or fixtures & set(item.fixturenames):
                item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session", autouse=True)
def devices_stay_devices():
    """No test may replace /dev/null with a file (a rename over it did, once: every program on
    the machine then read what the tests wrote there)."""
    import stat

    yield
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode), f"{os.devnull} is no longer a device"
