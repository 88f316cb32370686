"""Write a config file safely: atomically, never over an existing file, and seed the default.

    >>> from q2pconf.seed import seed_prefix
    >>> path, written = seed_prefix("/opt/env")   # doctest: +SKIP
    >>> # written is False when /opt/env/etc/qiime2_config.toml was already there
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from q2pconf.paths import CONFIG_NAME, conda_config_path


def write_new(path: Path, text: str, mode: int = 0o644) -> bool:
    """Create `path` holding `text`, atomically, only if nothing is there yet.

    The text goes to a temporary file in the same directory, which is then hard-linked to
    `path`: the link fails if anything (a file, a symlink) already exists, so a file is never
    truncated, a symlink never followed, and racing writers leave one complete file.
    Returns True if this call created the file, False if it was already there.
    Raises OSError when the directory cannot be written.
    """
    import tempfile

    _make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
            return _write_exclusive(path, text, mode)
        return True
    finally:
        os.unlink(tmp)


def _make_dirs(directory: Path) -> None:
    """Create `directory` and missing parents, never writable by group or others (even under
    umask 000: whoever can write there can replace the config, which runs shell commands).
    Existing directories, symlinked ones included, are used as they are."""
    if directory.is_dir():
        return
    if directory.parent != directory:
        _make_dirs(directory.parent)
    try:
        os.mkdir(directory)
    except FileExistsError:  # a racing writer made it, or it is not a directory (fails later)
        return
    os.chmod(directory, stat.S_IMODE(os.stat(directory).st_mode) & ~0o022)


# Filesystems without hard links (some FUSE and network mounts) answer with these.
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


def _write_exclusive(path: Path, text: str, mode: int) -> bool:
    """Fallback without hard links: O_EXCL create; remove the file if writing fails."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)  # os.open's mode was reduced by the umask
            handle.write(text)
    except BaseException:
        os.unlink(path)
        raise
    return True


def seed_prefix(prefix: str | os.PathLike[str]) -> tuple[Path, bool]:
    """Seed `prefix/etc/qiime2_config.toml` with the default; (path, written now).

    Beside a file it writes, it leaves `.qiime2_config.toml.sha256` (sha256sum's format), so
    an uninstall can tell an untouched seed (safe to remove) from a file the user edited.
    """
    import hashlib

    from q2pconf.templates import vendored_toml

    path = conda_config_path(str(prefix))
    text = vendored_toml(path)
    written = write_new(path, text)
    if written:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        stamp = path.with_name(f".{CONFIG_NAME}.sha256")
        try:
            stamp.unlink()
        except FileNotFoundError:
            pass
        write_new(stamp, f"{digest}  {CONFIG_NAME}\n")
    return path, written
