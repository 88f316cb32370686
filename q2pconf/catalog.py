"""What the installed Parsl accepts, read from its source with `ast`, never by importing it.

`import parsl` costs ~0.3 s; checking a config file must not pay that. The classes a config may
name, and the keywords and types their constructors take, are read from the installed Parsl's
source files, so the check always matches the Parsl that will run the config.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

# Config keys whose tables become objects, and the only namespace each class may come from.
NAMESPACES = {
    "executors": "parsl.executors",
    "provider": "parsl.providers",
    "launcher": "parsl.launchers",
    "address": "parsl.addresses",
    "memoizer": "parsl.dataflow.memoization",
    "monitoring": "parsl.monitoring",
    "config": "parsl.config",
}

ANY = frozenset({"any"})
NUMBER = frozenset({"int", "float"})
_NAMED = {"int": frozenset({"int"}), "float": NUMBER, "str": frozenset({"str"}),
          "bool": frozenset({"bool"}), "list": frozenset({"list"}), "List": frozenset({"list"}),
          "tuple": frozenset({"list"}), "Tuple": frozenset({"list"}),
          "Sequence": frozenset({"list"}), "Iterable": frozenset({"list"}),
          "set": frozenset({"list"}), "Set": frozenset({"list"}),
          "dict": frozenset({"table"}), "Dict": frozenset({"table"}),
          "Mapping": frozenset({"table"})}
_UNIONS = {"Optional", "Union"}


@dataclass(frozen=True)
class Param:
    """One constructor keyword: which TOML kinds it takes, and its fixed choices if any."""

    name: str
    accepts: frozenset[str]
    choices: tuple[object, ...] = ()
    required: bool = False
    default: str = ""


class NotInParsl(LookupError):
    """The name is not a class (or function) that namespace exports."""


def parsl_root() -> Path:
    spec = importlib.util.find_spec("parsl")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("Parsl is not installed: pip install parsl")
    return Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=None)
def _module(dotted: str) -> ast.Module:
    parts = dotted.split(".")[1:]
    base = parsl_root().joinpath(*parts)
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _definitions(dotted: str) -> dict[str, ast.ClassDef | ast.FunctionDef]:
    return {node.name: node for node in _module(dotted).body
            if isinstance(node, (ast.ClassDef, ast.FunctionDef))}


def _imports(dotted: str) -> dict[str, str]:
    """Names a module imports from other Parsl modules: name -> source module."""
    found = {}
    for node in _module(dotted).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("parsl"):
            for alias in node.names:
                found[alias.asname or alias.name] = node.module
    return found


@functools.lru_cache(maxsize=None)
def names(kind: str) -> dict[str, str]:
    """The names a config may use under `kind`, each with the module that defines it."""
    namespace = NAMESPACES[kind]
    exported = _exported(namespace)
    if exported is not None:
        imported = _imports(namespace)
        defined = _definitions(namespace)
        return {name: imported.get(name, namespace) for name in exported
                if name in imported or name in defined}
    defined = _definitions(namespace)
    if kind == "address":
        keep = [n for n, d in defined.items()
                if isinstance(d, ast.FunctionDef) and n.startswith(("address_by_", "get_any_"))]
    elif kind == "memoizer":
        keep = [n for n in defined if n.endswith("Memoizer") and n != "Memoizer"]
    else:
        keep = [n for n, d in defined.items() if isinstance(d, ast.ClassDef)]
    return {name: namespace for name in keep if not name.startswith("_")}


def _exported(dotted: str) -> list[str] | None:
    for node in _module(dotted).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
    return None


@functools.lru_cache(maxsize=None)
def parameters(kind: str, name: str) -> dict[str, Param]:
    """The keywords `name` (a class or function under `kind`) takes, from its signature."""
    module = names(kind).get(name)
    if module is None:
        raise NotInParsl(name)
    return _signature(module, name)


def _signature(module: str, name: str) -> dict[str, Param]:
    node = _definitions(module).get(name)
    if node is None:
        source = _imports(module).get(name)
        if source is None:
            return {}
        return _signature(source, name)
    if isinstance(node, ast.FunctionDef):
        return _params(node.args)
    init = next((n for n in node.body
                 if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None or init.args.kwarg is not None:
        inherited: dict[str, Param] = {}
        for base in node.bases:
            if isinstance(base, ast.Name):
                inherited.update(_signature(module, base.id))
        if init is None:
            return inherited
        return {**inherited, **_params(init.args)}
    return _params(init.args)


def _params(args: ast.arguments) -> dict[str, Param]:
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    pairs = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
    found = {}
    for arg, default in pairs:
        if arg.arg in ("self", "cls"):
            continue
        accepts, choices = _accepts(arg.annotation, default)
        found[arg.arg] = Param(arg.arg, accepts, choices, required=default is None,
                               default="" if default is None else ast.unparse(default))
    return found


def _accepts(annotation: ast.expr | None, default: ast.expr | None) -> tuple[frozenset[str], tuple]:
    if annotation is None:
        return _from_default(default), ()
    return _from_annotation(annotation)


def _from_default(default: ast.expr | None) -> frozenset[str]:
    if isinstance(default, ast.Constant):
        value = default.value
        if isinstance(value, bool):
            return frozenset({"bool"})
        if isinstance(value, (int, float)):
            return NUMBER  # unannotated numbers in Parsl are often floats in disguise
        if isinstance(value, str):
            return frozenset({"str"})
    if isinstance(default, (ast.List, ast.Tuple)):
        return frozenset({"list"})
    return ANY


def _from_annotation(node: ast.expr) -> tuple[frozenset[str], tuple]:
    if isinstance(node, ast.Constant):
        if node.value is None:
            return frozenset(), ()
        if isinstance(node.value, str):  # a string annotation
            return _from_annotation(ast.parse(node.value, mode="eval").body)
        return ANY, ()
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([node.left, node.right])
    if isinstance(node, ast.Subscript):
        head = _name(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if head in _UNIONS:
            return _union(items)
        if head == "Literal":
            values = tuple(ast.literal_eval(item) for item in items)
            kinds = frozenset(kind_of(v) for v in values if v is not None)
            return kinds, values
        return _NAMED.get(head, ANY), ()
    return _NAMED.get(_name(node), ANY), ()


def _union(items: list[ast.expr]) -> tuple[frozenset[str], tuple]:
    kinds: frozenset[str] = frozenset()
    choices: tuple = ()
    for item in items:
        more, values = _from_annotation(item)
        kinds |= more
        choices += values
    if "any" in kinds:
        return ANY, ()
    if choices and kinds - {kind_of(c) for c in choices}:
        choices = ()  # a Literal next to a free type: the free type wins
    return kinds, choices


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def kind_of(value: object) -> str:
    """The TOML kind of a parsed value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "table"
    import datetime  # TOML's dates and times

    for kind in ("datetime", "date", "time"):  # datetime before date: it is a date too
        if isinstance(value, getattr(datetime, kind)):
            return kind
    return "any"
