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
from typing import Any, Dict

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, from PyPI, before Python 3.11
    import tomli as tomllib

__all__ = ["config", "htex", "local", "slurm", "threads", "tomllib"]

Table = Dict[str, Any]


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


TWO_EXECUTORS = """\
[parsl]
strategy = "{strategy}"
{parsl_extra}
[[parsl.executors]]
class = "ThreadPoolExecutor"
label = "{threads_label}"
max_threads = {threads}

[[parsl.executors]]
class = "HighThroughputExecutor"
label = "{htex_label}"
{worker_key} = {workers}
{htex_extra}
[parsl.executors.provider]
class = "{provider}"
{extra}"""


def two_executors(threads: int = 2, workers: int = 2, *, strategy: str = "none",
                  threads_label: str = "default", htex_label: str = "htex",
                  worker_key: str = "max_workers_per_node", provider: str = "LocalProvider",
                  parsl_extra: str = "", htex_extra: str = "", extra: str = "") -> str:
    """TOML for a ThreadPoolExecutor and an HTEX on `provider`. The *_extra lines go into
    [parsl] and the HTEX's table; `extra` follows the provider's class line."""
    return TWO_EXECUTORS.format(strategy=strategy, threads_label=threads_label,
                                threads=threads, htex_label=htex_label, worker_key=worker_key,
                                workers=workers, provider=provider,
                                parsl_extra=_lines(parsl_extra), htex_extra=_lines(htex_extra),
                                extra=extra)


def _lines(text: str) -> str:
    return text.strip() + "\n" if text.strip() else ""


def slurm_htex(launcher: str, *, threads: int = 2, strategy_period: float = 1,
               walltime: str = "00:05:00", provider_extra: str = "", tail: str = "") -> str:
    """`two_executors` with the HTEX on the test cluster's debug partition, one block of one
    node; `tail` follows the launcher table (a mapping, say)."""
    provider = (f'partition = "debug"\nwalltime = "{walltime}"\nnodes_per_block = 1\n'
                f"init_blocks = 1\nmax_blocks = 1\ncmd_timeout = 10\nexclusive = false\n"
                f"{_lines(provider_extra)}\n[parsl.executors.provider.launcher]\n"
                f'class = "{launcher}"\n{tail}')
    return two_executors(threads=threads, strategy="simple", provider="SlurmProvider",
                         parsl_extra=f"strategy_period = {strategy_period:g}",
                         htex_extra='address = "127.0.0.1"', extra=provider)
