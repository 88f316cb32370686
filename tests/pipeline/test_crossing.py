"""A step's exception or return value that cannot travel back from its worker as itself still
ends the pipeline, with an error naming the step, the original type, message and traceback.

Before the fix, such an object killed Parsl's result thread in the submitting process and the
pipeline waited for ever: every case runs in a child process with a timeout."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from configs import config, htex, local, threads
from procs import config_env, new_token, wait_gone

RUN_CASES = """\
import json, sys
import crossing_steps as steps

FIELDS = ("step", "kind", "type_name", "message", "trace", "problem")
for case in steps.CASES:
    try:
        value = steps.run(case, sys.argv[1])
    except BaseException as error:
        fields = {k: getattr(error, k) for k in FIELDS} if hasattr(error, "trace") else {}
        out = {"type": type(error).__name__, "fields": fields, "text": str(error),
               "notes": getattr(error, "__notes__", [])}
    else:
        out = {"value": repr(value), "called": value(1) if callable(value) else None}
    print(json.dumps({"case": case, **out}), flush=True)
"""
# What arrives in the caller: the original exception where nothing crossed a process
# boundary (threads), a StepError where it could not; ("value", text) for a returned value.
SAME_ON_BOTH = {"exit": ("StepError", "SystemExit", "3"),
                "interrupt": ("StepError", "KeyboardInterrupt", "pressed inside a step"),
                "lambda": ("called", 2), "file": ("value", "<_io.TextIOWrapper name='/dev/null'")}
EXPECTED = {
    "threads": {**SAME_ON_BOTH, "score": ("ScoreError",), "holding": ("Holding",),
                "generator": ("value", "<generator"), "socket": ("value", "<socket.socket"),
                "pair": ("value", "<crossing_steps.Pair")},
    "htex": {**SAME_ON_BOTH,
             "score": ("StepError", "crossing_steps.ScoreError", "sample s1 scored 0.25"),
             "holding": ("StepError", "crossing_steps.Holding", "holds a generator"),
             "generator": ("StepError", "generator", "cannot pickle 'generator' object"),
             "socket": ("StepError", "socket.socket", "cannot pickle 'socket' object"),
             "pair": ("StepError", "crossing_steps.Pair", "missing 1 required positional")},
}
FRAME = {"score": "_raise_score", "holding": "_raise_holding", "exit": "<lambda>",
         "interrupt": "_raise_interrupt"}


def run_child(tmp_path: Path, args: list[str], timeout: float = 240) -> list[str]:
    text = config(threads("default", max_threads=2),
                  htex("htex", max_workers_per_node=1, provider=local(init_blocks=1)),
                  strategy="none")
    token = new_token()
    try:
        done = subprocess.run([sys.executable, *args], env=config_env(tmp_path, token, text),
                              capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the pipeline hung: {hung.stdout!r} {hung.stderr!r}")
    assert wait_gone(token) == []
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("where", ["threads", "htex"])
def test_what_cannot_travel_back_still_ends_the_pipeline_with_what_happened(
        tmp_path: Path, where: str) -> None:
    answers = [json.loads(line) for line in run_child(tmp_path, ["-c", RUN_CASES, where])]
    assert sorted(a["case"] for a in answers) == sorted(EXPECTED[where])
    for answer in answers:
        case, expected = answer["case"], EXPECTED[where][answer["case"]]
        if expected[0] == "called":
            assert answer["called"] == expected[1], answer
            continue
        if expected[0] == "value":
            assert answer["value"].startswith(expected[1]), answer
            continue
        assert answer["type"] == expected[0], answer
        step = f"crossing_steps.on_{where}({case!r})"
        assert any(f"q2pconf: in step {step} on executor" in n for n in answer["notes"]), answer
        if expected[0] != "StepError":
            continue
        fields = answer["fields"]
        assert fields["step"] == f"on_{where}" and fields["type_name"] == expected[1], answer
        assert expected[2] in fields["message"] + fields["problem"], answer
        assert expected[1].rpartition(".")[2] in answer["text"], answer
        if case in FRAME:  # the worker's traceback, down to the frame that raised
            assert fields["kind"] == "raised" and FRAME[case] in fields["trace"], answer
        else:
            assert fields["kind"] == "returned", answer


SCRIPT = '''
import dataclasses
from q2pconf import StepError, parallel_pipeline, step

@dataclasses.dataclass
class Result:
    sample: str
    score: float

class LowScore(Exception):
    def __init__(self, sample, score):
        super().__init__(f"{sample} scored only {score}")

@step(executor="htex")
def judge(sample, score):
    if score < 0.5:
        raise LowScore(sample, score)
    return Result(sample, score)

@parallel_pipeline
def run(scores):
    return [judge(sample, score) for sample, score in scores.items()]

if __name__ == "__main__":
    print(run({"a": 0.9, "b": 0.7}))
    try:
        run({"c": 0.1})
    except StepError as error:
        print(error.type_name, "|", error.message, "|", "judge" in error.trace)
'''


def test_classes_of_the_running_script_travel_back_from_the_htex(tmp_path: Path) -> None:
    script = tmp_path / "scores.py"
    script.write_text(SCRIPT)
    lines = run_child(tmp_path, [str(script)])
    assert lines == ["[Result(sample='a', score=0.9), Result(sample='b', score=0.7)]",
                     "LowScore | c scored only 0.1 | True"]


def test_a_serial_run_lets_an_interrupt_go_on_as_itself() -> None:
    """A serial step runs in the caller's thread, where Ctrl-C lands: it must stop the run."""
    import crossing_steps

    with pytest.raises(KeyboardInterrupt) as caught:
        crossing_steps.run.serial("interrupt", "threads")
    assert "run serially" in caught.value.__notes__[-1]
    with pytest.raises(crossing_steps.ScoreError):
        crossing_steps.run.serial("score", "htex")
