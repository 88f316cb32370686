"""The progress display in a Jupyter notebook: one output of the cell, updated in place.

IPython is used only when the program has imported it already and a kernel runs it (an
IPython kernel sets the shell's `kernel`): importing q2pconf, or running a pipeline in plain
Python or in a terminal IPython, imports nothing of it.
"""
from __future__ import annotations

import html
import sys
from typing import Any


def kernel_running() -> bool:
    """Whether this program is a Jupyter (IPython) kernel."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)()
    return getattr(shell, "kernel", None) is not None


class Display:
    """One display of the cell running the pipeline, created by the first `show` and then
    updated (a `display_data` output with a display_id; each update replaces it), only when
    what it shows changed. An update from another thread names the cell as its parent when
    that thread runs in a copy of the cell's context (q2pconf._observe.progress does so)."""

    def __init__(self) -> None:
        self._handle: Any = None
        self._shown: dict[str, str] = {}

    def show(self, text: str, done: int, total: int) -> None:
        from IPython.display import display  # imported by IPython itself: costs nothing here

        bundle = {"text/plain": text, "text/html": _html(text, done, total)}
        if bundle == self._shown:
            return
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        self._shown = bundle

    def end(self, text: str, done: int, total: int) -> None:
        self.show(text, done, total)  # the last state stays in the cell's output


def _html(text: str, done: int, total: int) -> str:
    """A bar and the same words as the text."""
    return (f'<progress value="{done}" max="{max(total, 1)}"></progress> '
            f"<code>{html.escape(text)}</code>")
