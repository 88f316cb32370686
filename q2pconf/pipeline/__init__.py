"""`@step` and `@parallel_pipeline`: a pipeline body that sends its steps to Parsl.

    from q2pconf.pipeline import parallel_pipeline, step

The public names are below; the modules of this package (`_decorators`, `_session`,
`_transport`, ...) are internal. The top layer under the command line: it may import every
other layer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from q2pconf._base.lazy import loader

if TYPE_CHECKING:
    from q2pconf.pipeline._decorators import parallel_pipeline, step

__all__ = ["parallel_pipeline", "step"]
__getattr__ = loader(globals(), dict.fromkeys(__all__, "q2pconf.pipeline._decorators"))
