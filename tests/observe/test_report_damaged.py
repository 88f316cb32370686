"""Damaged files `q2pconf report` and `q2pconf info --runs` read: a run.json that is empty, cut
short or not a run record, a trace with a damaged line or header, an unwritable report. Each
is one message naming the file and the fix, exit 2 (not a JSONDecodeError traceback, exit 1);
a damaged trace line is skipped and said. Files of a real traced run, damaged afterwards."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import q2pconf
import trace_steps as steps
from configs import config, threads
from conftest import readonly_command, require_tool

pytestmark = pytest.mark.usefixtures("fresh_session")
FIX = "  Fix: name another run (`q2pconf info --runs` lists them), or remove this one's files\n"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "q2pconf", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """The run.json of a real run of five thread steps."""
    path = tmp_path / "threads.toml"
    path.write_text(config(threads("default", max_threads=2)))
    with q2pconf.ParallelConfig(path):
        steps.many_naps(5, 0.01)
    meta = Path(str(steps.many_naps.trace_path).replace(".trace.tsv", ".run.json"))
    assert meta.is_file()
    return meta


def copy_of(run: Path, tmp_path: Path, name: str) -> Path:
    """The run's run.json and trace under another name (the run.json names its trace: the
    copy keeps naming the original's, unless the test changes it)."""
    directory = tmp_path / name
    directory.mkdir()
    meta = directory / "copy.run.json"
    shutil.copy(run, meta)
    shutil.copy(str(run).replace(".run.json", ".trace.tsv"), directory / "copy.trace.tsv")
    meta.write_text(meta.read_text().replace(str(run).replace(".run.json", ".trace.tsv"),
                                             str(directory / "copy.trace.tsv")))
    return meta


DAMAGED_META = {
    "empty": (b"", "is empty: the run's record was cut short or damaged"),
    "blank": (b"  \n", "is empty: the run's record was cut short or damaged"),
    "cut-short": (None, "is not whole JSON ("),
    "not-utf8": (b"\xff\xfe{}", "is not whole JSON ("),
    "a-list": (b"[]", "holds no run record (a JSON object)"),
    "null": (b"null", "holds no run record (a JSON object)"),
    "trace-a-number": (b'{"trace": 5}', "is damaged: its 'trace' is int"),
    "config-a-string": (b'{"config": "x"}', "is damaged: its 'config' is str"),
    "argv-a-string": (b'{"argv": "python run.py"}', "is damaged: its 'argv' is str"),
}


@pytest.mark.parametrize("content,problem", DAMAGED_META.values(), ids=list(DAMAGED_META))
def test_a_damaged_run_json_is_one_message_with_exit_2(run, tmp_path, content, problem):
    meta = copy_of(run, tmp_path, "damaged")
    whole = meta.read_bytes()
    meta.write_bytes(whole[:len(whole) // 2] if content is None else content)
    done = cli("report", str(meta))
    assert done.returncode == 2 and done.stdout == "", done.stderr
    first, fix = done.stderr.split("\n", 1)
    assert first.startswith(f"{meta}: {problem}") and fix == FIX, done.stderr
    assert "Traceback" not in done.stderr
    followed = cli("report", str(run))  # the fix: name another run
    assert followed.returncode == 0, followed.stderr


def test_an_unreadable_run_json_is_one_message(run, tmp_path):
    """Root reads anything: run without the capabilities that override file modes."""
    meta = copy_of(run, tmp_path, "unreadable")
    meta.chmod(0)
    drop = "-dac_override,-dac_read_search,-fowner"
    done = subprocess.run([require_tool("setpriv"), f"--inh-caps={drop}",
                           f"--bounding-set={drop}", sys.executable, "-m", "q2pconf",
                           "report", str(meta)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"{meta}: cannot be read: Permission denied\n{FIX}"


def test_a_damaged_trace_header_is_one_message(run, tmp_path):
    meta = copy_of(run, tmp_path, "header")
    trace = meta.with_name("copy.trace.tsv")
    trace.write_text("garbage\theader\n" + trace.read_text().split("\n", 1)[1])
    done = cli("report", str(meta))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"{trace}: its first line is not the header of q2pconf's trace\n"
                           f"{FIX}")


@pytest.mark.parametrize("damage", ["a bad time", "a bad number", "a short line", "binary"])
def test_a_damaged_trace_line_is_skipped_and_said(run, tmp_path, damage):
    meta = copy_of(run, tmp_path, "line")
    trace = meta.with_name("copy.trace.tsv")
    header, first, *rest = trace.read_text().splitlines(keepends=True)
    fields = first.rstrip("\n").split("\t")
    if damage == "a bad time":
        fields[8] = "yesterday"
    elif damage == "a bad number":
        fields[11] = "lots"
    elif damage == "a short line":
        fields = fields[:5]
    broken = "\t".join(fields) + "\n"
    if damage == "binary":
        trace.write_bytes((header + "".join(rest)).encode() + b"\xff\x00\xfe\n")
    else:
        trace.write_text(header + broken + "".join(rest))
    done = cli("report", str(meta))
    assert done.returncode == 0, done.stderr
    page = Path(done.stdout.strip()).read_text()
    assert 'id="damaged">1 damaged line(s) of the trace were skipped' in page
    assert page.count('<rect class="bar') == len(rest)


def test_info_runs_lists_the_others_and_names_a_damaged_one(run, tmp_path):
    """The index lists this run; its run.json cut short: one warning, the others listed."""
    from q2pconf._observe.runfiles import index_path

    other = copy_of(run, tmp_path, "other")
    with open(index_path(), "a") as index:
        index.write(f"2026-01-01T00:00:00\t{other}\n")
    other.write_text("{")
    done = cli("info", "--runs")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"q2pconf: warning: {other}: is not whole JSON (")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"trace: {str(run).replace('.run.json', '.trace.tsv')}" in done.stdout


def test_a_report_that_cannot_be_written_is_one_message(run, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    target = locked / "r.html"
    done = subprocess.run(readonly_command(locked, [sys.executable, "-m", "q2pconf", "report",
                                                    str(run), "-o", str(target)]),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"{target}: cannot be written: Read-only file system\n  Fix: write "
                           "the report elsewhere: q2pconf report RUN -o FILE\n")
    followed = cli("report", str(run), "-o", str(tmp_path / "r.html"))
    assert followed.returncode == 0 and (tmp_path / "r.html").is_file()


def test_a_damaged_index_of_runs_is_passed_over(run):
    """Garbage in runs.log (not UTF-8, a NUL): `info --runs` and `report` still find the run."""
    from q2pconf._observe.runfiles import index_path

    index = index_path()
    index.write_bytes(b"\xff\xfe garbage\x00\tx\n" + index.read_bytes() + b"\x00\t\xff\n")
    listed = cli("info", "--runs")
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert f"trace: {str(run).replace('.run.json', '.trace.tsv')}" in listed.stdout
    reported = cli("report")
    assert reported.returncode == 0, reported.stderr
    assert reported.stdout.strip() == str(run).replace(".run.json", ".report.html")
