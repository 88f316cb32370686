"""What a step sends back from a worker process must arrive, or be replaced by a StepError.

Parsl pickles a step's return value (or its exception, wrapped) on the worker and unpickles it
in the submitting process, in its result thread. An object that pickles but cannot be rebuilt
there (an exception whose `__init__` takes other arguments than its `args`, the usual way to
write one; an object whose `__reduce__` is wrong) kills that thread, and the pipeline then waits
for ever. So the worker tries the round trip itself first, with Parsl's own serializer, and
sends a `StepError` carrying the type name, message and traceback as text instead.

Imported on workers and in thread steps only when a step fails or returns: never at import.
"""
from __future__ import annotations

import traceback
from typing import Any

from q2pconf._base.errors import StepError

SCRIPT_MODULE = "__q2pconf_main__"  # the running script's name on a worker (see transport)
# Values whose round trip cannot fail: they skip the check (a check costs one more
# serialization and deserialization of the value on the worker).
ATOMS = (int, float, complex, str, bytes, bool, type(None))
ENDS = ("{kind} inside a step is reported as the step's failure: it ends neither the pipeline's "
        "program nor the worker")


def raised(step: str, error: BaseException, problem: str) -> StepError:
    """The StepError that stands for `error`, raised by `step`."""
    kind = type(error)
    trace = "".join(traceback.format_exception(kind, error, error.__traceback__))
    return StepError(step, "raised", _type_name(kind), _text(str, error), trace, problem)


def unsendable_error(error: BaseException) -> str | None:
    """Why `error` (with its causes and traceback, as Parsl wraps it) would not arrive as
    itself, or None when it would."""
    from parsl.app.errors import RemoteExceptionWrapper

    wrapper = RemoteExceptionWrapper(type(error), error, error.__traceback__)
    return _round_trip(wrapper, lambda copy: copy.get_exception())


def check_returned(step: str, value: Any) -> Any:
    """`value`, or a StepError when it could not be sent back from this worker."""
    if type(value) in ATOMS:
        return value
    problem = _round_trip(value, lambda copy: copy)
    if problem is None:
        return value
    raise StepError(step, "returned", _type_name(type(value)), _text(_short_repr, value), "",
                    problem)


def _round_trip(value: Any, rebuild: Any) -> str | None:
    from parsl.serialize import deserialize, serialize

    try:
        rebuild(deserialize(serialize(value)))
    except Exception as problem:  # anything: the original is what the user must hear about
        return f"{_type_name(type(problem))}: {_text(str, problem)}"
    return None


def _type_name(kind: type) -> str:
    module = getattr(kind, "__module__", "")
    name = getattr(kind, "__qualname__", kind.__name__)
    script = module.rpartition(".")[2] == SCRIPT_MODULE  # also in a package: see transport
    return name if script or module in ("builtins", "__main__", "") else f"{module}.{name}"


def _short_repr(value: Any) -> str:
    import reprlib

    shorter = reprlib.Repr()
    shorter.maxother = shorter.maxstring = 80
    return shorter.repr(value)


def _text(show: Any, value: Any) -> str:
    """show(value), or a placeholder: a broken __str__ or __repr__ must not hide the failure."""
    try:
        return str(show(value))
    except Exception as problem:
        return f"<{show.__name__}() failed: {type(problem).__name__}>"
