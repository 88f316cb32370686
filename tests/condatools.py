"""Offline conda tooling for the tests: build q2pconf's package, a local channel of stand-ins, and
environments installed from it with py-rattler (link scripts included).

py-rattler can crash the interpreter while it shuts down (a background thread still holding
the GIL, seen with `index_fs`), so every py-rattler call runs in a child process
(`python condatools.py JOB`) that leaves with os._exit() instead of tearing down.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "recipe" / "build_conda.py"
STANDIN_BUILD = "standin_0"


def pyproject() -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def build_package(output_dir: Path) -> Path:
    """Run the one-command build (recipe/build_conda.py); the .conda it made."""
    done = subprocess.run([sys.executable, str(BUILD_SCRIPT), "--output-dir", str(output_dir)],
                          capture_output=True, text=True, timeout=300, cwd=output_dir.parent)
    if done.returncode != 0:
        raise AssertionError(f"build_conda.py failed ({done.returncode}):\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


def package_info(package: Path, dest: Path) -> dict[str, Any]:
    """Extract `package` into `dest`; its info/index.json."""
    from conda_package_handling import api

    api.extract(str(package), dest_dir=str(dest))
    return json.loads((dest / "info" / "index.json").read_text())


def dependency_name(spec: str) -> str:
    return spec.split()[0]


def standin_python(stage: Path) -> None:
    """Files of a `python` package whose bin/python is this interpreter, venv-style.

    bin/python* are symlinks to the real interpreter and pyvenv.cfg points at its home, so
    Python starts with sys.prefix = the environment (whose lib/pythonX.Y/site-packages holds
    what conda installs there). A .pth file then appends this interpreter's own
    site-packages directories (parsl, platformdirs, tomli-w...), after the environment's.
    """
    real = Path(os.path.realpath(sys.executable))
    short = f"{sys.version_info.major}.{sys.version_info.minor}"
    (stage / "bin").mkdir(parents=True)
    for name in ("python", "python3", f"python{short}"):
        (stage / "bin" / name).symlink_to(real)
    version = ".".join(map(str, sys.version_info[:3]))
    (stage / "pyvenv.cfg").write_text(
        f"home = {real.parent}\ninclude-system-site-packages = false\nversion = {version}\n")
    site_packages = stage / "lib" / f"python{short}" / "site-packages"
    site_packages.mkdir(parents=True)
    dirs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    (site_packages / "_q2pconf_test_standin.pth").write_text("".join(f"{d}\n" for d in dirs))


def installed_version(name: str) -> str:
    """This interpreter's version of the Python distribution a conda package stands in for."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "2.0.1"  # tomli: not installed (and not imported) on Python >= 3.11


def make_channel(channel: Path, package: Path, scratch: Path) -> Path:
    """A local channel: `package` plus stand-ins for what it depends on, indexed."""
    from rattler_build import assemble_package

    depends = package_info(package, scratch / "info")["depends"]
    subdir = current_subdir()
    for directory in ("noarch", subdir):
        (channel / directory).mkdir(parents=True, exist_ok=True)
    stage = scratch / "python"
    standin_python(stage)
    assemble_package("python", ".".join(map(str, sys.version_info[:3])), subdir, STANDIN_BUILD,
                     channel / subdir, files_dir=stage, summary="test stand-in: this interpreter")
    empty = scratch / "empty"
    empty.mkdir()
    for name in sorted({dependency_name(spec) for spec in depends} - {"python"}):
        assemble_package(name, installed_version(name), "noarch", STANDIN_BUILD,
                         channel / "noarch", files_dir=empty, noarch="generic",
                         summary="test stand-in: installed in the test interpreter")
    (channel / "noarch" / package.name).write_bytes(package.read_bytes())
    run_job({"job": "index", "channel": str(channel)})
    return channel


def current_subdir() -> str:
    import platform

    machine = {"x86_64": "64", "aarch64": "aarch64", "arm64": "arm64"}.get(platform.machine())
    system = {"linux": "linux", "darwin": "osx"}.get(sys.platform)
    if machine is None or system is None:
        raise RuntimeError(f"no conda subdir known for {sys.platform} {platform.machine()}")
    return f"{system}-{machine}"


def install(channel: Path, prefix: Path, specs: list[str], cache: Path,
            env: dict[str, str] | None = None) -> None:
    """Make `prefix` hold exactly what `specs` solve to, running link scripts (like conda)."""
    run_job({"job": "install", "channel": str(channel), "prefix": str(prefix), "specs": specs,
             "cache": str(cache), "subdir": current_subdir()}, env=env)


def run_job(job: dict[str, Any], env: dict[str, str] | None = None) -> None:
    done = subprocess.run([sys.executable, __file__, json.dumps(job)], capture_output=True,
                          text=True, timeout=300, env=env)
    if done.returncode != 0:
        raise AssertionError(f"py-rattler {job['job']} failed ({done.returncode}):\n"
                             f"{done.stdout}\n{done.stderr}")


async def _index(job: dict[str, Any]) -> None:
    from rattler.index import index_fs

    await index_fs(Path(job["channel"]), write_zst=False, write_shards=False, force=True)


async def _install(job: dict[str, Any]) -> None:
    import rattler

    cache = Path(job["cache"])
    records = await rattler.solve([rattler.Channel(job["channel"])], job["specs"],
                                  gateway=rattler.Gateway(cache_dir=cache / "repodata"),
                                  platforms=[job["subdir"], "noarch"], virtual_packages=[])
    await rattler.install(records, target_prefix=job["prefix"], cache_dir=cache / "pkgs",
                          execute_link_scripts=True, show_progress=False)


def _main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    try:
        asyncio.run({"index": _index, "install": _install}[job["job"]](job))
    except Exception as error:  # reported through the exit status to the parent test
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    code = _main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
