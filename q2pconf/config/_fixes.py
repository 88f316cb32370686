"""The fixes a message suggests, so that following a fix makes the file pass.

**The value for a keyword given a value of the wrong kind.** A fix must hold if the user follows
it: the suggestion is of the kind Parsl's annotation asks
for (an array's items included: `Sequence[str]` gets `["text"]`, not `[1, 2]`), as close to
what the file wrote as can be (`"4"` becomes `4`, `2.0` becomes `2`, `"x"` becomes `["x"]`),
and it is one the check itself accepts: the caller passes that test as `fits`.

**Where a setting belongs when it sits in the wrong table.** `init_blocks` under the HTEX table is
a provider setting; listing a dozen HTEX keys does not
tell the user that. An unknown key is looked up among the classes of the other tables
([parsl], executors, providers, launchers) before falling back to did-you-mean.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from q2pconf._catalog import accepted as catalog
from q2pconf._catalog.kinds import NUMBER, Param, default_value, kind_of


# A value of each TOML kind, for when nothing the file wrote or Parsl's default fits.
SAMPLES: dict[str, Any] = {"int": 2, "float": 1.5, "str": "text", "bool": True,
                           "table": {"key": 1}}
ARRAYS = ("list", "tuple")


def suggest(param: Param, value: Any, fits: Callable[[Any], bool],
            shape: Callable[[Any], bool]) -> str:
    """TOML text for the first candidate that `fits` (the whole check), else for the first
    that has the right `shape` (the type check alone: a checkpoint directory that does not
    exist here, say; the check then says what else it needs); "" if none. Candidates: the
    file's own value converted, then Parsl's default, its choices and samples."""
    candidates = list(_converted(param, value)) + list(_invented(param))
    for test in (fits, shape):
        for candidate, note in candidates:
            if test(candidate):
                return _with_note(candidate, note)
    return ""


def _with_note(value: Any, note: str) -> str:
    text = toml_value(value)
    return f"{text} ({note})" if note else text


def _converted(param: Param, value: Any) -> Iterator[tuple[Any, str]]:
    """The file's value turned into the kinds `param` takes, each with a note saying how."""
    kind = kind_of(value)
    if kind == "list":
        yield [_item(param.items, item) for item in value], ""
        return
    if kind == "bool" and param.accepts & NUMBER:
        # Parsl's typeguard takes a bool for an int (True is 1): say what it would mean
        yield int(value), f"Parsl reads {toml_value(value)} as {int(value)}"
    if kind == "float" and float(value).is_integer():
        yield int(value), "no decimal point"
    if kind == "str" and param.accepts & NUMBER:
        number = _number(value)
        if number is not None:
            yield number, "no quotes"
    if kind in ("int", "float") and "str" in param.accepts:
        yield str(value), ""
    if kind != "table" and param.accepts & set(ARRAYS):
        yield [_item(param.items, value)], ""


def _item(kinds: frozenset[str] | None, value: Any) -> Any:
    """One array item as the item kinds allow: a number for number items, else a string for
    string items; unchanged when it fits already (or cannot be turned)."""
    kind = kind_of(value)
    if kinds is None or kind in kinds or kind == "int" and "float" in kinds:
        return value
    if kind == "str" and kinds & NUMBER:
        number = _number(value)
        return value if number is None else number
    if "str" in kinds and kind in ("int", "float", "bool"):
        return toml_value(value) if kind == "bool" else str(value)
    return value


def _invented(param: Param) -> Iterator[tuple[Any, str]]:
    """What q2pconf's limits say works, Parsl's default (unless empty), its fixed choices,
    then a sample of each kind."""
    from q2pconf.config._limits import WORKING

    if param.name in WORKING:
        yield WORKING[param.name], ""
    default = default_value(param)
    if isinstance(default, tuple):
        default = list(default)
    if default is not None and default != [] and default != "":
        yield default, ""
    for choice in param.choices:
        yield choice, ""
    for kind in sorted(param.accepts):
        if kind in ARRAYS:
            for item in sorted(param.items or {"str"}):
                yield [SAMPLES[item]] if item in SAMPLES else [], ""
        elif kind in SAMPLES:
            yield SAMPLES[kind], ""


def _number(text: str) -> int | float | None:
    for parse in (int, float):
        try:
            return parse(text.strip())
        except ValueError:
            continue
    return None


def toml_value(value: object) -> str:
    """`value` as TOML writes it (quoting and escapes included), on one line."""
    if isinstance(value, dict):
        inner = ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items())
        return f"{{ {inner} }}"
    if isinstance(value, (list, tuple)):  # tomli_w would spread an array over lines
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    import tomli_w

    return tomli_w.dumps({"v": value}).partition(" = ")[2].rstrip("\n")


# Each table kind, the header a user writes for it, and where a key moves to reach it.
TABLES = {
    "config": ("[parsl]", "move it under [parsl], above the first [[parsl.executors]]"),
    "executors": ("[[parsl.executors]]", "move it into the executor's [[parsl.executors]] "
                  "table, above its [parsl.executors.provider]"),
    "provider": ("[parsl.executors.provider]", "move it under [parsl.executors.provider] "
                 "(the executor's provider table)"),
    "launcher": ("[parsl.executors.provider.launcher]",
                 "move it under [parsl.executors.provider.launcher]"),
}


@functools.lru_cache(maxsize=None)
def _settings(kind: str) -> frozenset[str]:
    """Every keyword any class of `kind` takes."""
    found: set[str] = set()
    for name in catalog.names(kind):
        try:
            found.update(catalog.parameters(kind, name))
        except (catalog.NotInParsl, OSError, SyntaxError):
            continue
    return frozenset(found)


def elsewhere(kind: str, arg: str) -> tuple[str, str] | None:
    """(problem, fix) when `arg`, unknown in a `kind` table, is a setting of another table."""
    if kind not in TABLES:
        return None
    for other, (header, fix) in TABLES.items():
        if other != kind and arg in _settings(other):
            return f"this belongs under {header}", fix
    return None
