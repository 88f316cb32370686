#!/usr/bin/env python3
"""Build q2pconf's conda package offline, from recipe/recipe.yaml, with py-rattler-build.

    python recipe/build_conda.py [--output-dir dist/conda]

Writes OUTPUT_DIR/noarch/q2pconf-<version>-<build>.conda and prints its path. The recipe has
no host requirements (its script copies the pure-Python tree), so nothing is solved or
downloaded. rattler-build runs with its default settings (no experimental features).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

RECIPE_DIR = Path(__file__).resolve().parent
ROOT = RECIPE_DIR.parent


def project_version(root: Path = ROOT) -> str:
    """[project].version from pyproject.toml: the single source of the version."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    with open(root / "pyproject.toml", "rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def build(output_dir: Path) -> Path:
    """Build the package into a scratch directory; copy the .conda to OUTPUT_DIR/noarch/."""
    from rattler_build import Stage0Recipe, ToolConfiguration

    recipe = Stage0Recipe.from_file(RECIPE_DIR / "recipe.yaml")
    with tempfile.TemporaryDirectory(prefix="q2pconf-conda-") as scratch:
        results = recipe.run_build(
            output_dir=scratch,
            channels=[],  # nothing to solve: no host or build requirements
            tool_config=ToolConfiguration(test_strategy="skip"),
        )
        packages = [Path(p) for result in results for p in result.packages]
        if len(packages) != 1:
            raise RuntimeError(f"expected one package, rattler-build made {packages}")
        version = project_version()
        if results[0].version != version:
            raise RuntimeError(f"built version {results[0].version}, pyproject.toml says {version}")
        target = output_dir / "noarch" / packages[0].name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(packages[0], target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist" / "conda",
                        help="channel directory to write noarch/<package>.conda into "
                             "(default: dist/conda)")
    args = parser.parse_args(argv)
    try:
        path = build(args.output_dir.resolve())
    except Exception as error:  # rattler-build's errors carry their own explanation
        print(f"build_conda: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: py-rattler's background threads can crash it at exit.
    os._exit(code)
