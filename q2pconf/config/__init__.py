"""Find a config file, check it, and build Parsl objects from it.

    from q2pconf.config import load
    settings = load()                # QIIME 2's lookup order, seeding the vendored default
    config = settings.parsl_config()

The public names are below; the modules of this package (`_find`, `_validate`, `_build`, ...)
are internal. Above `_base`, `_catalog` and `_parsl`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from q2pconf._base.lazy import loader

if TYPE_CHECKING:
    from q2pconf.config._settings import Settings, check, from_dict, load, vendored

__all__ = ["Settings", "check", "from_dict", "load", "vendored"]
__getattr__ = loader(globals(), dict.fromkeys(__all__, "q2pconf.config._settings"))
