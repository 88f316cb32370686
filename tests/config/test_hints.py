"""A fix `q2pconf check` suggests holds when followed: for every keyword of every class the
installed Parsl's catalog lists, a value of each wrong kind (and values a limit refuses) is
fed, the suggested fix is applied as written, and the key then passes, or the next message
about it has a fix that holds in turn. The test reads each fix as a user would: `write NAME =
VALUE` (the TOML value, whatever note follows), `did you mean X?`, `use one of X, ...`, and
`remove ...`; any other fix fails the test, as does one that sends the user in circles."""
from __future__ import annotations

import copy
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

from q2pconf._catalog import accepted as catalog
from q2pconf._catalog.kinds import NUMBER, Param, kind_of
from q2pconf._base.errors import ConfigError
from q2pconf.config._validate import MANAGED, plan

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, from PyPI, before Python 3.11
    import tomli as tomllib

# A value of each TOML kind Parsl's annotations could refuse, and values limits refuse.
FED: list[Any] = ["text", "4", 2.5, 3.0, True, False, [1, 2], ["a"], {"key": 1}, -1, 0, 70000,
                  [65534, 65535], [2, 1]]
# Where a table of each kind sits in a document (its key path, and the document around it).
EXECUTOR = {"class": "HighThroughputExecutor", "label": "default"}
SKIPPED = {"label", "executors"} | set(MANAGED) | set(catalog.NAMESPACES)
STEPS = 4  # messages about one key a user may be walked through


def document(kind: str, table: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A config whose `kind` table is `table`, and that table's key path."""
    if kind == "config":
        options = {arg: value for arg, value in table.items() if arg != "class"}
        return {"parsl": {**options, "executors": [{**EXECUTOR}]}}, "parsl"
    if kind == "executors":
        return {"parsl": {"executors": [{**table, "label": "default"}]}}, "parsl.executors[0]"
    if kind == "provider":
        return ({"parsl": {"executors": [{**EXECUTOR, "provider": table}]}},
                "parsl.executors[0].provider")
    if kind == "launcher":
        provider = {"class": "SlurmProvider", "launcher": table}
        return ({"parsl": {"executors": [{**EXECUTOR, "provider": provider}]}},
                "parsl.executors[0].provider.launcher")
    return {"parsl": {kind: table, "executors": [{**EXECUTOR}]}}, f"parsl.{kind}"


def keywords() -> list[tuple[str, str, str]]:
    """(kind, class, keyword) for every keyword a file can set to a plain value."""
    found = []
    for kind in ("config", "executors", "provider", "launcher", "memoizer", "monitoring"):
        for name in sorted(catalog.names(kind)):
            params = catalog.parameters(kind, name)
            if _required(params) is None:
                continue  # it needs a Parsl object no plain value stands for
            found += [(kind, name, arg) for arg, param in params.items()
                      if arg not in SKIPPED and "any" not in param.accepts]
    return found


def _required(params: dict[str, Param]) -> dict[str, Any] | None:
    """A plain value for each required keyword; None if one takes only an object."""
    values = {}
    for param in params.values():
        if param.required:
            kinds = sorted(param.accepts & {"str", "int", "table"})
            if not kinds:
                return None
            values[param.name] = {"str": "text", "int": 1, "table": {"key": 1}}[kinds[0]]
    return values


def error_at(doc: dict[str, Any], key: str) -> ConfigError | None:
    """The check's error about `key` (or an item of it), None when the file passes; an error
    about another key fails the test (its document would test nothing)."""
    try:
        plan(copy.deepcopy(doc), "hint.toml")
    except ConfigError as error:
        if error.key == key or error.key.startswith((key + ".", key + "[")):
            return error
        raise AssertionError(f"an error about another key than {key}: {error}") from error
    return None


def follow(fix: str, table: dict[str, Any], name: str) -> None:
    """Change `table` as the fix says (`name`: the key the message is about)."""
    written = re.match(r"write (\w+) = (.*)", fix)
    if written is not None:
        if " in its place" in fix:
            table.pop(name)
        table[written[1]] = _toml_prefix(written[2])
        return
    if re.search(r"\bremove\b", fix):
        table.pop(name)
        return
    raise AssertionError(f"a fix a user cannot follow as written: {fix!r}")


def _toml_prefix(text: str) -> Any:
    """The TOML value `text` starts with (a note may follow it)."""
    for end in range(len(text), 0, -1):
        try:
            return tomllib.loads("v = " + text[:end])["v"]
        except tomllib.TOMLDecodeError:
            continue
    raise AssertionError(f"no TOML value in {text!r}")


def settles(kind: str, cls: str, arg: str, value: Any,
            prepare: Callable[[dict[str, Any]], None] = lambda table: None) -> list[str]:
    """The messages about `arg = value` a user following each fix goes through; fails if a fix
    cannot be followed or the key never passes."""
    params = catalog.parameters(kind, cls)
    table = {"class": cls, **(_required(params) or {}), arg: value}
    seen = []
    for _ in range(STEPS):
        doc, where = document(kind, table)
        error = error_at(doc, f"{where}.{arg}")
        if error is None:
            return seen
        seen.append(str(error))
        name = error.key.rpartition(".")[2].partition("[")[0]
        follow(error.fix, table, name)
    raise AssertionError("following the fixes never passes:\n" + "\n".join(seen))


KEYWORDS = keywords()


@pytest.mark.parametrize("kind,cls,arg", KEYWORDS, ids=[":".join(k) for k in KEYWORDS])
def test_each_fix_holds_when_followed(kind, cls, arg, tmp_path, monkeypatch):
    # checkpoint_files must name readable checkpoints: make the ones fixes would name exist
    monkeypatch.chdir(tmp_path)
    for value in FED:
        for name in {str(value), "text", "a", "1", "2"}:
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / "tasks.pkl").write_bytes(b"")
    for value in FED:
        seen = settles(kind, cls, arg, value)
        # the first fix passes: `strategy = 5` was told `strategy = "5"`, which check refused
        assert len(seen) <= 1, "the first fix did not pass:\n" + "\n".join(seen)


LISTS = [key for key in KEYWORDS
         if catalog.parameters(key[0], key[1])[key[2]].accepts & {"list", "tuple"}]


@pytest.mark.parametrize("kind,cls,arg", LISTS, ids=[":".join(k) for k in LISTS])
def test_an_array_keyword_is_told_an_array_of_its_item_kind(kind, cls, arg, tmp_path,
                                                            monkeypatch):
    """`interchange_launch_cmd = 5` (a Sequence[str]) was told to write [1, 2]: the example
    is an array of the item kind the annotation names, and the check accepts it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "tasks.pkl").write_bytes(b"")  # a checkpoint_files example's
    params = catalog.parameters(kind, cls)
    table = {"class": cls, **(_required(params) or {}), arg: {"key": 1}}
    doc, where = document(kind, table)
    error = error_at(doc, f"{where}.{arg}")
    assert error is not None and error.fix.startswith(f"write {arg} = "), error
    example = _toml_prefix(error.fix.partition(" = ")[2])
    items = params[arg].items
    if isinstance(example, list) and items is not None:
        kinds = {kind_of(item) for item in example}
        assert kinds <= items | ({"int"} if "float" in items else set()), error.fix
    table[arg] = example
    assert error_at(document(kind, table)[0], f"{where}.{arg}") is None, error.fix


def test_there_are_array_keywords_of_strings():
    """The test above covers the keywords that were told [1, 2]."""
    names = {arg for _, _, arg in LISTS}
    assert "interchange_launch_cmd" in names or "launch_cmd" in names
    assert "available_accelerators" in names


@pytest.mark.parametrize("value,fix", [(True, "write usage_tracking = 1"),
                                       (False, "write usage_tracking = 0")])
def test_usage_tracking_true_means_level_one_as_parsl_reads_it(value, fix):
    """Parsl's Config takes true (typeguard lets a bool pass as an int) and reads it as level
    1: the old true/false switch. The check says so, instead of "write usage_tracking = 0"."""
    doc, _ = document("config", {"usage_tracking": value})
    checked = plan(doc, "hint.toml")
    assert checked.options["usage_tracking"] == int(value)
    assert type(checked.options["usage_tracking"]) is int
    assert any(fix in warning and f"reads {str(value).lower()} as {int(value)}" in warning
               for warning in checked.warnings)


OLD_KEYS = [("config", "app_cache", 1), ("config", "checkpoint_files", "runs"),
            ("config", "checkpoint_mode", "at_exit"), ("config", "checkpoint_period", 30),
            ("executors", "max_workers", "4"), ("executors", "max_workers", -1)]


@pytest.mark.parametrize("kind,old,value", OLD_KEYS)
def test_an_old_key_is_named_as_written_and_its_fix_holds(kind, old, value, tmp_path,
                                                          monkeypatch):
    """Old keys are translated (checkpoint keys into today's memoizer object): an error
    names the key the file wrote (not parsl.memoizer.memoize, a key nobody wrote)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "tasks.pkl").write_bytes(b"")
    table = {**EXECUTOR, old: value} if kind == "executors" else {old: value}
    for _ in range(STEPS):
        doc, where = document(kind, table)
        try:
            plan(doc, "hint.toml")
            return
        except ConfigError as error:
            assert error.key.startswith(f"{where}.{old}"), error
            follow(error.fix, table, old)
    raise AssertionError(f"{old} = {value!r}: following the fixes never passes")


def test_a_memoizer_warning_names_a_class_and_keys_this_parsl_has():
    params = catalog.parameters("config", "Config")
    checked = plan(document("config", {"app_cache": True, "checkpoint_mode": "task_exit"})[0],
                   "hint.toml")
    if "memoizer" not in params:  # an older Parsl: the keys are its Config's own
        assert not checked.warnings and checked.options["app_cache"] is True
        return
    for warning in checked.warnings:
        cls = re.search(r'class = "(\w+)"', warning)[1]
        key = re.search(r"and (\w+) = \.\.\.", warning)[1]
        assert key in catalog.parameters("memoizer", cls), warning
    memoizer = checked.options["memoizer"]
    assert memoizer.cls in catalog.names("memoizer")


def test_worker_ports_names_worker_port_only_where_parsl_has_it():
    params = catalog.parameters("executors", "HighThroughputExecutor")
    doc, _ = document("executors", {**EXECUTOR, "worker_ports": [50000, 50001]})
    error = error_at(doc, "parsl.executors[0].worker_ports")
    if "worker_ports" in params:
        assert error is None
    elif "worker_port" in params:
        follow(error.fix, doc["parsl"]["executors"][0], "worker_ports")
        assert error_at(doc, "parsl.executors[0].worker_ports") is None
        assert error_at(doc, "parsl.executors[0].worker_port") is None
    else:
        assert "worker_port " not in error.fix


COUNTS = [(kind, cls, arg) for kind, cls, arg in KEYWORDS
          if catalog.parameters(kind, cls)[arg].accepts & NUMBER]


@pytest.mark.parametrize("kind,cls,arg", COUNTS, ids=[":".join(k) for k in COUNTS])
def test_a_negative_count_is_refused_with_a_fix_that_holds(kind, cls, arg):
    """Every number a Parsl class takes is a count, a size, a time or a port: `retries = -1`
    (Parsl runs it as 0) was OK. One rule covers each numeric keyword of the catalog."""
    params = catalog.parameters(kind, cls)
    doc, where = document(kind, {"class": cls, **(_required(params) or {}), arg: -1})
    error = error_at(doc, f"{where}.{arg}")
    assert error is not None, f"{arg} = -1 passed"
    assert settles(kind, cls, arg, -1) == [str(error)]


def test_retries_minus_one_is_told_retries_zero():
    doc, _ = document("config", {"retries": -1})
    error = error_at(doc, "parsl.retries")
    assert error is not None and "cannot be negative" in error.problem
    assert error.fix == "write retries = 0"


@pytest.mark.parametrize("value", [5, 0, True, 2.5, ["simple"], {"key": 1}])
def test_a_strategy_of_another_kind_is_told_a_strategy_parsl_has(value):
    """`strategy = 5` was told `write strategy = "5"`, which the check then refused."""
    doc, _ = document("config", {"strategy": value})
    error = error_at(doc, "parsl.strategy")
    assert error is not None and error.fix.startswith('write strategy = "simple"'), error
    assert settles("config", "Config", "strategy", value) == [str(error)]
