"""QIIME 2's dummy plugin (qiime2/core/testing), as far as its parallel-config tests use it.

The pipelines and actions keep their names and plugins, as q2pconf `@parallel_pipeline`s and
`@step(plugin="dummy_plugin")`s. Where QIIME 2 writes each action's executor into provenance,
each step here returns where it ran (`here()`), which the tests turn into the same
``{"type": "parsl", "parsl_type": ...}`` execution context.
"""
from __future__ import annotations

import os
import threading
from typing import Any

from q2pconf import parallel_pipeline, step


def here() -> dict[str, Any]:
    """Where the calling step runs: its process, thread, and Parsl worker rank (set by an
    HTEX worker pool only)."""
    return {"pid": os.getpid(), "thread": threading.current_thread().name,
            "worker_rank": os.environ.get("PARSL_WORKER_RANK")}


@step(plugin="dummy_plugin")
def list_of_ints(ints: list[int]) -> list[dict[str, Any]]:
    ran = here()
    return [{"value": value, "ran": ran} for value in ints]


@step(plugin="dummy_plugin")
def dict_of_ints(ints: dict[str, int]) -> dict[str, dict[str, Any]]:
    ran = here()
    return {key: {"value": value, "ran": ran} for key, value in ints.items()}


@parallel_pipeline
def resumable_pipeline(int_list: list[int], int_dict: dict[str, int]) -> tuple[Any, Any]:
    list_return = list_of_ints(int_list)
    dict_return = dict_of_ints(int_dict)
    return list_return, dict_return


@step(plugin="dummy_plugin")
def identity_with_optional_metadata(ints: list[int], metadata: Any = None) -> list[int]:
    return list(ints)


def concatenated(*sequences: list[int], int1: int, int2: int) -> dict[str, Any]:
    """What both plugins' concatenate_ints return: the values, and where the step ran."""
    values = [value for sequence in sequences for value in sequence]
    return {"value": values + [int1, int2], "ran": here()}


@step(plugin="dummy_plugin")
def concatenate_ints(ints1: list[int], ints2: list[int], ints3: list[int], int1: int,
                     int2: int) -> dict[str, Any]:
    return concatenated(ints1, ints2, ints3, int1=int1, int2=int2)


@parallel_pipeline
def parameter_only_pipeline(int1: int, int2: int = 2, metadata: Any = None,
                            other: bool = False) -> tuple[Any, Any]:
    """Registered by both plugins in QIIME 2; `other` picks other_plugin's concatenate_ints."""
    import other_plugin

    concatenate = other_plugin.concatenate_ints if other else concatenate_ints
    ints1 = [int1, int2, 3]
    ints2 = identity_with_optional_metadata(ints1, metadata)
    ints3 = identity_with_optional_metadata(ints1, metadata)
    more_ints = concatenate(ints3, ints2, ints1, int1=int1, int2=int2)
    return ints1, more_ints
