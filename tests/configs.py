"""Config files the tests write: one thread pool and one local HTEX, sized as a test needs."""
from __future__ import annotations

TWO_EXECUTORS = """\
[parsl]
strategy = "{strategy}"

[[parsl.executors]]
class = "ThreadPoolExecutor"
label = "{threads_label}"
max_threads = {threads}

[[parsl.executors]]
class = "HighThroughputExecutor"
label = "{htex_label}"
{worker_key} = {workers}

[parsl.executors.provider]
class = "LocalProvider"
{extra}"""


def two_executors(threads: int = 2, workers: int = 2, *, strategy: str = "none",
                  threads_label: str = "default", htex_label: str = "htex",
                  worker_key: str = "max_workers_per_node", extra: str = "") -> str:
    """TOML for a ThreadPoolExecutor and an HTEX on a LocalProvider; `extra` is appended."""
    return TWO_EXECUTORS.format(strategy=strategy, threads_label=threads_label,
                                threads=threads, htex_label=htex_label, worker_key=worker_key,
                                workers=workers, extra=extra)

