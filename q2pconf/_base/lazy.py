"""Public names loaded on first use: importing a package (`q2pconf`, `q2pconf.config`,
`q2pconf.pipeline`) or one of its internal modules does not load the modules behind its names.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def loader(namespace: dict[str, Any], table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` giving each name of `table` (name -> module defining it) from its
    module on first use, then kept in the package's `namespace`."""
    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
