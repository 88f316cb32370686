"""QIIME 2's other_plugin (qiime2/core/testing/plugin.py): its own concatenate_ints, and the
dummy plugin's parameter_only_pipeline registered again under this plugin."""
from __future__ import annotations

from typing import Any

from q2pconf import parallel_pipeline, step

import dummy_plugin


@step(plugin="other_plugin")
def concatenate_ints(ints1: list[int], ints2: list[int], ints3: list[int], int1: int,
                     int2: int) -> dict[str, Any]:
    return dummy_plugin.concatenated(ints1, ints2, ints3, int1=int1, int2=int2)


parameter_only_pipeline = parallel_pipeline(dummy_plugin.parameter_only_pipeline.func)
