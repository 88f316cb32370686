"""Seed a conda environment's config with the vendored default, safely (q2pconf._base.files):
atomically and never over an existing file.

    >>> from q2pconf.config._seed import seed_prefix
    >>> path, written = seed_prefix("/opt/env")   # doctest: +SKIP
    >>> # written is False when /opt/env/etc/qiime2_config.toml was already there
"""
from __future__ import annotations

import os
from pathlib import Path

from q2pconf._base.errors import ConfigError
from q2pconf._base.files import open_directory, write_in
from q2pconf._base.paths import CONFIG_NAME, conda_config_path


def existing_prefix(prefix: str | os.PathLike[str]) -> str:
    """`prefix` when it is a directory, else a ConfigError: conda always passes an environment
    that exists, so a missing one is a mistyped path, and creating the whole tree below it
    would hide the mistake (and the config would be found by nobody)."""
    if os.path.isdir(prefix):
        return str(prefix)
    fix = "check the path (conda's prefix is $CONDA_PREFIX, which exists)"
    if os.path.lexists(prefix):
        raise ConfigError(os.fspath(prefix), "", "the --prefix is a file, not an environment's "
                          "directory: nothing was written", fix)
    raise ConfigError(os.fspath(prefix), "", "the --prefix directory does not exist: nothing "
                      "was written", f"{fix}, or create the directory first")


def seed_prefix(prefix: str | os.PathLike[str]) -> tuple[Path, bool]:
    """Seed `prefix/etc/qiime2_config.toml` with the default; (path, written now).

    Beside a file it writes, it leaves `.qiime2_config.toml.sha256` (sha256sum's format), so
    an uninstall can tell an untouched seed (safe to remove) from a file the user edited.
    """
    import hashlib

    from q2pconf.config._templates import vendored_toml

    path = conda_config_path(existing_prefix(prefix))
    text = vendored_toml(path)
    directory = open_directory(path.parent)
    try:
        written = write_in(directory, CONFIG_NAME, text)
        if written:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            stamp = f".{CONFIG_NAME}.sha256"
            try:
                os.unlink(stamp, dir_fd=directory)
            except FileNotFoundError:
                pass
            write_in(directory, stamp, f"{digest}  {CONFIG_NAME}\n")
    finally:
        os.close(directory)
    return path, written
