"""`ParallelConfig`: the config and executor mapping the pipelines called inside a block run
with. Blocks nest; the choice in force is a context variable, so each thread and task has its
own (q2pconf.pipeline._session reads it when a pipeline starts)."""
from __future__ import annotations

import contextvars
import os
from dataclasses import dataclass
from typing import Any

from q2pconf._base.errors import ConfigError, shallow
from q2pconf.config._settings import Settings, from_dict, load_current

# Where a mapping given to ParallelConfig (not read from a file) is said to come from.
BLOCK_MAPPING = "<ParallelConfig mapping>"


@dataclass(frozen=True)
class Choice:
    """What the `ParallelConfig` blocks in force ask for.

    `target` is the config: None for the lookup's, a `Settings`, or a ready parsl.Config.
    `mapping` (flat) replaces the config's own mapping; None keeps it. `mapping_file` is the
    file that mapping was read from, for messages (None: it was given as a dict)."""

    target: Any = None
    mapping: dict[str, str] | None = None
    mapping_file: str | None = None


_CHOICE: contextvars.ContextVar[Choice | None] = contextvars.ContextVar("q2pconf_choice",
                                                                        default=None)


class ParallelConfig:
    """Run the pipelines called inside the block with this config and mapping.

    `config` (QIIME 2: `parallel_config`) is a path to a TOML file, a config dict as TOML
    would give, a `q2pconf.Settings`, a `parsl.Config`, or None: the config of the enclosing
    block, else the one the lookup finds. A file or dict holding only a mapping is a mapping
    for that config. `mapping` (QIIME 2: `action_executor_mapping`), {"step": "label"} or
    {"plugin": {"action": "label"}}, replaces the config's own `[parsl.executor_mapping]`, as
    in QIIME 2: steps it does not name run on "default". Its labels are checked against the
    executors in force when a pipeline starts (an unknown one is a ConfigError and KeyError)::

        with q2pconf.ParallelConfig("cluster.toml", mapping={"classify": "htex"}):
            run(samples)

    A path or dict is read and checked here (a file again only if it changed since it was
    last checked); nothing starts until a pipeline is called.
    """

    @shallow
    def __init__(self, config: Any = None, mapping: dict[str, Any] | None = None, *,
                 parallel_config: Any = None,
                 action_executor_mapping: dict[str, Any] | None = None) -> None:
        config = _one_of("config", config, "parallel_config", parallel_config)
        mapping = _one_of("mapping", mapping, "action_executor_mapping", action_executor_mapping)
        self.choice = _choice(_target(config), mapping)
        self._tokens: list[contextvars.Token[Choice | None]] = []

    def __enter__(self) -> ParallelConfig:
        self._tokens.append(_CHOICE.set(_within(_CHOICE.get(), self.choice)))
        return self

    def __exit__(self, *exc: object) -> None:
        _CHOICE.reset(self._tokens.pop())


def _one_of(name: str, value: Any, qiime2_name: str, qiime2_value: Any) -> Any:
    if value is not None and qiime2_value is not None:
        raise TypeError(f"ParallelConfig got both {name} and {qiime2_name}: give one of them")
    return qiime2_value if value is None else value


def _target(config: Any) -> Any:
    """None, a Settings or a parsl.Config; a path or a dict is read and checked now."""
    if config is None or isinstance(config, Settings):
        return config
    if isinstance(config, (str, os.PathLike)):
        return load_current(config)  # read and checked again only if it changed
    if isinstance(config, dict):
        return from_dict(config)
    # By name, not isinstance: importing parsl.config here would import Parsl (~0.3 s) for
    # every lookup; a parsl.Config can only exist if the caller imported Parsl already.
    if type(config).__name__ == "Config" and type(config).__module__.startswith("parsl"):
        return config
    raise TypeError("ParallelConfig takes a path, a config dict, a q2pconf.Settings or a "
                    f"parsl.Config, not {type(config).__name__}")


def _choice(target: Any, mapping: dict[str, Any] | None) -> Choice:
    """An empty mapping is no mapping, as in QIIME 2. A config holding only a mapping names no
    executors: its mapping applies to whichever config is in force."""
    from q2pconf.config._validate import flat_mapping  # the validator: not loaded by an import

    explicit = flat_mapping(mapping, _as_given) if mapping else None
    if isinstance(target, Settings) and target.plan.mapping_only:
        if explicit is not None:
            return Choice(None, explicit)
        return Choice(None, target.mapping, str(target.path or target.plan.file))
    return Choice(target, explicit)


def _as_given(value: Any, key: str) -> str:
    from q2pconf.config._validate import MAPPING_KEY, describe

    if not isinstance(value, str):
        raise ConfigError(BLOCK_MAPPING, key.removeprefix(MAPPING_KEY + "."),
                          f"must be an executor label (a string), not {describe(value)}",
                          '{"step": "label"} or {"plugin": {"action": "label"}}')
    return value


def _within(outer: Choice | None, inner: Choice) -> Choice:
    """A block naming no config keeps the enclosing block's config, and its mapping unless
    the block names one; a block naming a config stands on its own."""
    if inner.target is not None or outer is None:
        return inner
    if inner.mapping is None:
        return outer
    return Choice(outer.target, inner.mapping, inner.mapping_file)


def in_force() -> Choice:
    """What the blocks around this call choose (nothing: the lookup's config and mapping)."""
    return _CHOICE.get() or Choice()
