"""@step and @parallel_pipeline on real Parsl: threads and a local HTEX."""
from __future__ import annotations

import collections
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path
from types import TracebackType

import pytest

import pipeline_steps as steps
from configs import config, htex, local, threads
import q2pconf
from procs import parsl_children
from q2pconf.pipeline import _session as sessions


POOL = threads("default", max_threads=4)
HTEX = htex("htex", max_workers_per_node=2, provider=local(init_blocks=1, max_blocks=1))
LOCAL = config(POOL, HTEX, strategy="none")


def write_config(tmp_path: Path, text: str = LOCAL) -> Path:
    """`text` in a file of its own: another text, another file (and session)."""
    path = tmp_path / f"config-{abs(hash(text))}.toml"
    path.write_text(text)
    return path


pytestmark = pytest.mark.usefixtures("fresh_session")


def test_fan_out_runs_concurrently(tmp_path: Path) -> None:
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        spans = steps.fan_out(4)
    assert [name for name, _, _ in spans] == ["s0", "s1", "s2", "s3"]
    # every sleep began before any ended: all four overlapped
    assert max(began for _, began, _ in spans) < min(ended for _, _, ended in spans)


def test_nested_pipelines_run_inline_and_overlap(tmp_path: Path) -> None:
    text = config(threads("default", max_threads=2), HTEX, strategy="none")
    with q2pconf.ParallelConfig(write_config(tmp_path, text)):
        (_, a_began, a_ended), (_, b_began, b_ended) = steps.outer()
    assert b_began < a_ended and a_began < b_ended


def test_futures_inside_lists_tuples_and_dicts_are_followed(tmp_path: Path) -> None:
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        assert steps.deep() == 1 + 2 + 3 + 4 + 5


def test_result_inside_the_body_does_not_deadlock_a_one_thread_pool(tmp_path: Path) -> None:
    text = config(threads("default", max_threads=1), HTEX, strategy="none")
    with q2pconf.ParallelConfig(write_config(tmp_path, text)):
        assert steps.branching(5) == (6 + 100) + 12
        assert steps.branching(0) == (1 + 200) + 2


def test_outputs_unpack_into_separate_futures(tmp_path: Path) -> None:
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        assert steps.unpacking([4, 1, 9]) == {"low": 1, "high": 9, "sum": 10}


def test_a_step_returning_the_wrong_number_of_outputs_says_so(tmp_path: Path) -> None:
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        with pytest.raises(ValueError, match="outputs=3"):
            steps.wrong()


def test_outside_a_pipeline_a_step_is_an_ordinary_call() -> None:
    assert steps.add(2, 3) == 5
    assert steps.split([3, 1]) == (1, 3)


def test_steps_outside_a_pipeline_and_serial_runs_never_load_parsl(tmp_path: Path) -> None:
    """In a fresh interpreter: neither an ordinary step call nor a serial run imports Parsl
    (so neither can start a DataFlowKernel or an executor)."""
    code = ("import sys; import pipeline_steps as s\n"
            "assert s.add(2, 3) == 5 and s.deep.serial() == 15\n"
            "print(sorted(m for m in sys.modules if m == 'parsl' or m.startswith('parsl.')))")
    assert run_in_tests(code) == "[]"


def run_in_tests(code: str) -> str:
    """What `code` prints, run by a fresh Python in the tests' directory (with a timeout)."""
    tests = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tests, env={**os.environ, "PYTHONPATH": str(tests)})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_serial_mode_gives_the_same_results_without_parsl(tmp_path: Path) -> None:
    assert steps.deep.serial() == 15
    assert steps.unpacking.serial([4, 1, 9]) == {"low": 1, "high": 9, "sum": 10}
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        assert steps.unpacking([4, 1, 9]) == steps.unpacking.serial([4, 1, 9])


def test_a_serial_run_is_the_same_pipeline_one_step_at_a_time(tmp_path: Path) -> None:
    # the body may treat a step's return as a future, as in a parallel run
    assert steps.branching.serial(5) == (6 + 100) + 12
    assert steps.branching.serial(0) == (1 + 200) + 2
    assert [(r.name, r.executor, r.state) for r in steps.branching.history] == [
        ("add", "(serial)", "exec_done")] * 4
    # the checks a parallel run makes: outputs=N, and a note naming the failing step
    with pytest.raises(ValueError, match="outputs=3") as caught:
        steps.wrong.serial()
    assert "step pipeline_steps.wrong_outputs() run serially" in caught.value.__notes__[-1]
    marker = tmp_path / "dependent-ran"
    with pytest.raises(KeyError) as failed:
        steps.fails_first.serial(str(marker))
    assert "step pipeline_steps.fail('no such sample') run serially" in failed.value.__notes__[-1]
    assert not marker.exists() and steps.fails_first.history[-1].state == "failed"


def test_a_serial_step_keeps_its_walltime(tmp_path: Path) -> None:
    code = ("import time, pipeline_steps as s\n"
            "from parsl.app.errors import AppTimeout\n"
            "began = time.monotonic()\n"
            "try:\n    s.timed_out.serial()\n"
            "except AppTimeout as error:\n"
            "    print(round(time.monotonic() - began), error.__notes__[-1])\n")
    seconds, note = run_in_tests(code).split(" ", 1)
    assert "spin_forever() run serially (walltime 1 s)" in note and int(seconds) < 30


def test_failing_step_raises_its_own_error_with_a_note_and_skips_dependents(
        tmp_path: Path) -> None:
    marker, flag = tmp_path / "dependent-ran", tmp_path / "release-slow-step"
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        with pytest.raises(KeyError) as caught:
            steps.failing(str(marker), str(flag))
        # the caller got the error while the independent slow step still waited for the flag
        flag.write_text("go")
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "step pipeline_steps.fail('no such sample')" in notes
    assert "executor 'default'" in notes
    assert caught.value.args == ("no such sample",)
    assert "fail" in _frames(caught.value.__traceback__)
    assert not marker.exists()


def test_failure_on_htex_keeps_type_note_and_worker_traceback(tmp_path: Path) -> None:
    mapped = config(POOL, HTEX, strategy="none", mapping={"fail": "htex"})
    with q2pconf.ParallelConfig(write_config(tmp_path, mapped)):
        with pytest.raises(KeyError) as caught:
            steps.failing(str(tmp_path / "m"), str(tmp_path / "f"))
        (tmp_path / "f").write_text("go")
    assert "executor 'htex'" in "\n".join(caught.value.__notes__)
    assert "fail" in _frames(caught.value.__traceback__)


def test_mapping_beats_hint_beats_default(tmp_path: Path) -> None:
    mapped = config(POOL, HTEX, strategy="none",
                    mapping={"where": "htex", "demux": {"summarize": "htex"}})
    with q2pconf.ParallelConfig(write_config(tmp_path, mapped)):
        steps.mapped()
    ran = {r.name: r.executor for r in steps.mapped.history}
    assert ran == {"where": "htex", "where_hinted": "htex", "summarize": "htex"}
    sessions.close()
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        steps.mapped()
    ran = {r.name: r.executor for r in steps.mapped.history}
    assert ran == {"where": "default", "where_hinted": "htex", "summarize": "default"}
    # ParallelConfig's own mapping replaces the file's (QIIME 2's rule), nested form too
    with q2pconf.ParallelConfig(write_config(tmp_path, mapped),
                                mapping={"demux": {"summarize": "default"}}):
        steps.mapped()
    ran = {r.name: r.executor for r in steps.mapped.history}
    assert ran == {"where": "default", "where_hinted": "htex", "summarize": "default"}


def test_a_mapping_only_file_meets_the_executors_in_force(tmp_path: Path) -> None:
    """Its labels are checked against the config it is applied to, when a run starts."""
    only = tmp_path / "mapping.toml"
    only.write_text('[parsl.executor_mapping]\nwhere = "big"\n')
    q2pconf.check(only)  # no executors of its own: nothing to check its labels against yet
    big = tmp_path / "big.toml"
    big.write_text(config(threads("default", max_threads=2),
                          htex("big", max_workers_per_node=1, provider=local()), strategy="none"))
    with q2pconf.ParallelConfig(big):
        with q2pconf.ParallelConfig(only):  # applies to the enclosing block's config
            steps.mapped()
    assert {r.name: r.executor for r in steps.mapped.history}["where"] == "big"
    with q2pconf.ParallelConfig(only):  # the lookup's config: the vendored default, no "big"
        with pytest.raises(KeyError) as caught:
            steps.mapped()
    error = caught.value
    assert isinstance(error, q2pconf.ConfigError)
    assert (error.file, error.key) == (str(only), "parsl.executor_mapping.where")
    assert str(error).startswith(f"{only}: parsl.executor_mapping.where: no executor is "
                                 "labelled 'big'\n  Fix: ")


def test_a_mapping_naming_tpool_says_which_label_to_use(tmp_path: Path) -> None:
    with q2pconf.ParallelConfig(write_config(tmp_path), mapping={"where": "tpool"}):
        with pytest.raises(KeyError) as caught:
            steps.mapped()
    assert str(caught.value) == (
        "<ParallelConfig mapping>: where: no executor is labelled 'tpool'\n  Fix: QIIME 2 "
        "2024.10 and later call their thread pool 'tpool'; in this config the thread pool is "
        "labelled 'default': use 'default' instead")


def test_hint_naming_a_missing_executor_falls_back_to_default(tmp_path: Path) -> None:
    threads_only = tmp_path / "threads.toml"
    threads_only.write_text(config(threads("default")))
    with q2pconf.ParallelConfig(threads_only):
        result = steps.mapped()
    assert {r.executor for r in steps.mapped.history} == {"default"}
    assert result["hinted"]["thread"] != "MainThread"


def test_threads_only_pipeline_never_starts_the_htex(tmp_path: Path) -> None:
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        assert steps.threads_only(20) == [2 * i for i in range(20)]
        current = sessions.session()
        assert "htex" not in current.dfk.executors
        assert parsl_children() == []


def test_vendored_default_threads_only_starts_no_process() -> None:
    assert steps.threads_only(5) == [0, 2, 4, 6, 8]
    current = sessions.session()
    assert current.settings is not None and current.settings.source == "in-memory"
    assert "htex" in current.labels and "htex" not in current.dfk.executors
    assert parsl_children() == []


def test_session_is_reused_and_replaced_when_the_config_changes(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    with q2pconf.ParallelConfig(path):
        steps.threads_only(2)
        first = sessions.session()
        steps.threads_only(2)
        assert sessions.session() is first
    text = config(threads("default", max_threads=2), HTEX, strategy="none")
    with q2pconf.ParallelConfig(write_config(tmp_path, text)):
        steps.threads_only(2)
        other = sessions.session()
        assert other is not first
    assert not first.closed  # idle, kept for the next run with its config
    path.write_text(config(threads("default", max_threads=3), HTEX, strategy="none"))
    with q2pconf.ParallelConfig(path):
        steps.threads_only(2)
        assert sessions.session() not in (first, other)
    assert first.closed and not other.closed  # its file changed: it can never be used again


def test_run_dir_is_under_the_user_cache(clean_env: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(clean_env)
    steps.threads_only(1)
    run_dir = Path(sessions.session().dfk.run_dir)
    assert run_dir.is_relative_to(clean_env / "home" / ".cache" / "q2pconf" / "runinfo")
    assert not Path("runinfo").exists()


def test_parsl_logging_stays_off_the_root_logger(tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handler, level = Keep(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with q2pconf.ParallelConfig(write_config(tmp_path)):
            steps.threads_only(3)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert [r.name for r in records if r.name.startswith("parsl")] == []


def test_a_parsl_config_object_can_be_passed_directly(tmp_path: Path) -> None:
    from parsl.config import Config
    from parsl.executors import ThreadPoolExecutor

    built = Config(executors=[ThreadPoolExecutor(label="default", max_threads=2)],
                   run_dir=str(tmp_path / "runinfo"))
    with q2pconf.ParallelConfig(built):
        assert steps.deep() == 15
    assert (tmp_path / "runinfo").is_dir()


def test_parallel_config_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="ParallelConfig takes"):
        q2pconf.ParallelConfig(42)
    with pytest.raises(TypeError, match="both mapping and action_executor_mapping"):
        q2pconf.ParallelConfig(mapping={"a": "default"}, action_executor_mapping={"b": "htex"})


def test_parallel_config_takes_qiime2s_keywords_and_a_config_dict() -> None:
    """QIIME 2's ParallelConfig(parallel_config=..., action_executor_mapping=...), with a dict
    as qiime2.plugin.testing passes (made once, used by many tests: the block is reusable)."""
    threads_only = {"parsl": {"strategy": "None", "executors": [
        {"class": "ThreadPoolExecutor", "label": "default", "max_threads": 1}]}}
    block = q2pconf.ParallelConfig(parallel_config=threads_only,
                                   action_executor_mapping={"demux": {"summarize": "default"}})
    for _ in range(2):
        with block:
            steps.mapped()
            assert sessions.session().labels == ("default",)
        assert {r.executor for r in steps.mapped.history} == {"default"}


def _frames(tb: TracebackType | None) -> list[str]:
    return [frame.name for frame in traceback.extract_tb(tb)]


def test_walltime_stops_a_step_that_never_returns(tmp_path: Path) -> None:
    from parsl.app.errors import AppTimeout

    with q2pconf.ParallelConfig(write_config(tmp_path)):
        with pytest.raises(AppTimeout) as caught:
            steps.timed_out()
    assert "spin_forever() on executor 'default' (walltime 1 s)" in caught.value.__notes__[-1]


@pytest.mark.parametrize("where", ["threads", "htex"])
def test_futures_in_every_container_are_followed_and_types_kept(tmp_path: Path,
                                                                where: str) -> None:
    with q2pconf.ParallelConfig(write_config(tmp_path)):
        answer = steps.nested_everywhere(where)
    expected = steps.containers(1)
    assert answer["seen"] == {name: steps.shape(value) for name, value in expected.items()}
    assert answer["returned"] == expected
    returned = answer["returned"]
    assert type(returned["point"]) is steps.Point and type(returned["frozenset"]) is frozenset
    assert returned["default"].default_factory is list
    assert type(returned["ordered"]) is collections.OrderedDict
    assert steps.nested_everywhere.serial(where) == answer
