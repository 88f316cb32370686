"""QIIME 2's own parallel-config tests, ported onto q2pconf.

Upstream: github.com/qiime2/qiime2, qiime2/sdk/tests/test_config.py, class TestConfig, at
releases 2024.5.0 and 2024.10.0 (tests run for both where the releases differ only in the
mapping's form). Each test checks the same facts as its namesake; where q2pconf differs on
purpose, the docstring names the row of the "Differences from QIIME 2" table
(docs/explanation/qiime2.md) it follows. tests/qiime2/README.md maps every upstream test to
its port.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import tomli_w

import dummy_plugin
import other_plugin
from configs import tomllib
from q2pconf import ConfigError, ParallelConfig
from q2pconf._qiime2 import load_config_from_dict, load_config_from_file
from qiime2_port import (MAPPING, QIIME2_2024_10_DEFAULT, RELEASES, TEST, THREADS,
                         TPOOL_MAPPING, config_source, data, execution_context,
                         execution_contexts, in_force, ints, qiimetest, test_expected,
                         threads_expected)

__all__ = ["qiimetest"]  # the fixture, imported for pytest
pipeline = dummy_plugin.resumable_pipeline
method = dummy_plugin.list_of_ints


def is_parsl_config(value: object) -> bool:
    from parsl.config import Config

    return isinstance(value, Config)


def run_resumable() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Run resumable_pipeline; the execution contexts of its list and dict results."""
    list_return, dict_return = pipeline(*ints())
    return execution_contexts(list_return), execution_contexts(dict_return)


def test_default_config(qiimetest: Path) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.5.0 and 2024.10.0:
    TestConfig.test_default_config. Same."""
    with ParallelConfig():
        config, mapping = in_force()
        assert is_parsl_config(config)
        assert mapping == {}


@pytest.mark.parametrize("release", RELEASES)
def test_mapping_from_config(qiimetest: Path, release: str) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.5.0 and 2024.10.0:
    TestConfig.test_mapping_from_config. Same (the 2024.5 file maps in the flat form, see
    the row "Flat mapping form")."""
    config, mapping = load_config_from_file(data("mapping_config", release))
    assert mapping == MAPPING[release]
    with ParallelConfig(config, mapping):
        list_contexts, dict_contexts = run_resumable()
    assert list_contexts == test_expected
    assert dict_contexts == threads_expected


@pytest.mark.parametrize("release", RELEASES)
def test_mapping_only_config(qiimetest: Path, release: str) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.5.0 and 2024.10.0:
    TestConfig.test_mapping_only_config. Same: the file's mapping applies to the config in
    force ($QIIME2_CONFIG's), whose "test" executor the vendored default lacks."""
    _, mapping = load_config_from_file(data("mapping_only_config", release))
    assert mapping == MAPPING[release]
    with ParallelConfig(action_executor_mapping=mapping):
        list_contexts, dict_contexts = run_resumable()
    assert list_contexts == test_expected
    assert dict_contexts == threads_expected


@pytest.mark.parametrize("release", RELEASES)
def test_mapping_from_dict(qiimetest: Path, release: str) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.5.0 and 2024.10.0:
    TestConfig.test_mapping_from_dict. Same."""
    with ParallelConfig(action_executor_mapping=MAPPING[release]):
        list_contexts, dict_contexts = run_resumable()
    assert list_contexts == test_expected
    assert dict_contexts == threads_expected


@pytest.mark.parametrize("release", RELEASES)
def test_parallel_configs(qiimetest: Path, release: str) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.5.0 and 2024.10.0:
    TestConfig.test_parallel_configs. Same; the last block's error also says which label to
    use instead of "tpool" (row "Labels of the vendored default")."""
    with ParallelConfig():
        assert run_resumable() == (threads_expected, threads_expected)

    # QIIME 2 builds this parsl.Config in Python: threads "tpool", the second executor "default"
    test_default, _ = load_config_from_dict(QIIME2_2024_10_DEFAULT)
    with ParallelConfig(test_default):
        assert run_resumable() == (test_expected, test_expected)

    # The config in force is the lookup's again, which has no executor called tpool
    with ParallelConfig(action_executor_mapping=TPOOL_MAPPING[release]):
        with pytest.raises(KeyError, match="tpool") as caught:
            run_resumable()
    assert isinstance(caught.value, ConfigError)
    assert "use 'default'" in str(caught.value)


def test_nested_configs(qiimetest: Path) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.5.0 and 2024.10.0:
    TestConfig.test_nested_configs. Differs, row "Nested ParallelConfig blocks": QIIME 2
    raises ValueError('... cannot nest ParallelConfigs'); q2pconf runs the inner block with
    its own config and the outer one's again after it."""
    test_default, _ = load_config_from_dict(QIIME2_2024_10_DEFAULT)
    with ParallelConfig():
        with ParallelConfig(test_default):
            assert run_resumable() == (test_expected, test_expected)
        assert run_resumable() == (threads_expected, threads_expected)


def test_parallel_non_pipeline(qiimetest: Path) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.5.0 and 2024.10.0:
    TestConfig.test_parallel_non_pipeline. Differs, docs' paragraph "Outside the config
    itself": QIIME 2's `method.parallel(...)` raises ValueError('Only pipelines may be run
    in parallel'); q2pconf has no `.parallel`, and a step called outside a pipeline is not
    run in parallel either: it is an ordinary call, in the caller's thread, starting no
    Parsl."""
    from procs import parsl_children

    assert not hasattr(method, "parallel")
    results = method([0, 1])
    assert [result["value"] for result in results] == [0, 1]
    assert results[0]["ran"]["pid"] == os.getpid()
    assert results[0]["ran"]["thread"] == threading.current_thread().name
    assert parsl_children() == []  # no interchange, no worker: nothing was started


def test_no_vendored_fp(qiimetest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.5.0 and 2024.10.0:
    TestConfig.test_no_vendored_fp. Same. QIIME 2 masks $CONDA_PREFIX (its test config still
    applies); here no config file exists at all, so the vendored default runs from memory:
    unmapped steps go to its thread pool, "default", and nothing is written."""
    monkeypatch.delenv("QIIME2_CONFIG")
    with ParallelConfig():
        assert run_resumable() == (threads_expected, threads_expected)
    assert sorted(p.name for p in qiimetest.rglob("*.toml")) == []


def test_load_complex_config(qiimetest: Path, tmp_path: Path) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.5.0 and 2024.10.0:
    TestConfig.test_load_complex_config. Differs, rows "Removed Parsl classes" and "Old keys":
    the file names AdHocProvider, which Parsl removed, so loading it is a ConfigError with the
    replacement (QIIME 2's own code fails on it too, with an AttributeError); without that
    executor the file loads, max_workers read as max_workers_per_node and the LocalChannel
    dropped, and gives what upstream asserts: a parsl.Config and an empty mapping."""
    with pytest.raises(ConfigError, match="AdHocProvider") as caught:
        load_config_from_file(data("complex_config.toml"))
    assert "parsl.executors[1].provider.class" in str(caught.value)
    assert "use LocalProvider" in caught.value.fix

    doc = tomllib.loads(data("complex_config.toml").read_text())
    dropped = doc["parsl"]["executors"].pop()
    assert dropped["provider"]["class"] == "AdHocProvider"
    without_adhoc = tmp_path / "complex_config.toml"
    without_adhoc.write_text(tomli_w.dumps(doc))
    config, mapping = load_config_from_file(without_adhoc)
    assert mapping == {}
    (htex,) = [executor for executor in config.executors if executor.label[0] != "_"]
    assert (htex.label, htex.max_workers_per_node) == ("default", 10)
    assert type(htex.provider).__name__ == "SlurmProvider"
    assert type(htex.provider.launcher).__name__ == "SrunLauncher"
    with ParallelConfig(config, mapping):
        in_force_config, in_force_mapping = in_force()
        assert is_parsl_config(in_force_config)
        assert in_force_mapping == {}


def test_no_config(qiimetest: Path) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.5.0 and 2024.10.0:
    TestConfig.test_no_config. Differs, docs' paragraph "Outside the config itself":
    QIIME 2's `.parallel()` outside a ParallelConfig raises NoDataFlowKernelError('Must
    first load config'); a q2pconf pipeline called outside any block runs with the config
    the lookup finds ($QIIME2_CONFIG here), as `QIIME2_CONFIG=my.toml python script.py`
    relies on."""
    assert run_resumable() == (threads_expected, threads_expected)
    assert config_source() == ("QIIME2_CONFIG", data("test_config.toml"))


def test_config_unset(qiimetest: Path) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.5.0 and 2024.10.0:
    TestConfig.test_config_unset. Differs, docs' paragraph "Outside the config itself":
    after the block QIIME 2 raises NoDataFlowKernelError again; q2pconf is back on the
    lookup's config, not the block's."""
    test_default, _ = load_config_from_dict(QIIME2_2024_10_DEFAULT)
    with ParallelConfig(test_default):
        assert run_resumable() == (test_expected, test_expected)
    assert run_resumable() == (threads_expected, threads_expected)


def test_concatenate_ints_mapping(qiimetest: Path) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.10.0:
    TestConfig.test_concatenate_ints_mapping. Same: two plugins' steps of the same name go
    where their own plugin's mapping sends them."""
    config, mapping = load_config_from_file(data("mapping_config", "2024.10"))
    with ParallelConfig(config, mapping):
        _, concatenated_dummy = dummy_plugin.parameter_only_pipeline(0)
        _, concatenated_other = other_plugin.parameter_only_pipeline(0, other=True)
    assert concatenated_dummy["value"] == concatenated_other["value"] == [0, 2, 3] * 3 + [0, 2]
    assert execution_context(concatenated_dummy["ran"]) == TEST
    assert execution_context(concatenated_other["ran"]) == THREADS


def test_old_mapping(qiimetest: Path) -> None:
    """qiime2/qiime2 qiime2/sdk/tests/test_config.py, 2024.10.0: TestConfig.test_old_mapping.
    Differs, row "Flat mapping form": QIIME 2 2024.10 refuses the 2024.5 form
    `list_of_ints = "test"` with a TypeError ('The provided mapping: ...'); q2pconf reads it
    (an unqualified step name maps that step in every plugin), and applies it."""
    config, mapping = load_config_from_file(data("mapping_only_config", "2024.5"))
    assert (config, mapping) == (None, {"list_of_ints": "test"})
    with ParallelConfig(action_executor_mapping=mapping):
        list_contexts, dict_contexts = run_resumable()
    assert list_contexts == test_expected
    assert dict_contexts == threads_expected
