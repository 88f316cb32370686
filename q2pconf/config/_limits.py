"""Values of the right type that can still never run a step, refused before anything starts.

Parsl takes `max_threads = 0`, `max_blocks = 0`, a negative worker count or `init_blocks = 0`
under strategy "none" by type, then fails deep inside (a ValueError at start, an atexit
traceback) or waits for ever. Each rule names a keyword Parsl's executors, providers or Config
take (the same name means the same thing across Parsl's classes), the values that can work and
the fix. `q2pconf check` passing means the config can start.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable

from q2pconf._catalog import accepted as catalog
from q2pconf._catalog.kinds import NUMBER, default_value
from q2pconf.config import _local_limits as local_limits
from q2pconf.config._local_limits import LOOPBACK_NAMES
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from q2pconf._catalog.kinds import Param
    from q2pconf.config._plan import ObjectSpec, Report

# HH:MM:SS; compiled (~0.3 ms) by re.match only when a table sets a walltime
WALLTIME = r"(\d+):([0-5]?\d):([0-5]?\d)\Z"
CHECKPOINT_PERIOD = r"(\d+):(\d+):(\d+)\Z"  # what int() takes in each part
AFFINITIES = ("none", "block", "alternating", "block-reverse")
CPU_GROUP = r"\d+(-\d+)?(,\d+(-\d+)?)*\Z"  # one worker's CPUs: 0,2 or 0-3
# Values these rules accept, for fixes to suggest (q2pconf.config._fixes offers them too).
WORKING = {"worker_ports": [54000, 54001], "worker_port_range": [54000, 55000],
           "interchange_port_range": [54000, 55000], "hub_port_range": [54000, 55000]}


class Limit(NamedTuple):
    """Which values of one keyword can work (`works`), why others cannot, and the fix."""

    works: Callable[[Any], bool]
    problem: str
    fix: str


def number(value: Any) -> bool:
    """A TOML integer or float (booleans are ints to Python, not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(key: str, why: str, example: str = "1") -> Limit:
    return Limit(lambda v: v > 0, f"must be more than 0: {why}", f"write {key} = {example}")


def _whole(key: str, low: int, why: str, example: str) -> Limit:
    return Limit(lambda v: v >= low, f"must be at least {low}: {why}", f"write {key} = {example}")


LIMITS: dict[str, Limit] = {
    "max_threads": _whole("max_threads", 1, "no thread could ever run a step", "2"),
    "max_workers_per_node": _whole(
        "max_workers_per_node", 0, "a negative count starts no worker and the pipeline waits "
        "for ever", "4 (or 0, or no key, for one worker per core)"),
    "max_workers_per_block": _whole("max_workers_per_block", 1, "no worker would start", "1"),
    "cores_per_worker": _positive("cores_per_worker", "Parsl divides the node's cores by it",
                                  "1"),
    "mem_per_worker": _whole("mem_per_worker", 0, "memory cannot be negative", "4 (GB)"),
    "nodes_per_block": _whole("nodes_per_block", 1, "a block without nodes runs nothing", "1"),
    "cores_per_node": _whole("cores_per_node", 1, "a node without cores runs nothing", "8"),
    # 0 is Slurm's --mem=0: all of the node's memory
    "mem_per_node": _whole("mem_per_node", 0, "memory cannot be negative", "16 (GB)"),
    "init_blocks": _whole("init_blocks", 0, "a block count cannot be negative", "1"),
    "min_blocks": _whole("min_blocks", 0, "a block count cannot be negative", "0"),
    "max_blocks": _whole("max_blocks", 1, "with no block allowed, no worker ever starts and the "
                         "pipeline waits for ever", "1"),
    "parallelism": Limit(lambda v: 0 < v <= 1, "must be more than 0 and at most 1 (the share "
                         "of waiting steps Parsl starts blocks for): at 0 no block starts",
                         "write parallelism = 1"),
    "cmd_timeout": _positive("cmd_timeout", "every scheduler command would time out at once",
                             "30"),
    "heartbeat_period": _positive("heartbeat_period", "workers could not report", "30"),
    "heartbeat_threshold": _positive("heartbeat_threshold", "every worker would be declared "
                                     "lost at once", "120"),
    "poll_period": _positive("poll_period", "the interchange could not wait between polls",
                             "10"),
    "strategy_period": _positive("strategy_period", "Parsl's scaling loop would never pause",
                                 "5"),
    "prefetch_capacity": _whole("prefetch_capacity", 0, "a count cannot be negative", "0"),
    "worker_port": Limit(lambda v: 0 < v < 65536, "must be a TCP port, 1 to 65535",
                         "write worker_port = 54000, or remove it to let Parsl choose"),
    "internal_tasks_max_threads": _whole("internal_tasks_max_threads", 1,
                                         "Parsl's own thread pool would not start", "10"),
    "address_probe_timeout": _whole("address_probe_timeout", 0, "every worker would give "
                                    "up finding the interchange at once", "30"),
    "drain_period": _positive("drain_period", "workers would drain before taking a task",
                              "3600"),
    "max_idletime": _whole("max_idletime", 0, "a time cannot be negative", "120"),
    "cpus_per_node": _whole("cpus_per_node", 1, "a node without CPUs runs nothing", "8"),
    "gpus_per_node": _whole("gpus_per_node", 0, "a count cannot be negative", "1"),
    "cores_per_slot": _positive("cores_per_slot", "a slot without cores runs nothing", "1"),
    "mem_per_slot": _positive("mem_per_slot", "a slot without memory runs nothing", "4"),
    "init_cpu": _positive("init_cpu", "a pod without CPU runs nothing", "1"),
    "max_cpu": _positive("max_cpu", "a pod without CPU runs nothing", "2"),
    "status_batch_size": _whole("status_batch_size", 1, "no job's status could be asked",
                                "50"),
    "cmd_chunk_size": _whole("cmd_chunk_size", 1, "no job could be cancelled", "100"),
    "usage_tracking": Limit(lambda v: v in (0, 1, 2, 3), "must be a level from 0 to 3",
                            "write usage_tracking = 0 (off)"),
    "autolabel_window": _whole("autolabel_window", 1, "Work Queue labels a category after "
                               "that many steps", "1"),
    "scaling_cores_per_worker": _positive("scaling_cores_per_worker", "Parsl's scaling divides "
                                          "by it", "1"),
    "port": Limit(lambda v: 0 <= v < 65536, "must be a TCP port, 1 to 65535, or 0 for any free "
                  "one", "write port = 0 (any free port)"),
    "timeout": _positive("timeout", "the address lookup would give up at once", "30"),
}
# Every other number a Parsl class takes is a count, a size, a time or a bid: never negative
# (Parsl takes `retries = -1` by type and runs it as 0). `count_limit` gives that rule for any
# numeric keyword LIMITS does not name, so a keyword new in Parsl is covered too.
COUNT_PROBLEM = "a count, size or time Parsl takes cannot be negative"


def check(checker: Report, kwargs: dict[str, Any], key: str,
          params: dict[str, Param]) -> None:
    """Refuse a value that cannot work in one table (its keys checked already by type, against
    `params`), and combinations of its keys that cannot."""
    for arg, value in kwargs.items():
        limit = LIMITS.get(arg) or count_limit(params.get(arg))
        if limit is not None and number(value) and not limit.works(value):
            fix = _most_blocks_fix(kwargs, params) if arg == "max_blocks" else limit.fix
            raise checker.fail(f"{key}.{arg}", f"is {value!r}, but it {limit.problem}", fix)
    _walltime(checker, kwargs, key)
    _checkpoint_period(checker, kwargs, key)
    _ports(checker, kwargs, key, params)
    _affinity(checker, kwargs, key)
    _blocks(checker, kwargs, key, params)
    _node_fits(checker, kwargs, key)
    _heartbeat(checker, kwargs, key)
    _network(checker, kwargs, key)  # before the address rule: the safety problem is worse
    local_limits.check(checker, kwargs, key)


def count_limit(param: Param | None) -> Limit | None:
    """The rule for a numeric keyword LIMITS does not name: not negative; the fix is Parsl's
    own default when that is a number (else 0)."""
    if param is None or not param.accepts & NUMBER:
        return None
    default = default_value(param)
    example = default if number(default) and default >= 0 else 0
    return Limit(lambda v: v >= 0, f"must be 0 or more: {COUNT_PROBLEM}",
                 f"write {param.name} = {example}")


def effective(kwargs: dict[str, Any], params: dict[str, Param], arg: str) -> Any:
    """The value `arg` has when built: the file's, else Parsl's default (None if unknown)."""
    if arg in kwargs:
        return kwargs[arg]
    param = params.get(arg)
    if param is None or not param.default:
        return None
    return default_value(param)


def _walltime(checker: Report, kwargs: dict[str, Any], key: str) -> None:
    value = kwargs.get("walltime")
    if not isinstance(value, str):
        return
    match = re.match(WALLTIME, value.strip())
    fix = 'write walltime = "02:00:00" (HH:MM:SS: two hours)'
    if match is None:
        raise checker.fail(f"{key}.walltime", f"{value!r} is not HH:MM:SS (Parsl reads hours, "
                           "minutes and seconds separated by colons)", fix)
    hours, minutes, _ = (int(part) for part in match.groups())
    if hours * 60 + minutes < 1:
        raise checker.fail(f"{key}.walltime", f"{value!r} is under a minute: Parsl rounds a "
                           "block's walltime down to whole minutes, and a block needs time "
                           "to start its workers", fix)


def _checkpoint_period(checker: Report, kwargs: dict[str, Any], key: str) -> None:
    """Under checkpoint_mode "periodic" (only: other modes ignore the period), Parsl reads
    checkpoint_period as H:M:S when its run starts, refusing a missing or unreadable one with a
    traceback from deep inside, and checkpoints in a busy loop when it is 0."""
    mode, period = kwargs.get("checkpoint_mode"), kwargs.get("checkpoint_period")
    fix = 'write checkpoint_period = "00:30:00" (HH:MM:SS: every half hour)'
    if mode == "periodic" and period is None:
        raise checker.fail(f"{key}.checkpoint_mode", '"periodic" needs a checkpoint_period: '
                           "Parsl would refuse to start", f'{fix}, or checkpoint_mode = '
                           '"task_exit" to save each step as it ends')
    if mode != "periodic" or not isinstance(period, str):
        return
    match = re.match(CHECKPOINT_PERIOD, period)
    if match is None or not any(int(part) for part in match.groups()):
        problem = ("is not HH:MM:SS (Parsl reads hours, minutes and seconds separated by "
                   "colons)" if match is None else "is no time at all: Parsl would checkpoint "
                   "without a pause")
        raise checker.fail(f"{key}.checkpoint_period", f"{period!r} {problem}", fix)


def _ports(checker: Report, kwargs: dict[str, Any], key: str,
           params: dict[str, Param]) -> None:
    """Port ranges are two ports, and Parsl binds at random in [first, second): the range must
    hold every socket bound in it. worker_ports (Parsl 2024.12) are two fixed, distinct ports."""
    for arg, need, what in _port_ranges(params):
        value = kwargs.get(arg)
        if not isinstance(value, (list, tuple)):
            continue
        if not _two_ports(value) or not value[0] < value[1]:
            raise checker.fail(f"{key}.{arg}", f"is {list(value)!r}: it must be two TCP ports, "
                               "the first lower than the second, within 1 to 65535",
                               f"write {arg} = {WORKING[arg]}, or remove it")
        if value[1] - value[0] < need:
            raise checker.fail(f"{key}.{arg}", f"is {list(value)!r}: Parsl binds {what} in it, "
                               "at ports from the first up to but not including the second",
                               f"write {arg} = {_wider(value[0])}, or remove it")
    value = kwargs.get("worker_ports")
    if isinstance(value, (list, tuple)) and (not _two_ports(value) or value[0] == value[1]):
        raise checker.fail(f"{key}.worker_ports", f"is {list(value)!r}: it must be two different "
                           "TCP ports (tasks, results), within 1 to 65535",
                           f"write worker_ports = {WORKING['worker_ports']}, or remove it")


def _wider(first: int) -> list[int]:
    """A range of 1000 ports from `first`, or ending at the last port if it cannot."""
    low = min(first, 65535 - 1000)
    return [low, low + 1000]


def _two_ports(value: list[Any] | tuple[Any, ...]) -> bool:
    return (len(value) == 2 and all(number(v) and float(v).is_integer() for v in value)
            and all(0 < v < 65536 for v in value))


def _port_ranges(params: dict[str, Param]) -> list[tuple[str, int, str]]:
    """(keyword, ports bound in it, which): the interchange binds one worker port today and
    two (tasks, results) on a Parsl that still has worker_ports; the pipeline three for its
    interchange (tasks, results, commands)."""
    workers = 2 if "worker_ports" in params else 1
    ranges = [("worker_port_range", workers, "the interchange's port for workers" if workers == 1
               else "the interchange's two ports for workers (tasks, results)"),
              ("interchange_port_range", 3, "the pipeline's three ports for its interchange "
               "(tasks, results, commands)"),
              ("hub_port_range", 1, "the monitoring hub's port")]
    # only where Parsl uses the range (today's MonitoringHub ignores hub_port_range)
    return [entry for entry in ranges if "tuple" in getattr(params.get(entry[0]), "accepts", ())]


def _affinity(checker: Report, kwargs: dict[str, Any], key: str) -> None:
    """Each worker pins itself as cpu_affinity says, at start; a worker that cannot fails, and
    the steps wait for ever. "list:" holds one group of CPUs (0,1 or 0-3) per worker."""
    value = kwargs.get("cpu_affinity")
    if not isinstance(value, str) or value == "none":
        return
    others = ", ".join(f'"{name}"' for name in AFFINITIES[1:])
    where, fix = f"{key}.cpu_affinity", (f'write cpu_affinity = "{AFFINITIES[0]}" (or {others}, '
                                         'or "list:0,1:2,3": one group of CPUs per worker)')
    if value not in AFFINITIES and not value.startswith("list:"):
        raise checker.fail(where, f"{value!r} is not an affinity Parsl's workers know: they "
                           "would fail to start", fix)
    groups = value[len("list:"):].split(":") if value.startswith("list:") else None
    bad = next((group for group in groups or () if not re.match(CPU_GROUP, group)), None)
    if bad is not None:
        raise checker.fail(where, f"{value!r}: {bad!r} is not a group of CPU numbers or ranges "
                           "(0,1 or 0-3): the workers would fail to start", fix)
    most = kwargs.get("max_workers_per_node")
    if groups and number(most) and 0 < most < len(groups):
        raise checker.fail(where, f"{value!r} has {len(groups)} groups, more than "
                           f"max_workers_per_node = {most}: Parsl needs one group per worker, "
                           "and the workers would fail to start",
                           f"give one group per worker, or write max_workers_per_node = "
                           f"{len(groups)}")
    if local_limits.local(kwargs):
        local_limits.affinity(checker, kwargs, where, groups)


def _blocks(checker: Report, kwargs: dict[str, Any], key: str,
            params: dict[str, Param]) -> None:
    if "max_blocks" not in params:
        return
    most = effective(kwargs, params, "max_blocks")
    for arg in ("min_blocks", "init_blocks"):
        value = effective(kwargs, params, arg)
        if number(most) and number(value) and value > most:
            where = "" if "max_blocks" in kwargs else " (Parsl's default)"
            raise checker.fail(f"{key}.{arg}", f"is {value}, more than max_blocks = {most}"
                               f"{where}: Parsl never runs more than max_blocks blocks",
                               f"write max_blocks = {math.ceil(value)} (or lower {arg})")


def _most_blocks_fix(kwargs: dict[str, Any], params: dict[str, Param]) -> str:
    """max_blocks' fix: a count the table's init_blocks and min_blocks (or their defaults,
    4 for some providers) fit under, so `_blocks` does not refuse what the fix said."""
    counts = [effective(kwargs, params, arg) for arg in ("init_blocks", "min_blocks")]
    return f"write max_blocks = {max([1] + [math.ceil(c) for c in counts if number(c)])}"


def _node_fits(checker: Report, kwargs: dict[str, Any], key: str) -> None:
    """HTEX sizes a node from its provider's cores_per_node / mem_per_node: a worker bigger
    than the node makes 0 workers per node, and Parsl's scaling divides by that."""
    provider = getattr(kwargs.get("provider"), "kwargs", {})
    for arg, node_arg in (("cores_per_worker", "cores_per_node"),
                          ("mem_per_worker", "mem_per_node")):
        value, node = kwargs.get(arg), provider.get(node_arg)
        if number(value) and number(node) and value > 0 and value > node:
            raise checker.fail(f"{key}.{arg}", f"is {value}, more than the provider's {node_arg} "
                               f"= {node}: no worker fits in a node, so Parsl counts 0 workers "
                               "per node and its scaling fails dividing by that (steps sent "
                               "there wait for ever)",
                               f"write {arg} = {node} or less, or raise {node_arg}"
                               if node else f"remove {node_arg} = 0 or {arg}")


def _heartbeat(checker: Report, kwargs: dict[str, Any], key: str) -> None:
    period, threshold = kwargs.get("heartbeat_period"), kwargs.get("heartbeat_threshold")
    if number(period) and number(threshold) and threshold <= period:
        raise checker.fail(f"{key}.heartbeat_threshold",
                           f"is {threshold}, not more than heartbeat_period = {period}: every "
                           "worker would be declared lost between two heartbeats",
                           f"write heartbeat_threshold = {max(4 * period, 30)} or more")


def _network(checker: Report, kwargs: dict[str, Any], key: str) -> None:
    """Unencrypted worker traffic is a pickle, and a pickle is code: it may only stay on
    this machine (an address on loopback, or q2pconf's loopback for a LocalProvider)."""
    if kwargs.get("encrypted") is not False:
        return
    address = kwargs.get("address")
    local = local_limits.local(kwargs)
    if address is None and local or isinstance(address, str) and loopback(address):
        return
    where = (f"address = {address!r}" if address is not None else
             "no address (the interchange then listens on every interface)")
    raise checker.fail(f"{key}.encrypted", f"is false with {where}: tasks and results would "
                       "cross the network as plain-text pickles, and anyone who can reach the "
                       "port could send the workers code to run",
                       "remove encrypted = false (Parsl encrypts with CurveZMQ by default), or "
                       'keep everything on this machine with address = "127.0.0.1"')


def loopback(address: str) -> bool:
    """True for an address that only this machine can reach."""
    if address.strip().lower() in LOOPBACK_NAMES:
        return True
    import ipaddress  # only for an address that is not a name

    try:
        return ipaddress.ip_address(address.strip()).is_loopback
    except ValueError:
        return False


def check_document(checker: Report, options: dict[str, Any],
                   executors: dict[str, ObjectSpec]) -> None:
    """Strategy "none" never starts a block beyond init_blocks: an executor with none can
    never run a step (the pipeline would wait for ever)."""
    if options.get("strategy", "simple") != "none":
        return
    for spec in executors.values():
        provider = spec.kwargs.get("provider")
        if provider is None or not hasattr(provider, "kwargs"):
            continue  # no provider table: Parsl's default LocalProvider starts one block
        params = catalog.parameters(provider.kind, provider.cls)
        if effective(provider.kwargs, params, "init_blocks") == 0:
            raise checker.fail(f"{provider.key}.init_blocks",
                               'is 0 under strategy = "none": no block is ever started, so '
                               "steps sent to this executor would wait for ever",
                               'write init_blocks = 1, or strategy = "simple" to start blocks '
                               "when steps arrive")
