"""The progress display in a Jupyter notebook: a real IPython kernel, driven by nbclient, runs
a notebook whose cells run q2pconf pipelines, and the test reads what the cells showed."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from configs import config, threads
from conftest import IN_CI
from procs import config_env, new_token

CONFIG = config(threads("default", max_threads=2), strategy="none")
STEPS = '''
import time
from q2pconf.pipeline import parallel_pipeline, step

@step
def nap(i):
    time.sleep(0.3)
    if i < 0:
        raise ValueError("a negative nap")
    return i

@parallel_pipeline
def naps(values):
    return [nap(i) for i in values]
'''


def _needed(name: str) -> Any:
    """The module `name` of the test extra: skipped without it, but a failure under CI=true."""
    if IN_CI:
        return __import__(name)
    return pytest.importorskip(name)


class Recording:
    """An nbclient NotebookClient that also keeps, per cell, the kernel's display messages
    as (type, display_id, text): what a front end was told to show and to update."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        nbclient = _needed("nbclient")

        class Client(nbclient.NotebookClient):  # type: ignore[misc,name-defined]
            def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
                kind = msg["msg_type"]
                if kind in ("display_data", "update_display_data"):
                    content = msg["content"]
                    shown = content.get("transient", {}).get("display_id")
                    self.messages.setdefault(cell_index, []).append(
                        (kind, shown, content["data"].get("text/plain")))
                return super().process_message(msg, cell, cell_index)

        client = Client(*args, **kwargs)
        client.messages = {}
        return client


def run_notebook(tmp_path: Path, *cells: str, **extra: str) -> tuple[Any, dict[int, Any]]:
    """The executed notebook, and its display messages per cell, from a kernel that is this
    test's Python (a kernel spec in tmp_path: nothing of the machine's Jupyter)."""
    nbformat = _needed("nbformat")
    _needed("ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    (tmp_path / "home").mkdir()
    spec = tmp_path / "kernels" / "q2pconf-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "q2pconf test", "language": "python"}))
    manager = KernelManager(kernel_name="q2pconf-test", kernel_spec_manager=KernelSpecManager(
        kernel_dirs=[str(tmp_path / "kernels")]))
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = Recording(book, km=manager, timeout=120, startup_timeout=120, allow_errors=True)
    env = config_env(tmp_path, new_token(), CONFIG, **extra)
    client.execute(env=env, cwd=str(tmp_path))
    return book, client.messages


def displays(cell: Any) -> list[Any]:
    return [out for out in cell.outputs if out.output_type == "display_data"]


def test_one_display_updated_in_place_whose_last_state_stays(tmp_path: Path) -> None:
    """A run shows one display, updated in place while it runs (nbclient writes each update
    into the same output), and its last words say every step is done. A failing run's
    display stays with its last state too."""
    book, messages = run_notebook(
        tmp_path, STEPS, "print(sum(naps(range(8))))", "naps([1, 2, -1, 3])",
        Q2PCONF_PROGRESS="1")
    ran = book.cells[1]
    assert [o.get("text") for o in ran.outputs if o.output_type == "stream"] == ["28\n"]
    (shown,) = displays(ran)
    assert shown.data["text/plain"] == "q2pconf: 8/8 steps done, 0 running, 0 failed"
    assert '<progress value="8" max="8">' in shown.data["text/html"]
    (first, display_id, _), *updates = messages[1]
    assert first == "display_data" and display_id
    # 8 steps of 0.3 s, 2 at a time: the 0.2 s redraws update it while it runs
    assert updates and {kind for kind, _, _ in updates} == {"update_display_data"}
    assert {shown for _, shown, _ in updates} == {display_id}

    failed = book.cells[2]
    assert [o.ename for o in failed.outputs if o.output_type == "error"] == ["ValueError"]
    (shown,) = displays(failed)
    assert shown.data["text/plain"].endswith(", 1 failed")


def test_the_time_left_shows_in_the_display_while_it_runs(tmp_path: Path) -> None:
    """The body returned at once and steps finish every 0.3 s: an update says the time left
    (the kernel's messages say it: the output itself ends with none left)."""
    _, messages = run_notebook(tmp_path, STEPS, "naps(range(12))", Q2PCONF_PROGRESS="1")
    said = [text for _, _, text in messages[1]]
    assert any(text.endswith(" left") for text in said), said
    assert said[-1] == "q2pconf: 12/12 steps done, 0 running, 0 failed"


def test_an_interrupted_run_leaves_its_last_state(tmp_path: Path) -> None:
    """Ctrl-C in a notebook (the kernel's interrupt: SIGINT to the kernel) stops the run;
    its display stays, with the steps done until then."""
    interrupt = ("import os, signal\n"
                 "@step\n"
                 "def stop_at(i):\n"
                 "    if i == 6:  # the 7th step: SIGINT to the kernel, as its interrupt sends\n"
                 "        os.kill(os.getpid(), signal.SIGINT)\n"
                 "    return nap(i)\n"
                 "@parallel_pipeline\n"
                 "def stopped(n):\n"
                 "    return [stop_at(i) for i in range(n)]\n"
                 "stopped(40)")
    book, _ = run_notebook(tmp_path, STEPS, interrupt, "print(sum(naps(range(2))))",
                           Q2PCONF_PROGRESS="1")
    stopped, after = book.cells[1], book.cells[2]
    assert [o.ename for o in stopped.outputs if o.output_type == "error"] == ["KeyboardInterrupt"]
    (shown,) = displays(stopped)
    said = re.fullmatch(r"q2pconf: (\d+)/40 steps done, \d+ running, 0 failed",
                        shown.data["text/plain"])
    assert said and 4 <= int(said[1]) < 40, shown.data  # 2 at a time, the 7th interrupts
    # the kernel lives on, and the next run shows its own display
    assert [o.get("text") for o in after.outputs if o.output_type == "stream"] == ["1\n"]
    assert displays(after)[0].data["text/plain"].startswith("q2pconf: 2/2 steps done")


def test_off_with_the_variable(tmp_path: Path) -> None:
    """Q2PCONF_PROGRESS=0 shows nothing in a notebook, as on a terminal."""
    book, messages = run_notebook(tmp_path, STEPS, "print(sum(naps(range(4))))",
                                  Q2PCONF_PROGRESS="0")
    assert displays(book.cells[1]) == [] and 1 not in messages
