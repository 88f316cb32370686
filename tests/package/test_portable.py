"""macOS, QIIME 2's other platform: each Linux-only facility q2pconf uses has a fallback.

No macOS machine is at hand, so every test here is a SIMULATION on Linux: a child program
starts with `sitecustomize` (below) that takes away, for q2pconf's own code only, what macOS
lacks: /proc and /sys/fs/cgroup (an open from a q2pconf module raises FileNotFoundError),
`os.sched_getaffinity` and `os.waitid` (deleted: macOS's Python has waitid from 3.13 on only)
and libc's `prctl` (ctypes finds no such symbol, so the guard
cannot ask for PR_SET_PDEATHSIG). The interchange, the worker pool and their guards inherit
it (PYTHONPATH). Parsl's and psutil's own reads stay as they are: on macOS they have ways of
their own. Each test checks what a user sees: the CPU count, the trace, no process left.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from configs import config, htex, local, threads
from procs import new_token, program_env, wait_gone
from guardtools import children, ended, kill_interchange, listening, pool_guard
from q2pconf._observe import measure
from q2pconf._observe.runfiles import IO

SIMULATION = '''\
"""Test-only (tests/package/test_portable.py): this interpreter lacks Linux's facilities, as
macOS does."""
import builtins, ctypes, io, os, sys

HIDDEN = ("/proc/", "/sys/fs/cgroup")


def _from_q2pconf():
    frame = sys._getframe(2)
    for _ in range(6):  # the caller, or pathlib's methods between it and the open
        if frame is None:
            return False
        if frame.f_globals.get("__name__", "").startswith("q2pconf"):
            return True
        frame = frame.f_back
    return False


def _hide(opener):
    def opened(file, *args, **kwargs):
        try:
            path = os.fsdecode(file)
        except TypeError:  # a descriptor
            path = ""
        if path.startswith(HIDDEN) and _from_q2pconf():
            raise FileNotFoundError(2, "No such file or directory (simulated macOS)", path)
        return opener(file, *args, **kwargs)
    return opened


builtins.open = io.open = _hide(io.open)
os.open = _hide(os.open)
del os.sched_getaffinity
if hasattr(os, "waitid"):  # macOS has it from Python 3.13 only
    del os.waitid


class _NoPrctl(ctypes.CDLL):
    def __getattr__(self, name):
        if name == "prctl":
            raise AttributeError(name)
        return super().__getattr__(name)


ctypes.CDLL = _NoPrctl
'''

CONFIG = config(threads("default", max_threads=2),
                htex("htex", max_workers_per_node=1, provider=local(init_blocks=1, max_blocks=1)),
                strategy="none")


def simulated_env(tmp_path: Path, token: str, text: str | None = None) -> dict[str, str]:
    """A child program's environment in which q2pconf sees no Linux facilities."""
    site = tmp_path / "simulated-macos"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SIMULATION)
    path = None
    if text is not None:
        path = tmp_path / "config.toml"
        path.write_text(text)
    env = program_env(tmp_path, token, path)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    return env


def run_simulated(tmp_path: Path, code: str, text: str | None = None,
                  timeout: float = 240) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", code], env=simulated_env(tmp_path, "-", text),
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


FACILITIES = """\
import ctypes, json, os
from q2pconf._parsl import guard
from q2pconf._observe.measure import _own
print(json.dumps({"affinity": hasattr(os, "sched_getaffinity"), "prctl": guard._PRCTL,
                  "waitid": hasattr(os, "waitid"),
                  "proc_status": _own().status.path,
                  "parsl_proc": os.path.exists("/proc/self/status")}))
"""


def test_the_simulation_takes_the_linux_facilities_away_from_q2pconf_only(
        tmp_path: Path) -> None:
    """The other tests mean something only if the simulation holds: checked here."""
    seen = run_simulated(tmp_path, FACILITIES)
    assert seen == {"affinity": False, "prctl": None, "waitid": False, "proc_status": None,
                    "parsl_proc": True}


CPUS = """\
import json, os
from q2pconf._base import cpus
from q2pconf.config import _local_limits as local_limits
from q2pconf.config._templates import vendored_dict
print(json.dumps({"usable": cpus.usable_cpus(), "workers": cpus.default_workers(),
                  "quota": cpus.cgroup_cpu_quota(), "allowed": local_limits._allowed_cpus(),
                  "cpu_count": os.cpu_count()}))
"""


def test_without_affinity_or_cgroups_the_cpu_count_is_os_cpu_count(tmp_path: Path) -> None:
    """Simulated macOS: no os.sched_getaffinity, no /proc/self/cgroup, no /sys/fs/cgroup. The
    usable CPUs are then os.cpu_count(), and the vendored default's workers follow the seed's
    rule from that count; the affinity check of `cpu_affinity` is skipped (nothing to check)."""
    seen = run_simulated(tmp_path, CPUS)
    count = os.cpu_count() or 1
    assert seen == {"usable": count, "workers": max(count - 1, 1), "quota": None,
                    "allowed": None, "cpu_count": count}


PIPELINE = """\
import csv, json, sys
import trace_steps
from q2pconf._supervise import interchange
answer = trace_steps.peaks()
with open(trace_steps.peaks.trace_path, newline="") as handle:
    rows = list(csv.DictReader(handle, delimiter="\\t"))
print(json.dumps({"answer": answer, "rows": rows, "guarded": len(interchange._GUARDED)}))
"""


def test_a_pipeline_without_proc_writes_its_trace_with_process_peaks(tmp_path: Path) -> None:
    """Simulated macOS: no /proc, so a worker cannot reset its high-water mark before a step
    nor read it after (clear_refs, VmHWM), and the interchange's own pid is not read from its
    guard's children. The run gives its results, every step has its trace line, and a worker's
    peak is its process's peak so far (`rss_of` = process): a 200 MiB step's peak shows in the
    steps after it, in MiB (not the bytes macOS's getrusage gives); its I/O counters are NA.
    Its processes all end."""
    token = new_token()
    env = simulated_env(tmp_path, token, CONFIG)
    done = subprocess.run([sys.executable, "-c", PIPELINE], env=env, capture_output=True,
                          text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert len(set(seen["answer"])) == 1  # one worker ran all four
    assert seen["guarded"] == 0  # the interchange's pid was not read: the guard's is used
    rows = seen["rows"]
    assert [row["status"] for row in rows] == ["done"] * 4
    assert {row["rss_of"] for row in rows} == {"process"}
    assert {row[column] for row in rows for column in IO} == {"NA"}  # no /proc/self/io
    peaks = [float(row["peak_rss_mib"]) for row in rows]
    assert all(200 <= peak < 4096 for peak in peaks[1:]), peaks
    assert wait_gone(token, 20, tmp_path) == []


KILLED = """\
import pipeline_steps, sys
pipeline_steps.long_on_htex(sys.argv[1], 300)
"""


def test_a_program_killed_without_proc_or_prctl_leaves_no_process(tmp_path: Path) -> None:
    """Simulated macOS: no prctl (a guard's child gets no PR_SET_PDEATHSIG) and no /proc (the
    pool's guard knows the program by its pid alone, no start time). SIGKILL of the program
    while an HTEX step runs: the interchange's guard sees its parent change, the pool's guard
    sees the program's pid gone, and each ends its group: nothing is left. The pool's other
    way out (its interchange refusing connections for Q2PCONF_LOST_AFTER s) is put out of
    reach, so only the fallback can end it."""
    token, flag = new_token(), tmp_path / "step-started"
    env = {**simulated_env(tmp_path, token, CONFIG), "Q2PCONF_LOST_AFTER": "3600"}
    program = subprocess.Popen([sys.executable, "-c", KILLED, str(flag)], env=env,
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180  # a safety net: the step starts in seconds
        while not flag.exists():
            assert program.poll() is None, program.communicate(timeout=10)
            assert time.monotonic() < deadline, "the HTEX step never started"
            time.sleep(0.1)
        assert _guard_pool_watches(token) == "-"  # no start time without /proc
        os.kill(program.pid, signal.SIGKILL)
        program.wait(timeout=30)
        assert wait_gone(token, 30, tmp_path) == []
    finally:
        if program.poll() is None:
            program.kill()
            program.wait(timeout=30)


def _guard_pool_watches(token: str) -> str | None:
    """The START of the --program PID:START its pool's guard was given (None: not found)."""
    from procs import tagged

    for process in tagged(token):
        words = process.cmdline()
        if "q2pconf._parsl.guard" in words and "--program" in words:
            return words[words.index("--program") + 1].partition(":")[2]
    return None


def test_a_peak_in_bytes_on_macos_is_given_in_kib() -> None:
    """Simulated macOS: getrusage's ru_maxrss is in bytes there, KiB on Linux; the trace's
    peaks are KiB (MiB in the file) on both. Only the platform name is simulated here."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    linux, darwin = measure.process_peak_kib("linux"), measure.process_peak_kib("darwin")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert before <= linux <= after and before // 1024 <= darwin <= after // 1024


SCRATCH = """\
import json, os, tempfile
from q2pconf._parsl import guard
scratch = guard._scratch()
print(json.dumps({"scratch": scratch, "temp": tempfile.gettempdir()}))
os.rmdir(scratch)
"""
LISTENER = "/pymp-XXXXXXXX/listener-XXXXXXXX"  # what multiprocessing adds below the scratch
MACOS_SUN_PATH = 103  # bytes of a socket's path on macOS (104 with its NUL; Linux: 107)


def test_the_pools_sockets_fit_macos_shorter_socket_paths(tmp_path: Path) -> None:
    """Simulated macOS $TMPDIR (/var/folders/xx/<28 characters>/T, 48 bytes) and longer ones:
    the pool's socket directory goes under it while its sockets fit macOS's 103 bytes (up to
    49), and under /tmp beyond."""
    short = Path(tempfile.mkdtemp(prefix="q2p-", dir="/tmp"))  # tmp_path is longer than 48
    try:
        for length, under_tmpdir in ((48, True), (49, True), (50, False)):
            tmpdir = short / ("t" * (length - len(str(short)) - 1))
            tmpdir.mkdir()
            env = {**program_env(tmp_path, "-"), "TMPDIR": str(tmpdir)}
            done = subprocess.run([sys.executable, "-c", SCRATCH], env=env,
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            seen = json.loads(done.stdout)
            assert len(seen["temp"]) == length
            assert seen["scratch"].startswith(seen["temp"] if under_tmpdir else "/tmp/")
            assert len(seen["scratch"] + LISTENER) <= MACOS_SUN_PATH
    finally:
        shutil.rmtree(short)


def test_a_killed_pool_takes_its_workers_along_without_waitid(tmp_path: Path) -> None:
    """Simulated macOS before Python 3.13 (no os.waitid): the guard learns of its child's end
    by reaping it instead, ends as it did, and ends its workers, as on Linux."""
    token, server = new_token(), listening()
    with server:
        process = pool_guard(tmp_path, token, server, env=simulated_env(tmp_path, token))
        os.kill(children(process.pid)[0], signal.SIGKILL)
        assert ended(process, 30) == -signal.SIGKILL  # the guard ends as its child did
    assert wait_gone(token, 30) == []


def test_a_terminated_guard_ends_its_pool_without_waitid(tmp_path: Path) -> None:
    """Simulated macOS before Python 3.13 (no os.waitid): SIGTERM to the guard, as a provider
    cancelling a block sends, ends its child's group (waiting for it the fallback's way) and
    the guard dies of it."""
    token, server = new_token(), listening()
    with server:
        process = pool_guard(tmp_path, token, server, env=simulated_env(tmp_path, token))
        process.terminate()
        assert ended(process, 30) == -signal.SIGTERM
    assert wait_gone(token, 30) == []


def test_a_dead_interchange_without_proc_fails_the_run_naming_its_guard(tmp_path: Path) -> None:
    """Simulated macOS: no /proc, so the interchange's own pid is never read from its guard's
    children. SIGKILL of the interchange while a step runs: its guard ends as it did, and the
    run fails within seconds, naming the guard's pid (the one it knows), and nothing is left."""
    token = new_token()
    answer, err, killed, (_, guard) = kill_interchange(tmp_path, token,
                                                       simulated_env(tmp_path, token))
    assert answer["type"] == "ExecutorFailed", err
    assert (f"the interchange of executor 'htex' (pid {guard}) was killed by SIGKILL"
            in answer["message"])
    assert answer["caught"] - killed < 15
