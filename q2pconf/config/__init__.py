"""Find a config file, check it, and build Parsl objects from it.

    from q2pconf.config import load
    settings = load()                # QIIME 2's lookup order, seeding the vendored default
    config = settings.parsl_config()

The public names are below; the modules of this package (`_find`, `_validate`, `_build`, ...)
are internal. Above `_base`, `_catalog` and `_parsl`.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from q2pconf.config._settings import Settings, check, from_dict, load, vendored

__all__ = ["Settings", "check", "from_dict", "load", "vendored"]


def __getattr__(name: str) -> Any:
    """A public name loads its module on first use: importing one of this package's internal
    modules (as a worker does) does not load them all."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("q2pconf.config._settings"), name)
    globals()[name] = value
    return value
