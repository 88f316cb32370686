"""Run every benchmark and print the table: `python -m benchmarks [--repeat N] [--write]`.

Each row runs q2pconf and its baseline alternately in fresh processes, `repeat` times, and
reports medians and their ratio. `--write` also replaces the table in benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import children
from q2pconf._base.cpus import usable_cpus

ROOT = Path(__file__).resolve().parent.parent
HTEX2 = """\
[parsl]
strategy = "none"
[[parsl.executors]]
class = "ThreadPoolExecutor"
label = "default"
max_threads = 1
[[parsl.executors]]
class = "HighThroughputExecutor"
label = "htex"
max_workers_per_node = {workers}
[parsl.executors.provider]
class = "{provider}"
init_blocks = 1
max_blocks = 1
{extra}"""


@dataclass
class Row:
    name: str
    ours: float
    baseline: float
    unit: str
    goal: str
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("nan")


def python(code: str, *args: str, env: dict[str, str] | None = None,
           timeout: float = 600,
           where: Callable[[list[str]], list[str]] = list) -> dict[str, float]:
    """Run `code` in a fresh interpreter; its last stdout line is JSON. `where` wraps the
    command (a multi-node cluster's `command`, to run it in the cluster's network)."""
    done = subprocess.run(where([sys.executable, "-c", code, *args]), capture_output=True,
                          text=True, timeout=timeout,
                          env={**_as_installed(os.environ), "Q2PCONF_PROGRESS": "0",
                               "PYTHONPATH": str(ROOT), **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _as_installed(env: Mapping[str, str]) -> dict[str, str]:
    """Without PYTHONDONTWRITEBYTECODE: an installed package has its bytecode compiled, and
    compiling q2pconf's modules on every start would be most of what the lookup rows show."""
    return {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(command: list[str], env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True,
                   env=_as_installed(os.environ if env is None else env))
    return time.perf_counter() - began


def cpu_time(command: list[str], env: dict[str, str]) -> float:
    """The CPU seconds (user + system) a whole process takes: unlike its wall time, not
    stretched by whatever else the machine runs."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=_as_installed(env))
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{command} exited {child.returncode}")
    return usage.ru_utime + usage.ru_stime


def demo(repeat: int, scratch: Path) -> Row:
    """`make demo`: examples/amplicon.py on the vendored default, parallel then serial."""
    env = {**_as_installed(os.environ), **_isolated(scratch), "Q2PCONF_PROGRESS": "0"}
    pairs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, str(ROOT / "examples" / "amplicon.py")],
                             capture_output=True, text=True, check=True, env=env,
                             timeout=600).stdout
        seconds = dict(re.findall(r"^(parallel|serial): +([0-9.]+) s", out, flags=re.M))
        pairs.append((float(seconds["serial"]), float(seconds["parallel"])))
    serial, parallel = (statistics.median(p[i] for p in pairs) for i in (0, 1))
    return Row("make demo (examples/amplicon.py, vendored default): serial vs parallel "
               "(speed-up)", serial, parallel, "s", ">= 1.50",
               f"{usable_cpus()} usable CPUs; parallel includes the HTEX start")


def medians(ours: Callable[[], float], baseline: Callable[[], float],
            repeat: int) -> tuple[float, float]:
    pairs = [(ours(), baseline()) for _ in range(repeat)]
    return (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs))


def fan_out(repeat: int) -> Row:
    ours, raw = medians(lambda: python(children.FAN_OUT, "2000", "q2pconf", "2")["seconds"],
                        lambda: python(children.FAN_OUT, "2000", "raw", "2")["seconds"], repeat)
    return Row("2000 trivial steps: @parallel_pipeline vs raw python_app", ours, raw, "s",
               "<= 1.10")


def tracing(repeat: int) -> Row:
    result = python(children.TRACING, "2000", str(2 * repeat))
    return Row("2000 trivial steps: dispatch with tracing (default) vs Q2PCONF_TRACE=0",
               result["on"], result["off"], "s", "<= 1.05",
               f"alternately in one process, {2 * repeat} runs each")


def fan_out_htex(repeat: int, scratch: Path) -> Row:
    config = scratch / "htex2-fan.toml"
    config.write_text(HTEX2.format(workers=2, provider="LocalProvider", extra=""))
    env = _isolated(scratch)
    args = ("2000",)

    def one(mode: str) -> float:
        return python(children.FAN_OUT_HTEX, *args, mode, str(config), env=env)["seconds"]

    ours, raw = medians(lambda: one("q2pconf"), lambda: one("raw"), repeat)
    return Row("2000 trivial steps on 2 HTEX workers: @parallel_pipeline vs raw python_app",
               ours, raw, "s", "<= 1.10", "both HTEX already started")


def htex_first(repeat: int, scratch: Path) -> Row:
    env = _isolated(scratch)
    parsl = [sys.executable, "-c", "import parsl"]
    runs = [(python(children.HTEX_FIRST, env=env), wall(parsl, {**os.environ, **env}))
            for _ in range(repeat)]
    first = statistics.median(r[0]["first"] for r in runs)
    marks = {name: statistics.median(r[0]["marks"][name] for r in runs)
             for name in runs[0][0]["marks"]}
    split = ", ".join(f"{name} {value:.2f}" for name, value in marks.items())
    return Row("first HTEX result, vendored default, from the pipeline call (Parsl imported) "
               "vs python -c 'import parsl'", first, statistics.median(r[1] for r in runs), "s",
               "<= 3.00", f"seconds from the call: {split}")


def sleeps(repeat: int) -> Row:
    ours = statistics.median(python(children.SLEEPS, "8", "0.5")["seconds"]
                             for _ in range(repeat))
    return Row("8 x 0.5 s sleep steps (8 threads) vs ideal 0.5 s", ours, 0.5, "s", "<= 1.10")


def first_result(repeat: int, scratch: Path) -> Row:
    env = _isolated(scratch)
    ours, raw = medians(lambda: python(children.FIRST_RESULT, "q2pconf", env=env)["seconds"],
                        lambda: python(children.FIRST_RESULT, "raw", env=env)["seconds"], repeat)
    return Row("threads-only first result, vendored default: lazy vs eager load", ours, raw,
               "s", "<= 0.30", "eager = parsl.load of every executor, as QIIME 2 does; "
               "both import Parsl (~0.3 s)")


def cpu(repeat: int, scratch: Path) -> Row:
    config = scratch / "htex2.toml"
    config.write_text(HTEX2.format(workers=2, provider="LocalProvider", extra=""))
    args = ("8", "15000000")
    ours, serial = medians(
        lambda: python(children.CPU, *args, "parallel", str(config))["seconds"],
        lambda: python(children.CPU, *args, "serial")["seconds"], repeat)
    return Row("CPU-bound steps: serial vs 2 HTEX workers (speed-up)", serial, ours, "s",
               ">= 1.70", "HTEX already started; 8 steps")


def import_cost(repeat: int, scratch: Path) -> list[Row]:
    """Start-up, measured with q2pconf installed (`pip install .` into a fresh virtualenv),
    as users run it: the development venv's editable install adds a finder that imports
    pathlib and re as the interpreter starts, which `python -c pass` would pay too."""
    bin_dir = _installed(scratch)
    python, env = str(bin_dir / "python"), {**os.environ, **_isolated(scratch)}
    find = [python, "-c", "import q2pconf, sys; q2pconf.load(); "
            "assert 'parsl' not in sys.modules"]
    bare = [python, "-c", "pass"]
    parsl = [python, "-c", "import parsl"]
    ours, base = medians(lambda: wall(find, env), lambda: wall(bare, env), repeat * 3)
    heavy = statistics.median(wall(parsl, env) for _ in range(repeat * 3))
    config = scratch / "lookup.toml"
    config.write_text(HTEX2.format(workers=2, provider="LocalProvider", extra=""))
    info = [str(bin_dir / "q2pconf"), "info", "--json", "--parallel-config", str(config)]
    wall(info, env)  # the first run reads Parsl's source and caches what it found
    looked, base2 = medians(lambda: wall(info, env), lambda: wall(bare, env), repeat * 3)
    in_cpu = medians(lambda: cpu_time(info, env), lambda: cpu_time(parsl, env), repeat * 3)
    return [Row("import q2pconf + find config vs python -c pass", ours, base, "s",
                "(see vs parsl)", "whole processes; q2pconf installed by pip into a fresh venv"),
            Row("import q2pconf + find config vs python -c 'import parsl'", ours, heavy, "s",
                "<= 0.15"),
            Row("q2pconf info --json (HTEX + provider config) vs python -c pass", looked, base2,
                "s", "(see vs parsl)", "whole processes; Parsl's catalog cached"),
            Row("q2pconf info --json vs python -c 'import parsl'", looked, heavy, "s",
                "<= 0.15", f"in CPU time {in_cpu[0] / in_cpu[1]:.2f}; QIIME 2 pays 1.00 "
                "(it imports Parsl)")]


def _installed(scratch: Path) -> Path:
    """The bin/ of a fresh virtualenv holding q2pconf as `pip install .` installs it."""
    venv = scratch / "installed"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(ROOT)],
                   check=True, timeout=1800, capture_output=True)
    return venv / "bin"


def back_to_back(repeat: int, scratch: Path) -> list[Row]:
    """200 calls of a one-step pipeline whose config the lookup finds (the vendored default,
    an hour old, as a user's file is), against raw Parsl; what the lookup costs each call;
    and the modules that importing the decorators loads, against all of q2pconf's."""
    from q2pconf.config._templates import vendored_toml

    config = scratch / "vendored.toml"
    config.write_text(vendored_toml(config))
    hour_ago = time.time() - 3600
    os.utime(config, (hour_ago, hour_ago))
    env = {**_isolated(scratch), "QIIME2_CONFIG": str(config)}
    ours, raw = medians(
        lambda: python(children.BACK_TO_BACK, "200", "q2pconf", env=env)["seconds"],
        lambda: python(children.BACK_TO_BACK, "200", "raw", env=env)["seconds"], repeat)
    lookup = python(children.LOOKUP, "200", env=env)
    loaded = python(children.DECORATOR_IMPORT, env=env)
    package = len(list((ROOT / "q2pconf").rglob("*.py")))  # every module, packages too
    return [Row("200 back-to-back calls of a one-step pipeline (vendored default found by the "
                "lookup) vs raw Parsl app + result", ours, raw, "s", "cost of a pipeline call",
                "threads; each call: lookup, session reused, trace files and run.json written"),
            Row("lookup of an unchanged config per pipeline call: reused vs read and checked "
                "again", lookup["load_current"] * 1e3, lookup["load"] * 1e3, "ms", "<= 0.25",
                "load_current vs load on the vendored default (HTEX + LocalProvider)"),
            Row("modules loaded by `from q2pconf import parallel_pipeline, step` vs all of "
                "q2pconf's", loaded["modules"], package, "modules", "no validator",
                f"validator modules loaded: {', '.join(loaded['validator']) or 'none'}; "
                f"Parsl imported: {'yes' if loaded['parsl'] else 'no'}")]


def activation(repeat: int, scratch: Path) -> Row:
    prefix = scratch / "env with space"
    (prefix / "etc").mkdir(parents=True, exist_ok=True)
    (prefix / "etc" / "qiime2_config.toml").write_text("# present\n")
    empty = scratch / "empty.sh"
    empty.write_text("")
    script = ROOT / "etc" / "conda" / "activate.d" / "q2pconf.sh"
    env = {"PATH": os.environ["PATH"], "CONDA_PREFIX": str(prefix)}
    loop = 'for i in $(seq 200); do . "$1"; done'
    ours, base = medians(lambda: wall(["bash", "-c", loop, "bash", str(script)], env),
                         lambda: wall(["bash", "-c", loop, "bash", str(empty)], env), repeat)
    return Row("activation script x200, config present, vs empty script", ours, base, "s",
               "no interpreter", f"{(ours - base) / 200 * 1e6:.0f} us per activation")


def memory(scratch: Path) -> list[Row]:
    rows = []
    for n, shape, what in ((10_000, "fan-out", "trivial steps"),
                           (100_000, "fan-out", "trivial steps"),
                           (50_000, "fan-in", "trivial steps and one step taking them all")):
        result = python(children.MEMORY, str(n), shape, timeout=1800)
        rows.append(Row(f"{n:,} {what}: peak RSS growth per step", result["kib_per_step"],
                        1.0, "KiB", "<= 1.00", f"peak {result['peak_mib']:.0f} MiB"))
    return rows


def report(repeat: int) -> list[Row]:
    """`q2pconf report` of a 10,000- and a 100,000-step run (written by the trace's own writer,
    tests/synthetic_runs.py): its size against the 20 MB budget (2 MB at 10,000) and its time
    to open in headless Chromium (the load event, scripts run) against the 5 s budget."""
    rows = []
    for n, budget in ((10_000, 2.0), (100_000, 20.0)):
        result = python(children.REPORT, str(n), str(ROOT / "tests"), str(repeat), timeout=1800)
        rows.append(Row(f"report of {n:,} steps: size vs budget", result["mb"], budget, "MB",
                        "<= 1.00", f"written in {result['written']:.1f} s"))
        rows.append(Row(f"report of {n:,} steps: opened in headless Chromium vs 5 s",
                        result["seconds"], 5.0, "s", "<= 1.00"))
    return rows


def tune(repeat: int) -> Row:
    """`q2pconf tune` of a 100,000-step run (tests/synthetic_runs.py): reading it, replaying it
    for its own config, for each size tried and for the what-if table, against a 10 s budget."""
    result = python(children.TUNE, "100000", str(ROOT / "tests"), str(repeat), timeout=1800)
    return Row("tune of a 100,000-step run vs 10 s", result["seconds"], 10.0, "s", "<= 1.00",
               f"predicted {result['predicted']:.0f} s of its measured {result['measured']:.0f} s")


def slurm(repeat: int, scratch: Path) -> list[Row]:
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import slurm_cluster
    except ImportError as error:
        return [Row(f"16-step fan-out on Slurm: skipped ({error})", float("nan"), 1, "s", "-")]
    local = scratch / "local.toml"
    local.write_text(HTEX2.format(workers=4, provider="LocalProvider", extra=""))
    remote = scratch / "slurm.toml"
    remote.write_text(HTEX2.format(workers=4, provider="SlurmProvider",
                                   extra='partition = "debug"\nwalltime = "00:10:00"\n'
                                         'nodes_per_block = 1\n'))
    cluster, why = _started(
        lambda: slurm_cluster.start(Path(tempfile.mkdtemp(prefix="q2p-bench-slurm-"))))
    if cluster is None:  # no Slurm here: say so in the table
        return [Row(f"16-step fan-out on Slurm: skipped ({why})", float("nan"), 1, "s", "-")]
    try:
        env = {**_isolated(scratch), **cluster.env}
        runs = [(python(children.NAPS, str(remote), "16", env=env),
                 python(children.NAPS, str(local), "16", env=env)) for _ in range(repeat)]
    finally:
        slurm_cluster.stop(cluster)
    first = [statistics.median(r[i]["first"] for r in runs) for i in (0, 1)]
    total = [statistics.median(r[i]["total"] for r in runs) for i in (0, 1)]
    return [Row("16 x 0.2 s on HTEX: first result, Slurm vs local", first[0], first[1], "s",
                "cost of the batch system"),
            Row("16 x 0.2 s on HTEX: total, Slurm vs local", total[0], total[1], "s",
                "cost of the batch system")]


def multinode(repeat: int, scratch: Path) -> list[Row]:
    """32 x 0.2 s sleeps on one node against two nodes (one job each time) of the three-host
    Slurm cluster in network namespaces the tests use (needs root)."""
    sys.path.insert(0, str(ROOT / "tests"))
    cluster, why = _started(lambda: __import__("slurm_cluster").start_multinode())
    if cluster is None:
        return [Row(f"32-step fan-out on 2 Slurm nodes: skipped ({why})", float("nan"), 1,
                    "s", "-")]
    import slurm_cluster

    env = {**_isolated(scratch), **cluster.env}

    def on(nodes: int) -> dict[str, float]:
        slurm_cluster.settle(cluster)  # the last job's nodes are free again
        return python(children.NAPS, str(_nodes_config(scratch, nodes)), "32", env=env,
                      where=lambda argv: cluster.command(*argv))
    try:
        runs = [(on(1), on(2)) for _ in range(repeat)]
    finally:
        slurm_cluster.drain(cluster)
        slurm_cluster.stop(cluster)
        shutil.rmtree(cluster.dir, ignore_errors=True)
    first = [statistics.median(r[i]["first"] for r in runs) for i in (0, 1)]
    total = [statistics.median(r[i]["total"] for r in runs) for i in (0, 1)]
    note = f"{slurm_cluster.node_cpus()} workers per node; one job"
    return [Row("32 x 0.2 s on Slurm: total, 1 node vs 2 nodes (speed-up)", total[0], total[1],
                "s", ">= 1.5", note),
            Row("32 x 0.2 s on Slurm: first result, 2 nodes vs 1 node", first[1], first[0],
                "s", "~ 1", "what a job on two nodes costs before its first result")]


def _nodes_config(scratch: Path, nodes: int) -> Path:
    """One HTEX block of `nodes` nodes on the namespace cluster, a worker per core."""
    from slurm_cluster import CONTROLLER_IP, node_cpus

    path = scratch / f"nodes{nodes}.toml"
    text = HTEX2.format(workers=node_cpus(), provider="SlurmProvider",
                        extra=f'walltime = "00:10:00"\nnodes_per_block = {nodes}\n'
                              f"exclusive = false\ncores_per_node = {node_cpus()}\n"
                              '[parsl.executors.provider.launcher]\nclass = "SrunLauncher"\n')
    path.write_text(text.replace('label = "htex"\n',
                                 f'label = "htex"\naddress = "{CONTROLLER_IP}"\n'))
    return path


def _started(start: Callable[[], Any]) -> tuple[Any, str | None]:
    """A test cluster `start` made, or None and why not (no Slurm here, not root, ...)."""
    try:
        return start(), None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # the cluster module fails through pytest.fail
        text = str(error).strip().splitlines()
        return None, text[0] if text else type(error).__name__


def _isolated(scratch: Path) -> dict[str, str]:
    """No user, site or conda config: every run sees the in-memory vendored default."""
    home = scratch / "home"
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CONFIG_DIRS": str(scratch / "xdg"), "XDG_CACHE_HOME": str(home / ".cache"),
            "CONDA_PREFIX": "", "QIIME2_CONFIG": ""}


def table(rows: list[Row]) -> str:
    lines = ["| benchmark | q2pconf | baseline | ratio | goal | note |",
             "|---|---:|---:|---:|---|---|"]
    for row in rows:
        lines.append(f"| {row.name} | {row.ours:.4g} {row.unit} | {row.baseline:.4g} "
                     f"{row.unit} | {row.ratio:.2f} | {row.goal} | {row.note} |")
    return "\n".join(lines)


def machine() -> str:
    return (f"{platform.node() or 'host'}: {os.cpu_count()} CPUs, {platform.platform()}, "
            f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")


GROUPS = ["fan_out", "tracing", "fan_out_htex", "htex_first", "sleeps", "first_result", "cpu",
          "import_cost", "back_to_back", "activation", "memory", "report", "tune", "demo", "slurm",
          "multinode"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (median; 3)")
    parser.add_argument("--write", action="store_true", help="update benchmarks/README.md")
    parser.add_argument("--no-slurm", action="store_true", help="skip the Slurm rows")
    parser.add_argument("--only", metavar="NAME", action="append", default=[],
                        help="run only this group of rows (repeatable): " + ", ".join(GROUPS))
    args = parser.parse_args()
    if unknown := sorted(set(args.only) - set(GROUPS)):
        parser.error(f"unknown --only {', '.join(unknown)}: choose from {', '.join(GROUPS)}")
    if args.only and args.write:
        parser.error("--write replaces the whole table: run every row (no --only)")
    with tempfile.TemporaryDirectory(prefix="q2pconf-bench-") as name:
        scratch = Path(name)
        os.chdir(scratch)  # children run here: raw Parsl baselines write ./runinfo
        groups: dict[str, Callable[[], Row | list[Row]]] = {
            "fan_out": lambda: fan_out(args.repeat), "tracing": lambda: tracing(args.repeat),
            "fan_out_htex": lambda: fan_out_htex(args.repeat, scratch),
            "htex_first": lambda: htex_first(args.repeat, scratch),
            "sleeps": lambda: sleeps(args.repeat),
            "first_result": lambda: first_result(args.repeat, scratch),
            "cpu": lambda: cpu(args.repeat, scratch),
            "import_cost": lambda: import_cost(args.repeat, scratch),
            "back_to_back": lambda: back_to_back(args.repeat, scratch),
            "activation": lambda: activation(args.repeat, scratch),
            "memory": lambda: memory(scratch), "report": lambda: report(args.repeat),
            "tune": lambda: [tune(args.repeat)],
            "demo": lambda: demo(args.repeat, scratch),
            "slurm": lambda: slurm(args.repeat, scratch),
            "multinode": lambda: multinode(args.repeat, scratch)}
        assert list(groups) == GROUPS
        chosen = args.only or [g for g in GROUPS
                               if not (args.no_slurm and g in ("slurm", "multinode"))]
        steps = [groups[name] for name in chosen]
        rows: list[Row] = []
        for run in steps:
            result = run()
            for row in result if isinstance(result, list) else [result]:
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)
    text = table(rows)
    print(f"\n{machine()}\n\n{text}")
    if args.write:
        _write(text)


def _write(text: str) -> None:
    readme = Path(__file__).with_name("README.md")
    marker = "<!-- table -->"
    head = readme.read_text().split(marker)[0] if readme.exists() else ""
    readme.write_text(f"{head}{marker}\nLatest run on {machine()}:\n\n{text}\n")


if __name__ == "__main__":
    main()
