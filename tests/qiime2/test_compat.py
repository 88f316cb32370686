"""QIIME 2's function names (qiime2.sdk.parallel_config), answered by q2pconf."""
from __future__ import annotations

from pathlib import Path

import pytest

from configs import config, htex, local, threads, tomllib
from q2pconf._qiime2 import (VENDORED_SOURCE, get_config_from_dict, get_config_from_file,
                             get_vendored_config, get_vendored_config_path,
                             load_config_from_dict, load_config_from_file)
from q2pconf._base.errors import ConfigError
from q2pconf.config._templates import vendored_dict

CONFIG = "qiime2_config.toml"
NESTED = {"dada2": {"denoise_single": "htex", "denoise_paired": "htex"},
          "feature_table": {"summarize": "default"}}
POOL = threads("default", max_threads=2)
TEXT = config(POOL, htex("htex", max_workers_per_node=2, provider=local()), strategy="None",
              mapping=NESTED)
DOC = tomllib.loads(TEXT)  # the same config, as QIIME 2 passes one in memory


def is_parsl_config(value: object) -> bool:
    from parsl.config import Config

    return isinstance(value, Config)


def test_vendored_config_seeds_the_conda_prefix(clean_env, monkeypatch):
    prefix = clean_env / "env"
    prefix.mkdir()
    monkeypatch.setenv("CONDA_PREFIX", str(prefix))
    path = prefix / "etc" / CONFIG
    assert get_vendored_config_path() == str(path)
    assert path.is_file()
    assert get_vendored_config_path() == str(path)  # found, not written again
    doc, mapping, source = get_vendored_config()
    assert (doc["parsl"]["executors"], mapping, source) == \
        (vendored_dict()["parsl"]["executors"], {}, str(path))


def test_vendored_config_follows_the_lookup(clean_env, monkeypatch):
    mine = clean_env / "mine.toml"
    mine.write_text(TEXT)
    monkeypatch.setenv("QIIME2_CONFIG", str(mine))
    assert get_vendored_config_path() == str(mine)
    monkeypatch.delenv("QIIME2_CONFIG")
    user = Path(clean_env, "home", ".config", "qiime2", CONFIG)
    user.parent.mkdir(parents=True)
    user.write_text(TEXT)
    assert get_vendored_config_path() == str(user)


def test_vendored_config_is_qiime2_2024_10s_triple(clean_env, monkeypatch):
    """QIIME 2 2024.10's get_vendored_config: (config dict without the mapping, the mapping as
    written, the file it came from), which `qiime info` prints."""
    mine = clean_env / "mine.toml"
    mine.write_text(TEXT)
    monkeypatch.setenv("QIIME2_CONFIG", str(mine))
    doc, mapping, source = get_vendored_config()
    assert source == str(mine)
    assert mapping == NESTED
    assert "executor_mapping" not in doc["parsl"]
    assert [e["label"] for e in doc["parsl"]["executors"]] == ["default", "htex"]
    # the dict half is what load_config_from_dict takes
    assert [e.label for e in load_config_from_dict(doc)[0].executors][:2] == ["default", "htex"]


@pytest.mark.parametrize("env", [None, ""])
def test_vendored_config_without_a_file_is_the_vendored_dict(clean_env, monkeypatch, env):
    """No file anywhere, or QIIME2_CONFIG set but empty (QIIME 2 then skips every file)."""
    if env is not None:
        monkeypatch.setenv("QIIME2_CONFIG", env)
        user = Path(clean_env, "home", ".config", "qiime2", CONFIG)
        user.parent.mkdir(parents=True)
        user.write_text(TEXT)
    assert get_vendored_config_path() is None
    assert get_vendored_config() == (vendored_dict(), {}, VENDORED_SOURCE)


@pytest.mark.parametrize("reader", [get_config_from_file, load_config_from_file])
def test_config_from_file_is_a_parsl_config_and_nested_mapping(tmp_path, reader):
    path = tmp_path / CONFIG
    path.write_text(TEXT)
    built, mapping = reader(path)
    assert is_parsl_config(built)
    assert [e.label for e in built.executors] == ["default", "htex"]
    assert built.strategy == "none"
    assert mapping == NESTED


def test_config_from_dict_is_a_parsl_config_and_nested_mapping():
    built, mapping = get_config_from_dict(DOC)
    assert is_parsl_config(built)
    assert type(built.executors[1]).__name__ == "HighThroughputExecutor"
    assert mapping == NESTED


def test_flat_mapping_keys_stay_flat():
    doc = {"parsl": {"executor_mapping": {"summarize": "htex", "dada2": {"plot": "default"}}}}
    built, mapping = get_config_from_dict(doc)
    assert mapping == {"summarize": "htex", "dada2": {"plot": "default"}}


@pytest.mark.parametrize("label", ["htex", "a_label_no_default_config_has"])
def test_a_mapping_only_config_is_none_and_its_mapping_unchecked(label):
    """QIIME 2 returns None for the config of a file holding only a mapping: the mapping is
    for whichever config is in force, so its labels are checked when it meets that one."""
    doc = {"parsl": {"executor_mapping": {"dada2": {"denoise_single": label}}}}
    assert load_config_from_dict(doc) == (None, {"dada2": {"denoise_single": label}})
    assert doc["parsl"]["executor_mapping"]  # QIIME 2 pops it; q2pconf leaves the dict alone


def test_config_without_mapping_gives_an_empty_mapping():
    doc = {"parsl": {"executors": DOC["parsl"]["executors"]}}
    assert get_config_from_dict(doc)[1] == {}


def test_bad_file_is_a_config_error(tmp_path):
    path = tmp_path / CONFIG
    path.write_text(config(POOL, htex("htex", max_workers_per_node=2,
                                      provider={"class": "LocalProvidr"}),
                           strategy="None", mapping=NESTED))
    with pytest.raises(ConfigError, match="did you mean LocalProvider"):
        get_config_from_file(path)


def test_a_loaded_config_gets_the_session_strategy_period_unless_the_file_sets_one(tmp_path):
    """QIIME 2 code hands load_config_from_file's config to ParallelConfig (q2cli does):
    it starts HTEX blocks as soon as q2pconf's own sessions do."""
    from q2pconf.pipeline._session import SESSION_DEFAULTS

    path = tmp_path / CONFIG
    path.write_text(TEXT)
    assert load_config_from_file(path)[0].strategy_period == SESSION_DEFAULTS["strategy_period"]
    path.write_text(TEXT.replace('strategy = "None"', 'strategy = "None"\nstrategy_period = 7'))
    assert load_config_from_file(path)[0].strategy_period == 7
