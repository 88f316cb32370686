"""Flag files a step writes for its test to wait on (importable by workers: standard library
only)."""
from __future__ import annotations

import os


def write_flag(path: str, text: str) -> None:
    """Write `text` to `path` in one step: a test that polls for `path` reads it whole (a plain
    write_text creates the file empty first, and a loaded machine let a test read it so)."""
    part = f"{path}.{os.getpid()}.part"
    with open(part, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(part, path)
