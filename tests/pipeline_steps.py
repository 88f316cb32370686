"""Steps and pipelines the pipeline tests run (importable by HTEX workers through sys.path)."""
from __future__ import annotations

import collections
import dataclasses
import os
import threading
import time
from pathlib import Path

from flags import write_flag
from q2pconf import parallel_pipeline, step


@step
def span(name: str, seconds: float = 0.3) -> tuple[str, float, float]:
    """Sleep, and say when the sleep began and ended."""
    began = time.time()
    time.sleep(seconds)
    return name, began, time.time()


@step
def total(*values: object) -> object:
    return values


@step
def add(a: int, b: int) -> int:
    return a + b


@step
def deep_sum(structure: dict[str, object]) -> int:
    """Sum the ints in a nested structure (futures inside must already be values)."""
    def walk(value: object) -> int:
        if isinstance(value, dict):
            return sum(walk(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(walk(v) for v in value)
        assert isinstance(value, int), f"got {type(value).__name__}, not a value"
        return value
    return walk(structure)


@step(outputs=2)
def split(values: list[int]) -> tuple[int, int]:
    return min(values), max(values)


@step(outputs=3)
def wrong_outputs() -> tuple[int, int]:
    return 1, 2


@step
def fail(message: str) -> None:
    raise KeyError(message)


@step
def touch(path: str, *after: object) -> str:
    Path(path).write_text("ran")
    return path


@step
def where() -> dict[str, object]:
    return {"pid": os.getpid(), "thread": threading.current_thread().name,
            "job": os.environ.get("SLURM_JOB_ID")}


@step(executor="htex")
def where_hinted() -> dict[str, object]:
    return where.func()


@step(plugin="demux")
def summarize() -> str:
    return "summarized"


@step
def count_call(log: str, value: int) -> int:
    """Append to `log` each time it really runs (resume tests count the lines)."""
    with open(log, "a") as handle:
        handle.write(f"{value}\n")
    return value * 10


@step
def wait_for(flag: str, timeout: float = 30.0) -> bool:
    """True when `flag` appeared within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(flag):
            return True
        time.sleep(0.05)
    return False


@parallel_pipeline
def fan_out(n: int, seconds: float = 0.3) -> list[object]:
    return [span(f"s{i}", seconds) for i in range(n)]


@parallel_pipeline
def inner(name: str) -> object:
    return span(name, 0.4)


@parallel_pipeline
def outer() -> object:
    return [inner("a"), inner("b")]


@parallel_pipeline
def deep() -> int:
    one, two = add(0, 1), add(1, 1)
    return deep_sum({"list": [one, two], "tuple": (add(1, 2),), "dict": {"x": add(2, 2)},
                     "plain": 5})


@parallel_pipeline
def branching(n: int) -> int:
    """Calls .result() inside the body to choose what to run next."""
    first = add(n, 1)
    if first.result() > 2:
        second = add(first, 100)
    else:
        second = add(first, 200)
    return add(second, add(first, first).result())


@parallel_pipeline
def unpacking(values: list[int]) -> dict[str, object]:
    low, high = split(values)
    return {"low": low, "high": high, "sum": add(high, low)}


@parallel_pipeline
def failing(marker: str, flag: str) -> object:
    slow = wait_for(flag)
    broken = fail("no such sample")
    after = touch(marker, broken)
    return [slow, after]


@parallel_pipeline
def mapped() -> dict[str, object]:
    return {"plain": where(), "hinted": where_hinted(), "plugin": summarize()}


@parallel_pipeline
def threads_only(n: int) -> list[object]:
    return [add(i, i) for i in range(n)]


@parallel_pipeline
def counted(log: str, values: list[int]) -> list[object]:
    return [count_call(log, v) for v in values]


@parallel_pipeline
def wrong() -> object:
    return wrong_outputs()[0]


@step(executor="htex")
def sleep_on_htex(flag: str, seconds: float) -> int:
    write_flag(flag, str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


@step
def sleep_on_threads(flag: str, seconds: float) -> int:
    write_flag(flag, str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


@parallel_pipeline
def long_running(flag: str, seconds: float) -> list[object]:
    return [sleep_on_htex(flag, seconds), sleep_on_threads(flag + ".threads", seconds)]


@parallel_pipeline
def long_on_htex(flag: str, seconds: float) -> list[object]:
    return [sleep_on_htex(flag, seconds), add(1, 2)]


@parallel_pipeline
def htex_failing() -> object:
    return [sleep_on_htex("/dev/null", 0), fail("on purpose")]


@step(walltime=1)
def spin_forever() -> None:
    while True:
        pass


@parallel_pipeline
def timed_out() -> object:
    return spin_forever()


Point = collections.namedtuple("Point", "x y")


def shape(value: object) -> object:
    """`value` as (type name, contents), so a test sees types kept and no future left."""
    if isinstance(value, dict):
        return [type(value).__name__, sorted((repr(shape(k)), repr(shape(v)))
                                             for k, v in value.items())]
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [repr(shape(item)) for item in value]
        return [type(value).__name__, items if isinstance(value, (list, tuple)) else sorted(items)]
    assert isinstance(value, (int, str)), f"got {type(value).__name__}, not a value"
    return value


@step
def shape_on_threads(value: object) -> object:
    return shape(value)


@step(executor="htex")
def shape_on_htex(value: object) -> object:
    return shape(value)


def containers(future: object) -> dict[str, object]:
    """Every kind of container q2pconf follows, each holding `future`."""
    return {"frozenset": frozenset([future, 1]), "set": {future}, "point": Point(future, 2),
            "ordered": collections.OrderedDict([("a", future)]),
            "default": collections.defaultdict(list, {"a": future}), "key": {future: "v"},
            "deep": [({"x": [frozenset([(future,)])]},)]}


@parallel_pipeline
def nested_everywhere(where: str) -> dict[str, object]:
    shaped = shape_on_htex if where == "htex" else shape_on_threads
    one = add(0, 1)
    return {"seen": {name: shaped(value) for name, value in containers(one).items()},
            "returned": containers(one)}


@parallel_pipeline
def fails_first(marker: str) -> object:
    broken = fail("no such sample")
    return touch(marker, broken)


@step
def count_size(log: str, value: object) -> int:
    """Append to `log` each time it really runs; the size of `value`."""
    with open(log, "a") as handle:
        handle.write(f"{type(value).__name__}\n")
    return len(value)  # type: ignore[arg-type]


@parallel_pipeline
def counted_kinds(log: str) -> list[object]:
    """Arguments of the kinds q2pconf teaches Parsl's memoizer (resume tests)."""
    return [count_size(log, {"b", "a"}), count_size(log, frozenset([3, 1, 2])),
            count_size(log, b"four"), count_size(log, [{"c"}, (frozenset(["d"]),)])]


# Argument types for resume tests: two named tuple types with the same fields, a dataclass.
Pair = collections.namedtuple("Pair", "left right")
Twin = collections.namedtuple("Twin", "left right")


@dataclasses.dataclass(frozen=True)
class Window:
    start: int
    end: int


@step
def count_kind(log: str, value: object) -> str:
    """Append `value`'s type to `log` each time it really runs; that type's name."""
    with open(log, "a") as handle:
        handle.write(f"{type(value).__name__}\n")
    return type(value).__name__


@parallel_pipeline
def counted_each(log: str, values: list[object]) -> list[object]:
    """One count_kind step per value (resume tests)."""
    return [count_kind(log, value) for value in values]


@step
def hold(flag: str, go: str) -> int:
    """Say it runs (`flag`), then wait until `go` exists (at most 120 s)."""
    write_flag(flag, str(os.getpid()))
    deadline = time.monotonic() + 120
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.getpid()


@parallel_pipeline
def threads_first(flag: str, go: str, use_htex: bool) -> object:
    """Names an HTEX step, but first waits on a thread step; calls it only if `use_htex`."""
    first = hold(flag, go).result()
    return [first, sleep_on_htex(flag + ".htex", 0)] if use_htex else first
