"""Every path a run leaves (threads and a local HTEX) is out of other users' reach under a
permissive umask: the cache and run directories are created 0700, so Parsl's job scripts and
logs inside them cannot be edited by anyone else before they run."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from configs import config, htex, local, threads
from conftest import LOOKUP_VARS

TESTS = Path(__file__).parents[1]
SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.umask(int(sys.argv[2], 8))
    import q2pconf
    import pipeline_steps as steps
    with q2pconf.ParallelConfig(sys.argv[1]):
        result = steps.mapped()
    print(json.dumps({"hinted_pid": result["hinted"]["pid"], "me": os.getpid()}))
""")


def reachable_and_writable(path: Path, top: Path) -> bool:
    """Could a user other than the owner change `path`? They need write on it and search
    on every directory between `top` (exclusive) and it."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o022:
        return False
    parent = path.parent
    while parent != top:
        if not os.stat(parent).st_mode & 0o011:
            return False  # a private directory on the way: no one else gets past it
        parent = parent.parent
    return True


POOL = threads("default", max_threads=2)
HTEX = htex("htex", max_workers_per_node=2, provider=local(init_blocks=1, max_blocks=1))


def run_under(tmp_path: Path, umask: str, text: str) -> Path:
    """Run SCRIPT (a thread step and an HTEX step) with the config `text` under `umask`;
    HOME is tmp_path/home."""
    home = tmp_path / "home"
    home.mkdir()
    path = tmp_path / "c.toml"
    path.write_text(text)
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in LOOKUP_VARS}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_CACHE_HOME=str(home / ".cache"), Q2PCONF_PROGRESS="0",
               PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(script), str(path), umask], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    pids = json.loads(done.stdout)
    assert pids["hinted_pid"] != pids["me"]  # the HTEX really ran a step
    return home


@pytest.mark.parametrize("umask", ["000", "002"])
def test_no_path_a_run_leaves_is_open_to_others(tmp_path, umask):
    home = run_under(tmp_path, umask, config(POOL, HTEX, strategy="none"))
    left = sorted(home.rglob("*"))
    scripts = [p for p in left if p.parent.name == "submit_scripts"]
    assert scripts, "the HTEX left no submit script: nothing was checked"
    runs = home / ".cache" / "q2pconf" / "runinfo"
    (run,) = [p for p in runs.iterdir() if p.is_dir()]  # beside runs.log, the index of runs
    private = [home / ".cache", home / ".cache" / "q2pconf", runs, run, run / "000"]
    assert {str(d): oct(stat.S_IMODE(d.stat().st_mode)) for d in private} == {
        str(d): "0o700" for d in private}
    exposed = [str(p) for p in left if reachable_and_writable(p, home)]
    assert exposed == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "home", "script.py"]


def test_an_open_run_dir_of_the_user_s_own_gets_a_private_run_inside(tmp_path):
    """run_dir set to an existing world-writable directory: Parsl's numbered run inside it
    (job scripts, logs) is made 0700."""
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o777)
    run_under(tmp_path, "000", config(POOL, HTEX, strategy="none", run_dir=str(runs)))
    (run,) = runs.iterdir()
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    assert any(p.parent.name == "submit_scripts" for p in run.rglob("*"))
    assert [str(p) for p in run.rglob("*") if reachable_and_writable(p, runs)] == []


def test_the_rule_sees_an_open_path(tmp_path):
    """The check above can fail: a world-writable file under open directories is seen."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    for directory in (tmp_path / "a", tmp_path / "a" / "b"):
        directory.chmod(0o777)
    target = tmp_path / "a" / "b" / "job.sh"
    target.write_text("echo hi\n")
    target.chmod(0o666)
    assert reachable_and_writable(target, tmp_path)
    (tmp_path / "a").chmod(0o700)
    assert not reachable_and_writable(target, tmp_path)
