"""Config files the tests write, built from tables a test spells out key by key.

Every key of the file under test appears in the call that writes it; the functions only add
each table's `class`. For example

    config(threads("default", max_threads=2),
           htex("htex", max_workers_per_node=1, provider=local(init_blocks=1)),
           strategy="none")

writes

    [parsl]
    strategy = "none"

    [[parsl.executors]]
    class = "ThreadPoolExecutor"
    label = "default"
    max_threads = 2

    [[parsl.executors]]
    class = "HighThroughputExecutor"
    label = "htex"
    max_workers_per_node = 1

    [parsl.executors.provider]
    class = "LocalProvider"
    init_blocks = 1
"""
from __future__ import annotations

import sys
from typing import Any

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, from PyPI, before Python 3.11
    import tomli as tomllib

__all__ = ["config", "htex", "local", "slurm", "threads", "tomllib"]

Table = dict[str, Any]


def threads(label: str, **keys: Any) -> Table:
    """A ThreadPoolExecutor's table."""
    return {"class": "ThreadPoolExecutor", "label": label, **keys}


def htex(label: str, *, provider: Table | None = None, **keys: Any) -> Table:
    """A HighThroughputExecutor's table, with its provider's table if one is given."""
    table = {"class": "HighThroughputExecutor", "label": label, **keys}
    return table if provider is None else {**table, "provider": provider}


def local(**keys: Any) -> Table:
    """A LocalProvider's table."""
    return {"class": "LocalProvider", **keys}


def slurm(*, launcher: str | None = None, **keys: Any) -> Table:
    """A SlurmProvider's table, with a launcher table of that class if one is named."""
    table = {"class": "SlurmProvider", **keys}
    return table if launcher is None else {**table, "launcher": {"class": launcher}}


def config(*executors: Table, mapping: Table | None = None, **parsl_options: Any) -> str:
    """The TOML of a [parsl] table holding `parsl_options`, the executors in order and, if
    given, the [parsl.executor_mapping] table."""
    parsl: Table = dict(parsl_options)
    if executors:
        parsl["executors"] = list(executors)
    if mapping is not None:
        parsl["executor_mapping"] = mapping
    return tomli_w.dumps({"parsl": parsl})
