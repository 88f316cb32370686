"""The one checkpoint `resume=True` keeps per run directory: `<run_dir>/resume/checkpoint-v1`
(q2pconf's default run_dir is ~/.cache/q2pconf/runinfo), shared by every resumed pipeline
that uses that run_dir, growing with new results only. Parsl's own checkpointing writes a
full `tasks.pkl` into each run's directory and reads all earlier ones at every start; q2pconf
keeps Parsl's memoizer (it decides what is reused) and only loads its table from, and sends
its checkpoint writes to, this file.

The file is append-only, each record framed so that damage is found, never read as a result:

    header:  MAGIC, committed length (8 bytes), CRC-32 of that length (4 bytes)
    record:  payload length (8 bytes), CRC-32 of the payload (4 bytes), payload
             (pickle of (Parsl's hash of the step, its result, the Python and Parsl versions
             that wrote it))

A writer appends whole records under an exclusive `flock`, then writes the new length into
the header: a file shorter than its header says was cut at a record boundary, one ending
inside a record was cut there, anything else that does not parse is garbage. Each case keeps
the whole records before the damage, moves the damaged file aside (`.damaged-<time>`, never
deleted) and says so in one warning; the steps whose results were lost run again. A record
that is whole but whose result this Python cannot unpickle (written by another Python or
another version of a library) is skipped, in one line; results another Python or Parsl wrote
are used where Parsl's key for the step is unchanged, also said in one line. Another format
(a later q2pconf) uses another file name: versions never read or append each other's files.

Checkpoints of earlier q2pconf versions (`<run_dir>/*/checkpoint/tasks.pkl`, one per run)
are copied in once and renamed `tasks.pkl.migrated`, which may then be deleted."""
from __future__ import annotations

import errno
import fcntl
import functools
import glob
import os
import pickle
import struct
import threading
import time
import zlib
from collections import Counter
from typing import Any, Iterator

from q2pconf._base.errors import warn, warn_once
from q2pconf._base.notice import Quiet
from q2pconf._base.paths import make_private_dirs

MAGIC = b"Q2PCKPT\x01"
_LENGTH = struct.Struct("<QI")  # a length and a CRC-32: the header's tail, a record's head
HEADER = len(MAGIC) + _LENGTH.size
NAME = os.path.join("resume", "checkpoint-v1")
UNREADABLE = ""  # in the count of records by writer: those this Python cannot unpickle


class Damage(Exception):
    """What is wrong with a checkpoint file (its message), and where its whole records end."""

    def __init__(self, what: str, end: int = HEADER) -> None:
        super().__init__(what)
        self.end = end


class Store:
    """The checkpoint file under `base` (a run_dir holding Parsl's numbered run directories)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.path = os.path.join(base, NAME)
        self.known: set[str] = set()  # hashes in the file: never written twice
        self.writing = True

    def attach(self, dfk: Any) -> None:
        """Fill the DFK's memo table from the file and send its checkpoint writes here.
        Parsl 2024.12 writes checkpoints in `DataFlowKernel.checkpoint(tasks)`, later Parsl
        in `BasicMemoizer._checkpoint_these_tasks(commands)`; both run with the memoizer's
        (or DFK's) checkpoint lock held, once per finished step under task_exit."""
        from concurrent.futures import Future

        table = self.load()
        for hashsum, result in table.items():
            done: Future[Any] = Future()
            done.set_result(result)
            dfk.memoizer.memo_lookup_table[hashsum] = done
        memoizer = dfk.memoizer
        if hasattr(memoizer, "_checkpoint_these_tasks"):
            memoizer._checkpoint_these_tasks = lambda commands: self.save(
                (c.task_record.get("hashsum"), c.result) for c in commands if c.exception is None)
        else:
            dfk.checkpoint = lambda tasks=None: self.save(_finished(tasks or ()))

    def load(self) -> dict[str, Any]:
        """The results in the file (and in old per-run checkpoints, copied in), the file
        repaired first if it is damaged. Any failure is a warning and an empty table."""
        try:
            make_private_dirs(os.path.dirname(self.path))
            with _locked(self.path) as fd:
                table = self._read_or_repair(fd)
            with _locked(self.path) as fd:  # the file a repair put in place
                table.update(self._migrate(fd, table))
        except OSError as error:
            self.writing = False
            return self._read_only(error)
        self.known = set(table)
        return table

    def _read_only(self, error: OSError) -> dict[str, Any]:
        """The results of a checkpoint this process cannot write (a read-only cache), used
        as they are, damage or not: one warning, and nothing saved."""
        table: dict[str, Any] = {}
        try:
            with open(self.path, "rb") as stream:
                _read(stream.fileno(), table, Counter())
        except (OSError, Damage):
            pass  # a file that is missing or unreadable gives nothing; the one below says so
        warn_once(f"cannot write the resume checkpoint {self.path} ({error.strerror or error}): "
                  f"{len(table)} results read from it are used, and this run's are not saved "
                  "for the next resume. Fix: make it writable, or set run_dir in the config's "
                  "[parsl] table to a writable directory")
        return table

    def _read_or_repair(self, fd: int) -> dict[str, Any]:
        table: dict[str, Any] = {}
        others: Counter[str] = Counter()
        try:
            end = _read(fd, table, others)
        except Damage as damage:
            self._repair(fd, damage, len(table))
            return table
        self._say_others(others)
        if end == 0:
            _write_all(fd, _header(HEADER), 0)
        elif _committed(fd) < end:  # whole records a writer that died left past the length:
            _write_all(fd, _header(end), 0)  # read and used, so kept (appends go after them)
        return table

    def _say_others(self, others: Counter[str]) -> None:
        """One line each for results this Python cannot read, and for results other versions
        wrote: their keys may differ from this Parsl's, so their steps may run again."""
        unreadable = others.pop(UNREADABLE, 0)
        if unreadable:
            warn_once(f"{unreadable} results in the resume checkpoint {self.path} cannot be "
                      "read by this Python (written by another Python or library version): "
                      "those steps run again")
        if others:
            writers = "; ".join(f"{count} by {writer}" for writer, count in others.items())
            warn_once(f"the resume checkpoint {self.path} holds results written by other "
                      f"versions ({writers}; this is {_writer()}): a step whose key differs "
                      "between them runs again (results are not affected). To drop them, "
                      "delete the file")

    def _repair(self, fd: int, damage: Damage, kept: int) -> None:
        """Move the damaged file aside and put one holding its whole records (as they were)
        in its place, written beside it, then renamed over it: the path always names a
        readable file."""
        aside = f"{self.path}.damaged-{_stamp()}"
        fresh = f"{self.path}.new-{os.getpid()}"
        data = os.pread(fd, damage.end - HEADER, HEADER)
        with open(fresh, "wb") as out:
            out.write(_header(HEADER + len(data)) + data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(self.path, aside)
        except OSError:  # a file system without hard links: the damaged file is copied
            with open(aside, "wb") as copy:
                copy.write(os.pread(fd, os.fstat(fd).st_size, 0))
        os.replace(fresh, self.path)
        warn(f"the resume checkpoint {self.path} was damaged ({damage}): moved aside to "
             f"{aside}; its {kept} whole results are kept, and steps whose results were lost run "
             "again")

    def _migrate(self, fd: int, table: dict[str, Any]) -> dict[str, Any]:
        """Copy the results of earlier q2pconf versions' per-run checkpoints in, once; each
        old file is renamed after (a damaged one moved aside, as this file would be)."""
        base = glob.escape(self.base)
        old = sorted(glob.glob(os.path.join(base, "*", "checkpoint", "tasks.pkl")) +
                     glob.glob(os.path.join(base, "*", "*", "checkpoint", "tasks.pkl")))
        found: dict[str, Any] = {}
        whole = [path for path in old if _read_legacy(path, found)]
        new = {h: r for h, r in found.items() if h not in table}
        _append(fd, b"".join(_frame(h, r) for h, r in new.items()))
        # one that cannot be renamed (another user's run, a read-only directory) stays, read
        # again at each start: its results are in the file, so nothing is copied twice
        renamed = [path for path in whole if _renamed(path, path + ".migrated")]
        if whole and (new or renamed):
            left = len(whole) - len(renamed)
            warn(f"copied {len(new)} results of {len(whole)} checkpoints of earlier q2pconf "
                 f"versions into {self.path}; the old files are renamed tasks.pkl.migrated "
                 f"under {self.base} and may be deleted" + (
                     f" ({left} in directories this user cannot write are left as they are)"
                     if left else ""))
        return new

    def save(self, results: Any) -> None:
        """Append the results not in the file yet; a failure (a full disk) is one warning and
        no more writes this run, the file cut back to its last whole record."""
        if not self.writing:
            return
        frames, hashes = [], []
        for hashsum, result in results:
            if hashsum and hashsum not in self.known:
                frames.append(_savable(hashsum, result))
                hashes.append(hashsum)
        if not frames:
            return
        try:
            with _locked(self.path) as fd:
                _append(fd, b"".join(frames))
        except OSError as error:
            self.writing = False
            warn_once(f"cannot write the checkpoint {self.path} ({error.strerror or error}); "
                      "checkpointing is off for the rest of this run (results are not "
                      "affected; steps finished from now on will run again on resume). Fix: "
                      "free space there, or set run_dir in the config's [parsl] table")
            return
        self.known.update(hashes)


def _finished(tasks: Any) -> Iterator[tuple[str, Any]]:
    """(hash, result) of Parsl 2024.12's task records that ended with a result."""
    for task in tasks:
        future = task["app_fu"]
        if future.done() and future.exception() is None:
            yield task.get("hashsum"), future.result()


def _savable(hashsum: str, result: Any) -> bytes:
    """The record of a result, or none for one pickle cannot write (a lock, a generator):
    raised here, the error would stop Parsl from ever completing the step."""
    try:
        return _frame(hashsum, result)
    except Exception as error:
        warn_once(f"a step's result of type {type(result).__name__} cannot be saved for resume "
                  f"({type(error).__name__}: {error}): such steps run again on resume")
        return b""


def _frame(hashsum: str, result: Any) -> bytes:
    payload = pickle.dumps((hashsum, result, _writer()))
    return _LENGTH.pack(len(payload), zlib.crc32(payload)) + payload


@functools.lru_cache(maxsize=None)
def _writer() -> str:
    """The versions a record's key depends on: Parsl's hash of a step changed between them."""
    import platform

    import parsl

    return f"Python {platform.python_version()} with Parsl {parsl.__version__}"


def _header(length: int) -> bytes:
    number = struct.pack("<Q", length)
    return MAGIC + _LENGTH.pack(length, zlib.crc32(number))


class _locked:
    """An open descriptor of `path` (created if missing) under an exclusive flock, released
    on close. A file replaced while waiting for the lock (by a repair) is opened again."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> int:
        # The threads of one process take turns first: on NFS, flock is a POSIX lock, which
        # the threads of one process share (Parsl 2024.12 writes from its completion threads
        # without a lock of its own once q2pconf takes over its checkpoint).
        _THREADS.acquire()
        try:
            self.fd = self._open_locked()
        except BaseException:
            _THREADS.release()
            raise
        return self.fd

    def _open_locked(self) -> int:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            _lock(fd, self.path)
            if os.fstat(fd).st_ino == _inode(self.path):
                return fd
            os.close(fd)

    def __exit__(self, *exc: Any) -> None:
        try:
            os.close(self.fd)
        finally:
            _THREADS.release()


_THREADS = threading.Lock()  # held with the file's flock, by one thread of this process


def _lock(fd: int, path: str) -> None:
    """An exclusive flock; on a file system without locks (Lustre mounted noflock), none,
    said once: runs resuming at once may then damage the file, found at the next start."""
    try:
        _wait_for_lock(fd, path)
    except OSError as error:
        if error.errno not in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        warn_once(f"cannot lock the resume checkpoint {path} ({error.strerror}): two runs "
                  "resuming at once may damage it (found and repaired at the next start). "
                  "Fix: set run_dir in the config's [parsl] table to a file system with locks")


def _wait_for_lock(fd: int, path: str) -> None:
    """flock(LOCK_EX), saying once when another run has held it for a while (a run stopped
    with Ctrl-Z while it holds the lock holds it until it is continued)."""
    quiet = Quiet(lambda seconds: (
        f"waited {seconds:.0f} s for the resume checkpoint {path}, locked by another run "
        "of this run_dir (a stopped or stuck program?); carrying on when it is released. "
        "Fix: continue or end that program (`fuser` on the file names it)"))
    quiet.begin()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            quiet.look()
            time.sleep(0.05)


def _inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return -1


def _append(fd: int, data: bytes) -> None:
    """Whole records after the committed end, then the header's new length; an error leaves
    the file as it was (cut back: truncating needs no free space)."""
    if not data:
        return
    end = _committed(fd)
    if end > os.fstat(fd).st_size:  # cut since: left for the next start to repair and say
        return
    try:
        if end < HEADER:
            end = HEADER
            _write_all(fd, _header(HEADER), 0)
        _write_all(fd, data, end)
        if os.fstat(fd).st_size > end + len(data):  # a writer that died left a cut record
            os.ftruncate(fd, end + len(data))
        _write_all(fd, _header(end + len(data)), 0)
    except OSError:
        try:
            os.ftruncate(fd, end)
        except OSError:
            pass
        raise


def _committed(fd: int) -> int:
    """Where the next record goes: the length the header holds (a process that died while
    appending left bytes after it), or the file's size when the header is unreadable."""
    length = _length(os.pread(fd, HEADER, 0))
    return os.fstat(fd).st_size if length is None else length


def _length(data: bytes) -> int | None:
    """The length a header at the start of `data` holds; None if there is no readable one."""
    if len(data) < HEADER or not data.startswith(MAGIC):
        return None
    length, check = _LENGTH.unpack_from(data, len(MAGIC))
    return length if zlib.crc32(struct.pack("<Q", length)) == check else None


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _read(fd: int, table: dict[str, Any], others: Counter[str]) -> int:
    """Read every record into `table`; the file's length. Damage raises `Damage` with the
    whole records before it in `table`."""
    data = os.pread(fd, os.fstat(fd).st_size, 0)
    if not data:
        return 0
    committed = _length(data)
    if committed is None:
        raise Damage("it does not start as a q2pconf checkpoint, or its header is unreadable")
    at = HEADER
    while at < len(data):
        at = _record(data, at, table, others)
    if at < committed:
        raise Damage(f"it ends at byte {len(data)} but held {committed} bytes: the records at "
                     "its end are missing", at)
    return len(data)


def _record(data: bytes, at: int, table: dict[str, Any], others: Counter[str]) -> int:
    """Read the record at `at` into `table` (counting in `others` one this Python cannot read
    or another version wrote); where the next one starts."""
    if at + _LENGTH.size > len(data):
        raise Damage(f"it is cut inside a record at byte {len(data)}", at)
    length, check = _LENGTH.unpack_from(data, at)
    start = at + _LENGTH.size
    if length == 0:  # no pickle is empty: zeros (a hole) are no record
        raise Damage(f"it holds zeros at byte {at}, where a record should be", at)
    if start + length > len(data):
        raise Damage(f"it is cut inside a record at byte {len(data)}", at)
    payload = data[start:start + length]
    if zlib.crc32(payload) != check:
        raise Damage(f"the record at byte {at} does not match its checksum", at)
    try:
        hashsum, result, writer = pickle.loads(payload)
    except Exception:
        others[UNREADABLE] += 1
    else:
        table[hashsum] = result
        if writer != _writer():
            others[writer] += 1
    return start + length


def _read_legacy(path: str, table: dict[str, Any]) -> bool:
    """Parsl's own checkpoint format: pickled dicts one after another. A file cut, damaged or
    written by another Python or Parsl gives what it can, is moved aside and said so: False."""
    read = 0
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            while stream.tell() < size:  # EOFError before the end: a record cut short
                record = pickle.load(stream)
                if record.get("exception") is None:
                    table[record["hash"]] = record["result"]
                    read += 1
        return True
    except Exception as error:
        aside = f"{path}.damaged-{_stamp()}"
        moved = f"moved aside to {aside}" if _renamed(path, aside) else "left where it is"
        warn(f"the old checkpoint {path} is cut, damaged or written by another Python or Parsl "
             f"({type(error).__name__}): {moved}; its {read} whole results are kept, and "
             "steps whose results were lost run again")
        return False


def _renamed(path: str, to: str) -> bool:
    """Whether `path` could be renamed `to` (not in a directory this user cannot write)."""
    try:
        os.replace(path, to)
    except OSError:
        return False
    return True


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime())
