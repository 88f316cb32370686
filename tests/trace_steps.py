"""Steps and pipelines the trace and report tests run (importable by HTEX workers)."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from q2pconf import parallel_pipeline, step

MIB = 2 ** 20


def _busy(seconds: float) -> int:
    """Burn `seconds` of this thread's CPU time (the wall time it takes depends on the load:
    on an idle core, the same)."""
    end, count = time.thread_time() + seconds, 0
    while time.thread_time() < end:
        count += 1
    return os.getpid()


@step
def busy_thread(seconds: float) -> int:
    return _busy(seconds)


@step
def nap_thread(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@step(executor="htex")
def busy_htex(seconds: float) -> int:
    return _busy(seconds)


@step(executor="htex")
def nap_htex(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@step(executor="htex")
def allocate(mib: int, *after: object) -> int:
    """Hold `mib` MiB of touched memory for a moment (once the steps in `after` are done)."""
    data = b"x" * (mib * MIB)
    time.sleep(0.1)
    return len(data) and os.getpid()


@step(executor="htex")
def trivial(*after: object) -> int:
    return os.getpid()


@parallel_pipeline
def usage(seconds: float) -> list[object]:
    return [busy_thread(seconds), nap_thread(seconds), busy_htex(seconds), nap_htex(seconds),
            allocate(200), trivial()]


@parallel_pipeline
def peaks() -> list[object]:
    """One after another (each waits for the one before): small, big, small, smaller big."""
    first = trivial()
    big = allocate(200, first)
    second = trivial(big)
    return [first, big, second, allocate(100, second)]


@step(executor="htex")
def take_descriptor(path: str) -> int:
    """Close the descriptor of /proc/self/clear_refs this worker keeps, and open `path` in its
    place (as a step closing descriptors it did not open, then opening a file, may)."""
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.endswith("/clear_refs"):
            os.close(int(name))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT)
            assert fd == int(name), (fd, name)
            return fd
    raise RuntimeError("this worker keeps no clear_refs descriptor")


@parallel_pipeline
def descriptor_taken(path: str) -> list[object]:
    taken = take_descriptor(path)
    return [taken, allocate(100, taken)]


@step
def broken(message: str) -> None:
    time.sleep(0.05)
    raise KeyError(message)


@step
def after(value: object) -> object:
    return value


@parallel_pipeline
def failing() -> object:
    return after(broken("no such sample"))


@step
def flaky(flag: str) -> str:
    """Fails the first time (creating `flag`), succeeds when retried."""
    if not os.path.exists(flag):
        Path(flag).write_text("failed once")
        raise RuntimeError("first attempt fails")
    return "second attempt"


@parallel_pipeline
def retried(flag: str) -> object:
    return flaky(flag)


@step(walltime=1)
def overrun(seconds: float, *after: object) -> float:
    """Sleeps in short naps, so Parsl's time limit can stop it between them."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
    return seconds


@parallel_pipeline
def mixed(n: int) -> list[object]:
    """Thread and HTEX steps, then one that runs past its @step(walltime=1)."""
    ran = [nap_thread(0.2) for _ in range(n)] + [busy_htex(0.2) for _ in range(n)]
    return overrun(3, *ran)


@parallel_pipeline
def many_naps(n: int, seconds: float) -> list[object]:
    return [nap_thread(seconds) for _ in range(n)]


@parallel_pipeline
def failing_first(n: int) -> list[object]:
    """A step that fails while `n` naps wait for the one thread."""
    return [broken("at once")] + [nap_thread(0.5) for _ in range(n)]


@step(executor="htex")
def write_read(path: str, mib: int) -> int:
    """Write `mib` MiB to `path`, synced to its disk, and read them back."""
    block = b"x" * MIB
    with open(path, "wb") as handle:
        for _ in range(mib):
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
    with open(path, "rb") as handle:
        while handle.read(MIB):
            pass
    return os.getpid()


def _dd(path: str, mib: int) -> int:
    """The same I/O done by child processes the step waits for: `dd` writes `mib` MiB of
    /dev/zero to `path` (synced), then reads them back."""
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}", "conv=fsync"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M"], check=True,
                   capture_output=True, timeout=120)
    return os.getpid()


@step(executor="htex")
def dd_htex(path: str, mib: int) -> int:
    return _dd(path, mib)


@step
def dd_thread(path: str, mib: int) -> int:
    return _dd(path, mib)


@parallel_pipeline
def io(directory: str, mib: int) -> list[object]:
    return [write_read(f"{directory}/own", mib), dd_htex(f"{directory}/htex", mib),
            dd_thread(f"{directory}/thread", mib)]


@parallel_pipeline
def io_and_naps(directory: str, mib: int, naps: int, seconds: float) -> list[object]:
    """The I/O steps of `io`, then `naps` naps on the HTEX (time for its workers to be counted)."""
    return [write_read(f"{directory}/own", mib), dd_htex(f"{directory}/htex", mib),
            dd_thread(f"{directory}/thread", mib)] + [nap_htex(seconds) for _ in range(naps)]
