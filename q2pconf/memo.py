"""Arguments a resumed step can be recognised by: Parsl's memoizer hashes str, int, float,
None and plain lists, tuples and dicts of them, and refuses a step with any other argument.
q2pconf adds sets, frozensets and bytes, through Parsl's documented extension point
(`id_for_memo.register`). Other kinds (named tuples, dict subclasses, your own objects) are
still refused: the step fails with Parsl's "unknown type for memoization"."""
from __future__ import annotations

import pickle
from typing import Any

_REGISTERED = False


def register() -> None:
    """Teach Parsl's memoizer the extra kinds (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from parsl.dataflow.memoization import id_for_memo

    @id_for_memo.register(set)
    @id_for_memo.register(frozenset)
    def _unordered(value: Any, output_ref: bool = False) -> bytes:
        # iteration order varies between runs (hash randomisation): sort the members' ids
        members = sorted(id_for_memo(item, output_ref=output_ref) for item in value)
        return pickle.dumps((type(value).__name__, members))

    @id_for_memo.register(bytes)
    def _raw(value: bytes, output_ref: bool = False) -> bytes:
        return pickle.dumps(("bytes", value))

    _REGISTERED = True
