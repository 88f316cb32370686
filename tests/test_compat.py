"""QIIME 2's function names (qiime2.sdk.parallel_config), answered by q2pconf."""
from __future__ import annotations

from pathlib import Path

import pytest

from configs import two_executors

from q2pconf.compat import (get_config_from_dict, get_config_from_file, get_vendored_config,
                            load_config_from_file)
from q2pconf.errors import ConfigError

CONFIG = "qiime2_config.toml"
NESTED = {"dada2": {"denoise_single": "htex", "denoise_paired": "htex"},
          "feature_table": {"summarize": "default"}}
DOC = {"parsl": {
    "strategy": "None",
    "executors": [
        {"class": "ThreadPoolExecutor", "label": "default", "max_threads": 2},
        {"class": "HighThroughputExecutor", "label": "htex", "max_workers_per_node": 2,
         "provider": {"class": "LocalProvider"}},
    ],
    "executor_mapping": NESTED,
}}
TEXT = two_executors(strategy="None", extra="""
[parsl.executor_mapping]
dada2 = { denoise_single = "htex", denoise_paired = "htex" }
feature_table = { summarize = "default" }
""")


def is_parsl_config(value: object) -> bool:
    from parsl.config import Config

    return isinstance(value, Config)


def test_vendored_config_seeds_the_conda_prefix(clean_env, monkeypatch):
    prefix = clean_env / "env"
    prefix.mkdir()
    monkeypatch.setenv("CONDA_PREFIX", str(prefix))
    path = prefix / "etc" / CONFIG
    assert get_vendored_config() == str(path)
    assert path.is_file()
    assert get_vendored_config() == str(path)  # found, not written again


def test_vendored_config_follows_the_lookup(clean_env, monkeypatch):
    mine = clean_env / "mine.toml"
    mine.write_text(TEXT)
    monkeypatch.setenv("QIIME2_CONFIG", str(mine))
    assert get_vendored_config() == str(mine)
    monkeypatch.delenv("QIIME2_CONFIG")
    user = Path(clean_env, "home", ".config", "qiime2", CONFIG)
    user.parent.mkdir(parents=True)
    user.write_text(TEXT)
    assert get_vendored_config() == str(user)


def test_vendored_config_without_conda_prefix_is_none(clean_env):
    assert get_vendored_config() is None


@pytest.mark.parametrize("reader", [get_config_from_file, load_config_from_file])
def test_config_from_file_is_a_parsl_config_and_nested_mapping(tmp_path, reader):
    path = tmp_path / CONFIG
    path.write_text(TEXT)
    config, mapping = reader(path)
    assert is_parsl_config(config)
    assert [e.label for e in config.executors] == ["default", "htex"]
    assert config.strategy == "none"
    assert mapping == NESTED


def test_config_from_dict_is_a_parsl_config_and_nested_mapping():
    config, mapping = get_config_from_dict(DOC)
    assert is_parsl_config(config)
    assert type(config.executors[1]).__name__ == "HighThroughputExecutor"
    assert mapping == NESTED


def test_flat_mapping_keys_stay_flat():
    doc = {"parsl": {"executor_mapping": {"summarize": "htex", "dada2": {"plot": "default"}}}}
    config, mapping = get_config_from_dict(doc)
    assert [e.label for e in config.executors] == ["default", "htex"]  # the vendored ones
    assert mapping == {"summarize": "htex", "dada2": {"plot": "default"}}


def test_config_without_mapping_gives_an_empty_mapping():
    doc = {"parsl": {"executors": DOC["parsl"]["executors"]}}
    assert get_config_from_dict(doc)[1] == {}


def test_bad_file_is_a_config_error(tmp_path):
    path = tmp_path / CONFIG
    path.write_text(TEXT.replace('"LocalProvider"', '"LocalProvidr"'))
    with pytest.raises(ConfigError, match="did you mean LocalProvider"):
        get_config_from_file(path)
