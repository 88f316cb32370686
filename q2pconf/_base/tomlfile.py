"""Read a config file as TOML; whatever the path names, the answer is a dict or one ConfigError.

Files no person means to write still get one message: a FIFO or a device (`QIIME2_CONFIG=
/dev/zero`) is refused before it is read (a FIFO is opened without blocking), at most
`MAX_BYTES` are read, a byte-order mark is named (editors do not show it), and tables or
arrays nested thousands deep end in a message instead of a RecursionError traceback.
"""
from __future__ import annotations

import errno
import os
import stat
import sys

from q2pconf._base.errors import ConfigError

from typing import Any

# A real config is a few kB; anything this large was not written by a person.
MAX_BYTES = 1 << 20
FIX = "point to a TOML config file (`q2pconf init --prefix DIR` writes one)"
# What a path is when it is not a regular file (stat's S_IS* tests, checked in this order).
KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
         (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"))
BOMS = ((b"\xef\xbb\xbf", "a UTF-8 byte-order mark"),
        (b"\xff\xfe", "a UTF-16 byte-order mark"), (b"\xfe\xff", "a UTF-16 byte-order mark"))


def read_toml(path: str | os.PathLike[str], data: bytes | None = None) -> dict[str, Any]:
    """Parse a TOML config file (or `data`, its bytes already read); any problem becomes a
    ConfigError naming the file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    text = _text(path, read_regular(path) if data is None else data)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, "", f"is not valid TOML: {error}",
                          "fix the syntax at that line and column") from None
    except RecursionError:
        raise ConfigError(path, "", "nests tables or arrays deeper than the TOML parser can "
                          "follow: it is not a config file a person wrote", FIX) from None


def read_regular(path: str | os.PathLike[str], limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; never blocks on a FIFO. Anything
    else is a ConfigError naming the file."""
    try:
        _refuse_odd(path, os.stat(path).st_mode)
        # O_NONBLOCK: if the path was swapped for a FIFO since the stat, open does not wait
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise _unreadable(path, error) from None
    try:
        info = os.fstat(fd)
        _refuse_odd(path, info.st_mode)
        _refuse_size(path, info.st_size, limit)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise _unreadable(path, error) from None
    finally:
        os.close(fd)
    _refuse_size(path, size, limit)
    return b"".join(chunks)


def _refuse_odd(path: str | os.PathLike[str], mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in KINDS if test(mode)), "not a regular file")
    raise ConfigError(path, "", f"is {kind}, not a config file", FIX)


def _refuse_size(path: str | os.PathLike[str], size: int, limit: int) -> None:
    if size > limit:
        raise ConfigError(path, "", f"is larger than {limit // 1024} KiB: not a config file "
                          "a person wrote", FIX)


def _unreadable(path: str | os.PathLike[str], error: OSError) -> ConfigError:
    if error.errno == errno.ENXIO:  # a socket, or a device with nothing behind it
        return ConfigError(path, "", "is a socket or a device, not a config file", FIX)
    return ConfigError(path, "", f"cannot be read: {error.strerror or error}", FIX)


def _text(path: str | os.PathLike[str], data: bytes) -> str:
    for mark, name in BOMS:
        if data.startswith(mark):
            raise ConfigError(path, "", f"starts with {name}, which most editors do not show",
                              "save the file as UTF-8 without a byte-order mark (in many "
                              "editors: encoding \"UTF-8\", not \"UTF-8 with BOM\")")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(path, "", f"is not UTF-8 text (byte {error.start} is invalid)",
                          "save it as UTF-8; a TOML config is plain text") from None
