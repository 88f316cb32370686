"""Find the config file in QIIME 2's order, seeding the vendored default when none exists."""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from q2pconf._base.paths import conda_config_path, site_config_path, user_config_path
from q2pconf._base.errors import ConfigError, warn_once

# Where a config came from, in lookup order.
SOURCES = ("explicit", "QIIME2_CONFIG", "user", "site", "conda", "vendored", "in-memory")


class Looked(NamedTuple):
    """One place the lookup looked at, and why it did not use it."""

    source: str
    path: Path | None
    note: str


class Located(NamedTuple):
    """The lookup's answer: the file to read (None: the default in memory) and how it was chosen."""

    path: Path | None
    source: str
    trail: tuple[Looked, ...] = ()


def locate(explicit: str | os.PathLike[str] | None = None, *, seed: bool = True) -> Located:
    """Choose the config file, as QIIME 2 does; the environment is read on every call.

    Order: `explicit` > $QIIME2_CONFIG > user config dir > site config dir >
    $CONDA_PREFIX/etc > seed the default into $CONDA_PREFIX/etc (if `seed`) > the default in
    memory. An explicit path or $QIIME2_CONFIG naming no file is a ConfigError; an empty
    $QIIME2_CONFIG means the default in memory (source "QIIME2_CONFIG", no path), as in QIIME 2.
    """
    trail: list[Looked] = []
    if explicit is not None:
        return Located(_must_exist(Path(explicit), "--parallel-config"), "explicit")
    trail.append(Looked("explicit", None, "no --parallel-config given"))

    env = os.environ.get("QIIME2_CONFIG")
    if env == "":  # QIIME 2 reads "set but empty" as "the built-in default": so do we
        return Located(None, "QIIME2_CONFIG", tuple(trail))
    if env is not None:
        return Located(_must_exist(Path(env), "$QIIME2_CONFIG"),
                       "QIIME2_CONFIG", tuple(trail))
    trail.append(Looked("QIIME2_CONFIG", None, "not set"))

    for source, path in (("user", user_config_path()), ("site", site_config_path())):
        if os.path.exists(path):
            return Located(path, source, tuple(trail))
        trail.append(Looked(source, path, "no file"))

    prefix = os.environ.get("CONDA_PREFIX", "")
    if not prefix:
        trail.append(Looked("conda", None, "CONDA_PREFIX not set"))
        return Located(None, "in-memory", tuple(trail))
    path = conda_config_path(prefix)
    if os.path.exists(path):
        return Located(path, "conda", tuple(trail))
    trail.append(Looked("conda", path, "no file"))
    if not seed:
        trail.append(Looked("vendored", path, "not written (seeding disabled)"))
        return Located(None, "in-memory", tuple(trail))
    return _seed(prefix, path, trail)


def _seed(prefix: str, path: Path, trail: list[Looked]) -> Located:
    from q2pconf.config._seed import seed_prefix

    if not os.path.isdir(prefix):
        trail.append(Looked("vendored", path, f"CONDA_PREFIX {prefix} is not a directory"))
        return Located(None, "in-memory", tuple(trail))
    try:
        seed_prefix(prefix)
    except OSError as error:
        reason = error.strerror or str(error)
        warn_once(f"could not write the default config to {path} ({reason}); using it from "
                  "memory. Fix: run `q2pconf init --user` to get a config you can edit.")
        trail.append(Looked("vendored", path, f"could not write: {reason}"))
        return Located(None, "in-memory", tuple(trail))
    return Located(path, "vendored", tuple(trail))


def _must_exist(path: Path, name: str) -> Path:
    if os.path.islink(path) and not os.path.exists(path):
        raise ConfigError(path, "", f"{name} names a broken symlink (to {os.readlink(path)})",
                          f"point {name} at the config file itself, or fix the link")
    if not os.path.exists(path):
        raise ConfigError(path, "", f"{name} names a file that does not exist",
                          f"create the file, or point {name} at an existing config "
                          "(`q2pconf init --prefix DIR` writes one)")
    return path
