"""Finding and checking a config never imports Parsl; building one does."""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from configs import config, htex, local, slurm, threads
from conftest import LOOKUP_VARS

CODE = """
import json, sys
import q2pconf
settings = q2pconf.load()
checked = q2pconf.check(sys.argv[1])
before = sorted(m for m in sys.modules if m == "parsl" or m.startswith("parsl."))
if sys.argv[2] == "build":
    checked.parsl_config()
after = sorted(m for m in sys.modules if m == "parsl" or m.startswith("parsl."))
print(json.dumps({"source": settings.source, "labels": list(checked.labels),
                  "before": before, "after": after}))
"""
LEGACY = config(threads("default", max_threads=2),
                htex("htex", max_workers=2, provider=slurm(partition="short",
                                                           launcher="SrunLauncher")),
                strategy="None")


def run(tmp_path: Path, mode: str, conda: bool) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in LOOKUP_VARS}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               XDG_CONFIG_DIRS=str(tmp_path / "site"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    if conda:
        (tmp_path / "env").mkdir()
        env["CONDA_PREFIX"] = str(tmp_path / "env")
    path = tmp_path / "legacy.toml"
    path.write_text(LEGACY)
    result = subprocess.run([sys.executable, "-c", CODE, str(path), mode], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("conda", [False, True], ids=["in-memory", "seeded-prefix"])
def test_load_and_check_do_not_import_parsl(tmp_path, conda):
    data = run(tmp_path, "check", conda)
    assert data["source"] == ("vendored" if conda else "in-memory")
    assert data["labels"] == ["default", "htex"]
    assert data["before"] == [] and data["after"] == []


def test_building_imports_parsl(tmp_path):
    data = run(tmp_path, "build", conda=False)
    assert data["before"] == []
    assert "parsl" in data["after"] and "parsl.config" in data["after"]
    assert "parsl.providers" in data["after"]


def loaded_by(statement: str) -> set[str]:
    """The modules of Parsl and q2pconf a fresh interpreter holds after `statement`."""
    code = (f"import sys; {statement}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('parsl', 'q2pconf')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return set(ast.literal_eval(result.stdout))


def test_plain_import_is_cheap():
    assert loaded_by("import q2pconf") == {"q2pconf"}


def test_public_check_is_the_function_after_load():
    """No submodule shares a public function's name (it would replace it once imported)."""
    code = "import q2pconf; q2pconf.from_dict({'parsl': {}}); print(callable(q2pconf.check))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == "True", result.stderr


# -- what the lookup commands import ---------------------------------------------------------

# Modules that `q2pconf info --json`, `q2pconf check` and `import q2pconf; q2pconf.load()` must
# not import (with the catalog of Parsl's signatures cached), and why: each was on this path once
# (or is a usual suspect), and what it costs is measured by benchmarks/README.md's import_cost
# rows (info --json may add ~0.15 x `import parsl` to the interpreter's start; ~2.5 ms = 0.006 x).
NOT_ON_THE_LOOKUP = {
    "parsl": "~0.4 s: the check reads Parsl's signatures from the catalog, never imports it",
    "q2pconf._catalog.source": "reads Parsl's source: only when the catalog is (re)built",
    "ast": "~1 ms: only to build the catalog, or to read a default that is not a whole number",
    "platformdirs": "~5 ms with tempfile, shutil, random: q2pconf._base.paths works out XDG paths",
    "tempfile": "brought by platformdirs; the catalog's writer needs it only for a rebuild",
    "inspect": "~3 ms (with dataclasses): the lookup's records are typing.NamedTuple",
    "logging": "~2 ms: imported by errors.warn, only when there is something to warn about",
    "difflib": "only for a did-you-mean in an error message",
    "subprocess": "nothing on the lookup runs a program",
}
NOT_WITHOUT_A_FILE = {**NOT_ON_THE_LOOKUP,
                      "tomllib": "~4 ms: the in-memory default is a dict, not TOML text",
                      "json": "only `info --json` prints JSON; the catalog cache is marshal",
                      "argparse": "only the command line parses arguments",
                      "shutil": "with bz2, lzma and zlib: brought by argparse's help formatter"}
IMPORTED = """
import sys
before = set(sys.modules)
if sys.argv[1] == "load":
    import q2pconf
    assert q2pconf.load().source == "in-memory"
else:
    from q2pconf.cli import main
    assert main(sys.argv[1:]) == 0
sys.stderr.write(repr(sorted(set(sys.modules) - before)))
"""


def imported(tmp_path: Path, *argv: str) -> set[str]:
    """The modules a child imports to run `argv` (after the interpreter's own start)."""
    env = {k: v for k, v in os.environ.items() if k not in LOOKUP_VARS}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               XDG_CONFIG_DIRS=str(tmp_path / "site"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", IMPORTED, *argv], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(ast.literal_eval(done.stderr))


def test_the_lookup_commands_import_nothing_heavy(tmp_path):
    path = tmp_path / "htex.toml"
    path.write_text(config(threads("default", max_threads=1),
                           htex("htex", max_workers_per_node=2,
                                provider=local(init_blocks=1, max_blocks=1)),
                           strategy="none"))
    info = ("info", "--json", "--parallel-config", str(path))
    assert "ast" in imported(tmp_path, *info)  # the first run builds the catalog cache
    runs = {"info --json": imported(tmp_path, *info),
            "check": imported(tmp_path, "check", str(path)),
            "load": imported(tmp_path, "load")}
    assert "q2pconf._catalog.accepted" in runs["info --json"]  # the check did run
    for name, modules in runs.items():
        deny = NOT_WITHOUT_A_FILE if name == "load" else NOT_ON_THE_LOOKUP
        named = {module if module in deny else module.split(".")[0] for module in modules}
        heavy = {module: deny[module] for module in sorted(named) if module in deny}
        assert heavy == {}, f"{name} imports {heavy}"


# The validator: checking a config file, and reading Parsl's signatures for it.
VALIDATOR = ("q2pconf.config._validate", "q2pconf.config._limits", "q2pconf.config._local_limits",
             "q2pconf.config._autoscale",
             "q2pconf.config._fixes", "q2pconf.config._legacy", "q2pconf._catalog.accepted",
             "q2pconf._catalog.source")


def test_importing_the_decorators_does_not_load_the_validator():
    loaded = loaded_by("from q2pconf import parallel_pipeline, step")
    assert "q2pconf.pipeline" in loaded  # the import did happen
    assert sorted(loaded & set(VALIDATOR)) == []
    assert not any(name.split(".")[0] == "parsl" for name in loaded)


# -- layers ------------------------------------------------------------------------------------

def _layer_check():
    path = Path(__file__).parents[2] / "tools" / "check_layers.py"
    spec = importlib.util.spec_from_file_location("check_layers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_layers_hold() -> None:
    """Each module imports only its own layer and lower ones, and no modules form a circle
    (make lint runs the same check)."""
    assert _layer_check().problems() == []


def test_the_layer_check_sees_an_upward_import_and_a_circle(tmp_path) -> None:
    package = tmp_path / "q2pconf"
    shutil.copytree(Path(__file__).parents[2] / "q2pconf", package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(package / "_base" / "errors.py", "a", encoding="utf-8") as errors:
        errors.write("\n\ndef _late():\n    from q2pconf.pipeline import _session  # noqa\n")
    with open(package / "_base" / "paths.py", "a", encoding="utf-8") as paths:
        paths.write("\n\nif False:\n    from q2pconf._base import errors  # noqa\n")
    found = _layer_check().problems(package)
    assert any("q2pconf._base.errors (q2pconf._base) imports q2pconf.pipeline._session" in line
               for line in found), found
    assert any(line.startswith("import circle: ") and "q2pconf._base.paths" in line
               for line in found), found
