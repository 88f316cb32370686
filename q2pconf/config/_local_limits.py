"""Limits that depend on the machine that runs the pipeline: the interchange always runs here, and
so does a LocalProvider's worker pool, which sizes itself from this machine's CPUs and memory and
pins its workers to CPUs here. A value that cannot work here stops the interchange or starts no
worker, and the pipeline waits for ever: refused before anything starts. (q2pconf.config._limits
holds the rules that hold on any machine; it calls `check`.)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from q2pconf._base.cpus import machine

if TYPE_CHECKING:
    from q2pconf.config._plan import Report

# Addresses that mean "this machine only": plain-text traffic there never leaves it.
LOOPBACK_NAMES = ("localhost",)
# Who listens on each address, always on the machine that runs the pipeline.
LISTENS = {"address": "the interchange listens on it for workers",
           "loopback_address": "the pipeline listens on it for its interchange"}


def check(checker: Report, kwargs: dict[str, Any], key: str) -> None:
    """Refuse addresses this machine does not have, and a local pool that would start no
    worker. (cpu_affinity's local rule is `affinity`, called once its syntax is checked.)"""
    _addresses(checker, kwargs, key)
    _fixed_ports(checker, kwargs, key)
    _checkpoint_files(checker, kwargs, key)
    if local(kwargs):
        _resources(checker, kwargs, key)


def local(kwargs: dict[str, Any]) -> bool:
    """The executor's workers run on this machine: a LocalProvider (Parsl's default)."""
    provider = kwargs.get("provider")
    return provider is None or getattr(provider, "cls", "") == "LocalProvider"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _addresses(checker: Report, kwargs: dict[str, Any], key: str) -> None:
    """The interchange listens on `address` and the pipeline talks to it on `loopback_address`;
    Parsl reads both with `ipaddress` (no host names), on this machine. Any other value kills
    the interchange at start while the pipeline waits for ever."""
    helper = kwargs.get("address")
    if getattr(helper, "kind", None) == "address":
        _address_helper(checker, helper)
    for arg in ("address", "loopback_address"):
        value = kwargs.get(arg)
        if not isinstance(value, str) or arg == "address" and not value:
            continue  # an object (address_by_interface, ...) or "" (Parsl probes every address)
        import ipaddress  # only for a file that sets an address

        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            raise checker.fail(f"{key}.{arg}", f"{value!r} is not an IP address: Parsl takes "
                               "no host names there, and its interchange would fail to start",
                               _address_fix(arg, value)) from None
        if not ip.is_loopback and not ip.is_unspecified and not _here(ip):
            raise checker.fail(f"{key}.{arg}", f"{value!r} is not an address of this machine: "
                               f"{LISTENS[arg]} here, so it could not start",
                               f'write {arg} = "127.0.0.1", or an address `ip address` shows')


def _address_helper(checker: Report, helper: Any) -> None:
    """An address helper from parsl.addresses is called here, when the executor is built, and
    the interchange listens on what it returns: one that fails here fails every run ("No such
    device"). Those answered by this machine alone (an interface, the routing table) are
    tried as Parsl tries them, and so is this machine's name (address_by_hostname), for at
    most HOSTNAME_WAIT seconds; address_by_query asks a web service and is left to the run."""
    if helper.cls not in ("address_by_interface", "address_by_route", "address_by_hostname"):
        return  # address_by_query asks a web service: left to the run
    found = interfaces()
    usable = _usable(found)
    instead = ('write address = { class = "address_by_interface", ifname = '
               f'"{usable}" }}' if usable else NO_INTERFACE)
    if helper.cls == "address_by_interface":
        name = helper.kwargs.get("ifname")
        if isinstance(name, str) and found.get(name[:15]) is None:  # Parsl reads 15 characters
            have = ", ".join(f"{n} ({ip or 'no IPv4 address'})" for n, ip in found.items())
            problem = ("has no IPv4 address here" if name[:15] in found else
                       "is not an interface of this machine")
            raise checker.fail(f"{helper.key}.ifname", f"{name!r} {problem}: the interchange "
                               f"listens on it here, so it could not start (interfaces here: "
                               f"{have or 'none found'})",
                               f'write ifname = "{usable}"' if usable else NO_INTERFACE)
    elif helper.cls == "address_by_route" and _route() is None:
        raise checker.fail(helper.key, "this machine has no route to the internet, which "
                           "address_by_route asks for: the executor could not be built",
                           instead)
    elif helper.cls == "address_by_hostname":
        problem = _unresolved_name()
        if problem is not None:
            raise checker.fail(helper.key, f"{problem}, which address_by_hostname asks for: "
                               "the executor could not be built", instead)


NO_INTERFACE = ("remove the address table: no interface here has an address besides loopback, "
                "and without it Parsl offers the workers every address it finds")


def interfaces() -> dict[str, str | None]:
    """This machine's network interfaces, each with its IPv4 address (None if it has none),
    found as Parsl's address_by_interface finds one: ioctl SIOCGIFADDR, whose number is
    Linux's. Elsewhere (macOS) only the names are known: each is given as UNREAD."""
    import socket
    import sys

    try:
        names = [name for _, name in socket.if_nameindex()]
    except (OSError, AttributeError):  # AttributeError: no if_nameindex on this system
        return {}
    if not sys.platform.startswith("linux"):
        return dict.fromkeys(names, UNREAD)
    return {name: _ipv4(socket, name) for name in names}


UNREAD = "address not read on this system"


def _ipv4(socket: Any, name: str) -> str | None:
    try:
        import fcntl
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            answer = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
    except (ImportError, OSError, UnicodeError):
        return None
    return socket.inet_ntoa(answer[20:24])


def _usable(found: dict[str, str | None]) -> str | None:
    """An interface with an IPv4 address other than loopback, or None."""
    return next((name for name, ip in found.items()
                 if ip and not ip.startswith("127.") and name != "lo" and name != "lo0"), None)


HOSTNAME_WAIT = 5.0  # seconds; a resolver that takes longer is left to the run


def _unresolved_name() -> str | None:
    """Why this machine's own name does not resolve, as Parsl's address_by_hostname resolves
    it (platform.node, then gethostbyname); None when it does, or takes over HOSTNAME_WAIT
    (a slow DNS must not hold `check`)."""
    import platform
    import socket
    import threading

    name, answer = platform.node(), []

    def resolve() -> None:
        try:
            socket.gethostbyname(name)
            answer.append(None)
        except (OSError, UnicodeError) as error:
            answer.append(f"this machine's name {name!r} does not resolve ({error})")

    worker = threading.Thread(target=resolve, name="q2pconf-hostname", daemon=True)
    worker.start()
    worker.join(HOSTNAME_WAIT)
    return answer[0] if answer else None


def _route() -> str | None:
    """The address of this machine's route to the internet, as Parsl's address_by_route finds
    it (a UDP socket's connect: nothing is sent), or None when there is none."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("8.8.8.8", 80))
            return str(probe.getsockname()[0])
    except OSError:
        return None


def _address_fix(arg: str, value: str) -> str:
    if value.strip() != value and value.strip():
        return f'remove the spaces: {arg} = "{value.strip()}"'
    if arg == "address" and value == "*":
        return "remove address: without it Parsl offers the workers every address here"
    if value.strip().lower() in LOOPBACK_NAMES:
        return f'write {arg} = "127.0.0.1"'
    return (f'write {arg} = "127.0.0.1" (this machine), an address `ip address` shows, or pick '
            'one by interface: address = { class = "address_by_interface", ifname = "eth0" }'
            if arg == "address" else f'write {arg} = "127.0.0.1"')


def _fixed_ports(checker: Report, kwargs: dict[str, Any], key: str) -> None:
    """The interchange binds worker_port (worker_ports on Parsl 2024.12) as given: one in use
    here ends the interchange at start while the pipeline waits."""
    ports = kwargs.get("worker_port"), *(kwargs.get("worker_ports") or ())
    address = kwargs.get("address")
    if not isinstance(address, str) or not address:  # q2pconf's loopback, else every interface
        address = "127.0.0.1" if local(kwargs) else "0.0.0.0"
    import ipaddress

    for port in ports:
        if not isinstance(port, int) or not 0 < port < 65536:
            continue  # none, or a bad value: q2pconf.config._limits names it
        if not _here(ipaddress.ip_address(address), port):
            arg = "worker_port" if port == kwargs.get("worker_port") else "worker_ports"
            raise checker.fail(f"{key}.{arg}", f"port {port} is in use on this machine: the "
                               "interchange could not listen on it, and steps would wait for ever",
                               f"remove {arg} to let Parsl choose a free port, or pick another")


def _here(ip: Any, port: int = 0) -> bool:
    """True if this machine has `ip` and `port` is free on it: a socket can be bound there
    (nothing is sent). SO_REUSEADDR, as ZeroMQ's listeners: a port in TIME_WAIT is free."""
    import socket

    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((str(ip), port))
    except OSError:
        return False
    return True


def _checkpoint_files(checker: Report, kwargs: dict[str, Any], key: str) -> None:
    """Parsl reads each directory's tasks.pkl when the run starts, and refuses to start (a
    BadCheckpoint from deep inside) if one cannot be read. Relative to the current directory,
    as Parsl reads them."""
    directories = kwargs.get("checkpoint_files")
    if not isinstance(directories, (list, tuple)):
        return
    import os

    for index, directory in enumerate(directories):
        if not isinstance(directory, str):
            continue  # the type check named it already
        path = os.path.join(directory, "tasks.pkl")
        if not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise checker.fail(f"{key}.checkpoint_files[{index}]", f"{directory!r} holds no "
                               f"checkpoint this program can read (no readable {path}): Parsl "
                               "would refuse to start", "name the checkpoint directory of an "
                               "earlier run (its runinfo/NNN/checkpoint, holding tasks.pkl), "
                               "or remove it")


def _resources(checker: Report, kwargs: dict[str, Any], key: str) -> None:
    """A LocalProvider's worker pool runs here and starts floor(cores / cores_per_worker)
    workers (and at most memory / mem_per_worker): more than this machine has means no worker
    at all, and steps that wait for ever."""
    cores, memory = machine()
    for arg, has, unit in (("cores_per_worker", cores, "CPUs"), ("mem_per_worker", memory, "GB")):
        value = kwargs.get(arg)
        if _number(value) and has is not None and value > has:
            amount = f"{has:.1f}".removesuffix(".0")
            raise checker.fail(f"{key}.{arg}", f"is {value}, but this machine has {amount} "
                               f"{unit}: the local worker pool would start no worker, and steps "
                               "would wait for ever",
                               f"write {arg} = {_fits(has)} or less, or remove it")


def _fits(has: float) -> str:
    return f"{int(has)}" if has >= 1 else f"{has:.1f}"


def affinity(checker: Report, kwargs: dict[str, Any], where: str,
             groups: list[str] | None) -> None:
    """The local pool's size and CPUs are this machine's: each worker needs CPUs to pin."""
    workers, allowed = _local_workers(kwargs), _allowed_cpus()
    if workers is None or allowed is None:
        return
    value = kwargs["cpu_affinity"]
    if groups is None and workers > len(allowed):
        raise checker.fail(where, f"is {value!r} with {workers} workers on {len(allowed)} CPUs: "
                           "Parsl pins each worker to CPUs of its own, and a worker without "
                           "one fails to start", 'write cpu_affinity = "none", or '
                           f"max_workers_per_node = {len(allowed)}")
    if groups is not None and len(groups) != workers:
        raise checker.fail(where, f"{value!r} has {_groups(groups)}, but the local worker "
                           f"pool starts {workers} workers: Parsl needs one group per worker, "
                           "and the workers would fail to start",
                           f"give {workers} groups, or write max_workers_per_node = "
                           f"{len(groups)}")
    for group in groups or ():
        if not _cpus(group) & allowed:
            raise checker.fail(where, f"{value!r}: group {group!r} holds no CPU the workers "
                               f"may use here (CPUs {_ranges(allowed)}), so its worker fails "
                               "to start", f"use CPUs from {_ranges(allowed)}")


def _local_workers(kwargs: dict[str, Any]) -> int | None:
    """How many workers Parsl's pool starts on this machine (None: it depends on the memory
    free when it starts): min(max_workers_per_node, cores / cores_per_worker, accelerators)."""
    if kwargs.get("mem_per_worker"):
        return None
    cores, _ = machine()
    per_worker = kwargs.get("cores_per_worker", 1)
    if cores is None or not _number(per_worker) or per_worker <= 0:
        return None
    counts = [int(cores // per_worker)]
    most = kwargs.get("max_workers_per_node")
    if _number(most) and most > 0:
        counts.append(int(most))
    accelerators = kwargs.get("available_accelerators")
    if isinstance(accelerators, (int, list)) and not isinstance(accelerators, bool):
        count = accelerators if isinstance(accelerators, int) else len(accelerators)
        counts += [count] if count > 0 else []
    return min(counts)


def _groups(groups: list[str]) -> str:
    return f"{len(groups)} group" + ("" if len(groups) == 1 else "s")


def _allowed_cpus() -> set[int] | None:
    """The CPUs a worker started from here may run on (its affinity, which it inherits)."""
    import os

    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return None


def _cpus(group: str) -> set[int]:
    found: set[int] = set()
    for item in group.split(","):
        low, _, high = item.partition("-")
        found.update(range(int(low), int(high or low) + 1))
    return found


def _ranges(cpus: set[int]) -> str:
    """0-3,6 for {0, 1, 2, 3, 6}."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)
