"""Write a file safely: atomically, never over an existing file, and without following a
link an attacker placed; temporary files that a killed writer left are cleaned up.

Used to seed configs (q2pconf.config._seed) and by `q2pconf init`.
"""
from __future__ import annotations

import errno
import os
import re
import socket
import stat
import time
from pathlib import Path


def write_new(path: Path, text: str, mode: int = 0o644) -> bool:
    """Create `path` holding `text`, atomically, only if nothing is there yet.

    The text goes to a temporary file in the same directory, which is then hard-linked to
    `path`: the link fails if anything (a file, a symlink) already exists, so a file is never
    truncated, a symlink never followed, and racing writers leave one complete file.
    Returns True if this call created the file, False if it was already there.
    Raises OSError when the directory cannot be written.
    """
    fd = open_directory(path.parent)
    try:
        return write_in(fd, path.name, text, mode)
    finally:
        os.close(fd)


def open_directory(directory: Path) -> int:
    """A descriptor of `directory`, creating it and missing parents.

    Everything after this works on the descriptor, never on the path again, so swapping a
    directory for a symlink halfway cannot redirect a write, a chmod or a clean-up. Links
    already in place are followed (conda users link etc/ to shared storage); a directory
    created here is opened with O_NOFOLLOW, and only its mode is changed: never writable by
    group or others, even under umask 000 (whoever can write there can replace the config,
    which runs shell commands)."""
    try:
        return os.open(directory, _DIRECTORY)
    except FileNotFoundError:
        if directory.parent == directory:
            raise
    parent = open_directory(directory.parent)
    try:
        try:
            os.mkdir(directory.name, 0o755, dir_fd=parent)
            created = True
        except FileExistsError:  # a racing writer made it
            created = False
        fd = os.open(directory.name, _DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    finally:
        os.close(parent)
    if created:
        os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & ~0o022)
    return fd


_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# Filesystems without hard links (some FUSE and network mounts) answer with these.
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


def write_in(directory: int, name: str, text: str, mode: int = 0o644) -> bool:
    """`write_new` inside an open directory: a temporary file, hard-linked to `name`."""
    remove_stale_temporaries(directory, name)
    tmp = temporary_name(name)
    fd = os.open(tmp, _NEW_FILE, 0o600, dir_fd=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        try:
            os.link(tmp, name, src_dir_fd=directory, dst_dir_fd=directory,
                    follow_symlinks=False)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
            return _write_exclusive(directory, name, text, mode)
        return True
    finally:
        os.unlink(tmp, dir_fd=directory)


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _write_exclusive(directory: int, name: str, text: str, mode: int) -> bool:
    """Fallback without hard links: O_EXCL create; remove the file if writing fails."""
    try:
        fd = os.open(name, _NEW_FILE, mode, dir_fd=directory)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)  # os.open's mode was reduced by the umask
            handle.write(text)
    except BaseException:
        os.unlink(name, dir_fd=directory)
        raise
    return True


# -- temporary files: named for their writer, so one killed mid-write can be cleaned up -------

STALE_AFTER = 3600  # seconds: a temporary file this old is dead whoever wrote it


def temporary_name(name: str) -> str:
    """`.NAME.HOST.PID.RANDOM.tmp`: the host and pid tell a later writer whether it is dead."""
    import secrets

    return f".{name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def remove_stale_temporaries(directory: int, name: str) -> None:
    """Remove temporary files for `name` left by a writer that was killed (SIGKILL, power
    loss): only ours (same owner, our naming), only regular files, only when their writer is
    gone from this host or the file is older than STALE_AFTER."""
    # ours, and (second form) tempfile.mkstemp's names from q2pconf before 2026.11
    pattern = re.compile(rf"\.{re.escape(name)}\.(?:(.+)\.(\d+)\.[0-9a-f]+|[a-z0-9_]{{8}})"
                         r"\.tmp\Z")
    for entry in os.listdir(directory):
        match = pattern.match(entry)
        if match is None:
            continue
        try:
            info = os.stat(entry, dir_fd=directory, follow_symlinks=False)
            if _stale(info, match.group(1), match.group(2)):
                os.unlink(entry, dir_fd=directory)
        except OSError:
            continue  # removed by another writer, or not ours to remove


def _stale(info: os.stat_result, host: str | None, pid: str | None) -> bool:
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        return False
    if time.time() - info.st_mtime > STALE_AFTER:
        return True
    return pid is not None and host == _host() and not _alive(int(pid))


def _host() -> str:
    return socket.gethostname().replace("/", "_") or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
