"""`dumps(value)`: the text `json.dumps(value, indent=2)` gives, without importing json.

`q2pconf info --json` prints a few strings and lists; importing json (its decoder, scanner and
encoder) and running its pure-Python indented encoder costs ~1.5 ms, a tenth of what the
command may add to the interpreter's start. Only what that output holds is written here: None,
bools, ints, strings, lists, tuples and dicts with string keys; anything else is a TypeError
(use json for it). tests/test_jsontext.py checks the text against json.dumps, byte for byte.
"""
from __future__ import annotations

INDENT = "  "
# json's escapes with ensure_ascii: its short forms, else \\uXXXX (surrogate pairs above BMP)
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
          "\t": "\\t"}


def dumps(value: object, level: int = 0) -> str:
    """`json.dumps(value, indent=2)` for the types listed above."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple, dict)):
        return _container(value, level)
    raise TypeError(f"Object of type {type(value).__name__} is not written by jsontext")


def _container(value: list | tuple | dict, level: int) -> str:
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    inner = "\n" + INDENT * (level + 1)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("jsontext writes only string keys")
        items = [f"{_string(key)}: {dumps(item, level + 1)}" for key, item in value.items()]
        ends = "{}"
    else:
        items = [dumps(item, level + 1) for item in value]
        ends = "[]"
    return ends[0] + inner + ("," + inner).join(items) + "\n" + INDENT * level + ends[1]


def _string(text: str) -> str:
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # the usual case: nothing to escape
    return '"' + "".join(map(_char, text)) + '"'


def _char(char: str) -> str:
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if 0x20 <= code < 0x7F:
        return char
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"
