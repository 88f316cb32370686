"""A bad config met through a public entry point shows the user's lines and the message, not
the frames of q2pconf's checker (errors.shallow)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from configs import config, threads
from procs import config_env, new_token

BAD = config(threads("default", max_threads=0), strategy="none")
CALLS = {
    "pipeline": "from q2pconf import parallel_pipeline, step\n"
                "@step\ndef f(x): return x\n"
                "@parallel_pipeline\ndef p(): return f(1)\n"
                "p()",
    "load": "import q2pconf; q2pconf.load()",
    "check": "import os, q2pconf; q2pconf.check(os.environ['QIIME2_CONFIG'])",
    "ParallelConfig": "import os, q2pconf; q2pconf.ParallelConfig(os.environ['QIIME2_CONFIG'])",
    "from_dict": "import q2pconf; q2pconf.from_dict({'parsl': {'strategy': 'sometimes'}})",
}


@pytest.mark.parametrize("call", CALLS)
def test_a_config_error_shows_no_frames_of_the_checker(tmp_path: Path, call: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(CALLS[call] + "\n")
    done = subprocess.run([sys.executable, str(script)], env=config_env(tmp_path, new_token(),
                          BAD), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    frames = [line for line in done.stderr.splitlines() if line.startswith('  File "')]
    ours = [line for line in frames if "q2pconf" in line]
    assert len(ours) == 1, done.stderr  # the entry point, where the error leaves q2pconf
    assert str(script) in frames[0]
    message = [line for line in done.stderr.splitlines() if not line.startswith(" ")]
    assert message[-1].startswith("q2pconf.ConfigError: "), done.stderr
