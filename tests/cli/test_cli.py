"""The q2pconf command line, run as a real program in an isolated environment."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import condatools
from configs import config, htex, threads
from conftest import LOOKUP_VARS, readonly_command
from q2pconf._arguments import add_parallel_arguments, config_from_args
from q2pconf.config import check
from q2pconf._base.errors import ConfigError

CONFIG = "qiime2_config.toml"
COMMANDS = ("info", "check", "init", "seed")
INVALID = '[[parsl.executors]]\nclass = "ThreadPoolExecuter"\nlabel = "default"\n'
MAPPING = {"dada2": {"denoise_single": "default"}}
VALID = config(threads("default", max_threads=3), mapping=MAPPING)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment for the CLI: HOME and XDG dirs under tmp_path, no QIIME2_CONFIG or
    CONDA_PREFIX."""
    values = {k: v for k, v in os.environ.items() if k not in LOOKUP_VARS}
    home = tmp_path / "home"
    home.mkdir()
    values.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                  XDG_CONFIG_DIRS=str(tmp_path / "etc-xdg"),
                  XDG_CACHE_HOME=str(home / ".cache"))
    return values


def q2pconf(env: dict[str, str], *args: str, cwd: Path | None = None,
            command: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = command or [sys.executable, "-m", "q2pconf", *args]
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def prefix_in(tmp_path: Path) -> Path:
    prefix = tmp_path / "env"
    prefix.mkdir(exist_ok=True)
    return prefix


def info_json(env: dict[str, str], *args: str) -> dict[str, object]:
    result = q2pconf(env, "info", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- info ------------------------------------------------------------------------------------

def test_info_without_conda_prefix_is_in_memory(env, tmp_path):
    result = q2pconf(env, "info", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "config: the built-in default (held in memory, nothing written)"
    assert lines[1] == "source: in-memory"
    assert any(line.split()[:2] == ["skipped", "conda"] for line in lines)
    assert "  default    ThreadPoolExecutor, workers: " in result.stdout
    assert "  htex       HighThroughputExecutor, workers: " in result.stdout
    assert sorted(os.listdir(tmp_path)) == ["home"]  # nothing written anywhere


def test_info_json_keys_and_in_memory_source(env):
    data = info_json(env)
    assert set(data) == {"path", "source", "trail", "executors", "mapping"}
    assert (data["path"], data["source"]) == (None, "in-memory")
    assert [step["source"] for step in data["trail"]] == [
        "explicit", "QIIME2_CONFIG", "user", "site", "conda"]
    assert data["trail"][-1] == {"source": "conda", "path": None, "note": "CONDA_PREFIX not set"}
    assert data["executors"] == ["default", "htex"] and data["mapping"] == {}


def test_info_json_conda_prefix_is_seeded_then_found(env, tmp_path):
    prefix = prefix_in(tmp_path)
    env["CONDA_PREFIX"] = str(prefix)
    first, second = info_json(env), info_json(env)
    path = str(prefix / "etc" / CONFIG)
    assert (first["source"], first["path"]) == ("vendored", path)
    assert (second["source"], second["path"]) == ("conda", path)


def test_info_json_qiime2_config_and_explicit(env, tmp_path):
    chosen = tmp_path / "chosen.toml"
    chosen.write_text(VALID)
    other = tmp_path / "other.toml"
    other.write_text(config(threads("default", max_threads=5), mapping=MAPPING))
    env["QIIME2_CONFIG"] = str(chosen)
    data = info_json(env)
    assert (data["source"], data["path"]) == ("QIIME2_CONFIG", str(chosen))
    assert data["mapping"] == {"dada2.denoise_single": "default"}
    explicit = info_json(env, "--parallel-config", str(other))
    assert (explicit["source"], explicit["path"], explicit["trail"]) == (
        "explicit", str(other), [])


def test_info_explains_an_empty_qiime2_config(env, tmp_path):
    """Set but empty: the built-in default (as in QIIME 2), even with a user file and a prefix."""
    user = Path(env["XDG_CONFIG_HOME"], "qiime2", CONFIG)
    user.parent.mkdir(parents=True)
    user.write_text(VALID)
    env.update(QIIME2_CONFIG="", CONDA_PREFIX=str(prefix_in(tmp_path)))
    result = q2pconf(env, "info")
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()[:2]
    assert first == ("config: the built-in default: QIIME2_CONFIG is set but empty, which QIIME 2 "
                     'reads as "use the built-in default" (unset it to use your config files)')
    assert second == "source: QIIME2_CONFIG"
    assert not (tmp_path / "env" / "etc").exists()  # nothing seeded
    assert (info_json(env)["source"], info_json(env)["path"]) == ("QIIME2_CONFIG", None)


def test_check_says_a_mapping_only_file_meets_its_executors_later(env, tmp_path):
    only = tmp_path / "mapping.toml"
    only.write_text('[parsl.executor_mapping]\ndada2 = { denoise_single = "gpu" }\n')
    result = q2pconf(env, "check", str(only))
    assert result.returncode == 0, result.stderr
    assert "  dada2.denoise_single -> gpu\n  (the file holds only a mapping" in result.stdout


def test_info_with_a_bad_qiime2_config_exits_2(env, tmp_path):
    env["QIIME2_CONFIG"] = str(tmp_path / "missing.toml")
    result = q2pconf(env, "info")
    assert result.returncode == 2 and result.stdout == ""
    assert "$QIIME2_CONFIG names a file that does not exist" in result.stderr
    assert "Traceback" not in result.stderr


# -- check -----------------------------------------------------------------------------------

def test_check_valid_file_prints_a_summary(env, tmp_path):
    path = tmp_path / CONFIG
    path.write_text(VALID)
    result = q2pconf(env, "check", str(path))
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.splitlines() == [
        f"{path}: OK", "executors:", "  default    ThreadPoolExecutor, workers: 3",
        "mapping:", "  dada2.denoise_single -> default"]


def test_check_prints_legacy_warnings_on_stderr(env, tmp_path):
    path = tmp_path / CONFIG
    path.write_text(config(threads("default", max_threads=3), htex("htex", max_workers=2),
                           mapping=MAPPING))
    result = q2pconf(env, "check", str(path))
    assert result.returncode == 0
    assert result.stderr.startswith("warning: ") and "max_workers_per_node" in result.stderr


def test_check_invalid_file_exits_2_with_the_message_only(env, tmp_path):
    path = tmp_path / CONFIG
    path.write_text(INVALID)
    with pytest.raises(ConfigError) as caught:
        check(path)
    result = q2pconf(env, "check", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"{caught.value}\n"
    assert "did you mean ThreadPoolExecutor?" in result.stderr


@pytest.mark.parametrize("text", [VALID, INVALID, "not toml ["])
def test_check_changes_nothing_on_disk(env, tmp_path, text):
    folder = tmp_path / "configs"
    folder.mkdir()
    path = folder / CONFIG
    path.write_text(text)
    os.utime(path, ns=(1_000_000_000_123_456_789, 1_000_000_000_123_456_789))
    before = (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(folder)))
    result = q2pconf(env, "check", str(path), cwd=folder)
    assert result.returncode in (0, 2) and "Traceback" not in result.stderr
    after = (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(folder)))
    assert after == before
    assert not (Path(env["HOME"]) / ".config").exists()


# -- init ------------------------------------------------------------------------------------

def test_init_prefix_writes_then_refuses_then_force_keeps_a_backup(env, tmp_path):
    prefix = prefix_in(tmp_path)
    path = prefix / "etc" / CONFIG
    first = q2pconf(env, "init", "--prefix", str(prefix))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"wrote {path}\n")
    assert check(path).labels == ("default", "htex")

    edited = path.read_bytes() + b"# my edit\n"
    path.write_bytes(edited)
    again = q2pconf(env, "init", "--prefix", str(prefix))
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.startswith(f"{path}: already exists; nothing was changed\n  Fix: ")
    assert path.read_bytes() == edited

    forced = q2pconf(env, "init", "--prefix", str(prefix), "--force")
    assert forced.returncode == 0, forced.stderr
    backups = sorted(path.parent.glob(f"{CONFIG}.*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == edited
    assert f"kept the old file as {backups[0]}" in forced.stdout
    assert b"# my edit" not in path.read_bytes()


def test_init_force_twice_keeps_both_backups(env, tmp_path):
    prefix = prefix_in(tmp_path)
    path = prefix / "etc" / CONFIG
    path.parent.mkdir()
    path.write_text("# the user's own file\n")
    for _ in range(2):
        assert q2pconf(env, "init", "--prefix", str(prefix), "--force").returncode == 0
    contents = {b.read_text() for b in path.parent.glob(f"{CONFIG}.*.bak")}
    assert "# the user's own file\n" in contents and len(contents) == 2


def test_init_user_writes_to_xdg_config_home(env):
    result = q2pconf(env, "init", "--user")
    target = Path(env["XDG_CONFIG_HOME"]) / "qiime2" / CONFIG
    assert result.returncode == 0, result.stderr
    assert target.is_file() and f"wrote {target}" in result.stdout
    assert info_json(env)["source"] == "user"


def test_init_force_on_read_only_prefix_is_a_clean_error(env, tmp_path):
    prefix = prefix_in(tmp_path)
    path = prefix / "etc" / CONFIG
    path.parent.mkdir()
    path.write_text("# mine\n")
    command = readonly_command(prefix, [sys.executable, "-m", "q2pconf", "init", "--prefix",
                                        str(prefix), "--force"])
    result = q2pconf(env, command=command)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}: cannot be written: ")
    assert "Traceback" not in result.stderr
    assert path.read_text() == "# mine\n"


# -- seed ------------------------------------------------------------------------------------

def test_seed_is_quiet_and_idempotent(env, tmp_path):
    prefix = prefix_in(tmp_path)
    path = prefix / "etc" / CONFIG
    results = [q2pconf(env, "seed", "--prefix", str(prefix)) for _ in range(2)]
    for result in results:
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert check(path).labels == ("default", "htex")


def test_seed_keeps_an_existing_file(env, tmp_path):
    prefix = prefix_in(tmp_path)
    path = prefix / "etc" / CONFIG
    path.parent.mkdir()
    path.write_text(VALID)
    result = q2pconf(env, "seed", "--prefix", str(prefix))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert path.read_text() == VALID


def test_seed_on_a_read_only_prefix_exits_1_with_one_line(env, tmp_path):
    prefix = prefix_in(tmp_path)
    command = readonly_command(prefix, [sys.executable, "-m", "q2pconf", "seed", "--prefix",
                                        str(prefix)])
    result = q2pconf(env, command=command)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"q2pconf: could not write {prefix / 'etc' / CONFIG}: ")
    assert "Read-only file system" in lines[0]
    assert os.listdir(prefix) == []


# -- help ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_has_an_example(env, command):
    result = q2pconf(env, command, "--help")
    assert result.returncode == 0
    assert "example" in result.stdout and f"q2pconf {command}" in result.stdout


def test_top_level_help_lists_commands_and_examples(env):
    result = q2pconf(env, "--help")
    assert result.returncode == 0 and "examples:" in result.stdout
    assert all(command in result.stdout for command in COMMANDS)


def test_no_command_is_a_usage_error(env):
    result = q2pconf(env)
    assert result.returncode == 2 and "usage: q2pconf" in result.stderr


def test_version_answers_as_the_tools_of_the_ecosystem_do(env):
    from importlib.metadata import version

    for argv in (["--version"], ["--version", "info"]):
        result = q2pconf(env, *argv)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout == f"q2pconf {version('q2pconf')}\n"
    assert version("q2pconf") == condatools.pyproject()["project"]["version"]
    assert "--version" in q2pconf(env, "--help").stdout


# -- how argparse reads the lookup commands --------------------------------------------------

# argv -> what `info`/`check` are given: flags in any order and repeated, the last PATH wins,
# a PATH holding "=" or named like a command; every malformed line is a usage error (exit 2).
READ = [(["info"], dict(json=False, runs=False, parallel_config=None)),
        (["info", "--runs", "--json"], dict(json=True, runs=True, parallel_config=None)),
        (["info", "--parallel-config=a=b.toml", "--json"],
         dict(json=True, runs=False, parallel_config="a=b.toml")),
        (["info", "--json", "--json", "--parallel-config", "a", "--parallel-config", "b"],
         dict(json=True, runs=False, parallel_config="b")),
        (["info", "--parallel-config", "info"],
         dict(json=False, runs=False, parallel_config="info")),
        (["check", "with space.toml"], dict(file="with space.toml")),
        (["check", "info"], dict(file="info"))]
MALFORMED = [[], ["info", "--jsonx"], ["info", "--parallel-config"], ["info", "--json=1"],
             ["info", "extra"], ["check"], ["check", "a", "b"], ["nothing"]]


@pytest.mark.parametrize(("argv", "expected"), READ, ids=[" ".join(a) for a, _ in READ])
def test_a_lookup_command_line_reads_as_meant(argv, expected):
    from q2pconf.cli import _parser

    args = vars(_parser().parse_args(argv))
    assert {key: args[key] for key in expected} == expected


@pytest.mark.parametrize("argv", MALFORMED, ids=" ".join)
def test_a_malformed_command_line_is_a_usage_error(argv, capsys):
    from q2pconf.cli import main

    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2 and "usage: q2pconf" in capsys.readouterr().err


# -- the argparse helper for user scripts ----------------------------------------------------

def parse(*argv: str) -> argparse.Namespace:
    parser = add_parallel_arguments(argparse.ArgumentParser(prog="run.py"))
    return parser.parse_args(argv)


def test_no_parallel_flags_means_serial(clean_env):
    assert config_from_args(parse()) is None
    assert config_from_args(argparse.Namespace()) is None


def test_parallel_flag_uses_the_lookup(clean_env):
    settings = config_from_args(parse("--parallel"))
    assert settings is not None and settings.source == "in-memory"


def test_parallel_config_implies_parallel(clean_env):
    path = clean_env / "mine.toml"
    path.write_text(VALID)
    settings = config_from_args(parse("--parallel-config", str(path)))
    assert settings is not None
    assert (settings.source, settings.path, settings.labels) == ("explicit", path, ("default",))


def test_parallel_config_naming_no_file_is_a_config_error(clean_env):
    with pytest.raises(ConfigError, match="--parallel-config names a file that does not exist"):
        config_from_args(parse("--parallel-config", str(clean_env / "nope.toml")))


def test_helper_help_describes_both_flags():
    parser = add_parallel_arguments(argparse.ArgumentParser(prog="run.py"))
    text = parser.format_help()
    assert "--parallel-config PATH" in text and "--parallel " in text


@pytest.mark.parametrize("command", ["init", "seed"])
@pytest.mark.parametrize("mistake", ["missing", "missing/deeper", "a-file"])
def test_a_prefix_that_is_not_a_directory_is_refused_and_nothing_is_made(env, tmp_path,
                                                                         command, mistake):
    """`--prefix /opt/conda/envs/qiim2` (a typo) created the whole tree without a word; conda
    always passes a prefix that exists. The fix, followed (the directory made), works."""
    (tmp_path / "a-file").write_text("mine")
    before = sorted(tmp_path.rglob("*"))
    prefix = tmp_path / mistake
    done = q2pconf(env, command, "--prefix", str(prefix))
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    if mistake == "a-file":
        assert done.stderr == (f"{prefix}: the --prefix is a file, not an environment's "
                               "directory: nothing was written\n  Fix: check the path (conda's "
                               "prefix is $CONDA_PREFIX, which exists)\n")
        assert (tmp_path / "a-file").read_text() == "mine"
    else:
        assert done.stderr == (f"{prefix}: the --prefix directory does not exist: nothing was "
                               "written\n  Fix: check the path (conda's prefix is "
                               "$CONDA_PREFIX, which exists), or create the directory first\n")
    assert sorted(tmp_path.rglob("*")) == before
    if mistake != "a-file":
        prefix.mkdir(parents=True)
        followed = q2pconf(env, command, "--prefix", str(prefix))
        assert followed.returncode == 0, followed.stderr
        assert check(prefix / "etc" / CONFIG).labels == ("default", "htex")
