"""Flag files a step writes for its test to wait on (importable by workers: standard library
only)."""
from __future__ import annotations

import os
import stat


def write_flag(path: str, text: str) -> None:
    """Write `text` to `path` in one step: a test that polls for `path` reads it whole (a plain
    write_text creates the file empty first, and a loaded machine let a test read it so).

    A path that is not a regular file (`/dev/null`, for a test that ignores the flag) is
    written in place: renaming over it would replace the device with a file."""
    try:
        special = not stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        special = False
    if special:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        return
    part = f"{path}.{os.getpid()}.part"
    with open(part, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(part, path)
