"""Read a config file and check every key against the installed Parsl, without importing it.

The result is a plan (`Plan`): the `[parsl]` options, one `ObjectSpec` per executor, and the flat
executor mapping, all validated, with old keys translated. Building it is `q2pconf.config._build`'s
job.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

from q2pconf.config import (_autoscale as autoscale, _fixes as examples, _legacy as legacy,
                            _limits as limits)
from q2pconf._catalog import accepted as catalog
from q2pconf._catalog.kinds import Param, kind_of
from q2pconf._base.errors import ConfigError, did_you_mean, no_such_executor
from q2pconf.config._plan import ObjectSpec, Plan, Report
from q2pconf._base.paths import CANNOT_CREATE, CANNOT_CREATE_FIX, cannot_create
from q2pconf.config._fixes import elsewhere
from typing import Any

MAPPING_KEY = "parsl.executor_mapping"
STRATEGIES = ("none", "simple", "htex_auto_scale")
PARSL_DEFAULT_FIRST = ("simple", "none", "htex_auto_scale")  # what a fix offers first
# A leading "_" is reserved for Parsl's and q2pconf's internal executors.
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
KIND_NAMES = {"int": "a whole number", "float": "a number", "str": "a string",
              "bool": "true or false", "list": "an array", "tuple": "an array", "table": "a table",
              "datetime": "a date-time", "date": "a date", "time": "a time"}
# [parsl] keys q2pconf sets itself, and why the file cannot.
MANAGED = {
    "dependency_resolver": "q2pconf always follows futures nested in lists, tuples, sets and dicts",
    "retry_handler": "it takes a Python function: pass a parsl.Config to ParallelConfig instead",
    "std_autopath": "it takes a Python function: pass a parsl.Config to ParallelConfig instead",
}


def plan(doc: dict[str, Any], file: str,
         vendored: Callable[[], dict[str, Any]] | None = None) -> Plan:
    """Check a parsed config document; `vendored()` supplies executors a mapping-only file lacks."""
    checker = _Checker(file)
    return checker.document(doc, vendored)


class _Checker(Report):
    """Checks one document, reporting through `Report` (q2pconf.config._plan)."""

    def document(self, doc: dict[str, Any],
                 vendored: Callable[[], dict[str, Any]] | None) -> Plan:
        if "parsl" not in doc:
            near = [k for k in doc if did_you_mean(k, ["parsl"]) == "did you mean parsl?"]
            fix = (f"rename [{near[0]}] to [parsl]" if near else
                   "put the settings under a [parsl] table (`q2pconf init` writes an example)")
            raise self.fail("parsl", "the file has no [parsl] table", fix)
        self.top_level(doc)
        section = doc["parsl"]
        if not isinstance(section, dict):
            raise self.fail("parsl", f"must be a table, not {describe(section)}",
                            "write [parsl] on a line of its own, with its keys below it")
        section = dict(section)
        raw_mapping = section.pop("executor_mapping", {})
        uses_vendored = "executors" not in section
        if uses_vendored:
            if vendored is None:
                raise self.fail("parsl.executors", "no executors are defined",
                                "add [[parsl.executors]] tables (`q2pconf init` writes some)")
            raw_executors = vendored()["parsl"]["executors"]
        else:
            raw_executors = section.pop("executors")
        executors = self.executors(raw_executors)
        options = self.options(section)
        limits.check_document(self, options, executors)
        autoscale.warn(self, options, executors)
        mapping = self.mapping(raw_mapping)
        checked = Plan(self.file, options, executors, mapping, tuple(self.warnings),
                       uses_vendored)
        if not checked.mapping_only:  # else checked against the executors in force, when met
            check_labels(mapping, _classes(checked), self.file)
        return checked

    def top_level(self, doc: dict[str, Any]) -> None:
        """Every top-level key besides [parsl] is named: one that belongs under [parsl] (a
        mapping or a Config key written above it) or a near-miss of "parsl" is an error, since
        what it says would be lost; any other is ignored, as QIIME 2 ignores it, with a warning."""
        config = catalog.parameters("config", "Config")
        for name in doc:
            if name == "parsl":
                continue
            if name == "executor_mapping" or name in config:
                header = "[parsl.executor_mapping]" if name == "executor_mapping" else "[parsl]"
                raise self.fail(name, "is outside [parsl], where nothing reads it",
                                f"rename [{name}] to {header}" if name == "executor_mapping" else
                                f"move {name} = ... below the {header} line")
            if did_you_mean(name, ["parsl"]) == "did you mean parsl?":
                raise self.fail(name, "is not read: the settings are read from [parsl] only",
                                f"move its keys into [parsl] and remove [{name}]")
            self.warn(name, "is not read by q2pconf or QIIME 2 (only [parsl] is): ignored; "
                      "remove it if it was meant for [parsl]")

    def executors(self, value: Any) -> dict[str, ObjectSpec]:
        key = "parsl.executors"
        if isinstance(value, dict):
            raise self.fail(key, "is a single table, but it must be an array of tables",
                            "write [[parsl.executors]] (double brackets) above each executor")
        if not isinstance(value, list) or not value:
            raise self.fail(key, "must be a non-empty array of executor tables",
                            "add at least one [[parsl.executors]] table with class and label")
        found: dict[str, ObjectSpec] = {}
        for index, table in enumerate(value):
            where = f"{key}[{index}]"
            obj = self.object("executors", table, where)
            label = obj.kwargs.get("label")
            if label is None:
                raise self.fail(where, "has no label",
                                'add label = "default" (or another name steps can be mapped to)')
            if not LABEL.match(label):
                raise self.fail(f"{where}.label", f"{label!r} is not a usable label",
                                "use letters, digits, '_', '-' and '.', "
                                "starting with a letter or digit")
            if label in found:
                raise self.fail(f"{where}.label", f"label {label!r} is used twice",
                                "give each executor its own label")
            found[label] = obj
        if "default" not in found:
            raise self.fail(key, f"no executor is labelled 'default' (labels: {', '.join(found)})",
                            "label one executor \"default\": unmapped steps run there")
        return found

    def object(self, kind: str, table: Any, key: str) -> ObjectSpec:
        """Check a table with a `class` key against that class's signature in Parsl."""
        namespace = catalog.NAMESPACES[kind]
        if not isinstance(table, dict):
            raise self.fail(key, f"must be a table with a class key, not "
                            f"{describe(table)}",
                            _object_fix(key, table))
        table = dict(table)
        cls = table.pop("class", None)
        if not isinstance(cls, str):
            raise self.fail(f"{key}.class", "is missing" if cls is None else "must be a string",
                            f"name a class from {namespace}: " + ", ".join(catalog.names(kind)))
        name = self.resolve(kind, cls, f"{key}.class")
        params = catalog.parameters(kind, name)
        kwargs = {}
        for arg, value in self.translate(kind, table, key, params).items():
            kwargs[arg] = self.argument(kind, name, params, arg, value, f"{key}.{arg}")
        missing = [p.name for p in params.values() if p.required and p.name not in kwargs]
        if missing:
            raise self.fail(key, f"{name} needs {', '.join(missing)}",
                            f"add {missing[0]} = ... to this table")
        limits.check(self, kwargs, key, params)
        return ObjectSpec(kind, name, kwargs, key)

    def resolve(self, kind: str, cls: str, key: str) -> str:
        namespace = catalog.NAMESPACES[kind]
        name = cls.removeprefix(namespace + ".")
        legacy.refuse_removed(self.file, name, key)
        allowed = catalog.names(kind)
        if name not in allowed:
            problem = (f"{cls!r} is not allowed: only names from {namespace} are"
                       if "." in name or name.startswith("_") else
                       f"{cls!r} is not in {namespace}")
            # a dotted path: suggest its last part, the name the file should use
            raise self.fail(key, problem, did_you_mean(name.rsplit(".", 1)[-1], allowed))
        return name

    def argument(self, kind: str, owner: str, params: dict[str, Param], arg: str,
                 value: Any, key: str) -> Any:
        if arg not in params:
            if arg in catalog.NAMESPACES:
                raise self.fail(key, f"{owner} takes no {arg}",
                                f"remove it; {_why_no(owner, arg)}")
            moved = elsewhere(kind, arg)
            if moved is not None:
                raise self.fail(key, f"{owner} has no setting {arg!r}: {moved[0]}", moved[1])
            names = [*params, "executor_mapping"] if kind == "config" else params
            raise self.fail(key, f"{owner} has no setting {arg!r}", did_you_mean(arg, names))
        if arg in catalog.NAMESPACES and isinstance(value, dict):
            return self.object(arg, value, key)
        if arg in catalog.NAMESPACES and "any" in params[arg].accepts:
            # the keyword takes a Parsl object, which only a table with a class can describe
            raise self.fail(key, f"must be a table naming a class from {catalog.NAMESPACES[arg]}, "
                            f"not {describe(value)}",
                            _object_fix(key, value))
        self.check_type(params[arg], value, key, params)
        if kind_of(value) == "list" and "tuple" in params[arg].accepts:
            return tuple(value)  # Parsl's typeguard refuses a list where it wants a tuple
        return value

    def check_type(self, param: Param, value: Any, key: str,
                   params: dict[str, Param]) -> None:
        """Refuse a value of a kind Parsl's annotation does not allow, with a fix that holds."""
        misfit = _misfit(param, value)
        if misfit is None:
            return
        where, problem = misfit
        if param.choices:
            raise self.fail(key, problem, _choice_fix(self.written(key), value, param.choices))
        example = examples.suggest(param, value, lambda v: self.fits(param, v, key, params),
                                   lambda v: _misfit(param, v) is None)
        name = self.written(key)
        fix = (f"write {name} = {example}" if example else
               f"remove {name}; it cannot be set from a TOML file")
        raise self.fail(key + where, problem, fix)

    def fits(self, param: Param, value: Any, key: str,
             params: dict[str, Param]) -> bool:
        """`value` passes the whole check of its own key (by kind, then its limits)."""
        if _misfit(param, value) is not None:
            return False
        probe = _Checker(self.file)  # its warnings, if any, are not this file's
        try:
            limits.check(probe, {param.name: value}, key.rpartition(".")[0], params)
        except ConfigError:
            return False
        return True

    def translate(self, kind: str, table: dict[str, Any], key: str,
                  params: dict[str, Param]) -> dict[str, Any]:
        """Old keys from earlier QIIME 2 / Parsl releases: rename, drop or refuse."""
        out, warnings, origins = legacy.translate(self.file, kind, table, key, params)
        self.warnings += warnings
        self.origins.update(origins)
        return out

    def options(self, section: dict[str, Any]) -> dict[str, Any]:
        params = catalog.parameters("config", "Config")
        section = self.translate("config", section, "parsl", params)
        options: dict[str, Any] = {}
        for arg, value in section.items():
            key = f"parsl.{arg}"
            if arg in MANAGED:
                raise self.fail(key, f"cannot be set in a config file: {MANAGED[arg]}",
                                f"remove {arg}")
            if arg == "strategy":
                options[arg] = self.strategy(value, key)
                continue
            options[arg] = self.argument("config", "Config", params, arg, value, key)
            if arg == "run_dir":
                options[arg] = self.run_dir(value, key)
        limits.check(self, options, "parsl", params)
        return options

    def run_dir(self, value: str, key: str) -> str:
        """`~` expanded; a relative path is taken from the config file's directory, so the
        file means the same directory wherever the pipeline starts."""
        if not value.strip() or "\0" in value:
            problem = "is empty" if not value.strip() else "contains a NUL byte"
            raise self.fail(key, f"{problem}: it must name a directory",
                            'write run_dir = "runs" (next to this file) or an absolute path')
        path = os.path.expanduser(value)
        base = _file_dir(self.file)
        if not os.path.isabs(path) and base is not None:
            path = os.path.join(base, path)
        blocked = _not_a_directory(path)
        if blocked is not None:
            raise self.fail(key, f"{blocked} is a file, not a directory: the run directory "
                            "could not be created", CANNOT_CREATE_FIX)
        denied = cannot_create(path)  # the run's own error, before anything runs
        if denied is not None:
            raise self.fail(key, CANNOT_CREATE.format(*denied), CANNOT_CREATE_FIX)
        return path

    def strategy(self, value: Any, key: str) -> str:
        """One of Parsl's strategy names (its annotation says only "a string")."""
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {describe(value)} ({value!r}): the "
                            "name of a Parsl strategy",
                            _choice_fix("strategy", str(value).lower(), PARSL_DEFAULT_FIRST))
        if value.lower() not in STRATEGIES:
            raise self.fail(key, f"{value!r} is not a Parsl strategy",
                            _choice_fix("strategy", value.lower(), STRATEGIES))
        return value.lower()  # QIIME 2 writes "None"; Parsl wants 'none'

    def mapping(self, raw: Any) -> dict[str, str]:
        """Flatten QIIME 2's `plugin = {action = label}` and plain `step = label` forms."""
        if not isinstance(raw, dict):
            raise self.fail(MAPPING_KEY, "must be a table",
                            f"write [{MAPPING_KEY}] with step = \"label\" lines")
        return flat_mapping(raw, self.label)

    def label(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be an executor label (a string), not {describe(value)}",
                            f'write it in quotes: {key.rpartition(".")[2]} = "default"')
        return value


def check_labels(mapping: dict[str, str], classes: dict[str, str], file: str,
                 base: str = MAPPING_KEY) -> None:
    """Every label of a flat mapping names an executor of the config in force (`classes`:
    label -> class name); else the unknown-label error naming the mapping's file and key."""
    for error in _unknown_labels(mapping, classes, file, base):
        raise error


def unmatched_labels(checked: Plan) -> tuple[str, ...]:
    """For `q2pconf check`: a warning per label of a mapping-only file that the executors
    shown as in force (the vendored ones) lack. The file stays valid (a ParallelConfig block
    may supply the label), but a pipeline run with the file alone would fail."""
    if not checked.mapping_only:
        return ()
    in_force = ", ".join(checked.executors)
    return tuple(f"{error.file}: {error.key}: the executors in force here ({in_force}) have no "
                 f"{error.problem.rpartition(' ')[2]}: a pipeline fails unless a "
                 f"ParallelConfig block supplies it; {error.fix}"
                 for error in _unknown_labels(checked.mapping, _classes(checked), checked.file))


def _unknown_labels(mapping: dict[str, str], classes: dict[str, str], file: str,
                    base: str = MAPPING_KEY) -> Iterator[ConfigError]:
    pools = [label for label, cls in classes.items() if cls == "ThreadPoolExecutor"]
    for name, label in mapping.items():
        if label not in classes:
            key = f"{base}.{name}" if base else name
            yield no_such_executor(file, key, label, classes, pools)


def _classes(checked: Plan) -> dict[str, str]:
    """Label -> class name of a plan's executors."""
    return {label: obj.cls for label, obj in checked.executors.items()}


def flat_mapping(raw: dict[str, Any], label: Callable[[Any, str], str]) -> dict[str, str]:
    """QIIME 2's `plugin = {action = label}` and plain `step = label` as one flat dict keyed
    "plugin.action" or "step"; `label(value, key_path)` checks each value."""
    base = MAPPING_KEY
    flat = {}
    for name, value in raw.items():
        if isinstance(value, dict) and value:  # an empty table maps nothing: refused as a label
            for action, item in value.items():
                flat[f"{name}.{action}"] = label(item, f"{base}.{name}.{action}")
        else:
            flat[name] = label(value, f"{base}.{name}")
    return flat


def describe(value: object) -> str:
    """What a TOML value is, in words: "a whole number", "a table", "a date-time"..."""
    return KIND_NAMES.get(kind_of(value), f"a {type(value).__name__}")


def _not_a_directory(path: str) -> str | None:
    """The nearest existing part of `path` when it is not a directory (nothing can be made
    below it), else None."""
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return None if os.path.isdir(path) else path


def _file_dir(file: str) -> str | None:
    """The absolute directory of the config file, or None when `file` names no file
    ("<dict>", "<built-in default>": a relative run_dir then stays relative to the cwd)."""
    if file.startswith("<") and file.endswith(">"):
        return None
    return os.path.dirname(os.path.abspath(file))


def _listing(choices: tuple[object, ...]) -> str:
    return ", ".join(repr(c) for c in choices)


def _choice_fix(name: str, value: Any, choices: tuple[Any, ...]) -> str:
    """'write NAME = "closest"' (a TOML value, quoted), or the first choice and the others."""
    import difflib  # only when a message needs it

    words = {str(choice): choice for choice in choices}
    close = difflib.get_close_matches(str(value), list(words), n=1, cutoff=0.6)
    if close:
        return f"write {name} = {examples.toml_value(words[close[0]])}"
    fix = f"write {name} = {examples.toml_value(choices[0])}"
    others = ", ".join(examples.toml_value(choice) for choice in choices[1:])
    return f"{fix} (or {others})" if others else fix


def _why_no(owner: str, arg: str) -> str:
    if owner == "ThreadPoolExecutor" and arg == "provider":
        return "a ThreadPoolExecutor runs in the pipeline's own process; " \
               "use HighThroughputExecutor to run workers through a provider"
    if owner == "Config" and arg == "memoizer":  # Parsl 2024.12, the oldest q2pconf supports
        return ("this Parsl predates memoizer objects: set checkpoint_mode and checkpoint_files "
                "under [parsl] (or a BasicMemoizer table), or upgrade Parsl")
    return f"{owner} does not use one"


def _misfit(param: Param, value: Any) -> tuple[str, str] | None:
    """None when Parsl's annotation allows `value`, else (where under the key, the problem):
    "[2]" for an array's third item, "" for the value itself."""
    kind = kind_of(value)
    if param.choices:
        ok = value in param.choices
        return None if ok else ("", f"{value!r} is not one of {_listing(param.choices)}")
    if kind == "list" and param.items is not None and "list" in param.accepts:
        for index, item in enumerate(value):
            if not _allowed(kind_of(item), param.items):
                wanted = " or ".join(sorted(KIND_NAMES[k] for k in param.items))
                return f"[{index}]", f"must be {wanted}, not {describe(item)} ({item!r})"
        return None
    if "any" in param.accepts or _allowed(kind, param.accepts):
        return None
    wanted = " or ".join(sorted({KIND_NAMES[k] for k in param.accepts})) or "not settable"
    return "", f"must be {wanted}, not {describe(value)} ({value!r})"


def _allowed(kind: str, kinds: frozenset[str]) -> bool:
    return kind in kinds or kind == "int" and "float" in kinds


def _object_fix(key: str, value: Any) -> str:
    """How to write `key` (e.g. parsl.executors[1].provider) as a TOML table."""
    header = re.sub(r"\[\d+\]", "", key)
    if key.endswith("]"):
        return f'write [[{header}]] above each one, followed by class = "..." and its other keys'
    name = value if isinstance(value, str) and LABEL.match(value) else "..."
    return f'write a [{header}] table with class = "{name}" below it'
