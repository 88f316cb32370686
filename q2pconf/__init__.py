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

from typing import Any

# public name -> module that defines it
_EXPORTS = {
    "ConfigError": "q2pconf._base.errors",
    "UnknownLabelError": "q2pconf._base.errors",
    "StepError": "q2pconf._base.errors",
    "locate": "q2pconf.config._find",
    "Located": "q2pconf.config._find",
    "load": "q2pconf.config._settings",
    "check": "q2pconf.config._settings",
    "from_dict": "q2pconf.config._settings",
    "Settings": "q2pconf.config._settings",
    "usable_cpus": "q2pconf._base.cpus",
    "vendored_toml": "q2pconf.config._templates",
    "seed_prefix": "q2pconf.config._seed",
    "parallel_pipeline": "q2pconf.pipeline._decorators",
    "step": "q2pconf.pipeline._decorators",
    "StepRecord": "q2pconf._observe.history",
    "ParallelConfig": "q2pconf.pipeline._parallel_config",
    "ExecutorFailed": "q2pconf._base.errors",
    "add_parallel_arguments": "q2pconf._arguments",
    "config_from_args": "q2pconf._arguments",
    # QIIME 2's names (qiime2.sdk.parallel_config), same meaning where it fits
    "get_vendored_config": "q2pconf._qiime2",
    "get_config_from_file": "q2pconf._qiime2",
    "load_config_from_file": "q2pconf._qiime2",
    "get_config_from_dict": "q2pconf._qiime2",
    "load_config_from_dict": "q2pconf._qiime2",
    "get_vendored_config_path": "q2pconf._qiime2",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("q2pconf")
    from q2pconf._base.lazy import loader  # only now: `import q2pconf` loads nothing else

    return loader(globals(), _EXPORTS)(name)


def __dir__() -> list[str]:
    return __all__
