"""Building Parsl objects from a checked config, and one real HTEX round trip."""
from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import psutil
import pytest

from q2pconf.config import from_dict, vendored
from q2pconf._base.errors import ConfigError

TPOOL = {"class": "ThreadPoolExecutor", "label": "default", "max_threads": 1}


def htex(**keys: object) -> dict[str, object]:
    return {"class": "HighThroughputExecutor", "label": "htex", **keys}


def doc(*executors: dict[str, object], **options: object) -> dict[str, object]:
    return {"parsl": {**options, "executors": [TPOOL, *executors]}}


def test_run_dir_defaults_to_the_user_cache(clean_env):
    config = vendored().parsl_config()
    cache = clean_env / "home" / ".cache" / "q2pconf" / "runinfo"
    assert Path(config.run_dir).parent == cache
    assert Path(config.run_dir).name.endswith(f"-{os.getpid()}")


def test_run_dir_in_the_file_wins(clean_env, tmp_path):
    wanted = str(tmp_path / "my-runs")
    config = from_dict(doc(run_dir=wanted)).parsl_config(run_dir="/not/this")
    assert config.run_dir == wanted


def test_defaults_apply_unless_the_file_sets_them():
    assert from_dict(doc()).parsl_config(retries=2).retries == 2
    assert from_dict(doc(retries=1)).parsl_config(retries=2).retries == 1


GUARD = [sys.executable, "-m", "q2pconf._parsl.guard"]


def test_htex_runs_with_this_interpreter_on_loopback_under_the_guard():
    built = vendored().executor("htex")
    # a local pool's guard also watches this program (pid and start time)
    started = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")")[1].split()[19]
    program = f"{os.getpid()}:{started}"
    assert shlex.split(built.launch_cmd)[:11] == [
        *GUARD, "--program", program, "pool", "--", sys.executable, "-m", "q2pconf._parsl.pool",
        "parsl.executors.high_throughput.process_worker_pool"]
    assert built.interchange_launch_cmd == [
        *GUARD, "interchange", "--", sys.executable, "-m", "q2pconf._parsl.typecache",
        "parsl.executors.high_throughput.interchange"]
    assert built.address == "127.0.0.1"


def test_htex_without_provider_is_local_and_on_loopback():
    built = from_dict(doc(htex())).executor("htex")
    assert type(built.provider).__name__ == "LocalProvider"
    assert built.address == "127.0.0.1"


def test_launch_commands_and_address_set_in_the_file_are_kept():
    keys = {"launch_cmd": "my_pool {debug}", "interchange_launch_cmd": ["my-interchange"],
            "address": "127.0.0.2", "provider": {"class": "LocalProvider"}}
    built = from_dict(doc(htex(**keys))).executor("htex")
    assert built.launch_cmd == "my_pool {debug}"  # it may run where the guard cannot
    assert built.interchange_launch_cmd == [*GUARD, "interchange", "--", "my-interchange"]
    assert built.address == "127.0.0.2"


def test_cluster_provider_gets_no_loopback_address():
    provider = {"class": "SlurmProvider", "partition": "short"}
    built = from_dict(doc(htex(provider=provider))).executor("htex")
    assert built.address is None
    assert built.launch_cmd.startswith(shlex.quote(sys.executable))


def test_dependency_resolver_is_q2pconfs_deep_one():
    from q2pconf._base import nested

    resolver = vendored().parsl_config().dependency_resolver
    assert resolver.traverse_to_gather is nested.awaited
    assert resolver.traverse_to_unwrap is nested.unwrap


def test_labels_choose_the_executors():
    settings = vendored()
    assert [e.label for e in settings.parsl_config(["htex"]).executors] == ["htex"]
    assert [e.label for e in settings.parsl_config().executors] == ["default", "htex"]
    with pytest.raises(ConfigError, match="no executor is labelled 'gpu'"):
        settings.parsl_config(["gpu"])


def test_each_build_gives_new_executors():
    settings = vendored()
    assert settings.executor("htex") is not settings.executor("htex")


# (usage_tracking = 7 was one; q2pconf check now refuses it itself:
# tests/config/test_check_limits.py)
@pytest.mark.parametrize("document,key,words", [
    (doc(htex(manager_selector="random")), "parsl.executors[1]",
     "Parsl refused this HighThroughputExecutor: TypeCheckError"),
], ids=["htex-manager-selector"])
def test_parsl_refusal_is_a_config_error(document, key, words):
    settings = from_dict(document, "refused.toml")  # our check lets these through
    with pytest.raises(ConfigError) as caught:
        settings.parsl_config()
    message = str(caught.value)
    assert message.startswith(f"refused.toml: {key}: {words}")
    assert "\n  Fix: compare the keys with Parsl's documentation" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# -- one real HTEX run ---------------------------------------------------------------------

def leftovers(run_dir: str) -> list[str]:
    """Live (non-zombie) HTEX processes of this test: our children, or naming our run_dir."""
    found = []
    mine = {p.pid for p in psutil.Process().children(recursive=True)}
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        line = " ".join(proc.info["cmdline"] or [])
        htex_process = "interchange" in line or "process_worker_pool" in line
        if htex_process and (proc.info["pid"] in mine or run_dir in line):
            found.append(line)
    return found


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_htex_round_trip_leaves_no_process(clean_env):
    import parsl
    from parsl import python_app

    config = vendored().parsl_config(strategy_period=0.5)
    dfk = parsl.load(config)
    try:
        worker_pid = python_app(os.getpid, executors=["htex"])().result(timeout=60)
        during = leftovers(config.run_dir)
    finally:
        dfk.cleanup()
    assert worker_pid != os.getpid()
    assert any("interchange" in line for line in during)
    assert any("process_worker_pool" in line for line in during)
    deadline = time.monotonic() + 30
    while (leftovers(config.run_dir) or not gone(worker_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(config.run_dir) == []
    assert gone(worker_pid)
    assert Path(config.run_dir).is_relative_to(clean_env)
