"""QIIME 2's names (qiime2.sdk.parallel_config), with the meaning they have there.

QIIME 2 returns ``(parsl.Config | None, mapping)`` where None means "use the vendored
executors"; q2pconf builds those executors for you, so the config is never None. The mapping
keeps QIIME 2's nested ``{plugin: {action: label}}`` shape.
"""
from __future__ import annotations

import os
from typing import Any

from q2pconf.config import Settings, check, from_dict


def get_vendored_config() -> str | None:
    """The config file path QIIME 2's lookup chooses (seeding it if needed), or None."""
    from q2pconf.find import locate

    path = locate().path
    return None if path is None else str(path)


def get_config_from_file(config_fp: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """(parsl.Config, action_executor_mapping) from a config file."""
    return _pair(check(config_fp))


load_config_from_file = get_config_from_file


def get_config_from_dict(config_dict: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(parsl.Config, action_executor_mapping) from a parsed config."""
    return _pair(from_dict(config_dict))


def _pair(settings: Settings) -> tuple[Any, dict[str, Any]]:
    nested: dict[str, Any] = {}
    for name, label in settings.mapping.items():
        plugin, dot, action = name.partition(".")
        if dot:
            nested.setdefault(plugin, {})[action] = label
        else:
            nested[name] = label
    return settings.parsl_config(), nested
