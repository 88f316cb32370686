"""Read what the installed Parsl accepts from its source files with `ast`, never importing it.

`q2pconf._catalog.accepted` keeps the answers in a cache; this module is only imported to (re)build
it.
"""
from __future__ import annotations

import ast
import os
from pathlib import Path

from q2pconf._catalog.kinds import ANY, NUMBER, Param, kind_of

_NAMED = {"int": frozenset({"int"}), "float": NUMBER, "str": frozenset({"str"}),
          "bool": frozenset({"bool"}), "list": frozenset({"list"}), "List": frozenset({"list"}),
          # a TOML array becomes a tuple where Parsl's typeguard wants one (port ranges)
          "tuple": frozenset({"list", "tuple"}), "Tuple": frozenset({"list", "tuple"}),
          "Sequence": frozenset({"list"}), "Iterable": frozenset({"list"}),
          "set": frozenset({"list"}), "Set": frozenset({"list"}),
          "dict": frozenset({"table"}), "Dict": frozenset({"table"}),
          "Mapping": frozenset({"table"})}
_UNIONS = {"Optional", "Union"}


class Reader:
    """Parsl's modules under `root`, each parsed once; `files` maps every file read to its
    (mtime_ns, size) taken before reading it, so an edit during a build is seen later."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, tuple[int, int]] = {}
        self._parsed: dict[str, ast.Module] = {}

    def module(self, dotted: str) -> ast.Module:
        if dotted not in self._parsed:
            base = self.root.joinpath(*dotted.split(".")[1:])
            path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
            info = os.stat(path)
            self.files[str(path)] = (info.st_mtime_ns, info.st_size)
            self._parsed[dotted] = ast.parse(path.read_text(encoding="utf-8"), str(path))
        return self._parsed[dotted]

    def definitions(self, dotted: str) -> dict[str, ast.ClassDef | ast.FunctionDef]:
        return {node.name: node for node in self.module(dotted).body
                if isinstance(node, (ast.ClassDef, ast.FunctionDef))}

    def imports(self, dotted: str) -> dict[str, str]:
        """Names a module imports from other Parsl modules: name -> source module."""
        found = {}
        for node in self.module(dotted).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("parsl"):
                for alias in node.names:
                    found[alias.asname or alias.name] = node.module
        return found

    def names(self, kind: str, namespace: str) -> dict[str, str]:
        """The names a config may use under `kind`, each with the module that defines it."""
        exported = self.exported(namespace)
        if exported is not None:
            imported = self.imports(namespace)
            defined = self.definitions(namespace)
            return {name: imported.get(name, namespace) for name in exported
                    if name in imported or name in defined}
        defined = self.definitions(namespace)
        if kind == "address":
            keep = [n for n, d in defined.items() if isinstance(d, ast.FunctionDef)
                    and n.startswith(("address_by_", "get_any_"))]
        elif kind == "memoizer":
            keep = [n for n in defined if n.endswith("Memoizer") and n != "Memoizer"]
        else:
            keep = [n for n, d in defined.items() if isinstance(d, ast.ClassDef)]
        return {name: namespace for name in keep if not name.startswith("_")}

    def exported(self, dotted: str) -> list[str] | None:
        for node in self.module(dotted).body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                return [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
        return None

    def signature(self, module: str, name: str) -> dict[str, Param]:
        """The keywords `name` in `module` takes; a class's inherited ones when it passes
        **kwargs on (or has no __init__ of its own)."""
        node = self.definitions(module).get(name)
        if node is None:
            source = self.imports(module).get(name)
            return {} if source is None else self.signature(source, name)
        if isinstance(node, ast.FunctionDef):
            return _params(node.args)
        init = next((n for n in node.body
                     if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is None or init.args.kwarg is not None:
            inherited: dict[str, Param] = {}
            for base in node.bases:
                if isinstance(base, ast.Name):
                    inherited.update(self.signature(module, base.id))
            if init is None:
                return inherited
            return {**inherited, **_params(init.args)}
        return _params(init.args)


def signature(root: Path, module: str, name: str) -> dict[str, Param]:
    """One signature, read now (what the cached catalog could not hold)."""
    return Reader(root).signature(module, name)


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
                               default="" if default is None else ast.unparse(default),
                               items=_item_kinds(arg.annotation))
    return found


def _item_kinds(node: ast.expr | None) -> frozenset[str] | None:
    """What `Sequence[str]`, `Tuple[int, int]` or `Optional[List[str]]` allow in each item
    (typeguard in Parsl checks items too); None when the annotation does not say."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _item_kinds(ast.parse(node.value, mode="eval").body)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = [node.left, node.right]
    elif isinstance(node, ast.Subscript) and _name(node.value) in _UNIONS:
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    elif isinstance(node, ast.Subscript) and "list" in _NAMED.get(_name(node.value), ()):
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        kinds = frozenset().union(*(_from_annotation(item)[0] for item in items
                                    if not (isinstance(item, ast.Constant)
                                            and item.value is Ellipsis)))
        return None if not kinds or "any" in kinds else kinds
    else:
        return None
    found = [kinds for kinds in map(_item_kinds, parts) if kinds is not None]
    return frozenset().union(*found) if found else None


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
