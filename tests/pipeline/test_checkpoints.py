"""resume=True's one checkpoint per run directory (q2pconf.pipeline._checkpoints), as a user meets
it: real runs in child processes with real Parsl, the file then cut with truncate at chosen offsets,
overwritten with garbage, or resumed by two processes at once. Each damaged case gives the right
result, runs again only the steps whose results were lost, and says so in one warning naming the
file, which is moved aside, not deleted."""
from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest

from configs import config, htex, local, threads
from conftest import readonly_command
from procs import config_env, new_token

THREADS = config(threads("default", max_threads=2))
HTEX = config(htex("default", max_workers_per_node=2, provider=local(init_blocks=1)),
              strategy="none")

SCRIPT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import q2pconf._base.notice as notice
    from q2pconf import parallel_pipeline, step

    notice.AFTER = float(os.environ.get("NOTICE_AFTER", "60"))  # before a wait says so

    @step
    def work(log, value):
        with open(log, "a") as handle:
            handle.write(f"{value}\\n")
        return [value] * 50  # a few hundred bytes a record

    @parallel_pipeline(resume=True)
    def run(log, values, ready):
        if ready:  # two processes at once: both loaded the checkpoint before either writes
            Path(ready, str(os.getpid())).touch()
            deadline = time.monotonic() + 120
            while not Path(ready, "go").exists():
                if time.monotonic() > deadline:
                    raise SystemExit("never told to go")
                time.sleep(0.02)
        return [work(log, v) for v in values]

    if __name__ == "__main__":  # an HTEX worker imports this file to find `work`
        print(sum(map(sum, run(sys.argv[1], range(int(sys.argv[2])), sys.argv[3]))))
""")

HEAD = struct.Struct("<QI")  # a record's payload length and CRC-32; the header's tail too
HEADER = 8 + HEAD.size


def start(tmp_path: Path, steps: int, text: str = THREADS, ready: str = "",
          **extra: str) -> subprocess.Popen[str]:
    script = tmp_path / "resumed.py"
    script.write_text(SCRIPT)
    env = config_env(tmp_path, new_token(), text, **extra)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "calls.log"),
                             str(steps), ready], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run(tmp_path: Path, steps: int, text: str = THREADS) -> str:
    """Run the pipeline over `steps` values; its stderr. Checks the result."""
    child = start(tmp_path, steps, text)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err[-3000:]
    assert out == f"{50 * sum(range(steps))}\n", err[-3000:]
    return err


def calls(tmp_path: Path) -> int:
    return len((tmp_path / "calls.log").read_text().split())


def checkpoint(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "q2pconf" / "runinfo" / "resume" / "checkpoint-v1"


def offsets(path: Path) -> list[int]:
    """Where each record starts, and the file's end."""
    data = path.read_bytes()
    assert data[:8] == b"Q2PCKPT\x01"
    assert HEAD.unpack_from(data, 8)[0] == len(data)  # the header holds the length
    found, at = [], HEADER
    while at < len(data):
        found.append(at)
        at += HEAD.size + HEAD.unpack_from(data, at)[0]
    return found + [at]


def test_runs_share_one_checkpoint_that_grows_with_new_results_only(tmp_path: Path) -> None:
    """Before: every run wrote all results into a tasks.pkl of its own and read all earlier
    ones. Now a fully cached run writes nothing, and a run with new steps appends just those."""
    assert run(tmp_path, 6) == "" and calls(tmp_path) == 6
    path = checkpoint(tmp_path)
    first, records = path.stat(), path.read_bytes()[HEADER:]
    assert len(offsets(path)) == 6 + 1
    assert run(tmp_path, 6) == "" and calls(tmp_path) == 6
    again = path.stat()
    assert (again.st_size, again.st_mtime_ns) == (first.st_size, first.st_mtime_ns)
    assert run(tmp_path, 8) == "" and calls(tmp_path) == 8
    assert len(offsets(path)) == 8 + 1
    assert path.read_bytes()[HEADER:first.st_size] == records  # appended to, never rewritten
    assert list((tmp_path / "cache").rglob("tasks.pkl")) == []
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint-v1"]


def _cut_inside(path: Path, at: list[int]) -> int:
    os.truncate(path, at[3] + 7)
    return 3


def _cut_between(path: Path, at: list[int]) -> int:
    os.truncate(path, at[3])  # nothing here but the header's length tells it was cut
    return 3


def _garbage(path: Path, at: list[int]) -> int:
    path.write_bytes(os.urandom(at[-1]))
    return 0


def _flipped(path: Path, at: list[int]) -> int:
    data = bytearray(path.read_bytes())
    data[at[2] + HEAD.size + 3] ^= 0xFF  # inside the third record's pickle
    path.write_bytes(bytes(data))
    return 2


def _empty(path: Path, at: list[int]) -> int:
    os.truncate(path, 0)  # a crash before anything reached the disk
    return 0


DAMAGE = {"cut-inside-a-record": _cut_inside, "cut-between-records": _cut_between,
          "garbage": _garbage, "a-flipped-byte": _flipped}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_moved_aside_in_one_warning_and_its_whole_records_used(
        tmp_path: Path, damage: str) -> None:
    """Before: Parsl's BadCheckpoint traceback and no result (cut inside a record, garbage),
    or records silently lost (cut between records)."""
    run(tmp_path, 6)
    path = checkpoint(tmp_path)
    kept = DAMAGE[damage](path, offsets(path))
    damaged = path.read_bytes()
    err = run(tmp_path, 6)
    assert calls(tmp_path) == 6 + 6 - kept  # only the lost results were computed again
    lines = err.splitlines()
    assert len(lines) == 1, err
    asides = list(path.parent.glob("checkpoint-v1.damaged-*"))
    assert len(asides) == 1 and asides[0].read_bytes() == damaged  # kept, not deleted
    assert f"the resume checkpoint {path} was damaged" in lines[0]
    assert f"moved aside to {asides[0]}" in lines[0]
    assert f"its {kept} whole results are kept" in lines[0]
    assert "Traceback" not in err and "BadCheckpoint" not in err
    assert len(offsets(path)) == 6 + 1  # whole again, with what the second run added
    assert run(tmp_path, 6) == "" and calls(tmp_path) == 12 - kept


def test_an_empty_checkpoint_is_a_fresh_start_without_a_warning(tmp_path: Path) -> None:
    """A file created but never written (a crash at once) holds nothing to lose."""
    run(tmp_path, 3)
    _empty(checkpoint(tmp_path), [])
    assert run(tmp_path, 3) == "" and calls(tmp_path) == 6
    assert run(tmp_path, 3) == "" and calls(tmp_path) == 6


def test_a_checkpoint_cut_inside_a_record_on_htex(tmp_path: Path) -> None:
    run(tmp_path, 6, HTEX)
    path = checkpoint(tmp_path)
    kept = _cut_inside(path, offsets(path))
    err = run(tmp_path, 6, HTEX)
    assert calls(tmp_path) == 12 - kept
    assert len(err.splitlines()) == 1 and "was damaged" in err, err
    assert run(tmp_path, 6, HTEX) == "" and calls(tmp_path) == 12 - kept


def test_a_result_this_python_cannot_unpickle_is_one_line_and_runs_again(
        tmp_path: Path) -> None:
    """Simulated (no other Python here to write one): the first record, whole, rewritten to
    hold a result naming a module this Python lacks, as one written by another version of a
    library would."""
    run(tmp_path, 3)
    path = checkpoint(tmp_path)
    data, at = path.read_bytes(), offsets(path)
    hashsum = pickle.loads(data[at[0] + HEAD.size:at[1]])[0]
    module = _Elsewhere.__module__.encode()
    payload = pickle.dumps((hashsum, _Elsewhere(), "Python 3.10.13 with Parsl 2024.12.2"))
    path.write_bytes(_file([_record(payload.replace(module, b"z" * len(module)))]
                           + _records(data, at)[1:]))
    err = run(tmp_path, 3)
    assert len(err.splitlines()) == 1, err
    assert f"1 results in the resume checkpoint {path} cannot be read by this Python" in err
    assert calls(tmp_path) == 4  # that step ran again, the other two did not
    assert not list(path.parent.glob("*.damaged-*"))


def test_results_another_python_or_parsl_wrote_are_used_and_said_so(tmp_path: Path) -> None:
    """Simulated: each record's writer rewritten to another Python and Parsl (the keys stay
    this Parsl's, so all are used). Run by hand for real: a checkpoint written under Python
    3.10 with Parsl 2024.12.2 and resumed under Python 3.11 with Parsl 2026.10 gives the right
    result (Parsl's keys changed between them, so its steps ran again)."""
    run(tmp_path, 3)
    path = checkpoint(tmp_path)
    data = path.read_bytes()
    old = []
    for record in _records(data, offsets(path)):
        hashsum, result, _ = pickle.loads(record[HEAD.size:])
        old.append(_record(pickle.dumps((hashsum, result, "Python 3.10.13 with Parsl 2024.12.2"))))
    path.write_bytes(_file(old))
    err = run(tmp_path, 3)
    assert calls(tmp_path) == 3  # all three used
    assert len(err.splitlines()) == 1, err
    assert (f"the resume checkpoint {path} holds results written by other versions (3 by "
            "Python 3.10.13 with Parsl 2024.12.2; this is Python ") in err


def _records(data: bytes, at: list[int]) -> list[bytes]:
    return [data[start:end] for start, end in zip(at, at[1:])]


def _record(payload: bytes) -> bytes:
    return HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def _file(records: list[bytes]) -> bytes:
    """A checkpoint file holding `records`, its header saying their length."""
    length = HEADER + sum(map(len, records))
    header = b"Q2PCKPT\x01" + HEAD.pack(length, zlib.crc32(struct.pack("<Q", length)))
    return header + b"".join(records)


class _Elsewhere:
    """Pickled by reference to this module, renamed in the pickle to one that is nowhere."""


def test_two_processes_resuming_at_once_keep_working_and_repair_once(tmp_path: Path) -> None:
    """Both start on a damaged checkpoint and then append at the same time: one repairs it
    (one warning in all), both give the right result, and the file stays whole."""
    run(tmp_path, 4)
    path = checkpoint(tmp_path)
    _cut_inside(path, offsets(path))
    ready = tmp_path / "ready"
    ready.mkdir()
    children = [start(tmp_path, 40, ready=str(ready)) for _ in range(2)]
    _wait_until(lambda: len(list(ready.iterdir())) == 2, children)
    (ready / "go").touch()
    outs = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0, 0], outs
    assert [out for out, _ in outs] == [f"{50 * sum(range(40))}\n"] * 2
    warnings = "".join(err for _, err in outs).splitlines()
    assert len(warnings) == 1 and "was damaged" in warnings[0], warnings
    assert len(list(path.parent.glob("*.damaged-*"))) == 1
    assert len(offsets(path)) >= 40 + 1  # whole; a step both ran may be there twice
    before = calls(tmp_path)
    assert run(tmp_path, 40) == "" and calls(tmp_path) == before


def test_a_run_appending_after_another_died_mid_append_leaves_the_file_whole(
        tmp_path: Path) -> None:
    """Another process dies while appending (simulated: half a record written past the length
    the header holds) while this one runs: this one's records go where the dead one's began,
    and the next run reads them all without a warning."""
    run(tmp_path, 3)
    path = checkpoint(tmp_path)
    ready = tmp_path / "ready"
    ready.mkdir()
    child = start(tmp_path, 6, ready=str(ready))
    _wait_until(lambda: len(list(ready.iterdir())) == 1, [child])
    with open(path, "ab") as handle:
        handle.write(HEAD.pack(1000, 0) + b"half a record")
    (ready / "go").touch()
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0 and out == f"{50 * sum(range(6))}\n" and err == "", err
    assert len(offsets(path)) == 6 + 1
    assert run(tmp_path, 6) == "" and calls(tmp_path) == 6


def test_whole_records_past_the_header_length_are_kept_by_the_next_append(
        tmp_path: Path) -> None:
    """A process that died between writing its records and the header's new length left
    whole records the next run reads and reuses: its own appends must not overwrite them, or
    the run after that computes those steps again."""
    run(tmp_path, 4)
    path = checkpoint(tmp_path)
    at = offsets(path)
    data = bytearray(path.read_bytes())
    data[:HEADER] = _file([])[:8] + HEAD.pack(at[3], zlib.crc32(struct.pack("<Q", at[3])))
    path.write_bytes(bytes(data))  # the 4th record is whole but past the committed length
    assert run(tmp_path, 5) == "" and calls(tmp_path) == 5  # the 4th reused, the 5th new
    assert len(offsets(path)) == 5 + 1
    assert run(tmp_path, 5) == "" and calls(tmp_path) == 5  # all five still there


def _wait_until(ready: object, children: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 120
    while not ready():  # type: ignore[operator]
        for child in children:
            if child.poll() is not None:
                pytest.fail(f"child exited early: {child.communicate(timeout=10)}")
        if time.monotonic() > deadline:
            for child in children:
                child.kill()
            pytest.fail("the children never loaded the checkpoint")
        time.sleep(0.05)


UNPICKLABLE = textwrap.dedent("""
    import sys, threading
    from q2pconf import parallel_pipeline, step

    @step
    def guarded(log, value):
        with open(log, "a") as handle:
            handle.write(f"{value}\\n")
        return value if value else threading.Lock()

    @parallel_pipeline(resume=True)
    def run(log):
        return [guarded(log, v) for v in (0, 1)]

    print([type(result).__name__ for result in run(sys.argv[1])])
""")


def test_a_result_pickle_cannot_write_is_one_warning_and_runs_again(tmp_path: Path) -> None:
    """Before: the error rose inside Parsl's completion of the step (no result, ever)."""
    script = tmp_path / "unpicklable.py"
    script.write_text(UNPICKLABLE)
    env = config_env(tmp_path, new_token(), THREADS)
    for runs in (2, 3):  # the lock's step runs each time; the int's is reused
        done = subprocess.run([sys.executable, str(script), str(tmp_path / "calls.log")],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and done.stdout == "['lock', 'int']\n", done.stderr
        [line] = done.stderr.splitlines()
        assert "a step's result of type lock cannot be saved for resume" in line
        assert calls(tmp_path) == runs


def test_a_checkpoint_in_a_read_only_cache_is_used_and_said_so(tmp_path: Path) -> None:
    """A cache mounted read-only (a container, a shared account): its results are still
    reused, as before, and the run says that its own are not saved."""
    run(tmp_path, 4)
    script = tmp_path / "resumed.py"
    argv = [sys.executable, str(script), str(tmp_path / "calls.log"), "5", ""]
    done = subprocess.run(readonly_command(tmp_path / "cache", argv), cwd=tmp_path,
                          env=config_env(tmp_path, new_token(), THREADS), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout == f"{50 * sum(range(5))}\n", done.stderr
    assert calls(tmp_path) == 5  # four reused
    said = [line for line in done.stderr.splitlines() if "resume checkpoint" in line]
    assert len(said) == 1 and f"cannot write the resume checkpoint {checkpoint(tmp_path)}" \
        in said[0] and "4 results read from it are used" in said[0], done.stderr


def test_checkpoints_of_earlier_versions_are_copied_in_once(tmp_path: Path) -> None:
    """Earlier q2pconf versions left a tasks.pkl in each run's directory (Parsl's own
    checkpointing, which a config that sets checkpoint_mode still gets): their results are
    used, moved into the one checkpoint once, and the old files renamed, not deleted."""
    runs = tmp_path / "runs"
    own = config(threads("default", max_threads=2), run_dir=str(runs),
                 checkpoint_mode="task_exit")
    run(tmp_path, 4, own)
    old = list(runs.rglob("tasks.pkl"))
    assert len(old) == 1 and calls(tmp_path) == 4
    shared = config(threads("default", max_threads=2), run_dir=str(runs))
    err = run(tmp_path, 5, shared)
    assert calls(tmp_path) == 5  # the four earlier results were used
    assert len(err.splitlines()) == 1, err
    assert "copied 4 results of 1 checkpoints of earlier q2pconf versions" in err
    assert not old[0].exists() and Path(f"{old[0]}.migrated").exists()
    assert len(offsets(runs / "resume" / "checkpoint-v1")) == 5 + 1
    assert run(tmp_path, 5, shared) == "" and calls(tmp_path) == 5


def test_a_damaged_checkpoint_of_an_earlier_version_is_moved_aside(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    own = config(threads("default", max_threads=2), run_dir=str(runs),
                 checkpoint_mode="task_exit")
    run(tmp_path, 4, own)
    [old] = list(runs.rglob("tasks.pkl"))
    os.truncate(old, old.stat().st_size - 5)  # the last of four records cut
    err = run(tmp_path, 4, config(threads("default", max_threads=2), run_dir=str(runs)))
    assert calls(tmp_path) == 5, err  # the one lost result was computed again
    assert len(err.splitlines()) == 1, err
    assert f"the old checkpoint {old} is cut, damaged" in err and "3 whole results" in err
    assert len(list(old.parent.glob("tasks.pkl.damaged-*"))) == 1


def test_an_old_checkpoint_that_cannot_be_renamed_leaves_resume_working(
        tmp_path: Path) -> None:
    """An earlier version's tasks.pkl in a directory this user cannot write (a colleague's
    run in a shared run_dir; here a read-only mount): its results are copied in and used,
    and this run's own results are still saved. Before: the failed rename turned
    checkpointing off for every run, with a warning blaming the writable checkpoint file."""
    runs = tmp_path / "runs"
    own = config(threads("default", max_threads=2), run_dir=str(runs),
                 checkpoint_mode="task_exit")
    run(tmp_path, 4, own)
    [old] = list(runs.rglob("tasks.pkl"))
    shared = config(threads("default", max_threads=2), run_dir=str(runs))
    script = tmp_path / "resumed.py"
    for steps in (5, 6):
        argv = [sys.executable, str(script), str(tmp_path / "calls.log"), str(steps), ""]
        done = subprocess.run(readonly_command(old.parent, argv), cwd=tmp_path,
                              env=config_env(tmp_path, new_token(), shared),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{50 * sum(range(steps))}\n", done.stderr
        assert "are not saved" not in done.stderr, done.stderr
        assert calls(tmp_path) == steps  # the earlier ones reused, each new one run once
        assert len(offsets(runs / "resume" / "checkpoint-v1")) == steps + 1
    assert old.exists()


HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()  # until the test closes it (or kills this program)
"""


def test_a_run_waiting_for_another_runs_lock_says_so_once(tmp_path: Path) -> None:
    """A run that holds the checkpoint's lock and is stopped (Ctrl-Z) holds up every run of
    the run_dir: the waiting run says so once, then carries on when the lock is released."""
    import threading

    run(tmp_path, 3)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(checkpoint(tmp_path))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    safety = threading.Timer(90, holder.kill)  # the lock is released whatever happens
    safety.daemon = True
    safety.start()
    try:
        assert holder.stdout.readline() == "held\n"
        child = start(tmp_path, 5, NOTICE_AFTER="1")
        said = child.stderr.readline()  # blocks until the notice, or EOF once released
        holder.stdin.close()
        out, err = child.communicate(timeout=120)
    finally:
        safety.cancel()
        holder.kill()
        holder.wait(timeout=30)
    assert "locked by another run" in said and str(checkpoint(tmp_path)) in said, said + err
    assert "locked by another run" not in err  # once
    assert child.returncode == 0 and out == f"{50 * sum(range(5))}\n", err[-3000:]
    assert calls(tmp_path) == 3 + 2
