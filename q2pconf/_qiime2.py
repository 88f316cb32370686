"""QIIME 2's names (qiime2.sdk.parallel_config), with the meaning they have there.

`load_config_from_file` and `load_config_from_dict` (QIIME 2 2024.10 and later; 2024.5 called
them `get_config_from_file` and `get_config_from_dict`, kept too) return
``(parsl.Config | None, mapping)``: None when the file holds only a mapping, which then
applies to whichever config is in force. The mapping keeps the shape the file wrote it in
(QIIME 2's nested ``{plugin: {action: label}}``, or the flat ``{step: label}``).
`get_vendored_config` returns what QIIME 2 2024.10's does, the triple `qiime info` prints.
"""
from __future__ import annotations

import copy
import os
from typing import Any

from q2pconf.config._settings import Settings, check, from_dict

# QIIME 2's `source` when no file was found and the built-in default is used.
VENDORED_SOURCE = "vendored config dict"


def get_vendored_config() -> tuple[dict[str, Any], dict[str, Any], str]:
    """(config dict, mapping, source) for the config QIIME 2's lookup chooses (seeding the
    conda environment's file when none exists), as QIIME 2 2024.10's function: the dict as the
    file holds it without its `[parsl.executor_mapping]`, that mapping, and the file's path or
    "vendored config dict". Reads and builds nothing else; nothing is checked."""
    from q2pconf.config._find import locate
    from q2pconf.config._templates import vendored_dict
    from q2pconf._base.tomlfile import read_toml

    path = locate().path
    doc = vendored_dict() if path is None else read_toml(path)
    doc = copy.deepcopy(doc)
    section = doc.get("parsl")
    mapping = section.pop("executor_mapping", {}) if isinstance(section, dict) else {}
    return doc, mapping, VENDORED_SOURCE if path is None else str(path)


def get_vendored_config_path() -> str | None:
    """The path of the config file QIIME 2's lookup chooses (seeding it if needed), or None
    for the built-in default: QIIME 2 2024.5's private `_get_vendored_config()` (2024.10:
    `_get_vendored_config_path()`)."""
    from q2pconf.config._find import locate

    path = locate().path
    return None if path is None else str(path)


def load_config_from_file(config_fp: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """(parsl.Config or None, action_executor_mapping) from a config file."""
    return _pair(check(config_fp))


def load_config_from_dict(config_dict: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(parsl.Config or None, action_executor_mapping) from a parsed config. Unlike QIIME 2's,
    it leaves `config_dict` unchanged."""
    return _pair(from_dict(config_dict))


get_config_from_file = load_config_from_file  # QIIME 2 2024.5's names
get_config_from_dict = load_config_from_dict


def _pair(settings: Settings) -> tuple[Any, dict[str, Any]]:
    nested: dict[str, Any] = {}
    for name, label in settings.mapping.items():
        plugin, dot, action = name.partition(".")
        if dot:
            nested.setdefault(plugin, {})[action] = label
        else:
            nested[name] = label
    if settings.plan.mapping_only:
        return None, nested
    # q2pconf's session settings (a short strategy period) unless the file sets them: a
    # config loaded this way is usually handed to ParallelConfig, as q2cli does.
    from q2pconf.pipeline._session import SESSION_DEFAULTS

    return settings.parsl_config(**SESSION_DEFAULTS), nested
