"""q2cli's tests of its --parallel and --parallel-config flags, ported onto q2pconf.

Upstream: github.com/qiime2/q2cli, q2cli/tests/test_cache_cli.py, class TestCacheCli, at
releases 2024.5.0 and 2024.10.0 (the four tests are the same in both but for the mapping's
form in their data file). q2cli's click commands become q2cli_like.py, a script using
q2pconf.add_parallel_arguments, run as a real child process; QIIME 2's test mode becomes
$QIIME2_CONFIG naming data/test_config.toml (see tests/qiime2/README.md).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from procs import new_token, program_env, wait_gone
from qiime2_port import (RELEASES, data, execution_contexts, test_expected,
                         threads_expected)

SCRIPT = Path(__file__).resolve().parent / "q2cli_like.py"


def run_command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The script in a child process with the test config as $QIIME2_CONFIG; none of its
    processes may outlive it."""
    token = new_token()
    env = program_env(tmp_path, token, data("test_config.toml"))
    env["PYTHONPATH"] = f"{SCRIPT.parent}:{env['PYTHONPATH']}"
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    result = subprocess.run([sys.executable, str(SCRIPT), *args], env=env, cwd=work,
                            capture_output=True, text=True, timeout=180)
    assert wait_gone(token, cwd=work) == []
    return result


def contexts(result: subprocess.CompletedProcess[str]) -> tuple[list[Any], list[Any]]:
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    list_return, dict_return = output["result"]
    return (execution_contexts(list_return, output["pid"]),
            execution_contexts(dict_return, output["pid"]))


def test_parallel(tmp_path: Path) -> None:
    """qiime2/q2cli q2cli/tests/test_cache_cli.py, 2024.5.0 and 2024.10.0:
    TestCacheCli.test_parallel. Same: --parallel runs with the config the lookup finds, and
    both steps run on its thread pool."""
    result = run_command(tmp_path, "resumable-pipeline", "--i-int-list", "0", "1",
                         "--parallel")
    assert contexts(result) == (threads_expected, threads_expected)


@pytest.mark.parametrize("release", RELEASES)
def test_config_parallel(tmp_path: Path, release: str) -> None:
    """qiime2/q2cli q2cli/tests/test_cache_cli.py, 2024.5.0 and 2024.10.0:
    TestCacheCli.test_config_parallel. Same: --parallel-config's file gives the executors
    and the mapping."""
    result = run_command(tmp_path, "resumable-pipeline", "--i-int-list", "0", "1",
                         "--parallel-config", str(data("mapping_config", release)))
    assert contexts(result) == (test_expected, threads_expected)


@pytest.mark.parametrize("release", RELEASES)
def test_both_parallel_flags(tmp_path: Path, release: str) -> None:
    """qiime2/q2cli q2cli/tests/test_cache_cli.py, 2024.5.0 and 2024.10.0:
    TestCacheCli.test_both_parallel_flags. Same: the explicit config overrides the default."""
    result = run_command(tmp_path, "resumable-pipeline", "--i-int-list", "0", "1",
                         "--parallel", "--parallel-config", str(data("mapping_config", release)))
    assert contexts(result) == (test_expected, threads_expected)


def test_parallel_flags_on_non_pipeline(tmp_path: Path) -> None:
    """qiime2/q2cli q2cli/tests/test_cache_cli.py, 2024.5.0 and 2024.10.0:
    TestCacheCli.test_parallel_flags_on_non_pipeline. Same fact, argparse's words: only the
    pipeline's command has the flags, so the step's command refuses each of them (q2cli's
    click says "No such option: --parallel" and exits 1; argparse says "unrecognized
    arguments: --parallel" and exits 2)."""
    method = ["concatenate-ints", "--i-ints1", "0", "1", "2", "--i-ints2", "3", "4", "5",
              "--i-ints3", "6", "7", "8", "--p-int1", "9", "--p-int2", "10"]
    plain = run_command(tmp_path, *method)
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["result"]["value"] == list(range(11))
    for flags in (["--parallel"], ["--parallel-config", str(data("mapping_config", "2024.10"))]):
        result = run_command(tmp_path, *method, *flags)
        assert result.returncode == 2
        assert f"unrecognized arguments: {flags[0]}" in result.stderr
