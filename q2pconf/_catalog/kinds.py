"""The kinds of TOML value a Parsl keyword accepts (`Param`), and the kind of a parsed value.

Shared by the catalog (`accepted`) and the reader of Parsl's source (`source`), below both.
"""
from __future__ import annotations

from typing import Any, NamedTuple

ANY = frozenset({"any"})
NUMBER = frozenset({"int", "float"})


class Param(NamedTuple):
    """One constructor keyword: which TOML kinds it takes, its fixed choices if any, and the
    kinds an array's items may have (None: any). Cached as a plain tuple (marshal)."""

    name: str
    accepts: frozenset[str]
    choices: tuple[Any, ...] = ()
    required: bool = False
    default: str = ""
    items: frozenset[str] | None = None


# Python type -> TOML kind; bool before int (a bool is an int to isinstance).
_KINDS = ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (list, "list"),
          (dict, "table"))


def kind_of(value: object) -> str:
    """The TOML kind of a parsed value."""
    kind = next((kind for type_, kind in _KINDS if isinstance(value, type_)), None)
    if kind is not None:
        return kind
    import datetime  # TOML's dates and times

    for kind in ("datetime", "date", "time"):  # datetime before date: it is a date too
        if isinstance(value, getattr(datetime, kind)):
            return kind
    return "any"


def default_value(param: Param) -> Any:
    """The value of `param`'s default as Parsl's source writes it; None when there is none or
    it is not a literal (a call, a name)."""
    text = param.default
    if text.isascii() and text.isdigit():  # the usual case (block counts): no ast needed
        return int(text)
    import ast  # ~1 ms to import: only for the other defaults

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
