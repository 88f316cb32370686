"""Config files the tests write: one thread pool and one HTEX, shaped as a test needs."""
from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, from PyPI, before Python 3.11
    import tomli as tomllib

__all__ = ["slurm_htex", "tomllib", "two_executors"]

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
