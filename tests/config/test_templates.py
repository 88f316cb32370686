"""`q2pconf init --template NAME`: every template is valid as written, and as its comments
suggest."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomli_w

from configs import tomllib
from conftest import check_where_its_interface_is
from q2pconf.cli import main
from q2pconf.config import check
from q2pconf._base.errors import ConfigError
from q2pconf.config._templates import (TEMPLATES, htex_worker_key, render, vendored_dict,
                                       vendored_toml)

CLUSTERS = {"slurm": ("SlurmProvider", "SrunLauncher"),
            "pbs": ("PBSProProvider", "SingleNodeLauncher")}
SETTING = re.compile(r"# ([a-z_]+) = (.+)")
HEADER = re.compile(r"\[+([a-z_.]+)\]+")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_cluster_templates_are_offered():
    assert {"local", "slurm", "pbs"} <= set(TEMPLATES)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_init_writes_a_template_that_checks(name: str, tmp_path: Path, capsys):
    assert main(["init", "--prefix", str(tmp_path), "--template", name]) == 0
    path = tmp_path / "etc" / "qiime2_config.toml"
    assert f'q2pconf check "{path}"' in path.read_text()
    capsys.readouterr()
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: OK" in out and err == ""
    assert check(path).labels == ("default", "htex")


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_cluster_template_builds_on_demand_scaling(name: str, tmp_path: Path):
    provider, launcher = CLUSTERS[name]
    settings = check(write(tmp_path, name, render(name, tmp_path / "x.toml")))
    assert settings.warnings == ()
    assert settings.workers("htex") == 4
    config = settings.parsl_config(run_dir=str(tmp_path / "runinfo"))
    threads, htex = config.executors
    assert (type(threads).__name__, type(htex).__name__) == \
        ("ThreadPoolExecutor", "HighThroughputExecutor")
    assert type(htex.provider).__name__ == provider
    assert type(htex.provider.launcher).__name__ == launcher
    # Jobs start only when steps wait: the strategy must scale, or no job would ever start;
    # "simple", as "htex_auto_scale" cancels jobs still starting (test_check_autoscale.py).
    assert htex.provider.init_blocks == 0 and htex.provider.max_blocks >= 1
    assert config.strategy == "simple" and config.max_idletime == 120
    assert htex.provider.walltime == "01:00:00"


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_template_uses_the_installed_worker_key(name: str):
    text = render(name, Path("x.toml"))
    assert f"\n{htex_worker_key()} = 4\n" in text
    tomllib.loads(text)


def uncommented_variants(text: str) -> list[tuple[str, str]]:
    """One text per commented-out `# key = value` line: that line made live.

    A live line with the same key in the same table is dropped, as a user would edit it.
    """
    lines = text.splitlines()
    variants = []
    table = ""
    for index, line in enumerate(lines):
        header = HEADER.fullmatch(line.lstrip("# "))
        if header and not line.startswith("#"):
            table = header.group(1)
        match = SETTING.fullmatch(line)
        if not match:
            continue
        try:
            tomllib.loads(line[2:])
        except tomllib.TOMLDecodeError:
            continue  # prose in a comment, not a setting
        key = match.group(1)
        edited = list(lines)
        edited[index] = line[2:]
        edited = [row for i, row in enumerate(edited)
                  if i == index or not (row.startswith(f"{key} = ")
                                        and _table_of(lines, i) == table)]
        variants.append((f"{table}.{key}", "\n".join(edited) + "\n"))
    return variants


def _table_of(lines: list[str], index: int) -> str:
    for line in reversed(lines[:index]):
        header = HEADER.fullmatch(line)
        if header:
            return header.group(1)
    return ""


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_every_commented_setting_checks_when_uncommented(name: str, tmp_path: Path):
    text = render(name, Path("x.toml"))
    variants = uncommented_variants(text)
    keys = {key for key, _ in variants}
    assert {"parsl.executors.address", "parsl.executors.provider.worker_init"} <= keys
    for key, variant in variants:
        if check_where_its_interface_is(write(tmp_path, name, variant)):
            continue  # the address comment names the cluster's interface (ib0)
        settings = check(write(tmp_path, name, variant))
        assert settings.warnings == (), key


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_commented_mapping_example_checks(name: str, tmp_path: Path):
    text = render(name, Path("x.toml"))
    live = text.replace("# [parsl.executor_mapping]\n# ", "[parsl.executor_mapping]\n")
    assert live != text
    settings = check(write(tmp_path, name, live))
    assert settings.label_for("denoise_single", "dada2") == "htex"


def pbs_as_torque() -> tuple[dict, dict]:
    """The pbs template with the class its comment names for Torque; the document and its
    provider's table."""
    text = render("pbs", Path("x.toml"))
    assert 'use class = "TorqueProvider"' in text
    doc = tomllib.loads(text)
    provider = doc["parsl"]["executors"][1]["provider"]
    assert provider["class"] == "PBSProProvider"
    provider["class"] = "TorqueProvider"
    return doc, provider


def test_torque_variant_named_in_the_pbs_template_checks(tmp_path: Path):
    doc, provider = pbs_as_torque()
    del provider["cpus_per_node"]  # which Torque lacks, as the comment says
    built = check(write(tmp_path, "torque", tomli_w.dumps(doc))).parsl_config(
        run_dir=str(tmp_path / "runinfo"))
    assert type(built.executors[1].provider).__name__ == "TorqueProvider"


def test_the_checker_rejects_a_key_the_provider_lacks(tmp_path: Path):
    """The variants above mean something only if check refuses a wrong key."""
    doc, _ = pbs_as_torque()
    with pytest.raises(ConfigError, match="cpus_per_node"):
        check(write(tmp_path, "torque", tomli_w.dumps(doc)))


# -- the default's text ----------------------------------------------------------------------

def test_written_default_is_commented_toml_equal_to_the_dict():
    text = vendored_toml("/x/qiime2_config.toml", workers=3)
    assert text.count("\n#") >= 5
    assert tomllib.loads(text) == vendored_dict(workers=3)


def test_default_matches_the_seed_document_on_installed_parsl():
    doc = vendored_dict(workers=4)["parsl"]
    assert doc["strategy"] == "None"
    tpool, htex = doc["executors"]
    assert tpool == {"class": "ThreadPoolExecutor", "label": "default", "max_threads": 4}
    assert htex["class"] == "HighThroughputExecutor" and htex["label"] == "htex"
    assert htex["max_workers_per_node"] == 4 and "max_workers" not in htex
    assert htex["provider"] == {"class": "LocalProvider"}
