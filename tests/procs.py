"""Process-tree checks: find every process a test started, even after it was orphaned."""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import psutil

TOKEN_VAR = "Q2PCONF_TEST_TOKEN"
TESTS = Path(__file__).resolve().parent


def new_token() -> str:
    return uuid.uuid4().hex


def tagged(token: str, cwd: str | os.PathLike[str] | None = None) -> list[psutil.Process]:
    """Live processes whose environment carries `token`, or whose working directory is `cwd`
    (or below it): both are inherited by the interchange and the workers, so orphans
    reparented to init are found too. The interchange renames itself with setproctitle, which
    blanks its environment as others see it: give the child its own `cwd` to find it."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid == os.getpid() or process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get(TOKEN_VAR) == token or _below(process.cwd(), cwd):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _below(path: str, top: str | os.PathLike[str] | None) -> bool:
    if top is None:
        return False
    top = os.path.realpath(top)
    path = os.path.realpath(path.removesuffix(" (deleted)"))
    return path == top or path.startswith(top + os.sep)


def wait_gone(token: str, timeout: float = 20.0,
              cwd: str | os.PathLike[str] | None = None) -> list[str]:
    """Command lines of `token`'s processes still alive after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = tagged(token, cwd)
        if not alive or time.monotonic() > deadline:
            return [" ".join(_cmdline(p)) for p in alive]
        time.sleep(0.2)


def parsl_children() -> list[str]:
    """Interchange and worker pool processes below this process."""
    names = []
    for child in psutil.Process().children(recursive=True):
        text = " ".join(_cmdline(child))
        if "interchange" in text or "process_worker_pool" in text:
            names.append(text)
    return names


def interchanges() -> int:
    """How many HTEX interchange processes run below this process."""
    return sum(is_interchange(_cmdline(child))
               for child in psutil.Process().children(recursive=True))


def is_interchange(cmdline: list[str]) -> bool:
    """The interchange renames itself ("parsl: HTEX interchange") once it runs; the
    q2pconf._parsl.guard process that started it names it on its command line, and is not it."""
    if "q2pconf._parsl.guard" in cmdline:
        return False
    return any(part.endswith("high_throughput.interchange") or "HTEX interchange" in part
               for part in cmdline)


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ["<gone>"]


def written(path: Path) -> bool:
    """Whether `path` exists with its content: a write creates the file empty first, so a
    test that reads it as soon as it exists may read nothing."""
    try:
        return bool(path.read_text().strip())
    except FileNotFoundError:
        return False


def program_env(tmp_path: Path, token: str, config: Path | None = None,
                **extra: str) -> dict[str, str]:
    """The environment of a child program: this one's, with HOME and the XDG directories under
    `tmp_path`, no conda prefix, the config (if any) named by QIIME2_CONFIG, the tests' modules
    importable, no progress line, and `token` for finding its processes afterwards."""
    env = {k: v for k, v in os.environ.items() if k not in ("QIIME2_CONFIG", "CONDA_PREFIX")}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_CONFIG_DIRS=str(tmp_path / "site-config"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")])))
    if config is not None:
        env["QIIME2_CONFIG"] = str(config)
    env.update({"Q2PCONF_PROGRESS": "0", TOKEN_VAR: token, **extra})
    return env


def config_env(tmp_path: Path, token: str, text: str, **extra: str) -> dict[str, str]:
    """`program_env` with the config `text` written to tmp_path/config.toml."""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return program_env(tmp_path, token, path, **extra)
