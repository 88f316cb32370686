"""A warning is said once per program, not once per pipeline call; a name that matches nothing
(an executor hint, a mapping key) is said, with the close match, instead of silently running
on 'default'."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import LOOKUP_VARS, readonly_command

SCRIPT = textwrap.dedent("""
    import json, q2pconf
    from q2pconf import parallel_pipeline, step

    @step(executor="htx")
    def denoise(x):
        return x + 1

    @step
    def classify(x):
        return x * 2

    @parallel_pipeline
    def run(values):
        return [classify(denoise(v)) for v in values]

    answers = []
    with q2pconf.ParallelConfig(mapping={"denoize": "htex", "classify": "default"}):
        for _ in range(3):
            answers.append(run([1, 2]))
    print(json.dumps({"answers": answers,
                      "executors": sorted({r.executor for r in run.history})}))
""")


def test_three_pipeline_calls_say_each_warning_once(tmp_path):
    prefix, home = tmp_path / "env", tmp_path / "home"
    prefix.mkdir()
    home.mkdir()
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in LOOKUP_VARS}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_CONFIG_DIRS=str(tmp_path / "etc-xdg"), XDG_CACHE_HOME=str(home / ".cache"),
               CONDA_PREFIX=str(prefix), Q2PCONF_PROGRESS="0")
    command = readonly_command(prefix, [sys.executable, str(script)])
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result == {"answers": [[4, 6]] * 3, "executors": ["default"]}
    lines = done.stderr.splitlines()
    read_only = [line for line in lines if "could not write the default config" in line]
    hints = [line for line in lines if "asks for executor 'htx'" in line]
    keys = [line for line in lines if "the executor mapping names" in line]
    assert (len(read_only), len(hints), len(keys)) == (1, 1, 1), done.stderr
    assert "did you mean 'htex'?" in hints[0] and "runs on 'default'" in hints[0]
    assert "'denoize' (did you mean 'denoise'?)" in keys[0] and "in run()" in keys[0]
    assert "classify" not in keys[0]  # it matched a step that ran
    assert len(lines) == 3, done.stderr


def test_info_with_a_hint_free_summary_does_not_claim_every_step_runs_on_default(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[[parsl.executors]]\nclass = "ThreadPoolExecutor"\nlabel = "default"\n')
    done = subprocess.run([sys.executable, "-m", "q2pconf", "info", "--parallel-config",
                           str(config)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "every step runs on 'default'" not in done.stdout
    assert "@step(executor=...)" in done.stdout and Path(config).name in done.stdout
