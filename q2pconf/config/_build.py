"""Turn a checked plan into Parsl objects. The only module that imports Parsl for a config."""
from __future__ import annotations

import importlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from q2pconf._catalog.accepted import NAMESPACES
from q2pconf.config import _local_limits as local_limits
from q2pconf._base.paths import inside, runinfo_root
from q2pconf.config._plan import ObjectSpec, Plan
from q2pconf._base.errors import ConfigError, no_such_executor
from q2pconf._parsl import load as parsl_import  # noqa: F401 - imports Parsl as q2pconf does

HTEX_MODULE = "parsl.executors.high_throughput"
IDLE_LABEL = "_q2pconf_idle"
# On this host q2pconf._parsl.guard notices a dead interchange, pool or program in seconds through
# their processes, so the heartbeat threshold only ends a part that is alive but silent: long,
# because a paused run (Ctrl-Z, a laptop's sleep) is silent too and must carry on when resumed.
LOCAL_HTEX = {"address": "127.0.0.1", "heartbeat_period": 2, "heartbeat_threshold": 86400}
GUARD = [sys.executable, "-m", "q2pconf._parsl.guard"]


def default_run_dir() -> str:
    """A fresh directory per process under `runinfo_root`, so runs never race on numbering. Only a
    name: `q2pconf._base.rundir.prepare` creates it (private), or falls back when it cannot."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return str(Path(runinfo_root(), f"{stamp}-{os.getpid()}"))


def parsl_config(plan: Plan, labels: Iterable[str] | None = None, **defaults: Any) -> Any:
    """A `parsl.Config` with the executors named by `labels` (all when None; an idle
    placeholder when empty).

    `defaults` are Config keywords used unless the file sets the same key.
    """
    from parsl.config import Config

    chosen = list(plan.executors) if labels is None else list(labels)
    kwargs: dict[str, Any] = dict(defaults)
    if "run_dir" not in plan.options:
        kwargs.setdefault("run_dir", default_run_dir())
    kwargs.update({k: build(plan.file, v) for k, v in plan.options.items()})
    kwargs["executors"] = [executor(plan, label) for label in chosen] or [_idle_executor()]
    return follow_nested_futures(_construct(plan.file, "parsl", Config, kwargs))


def follow_nested_futures(config: Any) -> Any:
    """Let steps take futures nested inside lists, tuples, sets, frozensets and dicts (the
    rule is q2pconf._base.nested's): Parsl's default resolver only waits for futures passed
    directly. Keeps a resolver the caller chose itself."""
    if config.dependency_resolver is None:
        from q2pconf._base import nested

        config.dependency_resolver = nested.resolver()
    return config


def checkpointing(files: list[str]) -> dict[str, Any]:
    """Config keywords that checkpoint every task as it ends and read `files`, in the form the
    installed Parsl takes: a BasicMemoizer object today, plain Config keys before (2024.12)."""
    from q2pconf._catalog import accepted as catalog

    if "memoizer" not in catalog.parameters("config", "Config"):
        return {"checkpoint_mode": "task_exit", "checkpoint_files": files}
    from parsl.dataflow.memoization import BasicMemoizer

    return {"memoizer": BasicMemoizer(checkpoint_mode="task_exit", checkpoint_files=files)}


def _idle_executor() -> Any:
    """A thread pool that never gets a task: Parsl needs one executor to load, and executors
    added later (`dfk.add_executors`) then start only when a step needs them."""
    from parsl.executors import ThreadPoolExecutor

    return ThreadPoolExecutor(label=IDLE_LABEL, max_threads=1)


def executor(plan: Plan, label: str) -> Any:
    """A new, unstarted executor for `label`."""
    obj = plan.executors.get(label)
    if obj is None:
        raise no_such_executor(plan.file, "parsl.executors", label, plan.executors)
    return build(plan.file, _runnable_here(obj))


def build(file: str, value: Any) -> Any:
    """Build an `ObjectSpec` (recursively); other values pass through."""
    if isinstance(value, list):
        return [build(file, item) for item in value]
    if not isinstance(value, ObjectSpec):
        return value
    module = importlib.import_module(_module_of(value))
    target = getattr(module, value.cls)
    kwargs = {k: build(file, v) for k, v in value.kwargs.items()}
    return _construct(file, value.key, target, kwargs)


def _module_of(obj: ObjectSpec) -> str:
    from q2pconf._catalog import accepted as catalog

    return catalog.names(obj.kind).get(obj.cls, NAMESPACES[obj.kind])


def _construct(file: str, key: str, target: Any, kwargs: dict[str, Any]) -> Any:
    name = getattr(target, "__name__", str(target))
    try:
        return target(**kwargs)
    except subprocess.TimeoutExpired as error:  # a provider asked the scheduler at once
        raise ConfigError(file, key, f"{name} could not run `{_command(error.cmd)}`: no answer "
                          f"within {error.timeout:g} s",
                          "check that the batch system's commands work in this shell (Slurm: "
                          "sinfo, SLURM_CONF, munged); a slow scheduler needs a larger "
                          "cmd_timeout on the provider") from None
    except Exception as error:  # Parsl's own checks (typeguard, ValueError, ...) said no
        raise ConfigError(file, key, f"Parsl refused this {name}: {_first_line(error)}",
                          "compare the keys with Parsl's documentation of "
                          f"{name}, or run q2pconf check on the file") from None


def _command(cmd: Any) -> str:
    return cmd if isinstance(cmd, str) else " ".join(map(str, cmd))


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _runnable_here(obj: ObjectSpec) -> ObjectSpec:
    """HTEX launched with this interpreter (works un-activated) and, locally, on loopback."""
    if obj.kind != "executors" or not obj.cls.endswith(("HighThroughputExecutor", "MPIExecutor")):
        return obj
    kwargs = dict(obj.kwargs)
    provider = kwargs.get("provider")
    local = local_limits.local(kwargs)  # its workers run on this machine
    if not kwargs.get("launch_cmd"):  # the user's own command runs as written (docs: architecture);
        kwargs["launch_cmd"] = _worker_launch_cmd(local)  # Parsl reads "" as its default
    interchange = (kwargs.get("interchange_launch_cmd")
                   or [sys.executable, "-m", "q2pconf._parsl.typecache",
                       f"{HTEX_MODULE}.interchange"])
    if isinstance(interchange, list):  # it runs here, where the guard surely runs too
        kwargs["interchange_launch_cmd"] = [*GUARD, "interchange", "--", *interchange]
    if provider is None:
        provider = ObjectSpec("provider", "LocalProvider", {}, f"{obj.key}.provider")
    if isinstance(provider, ObjectSpec):
        kwargs["provider"] = _with_python_path(provider)
        if local:
            # No probing of the host's interfaces; a dead worker reported in seconds, not 30 s.
            for option, value in LOCAL_HTEX.items():
                kwargs.setdefault(option, value)
    return ObjectSpec(obj.kind, obj.cls, kwargs, obj.key)


def _with_python_path(provider: ObjectSpec) -> ObjectSpec:
    """Workers import what this program imports: its script directory and sys.path additions
    (on a cluster, the same paths on a shared file system)."""
    interpreter = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
    extra = [os.path.abspath(p or ".") for p in sys.path
             if not any(inside(os.path.realpath(p or "."), base) for base in interpreter)]
    extra = [p for p in dict.fromkeys(extra) if os.path.isdir(p)]
    if not extra:
        return provider
    export = (f"export PYTHONPATH={shlex.quote(os.pathsep.join(extra))}"
              '${PYTHONPATH:+:$PYTHONPATH}')
    kwargs = dict(provider.kwargs)
    kwargs["worker_init"] = "\n".join(filter(None, (export, kwargs.get("worker_init"))))
    return ObjectSpec(provider.kind, provider.cls, kwargs, provider.key)


def _worker_launch_cmd(local: bool = False) -> str:
    """Parsl's worker pool command, run by this interpreter under q2pconf._parsl.guard; a `local`
    pool (on this host) also ends with this program, within the guard's poll."""
    from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

    program, _, rest = DEFAULT_LAUNCH_CMD.partition(" ")
    if program != "process_worker_pool.py":
        return DEFAULT_LAUNCH_CMD  # a Parsl we do not know: keep its own command
    # Parsl's pool (its workers forked from a warm server: q2pconf._parsl.pool), under the guard
    pool = f"{shlex.quote(sys.executable)} -m q2pconf._parsl.pool {HTEX_MODULE}.process_worker_pool"
    guard = " ".join(map(shlex.quote, GUARD))
    if local:
        from q2pconf._parsl.guard import process_id

        guard += f" --program {process_id(os.getpid())}"
    return f"{guard} pool -- {pool} {rest}"
