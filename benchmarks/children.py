"""Code the benchmarks run in fresh child processes; each prints one JSON line of numbers."""
from __future__ import annotations

FAN_OUT = """
import json, sys, time
n, mode, threads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
from parsl.config import Config
from parsl.executors import ThreadPoolExecutor
import q2pconf
from q2pconf import parallel_pipeline, step

def trivial(i):
    return i

if mode == "q2pconf":
    config = Config(executors=[ThreadPoolExecutor(label="default", max_threads=threads)])
    work = step(trivial)

    @parallel_pipeline
    def run(n):
        return [work(i) for i in range(n)]

    with q2pconf.ParallelConfig(config):
        run(1)  # the session and its pool are up: measure the steps only
        began = time.perf_counter()
        assert sum(run(n)) == n * (n - 1) // 2
else:
    import parsl
    from parsl.dataflow.dependency_resolvers import DEEP_DEPENDENCY_RESOLVER
    parsl.load(Config(executors=[ThreadPoolExecutor(label="default", max_threads=threads)],
                      dependency_resolver=DEEP_DEPENDENCY_RESOLVER))
    app = parsl.python_app(trivial)
    app(0).result()
    began = time.perf_counter()
    assert sum(f.result() for f in [app(i) for i in range(n)]) == n * (n - 1) // 2
print(json.dumps({"seconds": time.perf_counter() - began}))
"""

SLEEPS = """
import json, sys, time
from parsl.config import Config
from parsl.executors import ThreadPoolExecutor
import q2pconf
from q2pconf import parallel_pipeline, step

@step
def nap(seconds):
    time.sleep(seconds)

@parallel_pipeline
def run(n, seconds):
    return [nap(seconds) for _ in range(n)]

n, seconds = int(sys.argv[1]), float(sys.argv[2])
with q2pconf.ParallelConfig(Config(executors=[ThreadPoolExecutor(label="default",
                                                                 max_threads=n)])):
    run(1, 0)
    began = time.perf_counter()
    run(n, seconds)
print(json.dumps({"seconds": time.perf_counter() - began}))
"""

# Time to the first result of a threads-only pipeline, counted from the first line of the
# program (interpreter start-up excluded), on the vendored default that also defines an HTEX.
FIRST_RESULT = """
import time
began = time.perf_counter()
import json, sys
if sys.argv[1] == "q2pconf":
    from q2pconf import parallel_pipeline, step

    @step
    def one():
        return 1

    @parallel_pipeline
    def run():
        return one()

    assert run() == 1
    print(json.dumps({"seconds": time.perf_counter() - began}))
else:  # what a QIIME 2-style loader does: build and load every executor, then run
    import parsl
    import q2pconf
    dfk = parsl.load(q2pconf.load().parsl_config())
    assert parsl.python_app(lambda: 1, executors=["default"])().result() == 1
    print(json.dumps({"seconds": time.perf_counter() - began}))
    dfk.cleanup()
"""

CPU = """
import json, sys, time
import q2pconf
from q2pconf import parallel_pipeline, step

@step(executor="htex")
def burn(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

@parallel_pipeline
def run(k, n):
    return [burn(n) for _ in range(k)]

k, n, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if mode == "serial":
    began = time.perf_counter()
    run.serial(k, n)
else:
    config = sys.argv[4]
    with q2pconf.ParallelConfig(config):
        cold = time.perf_counter()
        run(1, 1)  # start the HTEX and its workers
        began = time.perf_counter()
        run(k, n)
print(json.dumps({"seconds": time.perf_counter() - began}))
"""

MEMORY = """
import json, resource, sys
from parsl.config import Config
from parsl.executors import ThreadPoolExecutor
import q2pconf
from q2pconf import parallel_pipeline, step

@step
def work(i):
    return i

@step
def merge(values):
    return values

@parallel_pipeline
def run(n, fan_in):
    futures = [work(i) for i in range(n)]
    return merge(futures) if fan_in else futures  # fan_in: one step takes every future

n, fan_in = int(sys.argv[1]), sys.argv[2] == "fan-in"
with q2pconf.ParallelConfig(Config(executors=[ThreadPoolExecutor(label="default",
                                                                 max_threads=2)])):
    run(10, fan_in)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert run(n, fan_in) == list(range(n))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"kib_per_step": (after - before) / n, "peak_mib": after / 1024}))
"""

NAPS = """
import json, sys, time
began = time.time()
import q2pconf
from q2pconf import parallel_pipeline, step

@step(executor="htex")
def nap(i):
    time.sleep(0.2)
    return time.time()

@parallel_pipeline
def run(n):
    return [nap(i) for i in range(n)]

with q2pconf.ParallelConfig(sys.argv[1]):
    ends = run(int(sys.argv[2]))
print(json.dumps({"first": min(ends) - began, "total": time.time() - began}))
"""

# 2000 trivial steps on a started 2-worker HTEX: @parallel_pipeline against raw python_app.
FAN_OUT_HTEX = """
import json, sys, time
n, mode, config = int(sys.argv[1]), sys.argv[2], sys.argv[3]
import q2pconf
from q2pconf import parallel_pipeline
from benchmarks import steps

if mode == "q2pconf":
    @parallel_pipeline
    def run(n):
        return [steps.trivial_htex(i) for i in range(n)]

    with q2pconf.ParallelConfig(config):
        run(4)  # the HTEX and its workers are up: measure the steps only
        began = time.perf_counter()
        assert sum(run(n)) == n * (n - 1) // 2
        seconds = time.perf_counter() - began
else:
    import parsl
    dfk = parsl.load(q2pconf.load(config).parsl_config())
    app = parsl.python_app(steps.plain, executors=["htex"])
    [f.result() for f in [app(i) for i in range(4)]]
    began = time.perf_counter()
    assert sum(f.result() for f in [app(i) for i in range(n)]) == n * (n - 1) // 2
    seconds = time.perf_counter() - began
    dfk.cleanup()
print(json.dumps({"seconds": seconds}))
"""

# The first result of one HTEX step on the vendored default, counted from the pipeline call
# with Parsl already imported; the split comes from the time stamps in Parsl's own logs.
HTEX_FIRST = """
import glob, json, os, sys, time
import parsl
from q2pconf import parallel_pipeline
from q2pconf.pipeline import _session as session
from benchmarks import steps

@parallel_pipeline
def run():
    return steps.trivial_htex(1)

began = time.time()
assert run() == 1
first = time.time() - began
run_dir = session.session().dfk.run_dir
session.close()

def stamp(pattern, text):
    for path in sorted(glob.glob(os.path.join(run_dir, pattern), recursive=True)):
        for line in open(path, errors="replace"):
            if text in line:
                try:
                    return float(line.split()[0]) - began
                except ValueError:
                    pass
    return float("nan")

marks = {"interchange up": stamp("htex/interchange.log", "Bound to port"),
         "block launched": stamp("parsl.log", "Scaling out by"),
         "pool imported": stamp("htex/block-*/*/manager.log", "Manager initializing"),
         "workers forked": stamp("htex/block-*/*/manager.log", "Manager threads started"),
         "registered": stamp("htex/interchange.log", "Registered manager")}
print(json.dumps({"first": first, "marks": marks}))
"""

# The same 2000 steps with the trace on and off, alternately in one process (Q2PCONF_TRACE is
# read at each pipeline call), so a load that changes over time weighs on both alike.
TRACING = """
import json, os, statistics, sys, time
from parsl.config import Config
from parsl.executors import ThreadPoolExecutor
import q2pconf
from q2pconf import parallel_pipeline, step

n, rounds = int(sys.argv[1]), int(sys.argv[2])
work = step(lambda i: i)

@parallel_pipeline
def run(n):
    return [work(i) for i in range(n)]

times = {"1": [], "0": []}
with q2pconf.ParallelConfig(Config(executors=[ThreadPoolExecutor(label="default",
                                                                 max_threads=2)])):
    run(10)
    for index in range(rounds):
        for mode in ("1", "0") if index % 2 else ("0", "1"):
            os.environ["Q2PCONF_TRACE"] = mode
            began = time.perf_counter()
            assert sum(run(n)) == n * (n - 1) // 2
            times[mode].append(time.perf_counter() - began)
print(json.dumps({"on": statistics.median(times["1"]), "off": statistics.median(times["0"])}))
"""

# Back-to-back calls of a one-step pipeline through the lookup ($QIIME2_CONFIG names a
# threads-only file), against raw Parsl submitting one app and waiting for it as often; the
# first call of each starts its DataFlowKernel and is not counted.
BACK_TO_BACK = """
import json, sys, time
n, mode = int(sys.argv[1]), sys.argv[2]

def one(i):
    return i

if mode == "q2pconf":
    from q2pconf import parallel_pipeline, step
    work = step(one)

    @parallel_pipeline
    def call(i):
        return work(i)
else:
    import parsl
    from parsl.config import Config
    from parsl.executors import ThreadPoolExecutor
    parsl.load(Config(executors=[ThreadPoolExecutor(label="default", max_threads=2)]))
    app = parsl.python_app(one)

    def call(i):
        return app(i).result()
assert call(-1) == -1
began = time.perf_counter()
for i in range(n):
    assert call(i) == i
print(json.dumps({"seconds": time.perf_counter() - began}))
"""

# The modules `from q2pconf import parallel_pipeline, step` loads, and whether any of them is
# the validator's (checking a config, reading Parsl's signatures).
DECORATOR_IMPORT = """
import json, sys
before = set(sys.modules)
from q2pconf import parallel_pipeline, step
ours = sorted(m for m in set(sys.modules) - before if m.split(".")[0] == "q2pconf")
validator = {"q2pconf.config._validate", "q2pconf.config._limits",
             "q2pconf._catalog.accepted", "q2pconf._catalog.source"}
print(json.dumps({"modules": len(ours), "validator": sorted(validator & set(ours)),
                  "parsl": any(m.split(".")[0] == "parsl" for m in sys.modules)}))
"""

# What the lookup costs a pipeline call on an unchanged config: the session's `load_current`
# (the file's stamp, then its checked plan reused) against `load` (read and checked again).
LOOKUP = """
import json, sys, time
from q2pconf.config import _settings as config
n, times = int(sys.argv[1]), {}
for name in ("load_current", "load") * 3:
    lookup = getattr(config, name)
    lookup()
    began = time.perf_counter()
    for _ in range(n):
        lookup()
    times[name] = min(times.get(name, 1e9), (time.perf_counter() - began) / n)
print(json.dumps(times))
"""

REPORT = """
import json, shutil, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])  # the tests: the synthetic run and the DevTools driver
from devtools import Browser
from synthetic_runs import write_run
from q2pconf._observe.report import write_report
n, repeat = int(sys.argv[1]), int(sys.argv[3])
with tempfile.TemporaryDirectory() as scratch:
    began = time.perf_counter()
    report = write_report(write_run(Path(scratch), n))
    written = time.perf_counter() - began
    times = []
    for attempt in range(repeat):
        browser = Browser(shutil.which("chromium"), Path(scratch, f"profile{attempt}"), 120)
        try:
            began = time.perf_counter()
            session = browser.open(report.as_uri())  # returns at the load event: scripts ran
            times.append(time.perf_counter() - began)
            drawn = browser.evaluate(session, "[document.getElementById('task-scroll')"
                                     ".dataset.shown, JSON.parse(document.getElementById("
                                     "'task-data').textContent).rows.length]")
            assert int(drawn[0]) == drawn[1] > n, drawn  # the table holds every attempt
        finally:
            browser.close()
    times.sort()
    print(json.dumps({"mb": report.stat().st_size / 1e6, "seconds": times[len(times) // 2],
                      "written": written}))
"""

TUNE = """
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])  # the tests: the synthetic run
from synthetic_runs import write_run
from q2pconf._observe.runfiles import read
from q2pconf._observe.tune import tune
n, repeat = int(sys.argv[1]), int(sys.argv[3])
with tempfile.TemporaryDirectory() as scratch:
    path = write_run(Path(scratch), n)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        found = tune([read(path)])
        times.append(time.perf_counter() - began)
    times.sort()
    print(json.dumps({"seconds": times[len(times) // 2], "predicted": found.current_s,
                      "measured": found.measured_s}))
"""
