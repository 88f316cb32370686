"""What the ported QIIME 2 tests share: their config files, the stand-in for QIIME 2's test
mode, and the execution contexts QIIME 2 reads from provenance, worked out from where each
step ran."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from procs import parsl_children
from q2pconf.pipeline import _session as sessions

DATA = Path(__file__).resolve().parent / "data"
RELEASES = ("2024.5", "2024.10")
THREADS = {"type": "parsl", "parsl_type": "ThreadPoolExecutor"}
# QIIME 2's tests map steps to its test-only _TEST_EXECUTOR_; ours map them to an HTEX.
TEST = {"type": "parsl", "parsl_type": "HighThroughputExecutor"}
threads_expected = [THREADS, THREADS]
test_expected = [TEST, TEST]

# QIIME 2 2024.10 writes its mapping per plugin; 2024.5 wrote step = "label" (still accepted).
MAPPING = {
    "2024.10": {"dummy_plugin": {"list_of_ints": "test", "concatenate_ints": "test"},
                "other_plugin": {"concatenate_ints": "default"}},
    "2024.5": {"list_of_ints": "test"},
}
TPOOL_MAPPING = {"2024.10": {"dummy_plugin": {"list_of_ints": "tpool"}},
                 "2024.5": {"list_of_ints": "tpool"}}
# QIIME 2 2024.10's vendored executors: threads are "tpool", the HTEX is "default".
QIIME2_2024_10_DEFAULT = {"parsl": {"strategy": "None", "executors": [
    {"class": "ThreadPoolExecutor", "label": "tpool", "max_threads": 1},
    {"class": "HighThroughputExecutor", "label": "default", "max_workers": 1,
     "provider": {"class": "LocalProvider"}},
]}}


def data(name: str, release: str | None = None) -> Path:
    """A config file of tests/qiime2/data; `release` picks that release's mapping form."""
    return DATA / (name if release is None else f"{name}-{release}.toml")


@pytest.fixture
def qiimetest(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """QIIME 2's tests run with QIIMETEST set, which makes its vendored config a test config
    (threads on "default", a second executor "test"). Here $QIIME2_CONFIG names ours. Each
    test starts without a Parsl session and leaves none, nor its processes, behind."""
    monkeypatch.setenv("QIIME2_CONFIG", str(data("test_config.toml")))
    sessions.close()
    yield clean_env
    sessions.close()
    assert parsl_children() == []


def in_force() -> tuple[Any, dict[str, str]]:
    """The parsl.Config and the mapping a pipeline called now runs with (QIIME 2 keeps them in
    PARALLEL_CONFIG.parallel_config and .action_executor_mapping)."""
    current = sessions.session()
    return current.dfk.config, current.mapping


def execution_context(ran: dict[str, Any], pipeline_pid: int | None = None) -> dict[str, str]:
    """QIIME 2's provenance execution context for a step that reported `ran` (see
    dummy_plugin.here): the thread pool runs steps in the pipeline's own process on its
    "ThreadPoolExecutor-<label>" threads; an HTEX worker runs them in another process."""
    pid = os.getpid() if pipeline_pid is None else pipeline_pid
    if ran["pid"] == pid and ran["thread"].startswith("ThreadPoolExecutor-"):
        kind = "ThreadPoolExecutor"
    elif ran["pid"] != pid and ran["worker_rank"] is not None:
        kind = "HighThroughputExecutor"
    else:
        kind = f"not run by Parsl: {ran}"
    return {"type": "parsl", "parsl_type": kind}


def execution_contexts(collection: Any, pipeline_pid: int | None = None) -> list[dict[str, str]]:
    """One execution context per result of a list or dict collection."""
    results = collection.values() if isinstance(collection, dict) else collection
    return [execution_context(result["ran"], pipeline_pid) for result in results]


def ints() -> tuple[list[int], dict[str, int]]:
    """The two inputs QIIME 2's tests pass (two SingleInt artifacts, as a list and a dict)."""
    return [0, 1], {"0": 0, "1": 1}


def config_source() -> tuple[str, Path | None]:
    """Where the config in force came from: the lookup's source and file."""
    settings = sessions.session().settings
    return settings.source, settings.path
