"""q2pconf: QIIME 2-style parallel configs for any Python pipeline, run through Parsl.

Find the config the way QIIME 2 does, build a ``parsl.Config`` from it, and run pipelines in
parallel::

    import q2pconf
    settings = q2pconf.load()          # lookup: explicit > $QIIME2_CONFIG > user > site > conda
    print(settings.path, settings.source)
    config = settings.parsl_config()   # a parsl.Config (imports Parsl only now)

    @q2pconf.step
    def denoise(sample): ...

    @q2pconf.parallel_pipeline
    def run(samples):                  # steps run in parallel on the config's executors
        return [denoise(s) for s in samples]

Importing q2pconf is cheap: names below load their module on first use, and nothing imports
Parsl until a ``parsl.Config`` is built or a pipeline runs.
"""
from __future__ import annotations

import importlib

from typing import Any

# public name -> module that defines it
_EXPORTS = {
    "ConfigError": "q2pconf.errors",
    "UnknownLabelError": "q2pconf.errors",
    "StepError": "q2pconf.errors",
    "locate": "q2pconf.find",
    "Located": "q2pconf.find",
    "load": "q2pconf.config",
    "check": "q2pconf.config",
    "from_dict": "q2pconf.config",
    "Settings": "q2pconf.config",
    "usable_cpus": "q2pconf.cpus",
    "vendored_toml": "q2pconf.templates",
    "seed_prefix": "q2pconf.seed",
    "parallel_pipeline": "q2pconf.pipeline",
    "step": "q2pconf.pipeline",
    "StepRecord": "q2pconf.history",
    "ParallelConfig": "q2pconf.session",
    "ExecutorFailed": "q2pconf.watchdog",
    "add_parallel_arguments": "q2pconf.cli",
    "config_from_args": "q2pconf.cli",
    # QIIME 2's names (qiime2.sdk.parallel_config), same meaning where it fits
    "get_vendored_config": "q2pconf.compat",
    "get_config_from_file": "q2pconf.compat",
    "load_config_from_file": "q2pconf.compat",
    "get_config_from_dict": "q2pconf.compat",
    "load_config_from_dict": "q2pconf.compat",
    "get_vendored_config_path": "q2pconf.compat",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("q2pconf")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'q2pconf' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
