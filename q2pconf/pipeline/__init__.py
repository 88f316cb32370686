"""`@step` and `@parallel_pipeline`: a pipeline body that sends its steps to Parsl.

    from q2pconf.pipeline import parallel_pipeline, step

The public names are below; the modules of this package (`_decorators`, `_session`,
`_transport`, ...) are internal. The top layer under the command line: it may import every
other layer.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from q2pconf.pipeline._decorators import parallel_pipeline, step

__all__ = ["parallel_pipeline", "step"]


def __getattr__(name: str) -> Any:
    """A public name loads its module on first use: importing one of this package's internal
    modules (as a worker does) does not load them all."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("q2pconf.pipeline._decorators"), name)
    globals()[name] = value
    return value
