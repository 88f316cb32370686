"""`q2pconf check` says what it can know before anything runs: every key or table a file holds
is used or named in a message; an address helper that fails here, a run directory that cannot
be made, a mapping label the executors in force lack. Each bad input names the file, the key
and the fix, and the file written as the fix says passes."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from configs import config, htex, local, threads
from conftest import readonly_command, require_tool
from q2pconf.config import check
from q2pconf._base.errors import ConfigError
from q2pconf.config._local_limits import interfaces

DEFAULT = threads("default")
NO_SUCH_INTERFACE = "q2pnone0"  # no machine has it (at most 15 characters, as Linux's)
HERE = interfaces()
USABLE = next((name for name, ip in HERE.items() if ip and not ip.startswith("127.")), None)


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def by_interface(name: str) -> str:
    return config(htex("default", provider=local(),
                       address={"class": "address_by_interface", "ifname": name}))


# (text, key, a part of the problem, the fix, the text written as the fix says)
UNREAD = {
    "mapping-above-parsl": (
        config(DEFAULT) + '[executor_mapping]\ndenoise = "default"\n', "executor_mapping",
        "is outside [parsl], where nothing reads it",
        "rename [executor_mapping] to [parsl.executor_mapping]",
        config(DEFAULT, mapping={"denoise": "default"})),
    "config-key-above-parsl": (
        "retries = 2\n" + config(DEFAULT), "retries", "is outside [parsl]",
        "move retries = ... below the [parsl] line", config(DEFAULT, retries=2)),
    "capital-parsl-beside-parsl": (
        config(DEFAULT) + "[Parsl]\nretries = 2\n", "Parsl", "is not read",
        "move its keys into [parsl] and remove [Parsl]", config(DEFAULT, retries=2)),
    "parsel-beside-parsl": (
        config(DEFAULT) + "[parsel]\nretries = 2\n", "parsel", "is not read",
        "move its keys into [parsl] and remove [parsel]", config(DEFAULT, retries=2)),
    "misspelt-mapping": (
        config(DEFAULT) + '[parsl.executor_maping]\ndenoise = "default"\n',
        "parsl.executor_maping", "Config has no setting 'executor_maping'",
        "did you mean executor_mapping?", config(DEFAULT, mapping={"denoise": "default"})),
    "misspelt-mapping-only": (
        '[parsl.executor_maping]\ndenoise = "htex"\n', "parsl.executor_maping",
        "Config has no setting", "did you mean executor_mapping?",
        '[parsl.executor_mapping]\ndenoise = "htex"\n'),
    "mapping-label-unknown-beside-options": (
        '[parsl]\nretries = 1\n[parsl.executor_mapping]\ndenoise = "htx"\n',
        "parsl.executor_mapping.denoise", "no executor is labelled 'htx'", "did you mean htex?",
        '[parsl]\nretries = 1\n[parsl.executor_mapping]\ndenoise = "htex"\n'),
    "empty-plugin-table": (
        config(DEFAULT, mapping={"dada2": {}}), "parsl.executor_mapping.dada2",
        "must be an executor label (a string), not a table",
        'write it in quotes: dada2 = "default"',
        config(DEFAULT, mapping={"dada2": "default"})),
    "strategy-a-number": (
        config(DEFAULT, strategy=5), "parsl.strategy", "must be a string, not a whole number",
        'write strategy = "simple" (or "none", "htex_auto_scale")',
        config(DEFAULT, strategy="simple")),
    "retries-negative": (
        config(DEFAULT, retries=-1), "parsl.retries", "cannot be negative",
        "write retries = 0", config(DEFAULT, retries=0)),
    "interface-missing": (
        by_interface(NO_SUCH_INTERFACE), "parsl.executors[0].address.ifname",
        f"'{NO_SUCH_INTERFACE}' is not an interface of this machine",
        f'write ifname = "{USABLE}"', by_interface(str(USABLE))),
}


@pytest.mark.parametrize("text,key,problem,fix,fixed", UNREAD.values(), ids=list(UNREAD))
def test_each_is_named_with_a_fix_that_passes(tmp_path, text, key, problem, fix, fixed):
    if USABLE is None and "ifname" in key:
        pytest.fail("this machine has no interface with an IPv4 address besides loopback")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        check(path)
    error = caught.value
    assert (error.file, error.key) == (str(path), key), str(error)
    assert problem in error.problem and error.fix == fix, str(error)
    assert "Traceback" not in str(error)
    settings = check(write(tmp_path, fixed, "fixed.toml"))
    assert settings.warnings == (), settings.warnings


def test_an_unknown_top_level_table_is_named_and_ignored(tmp_path):
    """QIIME 2 reads [parsl] only: another table is ignored there too, but not silently."""
    path = write(tmp_path, config(DEFAULT) + "[plugins]\nx = 1\n")
    settings = check(path)
    assert settings.labels == ("default",)
    assert settings.warnings == (f"{path}: plugins: is not read by q2pconf or QIIME 2 (only "
                                 "[parsl] is): ignored; remove it if it was meant for [parsl]",)


def test_a_mapping_only_label_the_executors_in_force_lack_is_a_warning(tmp_path):
    """Valid (a ParallelConfig block may supply 'htx'), but check says that the config in
    force, the vendored one it shows, has none, with the did-you-mean."""
    path = write(tmp_path, '[parsl.executor_mapping]\ndenoise = "htx"\nclassify = "htex"\n')
    settings = check(path)
    assert settings.mapping == {"denoise": "htx", "classify": "htex"}
    assert settings.warnings == (
        f"{path}: parsl.executor_mapping.denoise: the executors in force here (default, htex) "
        "have no 'htx': a pipeline fails unless a ParallelConfig block supplies it; did you "
        "mean htex?",)
    fixed = write(tmp_path, '[parsl.executor_mapping]\ndenoise = "htex"\n', "fixed.toml")
    assert check(fixed).warnings == ()


def test_check_command_prints_the_mapping_warning_and_passes(tmp_path):
    path = write(tmp_path, '[parsl.executor_mapping]\ndada2 = { denoise = "htx" }\n')
    done = subprocess.run([sys.executable, "-m", "q2pconf", "check", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (f"warning: {path}: parsl.executor_mapping.dada2.denoise: the "
                           "executors in force here (default, htex) have no 'htx': a pipeline "
                           "fails unless a ParallelConfig block supplies it; did you mean "
                           "htex?\n")


def test_an_interface_without_an_ipv4_address_is_refused(tmp_path):
    """In a new network namespace `lo` is down and has no address: Parsl's address_by_interface
    would fail there ("Cannot assign requested address"), so check does, and with no other
    interface its fix is to remove the address table."""
    require_tool("unshare")
    path = write(tmp_path, by_interface("lo"))
    done = subprocess.run(["unshare", "-rn", sys.executable, "-m", "q2pconf", "check",
                           str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"{path}: parsl.executors[0].address.ifname: 'lo' has no IPv4 "
                           "address here: the interchange listens on it here, so it could not "
                           "start (interfaces here: lo (no IPv4 address))\n  Fix: remove the "
                           "address table: no interface here has an address besides loopback, "
                           "and without it Parsl offers the workers every address it finds\n")
    fixed = write(tmp_path, config(htex("default", provider=local())), "fixed.toml")
    done = subprocess.run(["unshare", "-rn", sys.executable, "-m", "q2pconf", "check",
                           str(fixed)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_an_interface_check_agrees_with_parsl(tmp_path):
    """What check accepts, Parsl's own helper turns into this machine's address."""
    from parsl.addresses import address_by_interface

    for name, ip in HERE.items():
        if ip is not None:
            assert address_by_interface(name) == ip
            check(write(tmp_path, by_interface(name)))
        else:
            with pytest.raises(OSError):
                address_by_interface(name)
    with pytest.raises(OSError):
        address_by_interface(NO_SUCH_INTERFACE)


def test_address_by_route_without_a_route_is_refused(tmp_path):
    """A machine with no route out (here: a new network namespace) cannot answer Parsl's
    address_by_route: check says so instead of OK."""
    require_tool("unshare")
    text = config(htex("default", provider=local(), address={"class": "address_by_route"}))
    path = write(tmp_path, text)
    done = subprocess.run(["unshare", "-rn", sys.executable, "-m", "q2pconf", "check",
                           str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith(f"{path}: parsl.executors[0].address: this machine has no "
                                  "route to the internet, which address_by_route asks for")
    assert "Fix: remove the address table" in done.stderr


def test_address_by_route_fix_names_an_interface_that_passes(tmp_path):
    """Where a route exists it passes; the fix offered without one names a usable interface
    (checked here, where one exists), which passes."""
    if USABLE is None:
        pytest.fail("this machine has no interface with an IPv4 address besides loopback")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("8.8.8.8", 80))
    except OSError:
        pytest.fail("this machine has no route out: the namespace test covers that")
    text = config(htex("default", provider=local(), address={"class": "address_by_route"}))
    check(write(tmp_path, text))
    check(write(tmp_path, by_interface(USABLE), "fixed.toml"))


RUN_DIR = ("{path}: parsl.run_dir: cannot create {failed} ({reason})\n"
           "  Fix: set run_dir to a directory you can write\n")


@pytest.mark.parametrize("below", ["runs", "runs/deeper/still"])
def test_a_run_dir_on_a_read_only_mount_is_refused_as_the_run_would(tmp_path, below):
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    path = write(tmp_path, config(DEFAULT, run_dir=str(mounted / below)))
    done = subprocess.run(readonly_command(mounted, [sys.executable, "-m", "q2pconf", "check",
                                                     str(path)]),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == RUN_DIR.format(path=path, failed=mounted / "runs",
                                         reason="Read-only file system")
    assert list(mounted.iterdir()) == []  # check creates nothing


SETPRIV_DROP = "-dac_override,-dac_read_search,-fowner"


def without_root_powers(command: list[str]) -> list[str]:
    """Root ignores file modes: run `command` without the capabilities that override them."""
    return [require_tool("setpriv"), f"--inh-caps={SETPRIV_DROP}",
            f"--bounding-set={SETPRIV_DROP}", *command]


@pytest.mark.parametrize("below", ["runs", "missing/runs"])
def test_a_run_dir_under_a_directory_you_cannot_write_is_refused(tmp_path, below):
    """A root-owned (here: mode 0555) directory, and a missing root under it."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    path = write(tmp_path, config(DEFAULT, run_dir=str(locked / below)))
    command = without_root_powers([sys.executable, "-m", "q2pconf", "check", str(path)])
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    first = locked / below.split("/")[0]
    assert done.stderr == RUN_DIR.format(path=path, failed=first, reason="Permission denied")
    assert list(locked.iterdir()) == []


def test_the_run_gives_the_same_message(tmp_path):
    """The run directory's error at run time is the one check gives (q2pconf._base.rundir)."""
    from q2pconf._base.paths import CANNOT_CREATE, CANNOT_CREATE_FIX, cannot_create

    mounted = tmp_path / "mounted"
    mounted.mkdir()
    script = ("import sys\nfrom types import SimpleNamespace\nfrom q2pconf._base import rundir\n"
              "rundir.prepare(SimpleNamespace(run_dir=sys.argv[1]), 'c.toml')\n")
    done = subprocess.run(readonly_command(mounted, [sys.executable, "-c", script,
                                                     str(mounted / "runs")]),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-2:]
    assert last == ["q2pconf.ConfigError: c.toml: parsl.run_dir: "
                    + CANNOT_CREATE.format(mounted / "runs", "Read-only file system"),
                    f"  Fix: {CANNOT_CREATE_FIX}"]
    assert cannot_create(str(mounted / "runs")) is None  # writable outside the mount
    assert not os.path.exists(mounted / "runs")


def test_address_by_hostname_whose_name_does_not_resolve_is_refused(tmp_path):
    """In a UTS namespace the machine's name is one no resolver knows: Parsl's
    address_by_hostname would fail there, so check does; its fix passes there too."""
    require_tool("unshare")
    if USABLE is None:
        pytest.fail("this machine has no interface with an IPv4 address besides loopback")
    text = config(htex("default", provider=local(), address={"class": "address_by_hostname"}))
    path = write(tmp_path, text)
    fixed = write(tmp_path, by_interface(USABLE), "fixed.toml")
    script = ('hostname q2p-nohost-0 && "$0" -m q2pconf check "$1"; echo "rc=$?"; '
              'exec "$0" -m q2pconf check "$2"')
    done = subprocess.run(["unshare", "-ru", "sh", "-c", script, sys.executable, str(path),
                           str(fixed)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "rc=2\n" in done.stdout and f"{fixed}: OK" in done.stdout
    first, fix = done.stderr.split("\n", 1)
    assert first.startswith(f"{path}: parsl.executors[0].address: this machine's name "
                            "'q2p-nohost-0' does not resolve ([Errno ")  # the resolver's words
    assert first.endswith("), which address_by_hostname asks for: the executor could not be "
                          "built")
    assert fix == ('  Fix: write address = { class = "address_by_interface", ifname = '
                   f'"{USABLE}" }}\n')


def test_off_linux_only_the_interface_name_is_checked(tmp_path, monkeypatch):
    """A simulation (no macOS machine here): SIOCGIFADDR's number is Linux's, so elsewhere the
    check knows the interface names only; a missing one is still refused, an existing one
    passes."""
    monkeypatch.setattr(sys, "platform", "darwin")
    found = interfaces()
    assert set(found) == set(HERE) and set(found.values()) == {"address not read on this system"}
    with pytest.raises(ConfigError, match=f"'{NO_SUCH_INTERFACE}' is not an interface"):
        check(write(tmp_path, by_interface(NO_SUCH_INTERFACE)))
    check(write(tmp_path, by_interface(next(iter(HERE))), "fixed.toml"))
