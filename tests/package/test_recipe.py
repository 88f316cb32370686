"""The conda recipes (meta.yaml for conda-build, recipe.yaml for rattler-build) agree with each
other and with pyproject.toml, the single source of the name, version and dependencies."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from packaging.requirements import Requirement

from condatools import ROOT, pyproject

RECIPE_DIR = ROOT / "recipe"
ACTIVATE = ("q2pconf.sh", "q2pconf.fish", "q2pconf.csh")
PROJECT = pyproject()["project"]


def load_file_data(filename: str, fileformat: str | None = None, *, from_recipe_dir: bool = False,
                   recipe_dir: str | None = None, **_: Any) -> dict[str, Any]:
    """conda-build's load_file_data: a data file relative to the recipe or the source tree."""
    from configs import tomllib

    base = Path(recipe_dir or RECIPE_DIR) if from_recipe_dir else ROOT  # source: path: ..
    path = base / filename
    kind = fileformat or path.suffix.lstrip(".")
    text = path.read_text()
    return tomllib.loads(text) if kind == "toml" else yaml.safe_load(text)


def render_meta() -> dict[str, Any]:
    """meta.yaml through Jinja with the names conda-build provides, then YAML."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    template = env.from_string((RECIPE_DIR / "meta.yaml").read_text())
    text = template.render(load_file_data=load_file_data, environ=os.environ, os=os,
                           PYTHON="$PYTHON", PREFIX="$PREFIX")
    return yaml.safe_load(text)


def render_v1() -> dict[str, Any]:
    """recipe.yaml rendered by rattler-build itself, with its default settings (no
    experimental features: conda-forge's tooling enables none)."""
    from rattler_build import Stage0Recipe

    recipe = Stage0Recipe.from_file(RECIPE_DIR / "recipe.yaml")
    [variant] = recipe.render()
    return variant.recipe.to_dict()


@pytest.fixture(scope="module")
def meta() -> dict[str, Any]:
    return render_meta()


@pytest.fixture(scope="module")
def v1() -> dict[str, Any]:
    return render_v1()


def conda_specs() -> list[str]:
    """pyproject's dependencies as conda specs: markers dropped (see the recipes' comments)."""
    specs = [f"python >={PROJECT['requires-python'].removeprefix('>=')}"]
    for line in PROJECT["dependencies"]:
        requirement = Requirement(line)
        bounds = ",".join(sorted(str(s) for s in requirement.specifier))
        specs.append(f"{requirement.name.lower()} {bounds}".strip())
    return specs


def entry_points() -> list[str]:
    return [f"{name} = {target}" for name, target in PROJECT["scripts"].items()]


def test_pyproject_is_what_the_recipes_assume():
    assert PROJECT["requires-python"].startswith(">=")
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", PROJECT["version"])
    assert entry_points() == ["q2pconf = q2pconf.cli:main"]


# -- meta.yaml (conda-build) -----------------------------------------------------------------

def test_meta_package_matches_pyproject(meta):
    assert meta["package"] == {"name": PROJECT["name"], "version": PROJECT["version"]}
    assert meta["about"]["summary"] == PROJECT["description"]
    assert meta["about"]["license"] == PROJECT["license"]


def test_meta_is_noarch_python_with_the_entry_point(meta):
    assert meta["build"]["noarch"] == "python"
    assert meta["build"]["entry_points"] == entry_points()


def test_meta_run_requirements_match_pyproject(meta):
    assert meta["requirements"]["run"] == conda_specs()
    floor = PROJECT["requires-python"].removeprefix(">=")
    assert f"python {floor}" in meta["requirements"]["host"]
    assert f"python {floor}" in meta["test"]["requires"]


def test_meta_installs_the_activation_scripts(meta):
    script = "\n".join(meta["build"]["script"])
    for name in ACTIVATE:
        assert f"etc/conda/activate.d/{name}" in script
        assert (ROOT / "etc" / "conda" / "activate.d" / name).is_file()
    assert "$PREFIX/etc/conda/activate.d/" in script
    assert not (ROOT / "etc" / "conda" / "deactivate.d").exists()
    assert "no deactivate.d script" in (RECIPE_DIR / "meta.yaml").read_text()


def test_meta_tests_seed_then_check(meta):
    test = meta["test"]
    assert test["imports"] == ["q2pconf"]
    commands = test["commands"]
    seed = commands.index("q2pconf seed --prefix $PREFIX")
    assert commands.index("q2pconf check $PREFIX/etc/qiime2_config.toml") > seed


def test_link_scripts_sit_beside_meta_yaml_under_conda_build_names():
    # conda-build packages recipe/<action>.sh as bin/.<name>-<action>.sh
    for action in ("post-link", "pre-unlink"):
        script = RECIPE_DIR / f"{action}.sh"
        assert script.read_text().startswith("#!/bin/bash\n")


# -- recipe.yaml (rattler-build) -------------------------------------------------------------

def test_v1_recipe_context_repeats_pyproject_and_uses_no_experimental_feature():
    text = (RECIPE_DIR / "recipe.yaml").read_text()
    raw = yaml.safe_load(text)
    assert raw["context"] == {"version": PROJECT["version"],
                              "python_min": PROJECT["requires-python"].removeprefix(">=")}
    assert raw["package"] == {"name": "q2pconf", "version": "${{ version }}"}
    assert "load_from_file" not in text  # experimental in rattler-build; render_v1 uses none


def test_v1_package_matches_pyproject(v1):
    assert v1["package"] == {"name": PROJECT["name"], "version": PROJECT["version"]}
    assert v1["about"]["summary"] == PROJECT["description"]
    assert v1["about"]["license"] == PROJECT["license"]


def test_v1_is_noarch_python_with_the_entry_point(v1):
    assert v1["build"]["noarch"] == "python"
    assert v1["build"]["python"]["entry_points"] == entry_points()
    assert "host" not in v1["requirements"] and "build" not in v1["requirements"]


def test_v1_run_requirements_match_pyproject_and_meta(v1, meta):
    assert v1["requirements"]["run"] == conda_specs() == meta["requirements"]["run"]


def test_v1_script_installs_link_and_activation_scripts(v1):
    script = v1["build"]["script"]
    assert 'cp "$RECIPE_DIR/post-link.sh" "$PREFIX/bin/.q2pconf-post-link.sh"' in script
    assert 'cp "$RECIPE_DIR/pre-unlink.sh" "$PREFIX/bin/.q2pconf-pre-unlink.sh"' in script
    for name in ACTIVATE:
        assert f"etc/conda/activate.d/{name}" in script
    assert '"$PREFIX/etc/conda/activate.d/"' in script


def test_v1_tests_mirror_meta(v1, meta):
    tests = v1["tests"]
    python_tests = [t["python"] for t in tests if "python" in t]
    assert [t["imports"] for t in python_tests] == [meta["test"]["imports"]]
    [script] = [t["script"] for t in tests if "script" in t]
    unquoted = [line.replace('"', "") for line in script]
    assert unquoted[:2] == ["q2pconf seed --prefix $PREFIX",
                            "q2pconf check $PREFIX/etc/qiime2_config.toml"]


# -- the license and the citation ------------------------------------------------------------

def test_the_license_text_is_the_one_every_package_declares(meta, v1):
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n") and PROJECT["license"] == "BSD-3-Clause"
    assert "Copyright (c) 2026, the q2pconf developers" in text
    assert "Neither the name of the copyright holder" in text  # the third clause
    assert PROJECT["license-files"] == ["LICENSE"]  # in the wheel
    # conda-forge requires license_file; rattler-build copies it into info/licenses/
    assert meta["about"]["license_file"] == "LICENSE"
    assert v1["about"]["license_file"] in ("LICENSE", ["LICENSE"])  # rattler-build's rendering
    assert "LICENSE" in yaml.safe_load((RECIPE_DIR / "recipe.yaml").read_text())[
        "source"]["filter"]["include"]


def test_the_citation_file_is_cff_1_2_0_and_repeats_pyproject():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert {"cff-version", "message", "title", "authors"} <= set(cff)  # CFF's required keys
    assert (cff["version"], cff["license"]) == (PROJECT["version"], PROJECT["license"])
    assert cff["authors"] == [{"name": "the q2pconf developers"}]
    assert all(isinstance(cff[key], str) and cff[key] for key in ("message", "title"))


def test_the_wheel_holds_the_license(tmp_path):
    """pip builds the wheel (setuptools from pyproject's build-system, as `pip install .` does)
    from a copy of the source, so the checkout gets no build/ or .egg-info."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "q2pconf", source / "q2pconf",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(tmp_path / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    [wheel] = (tmp_path / "dist").glob(f"q2pconf-{PROJECT['version']}-*.whl")
    info = f"q2pconf-{PROJECT['version']}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        metadata = archive.read(f"{info}/METADATA").decode()
    assert "License-Expression: BSD-3-Clause" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()
