"""Check q2pconf's layers: each module imports only its own layer and the layers below it,
and no modules import each other in a circle.

Every import counts: at the top of a module, inside a function, and for type hints only
(a type that a lower module needs belongs in a lower module). The layer order is written down
here and nowhere else; docs/explanation/architecture.md explains it.

    python tools/check_layers.py          # prints each broken rule; exit status 1 if any
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "q2pconf"

# From the top down. A module belongs to the first entry its dotted name starts with
# (`q2pconf` alone: the package's own __init__, __main__, cli and _qiime2).
LAYERS = (
    "q2pconf",             # the public names, the command line, QIIME 2's names
    "q2pconf.pipeline",    # @step, @parallel_pipeline, sessions, transport, resume
    "q2pconf._observe",    # measurement, trace, history, progress, runs on disk, report
    "q2pconf._supervise",  # signals and shutdown, abandoned runs, the watchdogs
    "q2pconf.config",      # lookup, templates, checking, building the parsl.Config
    "q2pconf._parsl",      # every hook into Parsl: guard, pool, typeguard cache, pickling
    "q2pconf._catalog",    # what the installed Parsl accepts, read from its source
    "q2pconf._base",       # errors, paths, TOML, CPUs, notices, run directory, futures
)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its __init__)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def layer(module: str) -> int:
    """The index in LAYERS of `module`'s layer (0 is the top)."""
    return max((i for i, name in enumerate(LAYERS)
                if module == name or module.startswith(name + ".")),
               key=lambda i: len(LAYERS[i]))


def imports(module: str, path: Path, known: dict[str, Path]) -> dict[str, int]:
    """The package's modules that `module` imports anywhere in it, each with a line."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            base = node.module
            names = [f"{base}.{alias.name}" for alias in node.names]
            targets = [name for name in names if name in known] or [base]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            if target in known and target != module:
                found.setdefault(target, node.lineno)
    return found


def upward(graph: dict[str, dict[str, int]], known: dict[str, Path]) -> list[str]:
    """Each import of a module from a higher layer, said with its file and line."""
    return [f"{known[module].parent.name}/{known[module].name}:{line}: {module} "
            f"({LAYERS[layer(module)]}) imports {target} ({LAYERS[layer(target)]}), a higher layer"
            for module, targets in graph.items() for target, line in targets.items()
            if layer(target) < layer(module)]


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The groups of more than one module that reach each other through imports."""
    reach = {}
    for start in graph:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reach[start] = seen
    groups = {frozenset({m} | {n for n in reach[m] if m in reach[n]}) for m in graph}
    return sorted(sorted(group) for group in groups if len(group) > 1)


def problems(package: Path = PACKAGE) -> list[str]:
    """Every broken layer rule of `package` (q2pconf, or a copy of it), one line each."""
    known = modules(package)
    graph = {module: imports(module, path, known) for module, path in known.items()}
    return upward(graph, known) + [f"import circle: {' -> '.join(group)}"
                                   for group in circles(graph)]


def main() -> int:
    found = problems()
    for problem in found:
        print(problem)
    if found:
        print(f"{len(found)} broken layer rule(s); the layers are listed in {__file__}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
