"""Globals a script sets under `if __name__ == "__main__":`, which an HTEX worker never sees.

A worker loads the running script as a module under another name (q2pconf.pipeline._transport), so
the script's main block does not run there: a module global it rebinds keeps its module-level value
on the worker, while thread steps and `run.serial` see the new one. The same pipeline would then
compute another result on the HTEX, silently; so would a global of another module the main block
sets (`steps.SCALE = 10`): the worker imports that module afresh. Found here, from the script's
source: names the main block binds (assignments, loops, `with ... as`, definitions; not imports: a
module is the same module on the worker, or missing there, which fails loudly), `module.name` it
assigns, and names declared `global` in the script's functions that the main block calls. A step
sent to a worker whose code reads one of them, itself or through the functions (and steps) of its
module it calls, is warned about once, naming the step, the global and the fix.
"""
from __future__ import annotations

import ast
import threading
from types import CodeType, FunctionType
from typing import Any

_SET_IN_MAIN: dict[str, frozenset[str]] = {}  # script path -> what its main block sets
_CHECKED: set[tuple[str, str]] = set()  # (script path, step) already looked at
_LOCK = threading.Lock()
GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})  # a global read (not `obj.name`)
ATTRIBUTE_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})  # `module.name` (LOAD_METHOD < 3.12)
WARNING = ("step {step} runs on an HTEX worker, where the `if __name__ == \"__main__\":` "
           "block of {script} does not run, so there it sees the module-level value of "
           "{names}, not the one that block sets: the result can differ from a thread step "
           "or run.serial. Fix: pass {them} to the step as an argument, or set {them} at "
           "module level")


def check(path: str, qualname: str, func: Any, main: Any = None) -> None:
    """Warn once if step `qualname`, sent to a worker, reads a global that the main block of
    script `path` sets: one of the script's own (a step of the script: `main` is None), or one
    of the step's module through a module of `main`'s (`steps.SCALE = 10`)."""
    with _LOCK:
        if (path, qualname) in _CHECKED:
            return
        _CHECKED.add((path, qualname))
        names = _SET_IN_MAIN.get(path)
        if names is None:
            names = _SET_IN_MAIN[path] = set_in_main(path)
    read = read_of(names, func, main) if names else []
    if read:
        from q2pconf._base.errors import warn

        shown = ", ".join(read)
        warn(WARNING.format(step=qualname, script=path, names=shown,
                            them="it" if len(read) == 1 else "them"))


def read_of(names: frozenset[str], func: Any, main: Any) -> list[str]:
    """Which of `names` (plain, or `module.name` as the main block wrote them) `func` reads."""
    loaded, attributes = reads(func)
    found = []
    for name in sorted(names):
        alias, _, attribute = name.rpartition(".")
        if main is None:
            if name in loaded or (alias in loaded and attribute in attributes):
                found.append(name)
        elif alias and attribute in loaded and \
                getattr(getattr(main, alias, None), "__name__", None) == func.__module__:
            found.append(name)
    return found


def set_in_main(path: str) -> frozenset[str]:
    """Module globals the main block of the script at `path` binds (none if unreadable)."""
    try:
        with open(path, "rb") as file:
            tree = ast.parse(file.read(), path)
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    names: set[str] = set()
    for block in (s for s in tree.body if _is_main_guard(s)):
        assert isinstance(block, ast.If)
        for statement in block.body:
            names |= _bound(statement)
        names |= _declared_global(tree, _called(block))
    return frozenset(names)


def _is_main_guard(statement: ast.stmt) -> bool:
    """`if __name__ == "__main__":` (either side of the ==)."""
    if not isinstance(statement, ast.If) or not isinstance(statement.test, ast.Compare):
        return False
    test = statement.test
    sides = [test.left, *test.comparators]
    if len(sides) != 2 or not isinstance(test.ops[0], ast.Eq):
        return False
    return ({_text(side) for side in sides} == {"__name__", "'__main__'"})


def _text(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return repr(node.value)
    return ""


def _bound(statement: ast.stmt) -> set[str]:
    """Names a statement of the main block binds at module level (not inside the functions
    or classes it defines)."""
    names: set[str] = set()
    todo: list[ast.AST] = [statement]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue  # its body binds names of its own
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                             ast.GeneratorExp)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)) \
                and isinstance(node.value, ast.Name):
            names.add(f"{node.value.id}.{node.attr}")  # a module's global, perhaps
        todo.extend(ast.iter_child_nodes(node))
    return names


def _called(block: ast.If) -> set[str]:
    """Names the main block calls directly (`setup()`)."""
    return {node.func.id for node in ast.walk(block)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}


def _declared_global(tree: ast.Module, functions: set[str]) -> set[str]:
    """Names declared `global` in the script's module-level functions named in `functions`."""
    names: set[str] = set()
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                and statement.name in functions:
            for node in ast.walk(statement):
                if isinstance(node, ast.Global):
                    names.update(node.names)
    return names


def reads(func: Any) -> tuple[set[str], set[str]]:
    """The global names `func` loads, and the attribute names it reads, itself and through the
    functions (and steps) of its own module it calls."""
    func = getattr(func, "__func__", func)
    if not isinstance(func, FunctionType):
        return set(), set()
    namespace = func.__globals__
    loaded: set[str] = set()
    attributes: set[str] = set()
    todo: list[CodeType] = [func.__code__]
    seen: set[CodeType] = set()
    while todo:
        code = todo.pop()
        if code in seen:
            continue
        seen.add(code)
        for name in _names(code, GLOBAL_OPS, attributes) - loaded:
            loaded.add(name)
            inner = _function_of(namespace.get(name))
            if inner is not None and inner.__globals__ is namespace:
                todo.append(inner.__code__)
    return loaded, attributes


def _names(code: CodeType, ops: frozenset[str], attributes: set[str]) -> set[str]:
    """The names instructions `ops` of `code` (and code nested in it) use; the attribute
    names it reads are added to `attributes`."""
    import dis

    found: set[str] = set()
    for instruction in dis.get_instructions(code):
        if instruction.opname in ops:
            found.add(instruction.argval)
        elif instruction.opname in ATTRIBUTE_OPS:
            attributes.add(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            found |= _names(const, ops, attributes)
    return found


def _function_of(value: Any) -> FunctionType | None:
    """The plain function behind `value`: itself, or what a step or pipeline wraps."""
    for candidate in (value, getattr(getattr(value, "runner", None), "func", None),
                      getattr(value, "func", None)):
        if isinstance(candidate, FunctionType):
            return candidate
    return None
