"""Where a setting belongs when it sits in the wrong table.

`init_blocks` under the HTEX table is a provider setting; listing a dozen HTEX keys does not
tell the user that. An unknown key is looked up among the classes of the other tables
([parsl], executors, providers, launchers) before falling back to did-you-mean.
"""
from __future__ import annotations

import functools

from q2pconf._catalog import accepted as catalog

# Each table kind, the header a user writes for it, and where a key moves to reach it.
TABLES = {
    "config": ("[parsl]", "move it under [parsl], above the first [[parsl.executors]]"),
    "executors": ("[[parsl.executors]]", "move it into the executor's [[parsl.executors]] "
                  "table, above its [parsl.executors.provider]"),
    "provider": ("[parsl.executors.provider]", "move it under [parsl.executors.provider] "
                 "(the executor's provider table)"),
    "launcher": ("[parsl.executors.provider.launcher]",
                 "move it under [parsl.executors.provider.launcher]"),
}


@functools.lru_cache(maxsize=None)
def _settings(kind: str) -> frozenset[str]:
    """Every keyword any class of `kind` takes."""
    found: set[str] = set()
    for name in catalog.names(kind):
        try:
            found.update(catalog.parameters(kind, name))
        except (catalog.NotInParsl, OSError, SyntaxError):
            continue
    return frozenset(found)


def elsewhere(kind: str, arg: str) -> tuple[str, str] | None:
    """(problem, fix) when `arg`, unknown in a `kind` table, is a setting of another table."""
    if kind not in TABLES:
        return None
    for other, (header, fix) in TABLES.items():
        if other != kind and arg in _settings(other):
            return f"this belongs under {header}", fix
    return None
