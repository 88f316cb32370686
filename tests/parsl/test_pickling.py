"""q2pconf._parsl.pickling: data crosses to and from HTEX workers by C pickle when that means what
dill means, and by dill otherwise (definitions of `__main__`, what pickle cannot take)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from configs import config, htex, local, threads
from procs import config_env, new_token, wait_gone
from q2pconf._parsl import pickling

CONFIG = config(threads("default", max_threads=1),
                htex("htex", max_workers_per_node=1, provider=local()), strategy="none")


def header(value: object) -> bytes:
    from parsl.serialize import serialize

    pickling.register()
    return serialize(value).split(b"\n", 1)[0]


class Local:  # defined in this test module: importable, so pickle may send it by name
    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Local) and other.value == self.value


@pytest.mark.parametrize("value", [
    list(range(1000)), {"reads": [("ACGT", "IIII")] * 100}, b"x" * 10, Local(3), [Local(4)],
    {1, 2}, ("a", None, 1.5)])
def test_plain_data_goes_by_pickle_and_comes_back_equal(value: object) -> None:
    from parsl.serialize import deserialize, serialize

    assert header(value) == pickling.HEADER
    assert deserialize(serialize(value)) == value


MAIN = textwrap.dedent("""
    import json, sys
    from parsl.serialize import serialize
    from q2pconf._parsl import pickling
    pickling.register()

    class Point:
        pass

    def helper():
        return 1

    values = {"instance": Point(), "nested": [1, {"k": Point()}], "class": [Point],
              "function": [helper], "lambda": [lambda: 1], "plain": [1, "a"]}
    print(json.dumps({name: serialize(v).split(b"\\n", 1)[0].decode()
                      for name, v in values.items()}))
""")


def test_definitions_of_main_and_what_pickle_cannot_take_go_by_dill(tmp_path: Path) -> None:
    """pickle would send `__main__.Point` by name, which a worker (whose `__main__` is
    Parsl's pool) cannot find: dill sends it by value (Parsl PR #4048)."""
    done = subprocess.run([sys.executable, "-c", MAIN], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    headers = json.loads(done.stdout)
    dill = {name: h for name, h in headers.items() if h != pickling.HEADER.decode()}
    assert set(dill) == {"instance", "nested", "class", "function", "lambda"}
    assert headers["plain"] == pickling.HEADER.decode()


READ = textwrap.dedent("""
    import sys
    sys.modules["q2pconf"] = None  # any import of q2pconf fails here
    from parsl.serialize import deserialize
    print(deserialize(bytes.fromhex(sys.argv[1])))
""")


def test_the_reading_side_needs_nothing_of_q2pconf(tmp_path: Path) -> None:
    from parsl.serialize import serialize

    pickling.register()
    blob = serialize({"a": [1, 2]})
    assert blob.startswith(pickling.HEADER + b"\n")
    done = subprocess.run([sys.executable, "-c", READ, blob.hex()], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'a': [1, 2]}"


SCRIPT = textwrap.dedent("""
    import json
    from parsl.serialize import facade
    from q2pconf import parallel_pipeline, step

    class Sample:  # defined in the running script: __main__ here, not on the worker
        def __init__(self, name):
            self.name = name

    def upper(text):
        return text.upper()

    @step(executor="htex")
    def describe(sample, how, reads):
        first = next(iter(facade.methods_for_data))  # the worker's first data method
        return how(sample.name), len(reads), first.decode()

    @parallel_pipeline
    def run():
        return describe(Sample("s1"), upper, [("ACGT" * 30, "I" * 120)] * 3000)

    if __name__ == "__main__":
        print(json.dumps(run()))
""")


def test_a_pipeline_sends_script_objects_and_big_data_to_htex(tmp_path: Path) -> None:
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    token = new_token()
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                          env=config_env(tmp_path, token, CONFIG), capture_output=True,
                          text=True, timeout=180)
    assert wait_gone(token, cwd=tmp_path) == []
    assert done.returncode == 0, done.stderr
    # the worker sends its results back by pickle too
    assert json.loads(done.stdout.splitlines()[-1]) == ["S1", 3000, pickling.HEADER.decode()]


OLD_HEADER = textwrap.dedent("""
    import pickle, sys
    from parsl.serialize import deserialize
    if sys.argv[1] == "registered":
        from q2pconf._parsl import pickling
        pickling.register()
    try:
        print(deserialize(b"01\\n" + pickle.dumps([1, "a"])))
    except Exception as error:
        print(type(error).__name__)
""")


def test_what_parsl_read_before_it_still_reads() -> None:
    """Parsl's plain pickle (b'01', written by Parsl before 2025.12) no longer writes once
    PickleFirst is registered, but is still read."""
    seen = [subprocess.run([sys.executable, "-c", OLD_HEADER, how], capture_output=True,
                           text=True, timeout=120).stdout for how in ("plain", "registered")]
    assert seen[0] == seen[1]
