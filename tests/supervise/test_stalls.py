"""A pipeline that can never finish says so, within a bound, instead of waiting for ever:
a worker pool that cannot start, an executor with no block and no way to start one, a dead
interchange. Each case runs in a child Python with a timeout, then checks what it leaves."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from configs import htex, local
from guardtools import kill_interchange, write_toml
from procs import new_token, program_env, tagged, wait_gone

REPORT = """\
import json, sys, time
import q2pconf, session_steps as s
began = time.monotonic()
try:
    with q2pconf.ParallelConfig({config}, mapping={{"hold": "htex"}}):
        s.held(sys.argv[1], sys.argv[2])
except Exception as error:
    print(json.dumps({{"type": type(error).__name__, "message": str(error),
                      "cause": type(error.__cause__).__name__,
                      "seconds": time.monotonic() - began}}), flush=True)
"""


def run_report(tmp_path: Path, config: str, timeout: float = 90, prelude: str = "",
               **env: str) -> dict:
    """Run a pipeline whose step waits on `htex` under `config` (a Python expression), after
    the code `prelude`; the error it ended with. Leaves nothing running, even when it fails."""
    code = prelude + REPORT.format(config=config)
    child = run_child(tmp_path, [code, str(tmp_path / "started"), str(tmp_path / "flag")],
                      timeout, **env)
    assert child.stdout.strip(), f"the pipeline did not fail: {child.stderr[-2000:]}"
    return json.loads(child.stdout)


def run_child(tmp_path: Path, args: list[str], timeout: float = 90,
              **env: str) -> subprocess.CompletedProcess[str]:
    """`python -c *args` in tmp_path/work; it must end well and leave nothing running (what it
    leaves is killed, whatever the outcome)."""
    token, work = new_token(), tmp_path / "work"
    work.mkdir(exist_ok=True)
    try:
        child = subprocess.run([sys.executable, "-c", *args], cwd=work, capture_output=True,
                               text=True, timeout=timeout,
                               env=program_env(tmp_path, token, **env))
        assert child.returncode == 0, child.stderr
        assert wait_gone(token, cwd=work) == []
    finally:
        for process in tagged(token, work):
            process.kill()
    return child


@pytest.mark.parametrize("executor,shown", [
    (htex("htex", max_workers_per_node=1,
          provider=local(worker_init="echo no module cuda >&2; exit 3")), "no module cuda"),
    (htex("htex", max_workers_per_node=1, provider=local(),
          launch_cmd="/no/such/python -m parsl.executors.high_throughput.process_worker_pool"),
     "/no/such/python: No such file or directory"),
], ids=["worker_init", "no-interpreter"])
def test_a_worker_pool_that_cannot_start_names_its_stderr_file(
        tmp_path: Path, executor: dict[str, object], shown: str) -> None:
    path = write_toml(tmp_path, executor)
    answer = run_report(tmp_path, repr(str(path)))
    assert answer["type"] == "ExecutorFailed", answer
    message = answer["message"]
    assert "executor 'htex' could not start its worker pool" in message
    stderr = re.search(r"stderr: (\S+\.err), last lines:\n(.*)", message)
    assert stderr, message
    assert Path(stderr[1]).is_file() and shown in Path(stderr[1]).read_text()
    assert shown in stderr[2]
    assert "submit_scripts directory for more" not in message
    assert answer["cause"] == "BadStateException"


def test_a_local_worker_pool_that_never_connects_fails_naming_its_output(tmp_path: Path):
    """A pool whose start never ends (a worker_init that hangs): on this machine the workers
    reach 127.0.0.1, so after LOCAL_CONNECT_S (here 3 s) the run fails saying where the
    pool's output is, instead of waiting out the day-long heartbeat_threshold."""
    path = write_toml(tmp_path, htex("htex", max_workers_per_node=1,
                                     provider=local(worker_init="sleep 600")))
    answer = run_report(tmp_path, repr(str(path)), prelude=(
        "import q2pconf._supervise.connect as connect\nconnect.LOCAL_CONNECT_S = 3\n"))
    assert answer["type"] == "WorkersUnreachable", answer
    message = answer["message"]
    assert "has no worker connected: its worker pool on this machine started" in message
    assert "never connected to the interchange at 127.0.0.1" in message
    assert "submit_scripts" in message and "worker_init that does not return" in message
    assert 3 <= answer["seconds"] < 30, answer


LOST = """\
import sys, q2pconf, ending_steps as s
with q2pconf.ParallelConfig(sys.argv[1]):
    try:
        getattr(s, sys.argv[3])(sys.argv[2])
    except ValueError as error:
        print(error)
"""


def test_a_block_parsl_lost_count_of_is_cancelled_as_the_run_ends(tmp_path: Path) -> None:
    """Parsl's close cancels the blocks its last poll saw; a poll racing with the launch of
    the first block can store an answer without it (ending_steps.lost_block makes that
    certain). The block's pool hangs in its worker_init, so only a cancel can end it."""
    output = run_stuck_block(tmp_path, "lost_block")
    assert "on purpose" in output


def test_a_poll_that_raced_with_a_launch_leaves_the_block_counted(tmp_path: Path) -> None:
    """The same race, as it happens: Parsl's own poll, given the provider's answer for the
    blocks it read just before the launch (none), must still leave the block counted, or
    Parsl's strategy would launch another and its close would leave this one running."""
    output = run_stuck_block(tmp_path, "raced_poll")
    assert "['0'] ['0']\non purpose" in output, output


def run_stuck_block(tmp_path: Path, pipeline: str) -> str:
    """Run ending_steps' `pipeline` on an HTEX whose pool hangs in its worker_init; its
    output, once nothing of the run is left."""
    path = write_toml(tmp_path, htex("htex", max_workers_per_node=1,
                                     provider=local(worker_init="sleep 600")))
    return run_child(tmp_path, [LOST, str(path), str(tmp_path / "flag"), pipeline]).stdout


PARSL_CONFIG = """parsl_config(dict({strategy}), dict({provider}))
"""
MAKE_CONFIG = """\
import sys

from parsl.config import Config
from parsl.executors import HighThroughputExecutor, ThreadPoolExecutor
from parsl.providers import LocalProvider


def parsl_config(options, provider):
    htex = HighThroughputExecutor(
        label="htex", address="127.0.0.1", provider=LocalProvider(**provider),
        interchange_launch_cmd=[sys.executable, "-m",
                                "parsl.executors.high_throughput.interchange"])
    return Config(executors=[ThreadPoolExecutor(label="default"), htex], **options)
"""


@pytest.mark.parametrize("options,provider,why", [
    ({"strategy": "simple", "strategy_period": 1}, {"init_blocks": 0, "max_blocks": 0},
     "max_blocks = 0 allows none"),
    ({"strategy": "none", "strategy_period": 1}, {"init_blocks": 0},
     'strategy "none" starts none'),
], ids=["max_blocks-0", "strategy-none"])
def test_steps_no_block_can_ever_run_fail_within_seconds(
        tmp_path: Path, options: dict, provider: dict, why: str) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "make_config.py").write_text(MAKE_CONFIG)  # -c imports from cwd
    config = f"__import__('make_config').parsl_config({options!r}, {provider!r})"
    answer = run_report(tmp_path, config)
    assert answer["type"] == "ExecutorFailed", answer
    assert f"executor 'htex' has no block pending or running, and {why}" in answer["message"]
    assert "Q2PCONF_STALL_TIMEOUT" in answer["message"]
    assert 5 <= answer["seconds"] < 30  # the bound: 5 s, or 3 strategy periods if longer


BROKEN_SCHEDULER = """
from parsl.providers.errors import SubmitException


class BrokenScheduler(LocalProvider):
    \"\"\"A batch system that refuses every job, as sbatch does when the account is wrong.\"\"\"

    def submit(self, command, tasks_per_node, job_name="parsl"):
        raise SubmitException(job_name, "sbatch: error: invalid account or partition")


def refusing():
    htex = HighThroughputExecutor(
        label="htex", address="127.0.0.1", provider=BrokenScheduler(max_blocks=1),
        block_error_handler=False, interchange_launch_cmd=[
            sys.executable, "-m", "parsl.executors.high_throughput.interchange"])
    return Config(executors=[ThreadPoolExecutor(label="default"), htex], strategy="simple",
                  strategy_period=0.5)
"""


def test_steps_with_no_block_for_the_stall_timeout_fail(tmp_path: Path) -> None:
    """Parsl's block error handler is off, so only the watchdog ends this wait."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "make_config.py").write_text(MAKE_CONFIG + BROKEN_SCHEDULER)
    answer = run_report(tmp_path, "__import__('make_config').refusing()",
                        Q2PCONF_STALL_TIMEOUT="6")
    assert answer["type"] == "ExecutorFailed", answer
    message = answer["message"]
    assert "executor 'htex' has had no block pending or running for 6 s" in message
    assert "invalid account or partition" in message  # why its blocks failed
    assert 6 <= answer["seconds"] < 40


def test_a_dead_interchange_fails_the_pipeline_within_seconds(tmp_path: Path) -> None:
    answer, err, killed, (interchange, _) = kill_interchange(tmp_path, new_token())
    assert answer["type"] == "ExecutorFailed", err
    # the interchange itself, as `ps` shows it (not the q2pconf._parsl.guard that started it)
    assert ("executor 'htex' lost its interchange: the interchange of executor 'htex' "
            f"(pid {interchange}) was killed by SIGKILL; its log is ") in answer["message"]
    assert "interchange.log" in answer["message"]
    assert answer["caught"] - killed < 15


AGAIN = """\
import json, sys, pathlib
import q2pconf, session_steps as s
with q2pconf.ParallelConfig(sys.argv[1], mapping={"hold": "htex", "double": "htex"}):
    try:
        s.doubled(2)
    except q2pconf.ExecutorFailed as error:
        print(json.dumps(str(error)))
    pathlib.Path(sys.argv[2]).write_text("fixed")  # as an administrator would, say
    print(json.dumps(s.doubled(2)))
"""


def test_after_a_pool_failure_the_next_run_starts_a_new_session(tmp_path: Path) -> None:
    """Parsl never revives an executor it gave up on: the next run gets a fresh one."""
    fixed = tmp_path / "fixed"
    path = write_toml(tmp_path, htex("htex", max_workers_per_node=1, provider=local(
        worker_init=f"test -e {fixed} || {{ echo no module cuda >&2; exit 3; }}")))
    child = run_child(tmp_path, [AGAIN, str(path), str(fixed)], timeout=120)
    failure, again = child.stdout.splitlines()
    assert "could not start its worker pool" in json.loads(failure)
    assert json.loads(again) == [0, 2]


def test_the_stall_timeout_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from q2pconf._supervise.watchdog import STALL_VAR, stall_limit

    monkeypatch.delenv(STALL_VAR, raising=False)
    assert stall_limit() == 60
    for raw, seconds in (("2.5", 2.5), (" 300 ", 300), ("0", None)):
        monkeypatch.setenv(STALL_VAR, raw)
        assert stall_limit() == seconds
    for raw in ("soon", "-1", "nan"):
        monkeypatch.setenv(STALL_VAR, raw)
        with pytest.raises(ValueError, match=f"{STALL_VAR}={raw!r} is not a number of seconds"):
            stall_limit()


def test_an_interchange_that_dies_while_starting_fails_the_pipeline_at_once(
        tmp_path: Path) -> None:
    """An interchange started with a Python that has no Parsl (the same happens on a port
    taken since the check, or a crash): Parsl waits 120 s for its first answer; the pipeline
    fails as soon as the process is gone, saying how it ended and where its log is."""
    command = [sys.executable, "-I", "-S", "-m", "parsl.executors.high_throughput.interchange"]
    path = write_toml(tmp_path, htex("htex", max_workers_per_node=1, provider=local(),
                                     interchange_launch_cmd=command))
    answer = run_report(tmp_path, repr(str(path)), timeout=100)
    assert answer["type"] == "InterchangeDied", answer
    assert "the interchange of executor 'htex' (pid " in answer["message"]
    assert "exited with status 1" in answer["message"]
    assert answer["seconds"] < 60  # Parsl alone: "Interchange failed to start" after 120 s


SLOW_START = """
import sys, q2pconf, q2pconf._base.notice, session_steps as s
q2pconf._base.notice.AFTER = 1.0  # seconds before a wait says so
with q2pconf.ParallelConfig(sys.argv[1], mapping={"double": "htex"}):
    print(s.doubled(3))
"""


def test_an_interchange_slow_to_answer_is_said_once(tmp_path: Path) -> None:
    """Parsl waits up to 120 s for a new interchange's first answer: a start that lasts is
    said once (here an interchange command that sleeps 4 s first), and the run goes on."""
    interchange = [sys.executable, "-m", "parsl.executors.high_throughput.interchange"]
    command = ["sh", "-c", 'sleep 4; exec "$@"', "sh", *interchange]
    path = write_toml(tmp_path, htex("htex", max_workers_per_node=1, provider=local(),
                                     interchange_launch_cmd=command))
    token, work = new_token(), tmp_path / "work"
    work.mkdir()
    try:
        child = subprocess.run([sys.executable, "-c", SLOW_START, str(path)], cwd=work,
                               capture_output=True, text=True, timeout=120,
                               env=program_env(tmp_path, token))
        assert wait_gone(token, cwd=work) == []
    finally:
        for process in tagged(token, work):
            process.kill()
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.strip() == "[0, 2, 4]"
    said = "executor 'htex' has waited"
    assert child.stderr.count(said) == 1, child.stderr[-3000:]
    assert "for its interchange to answer (Parsl gives up after 120 s)" in child.stderr
    assert "interchange.log" in child.stderr
