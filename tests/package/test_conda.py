"""The conda package, built offline by recipe/build_conda.py and installed with py-rattler from
a local channel whose `python` is this interpreter (see condatools.standin_python), with the
package's post-link and pre-unlink scripts run as conda runs them."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

import condatools
import procs
from conftest import readonly_command, require_tool

CONFIG = "qiime2_config.toml"
STAMP = ".qiime2_config.toml.sha256"
SHORT = f"python{sys.version_info.major}.{sys.version_info.minor}"
ACTIVATE = ("q2pconf.sh", "q2pconf.fish", "q2pconf.csh")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .conda file, built once into a scratch dist/conda."""
    return condatools.build_package(tmp_path_factory.mktemp("dist") / "conda")


@pytest.fixture(scope="session")
def channel(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("channel")
    return condatools.make_channel(root / "channel", built, root / "scratch")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A process environment with nothing of the real user's: HOME and XDG dirs in tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items()
             if k not in ("QIIME2_CONFIG", "CONDA_PREFIX", "PYTHONPATH")
             and not k.startswith("XDG_")}
    clean.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                 XDG_CONFIG_DIRS=str(tmp_path / "etc-xdg"), XDG_CACHE_HOME=str(home / ".cache"))
    return clean


@pytest.fixture
def install(channel: Path, tmp_path: Path, env: dict[str, str]) -> Callable[..., Path]:
    """install(specs=["q2pconf"]) -> the prefix, now holding what `specs` solve to."""
    prefix = tmp_path / "env"

    def run(specs: list[str] | None = None) -> Path:
        condatools.install(channel, prefix, specs or ["q2pconf"], tmp_path / "cache", env=env)
        return prefix
    return run


def others(prefix: Path) -> list[str]:
    """Specs of everything installed except q2pconf: installing them removes q2pconf alone."""
    names = [json.loads(p.read_text())["name"] for p in (prefix / "conda-meta").glob("*.json")]
    return sorted(n for n in names if n != "q2pconf")


def prefix_python(prefix: Path, *args: str, env: dict[str, str],
                  **kwargs) -> subprocess.CompletedProcess:
    # cwd elsewhere than the checkout, so its q2pconf/ cannot shadow the installed one
    return subprocess.run([str(prefix / "bin" / "python"), *args], capture_output=True,
                          text=True, env=env, cwd=prefix, timeout=120, **kwargs)


def sha256_check(etc: Path) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("sha256sum"), "-c", STAMP], cwd=etc,
                          capture_output=True, text=True, timeout=60)


# -- the package file ------------------------------------------------------------------------

def test_build_names_the_package_after_pyproject(built: Path):
    version = condatools.pyproject()["project"]["version"]
    assert built.parent.name == "noarch"
    assert built.name.startswith(f"q2pconf-{version}-") and built.suffix == ".conda"


def test_package_holds_the_recipe_files(built: Path, tmp_path: Path):
    index = condatools.package_info(built, tmp_path)
    assert (index["name"], index["noarch"], index["subdir"]) == ("q2pconf", "python", "noarch")
    assert json.loads((tmp_path / "info" / "link.json").read_text())["noarch"] == {
        "type": "python", "entry_points": ["q2pconf = q2pconf.cli:main"]}
    for name in ACTIVATE:
        packaged = tmp_path / "etc" / "conda" / "activate.d" / name
        source = condatools.ROOT / "etc" / "conda" / "activate.d" / name
        assert packaged.read_bytes() == source.read_bytes()
    assert not (tmp_path / "etc" / "conda" / "deactivate.d").exists()
    # noarch: python keeps bin/ as python-scripts/; installers put it back in bin/
    for action in ("post-link", "pre-unlink"):
        packaged = tmp_path / "python-scripts" / f".q2pconf-{action}.sh"
        assert packaged.read_bytes() == (condatools.ROOT / "recipe" / f"{action}.sh").read_bytes()
    # the license text, where conda-build and rattler-build put about.license_file
    license_text = (condatools.ROOT / "LICENSE").read_bytes()
    assert (tmp_path / "info" / "licenses" / "LICENSE").read_bytes() == license_text
    sources = sorted(p.name for p in (condatools.ROOT / "q2pconf").glob("*.py"))
    assert sorted(p.name for p in (tmp_path / "site-packages" / "q2pconf").glob("*.py")) == sources
    assert not list(tmp_path.rglob("__pycache__"))


# -- installing ------------------------------------------------------------------------------

def test_install_places_files_and_seeds_the_config(install, env):
    prefix = install()
    site = prefix / "lib" / SHORT / "site-packages"
    assert (site / "q2pconf" / "__init__.py").is_file()
    for name in ACTIVATE:
        assert (prefix / "etc" / "conda" / "activate.d" / name).is_file()
    for path in ("bin/q2pconf", "bin/.q2pconf-post-link.sh", "bin/.q2pconf-pre-unlink.sh"):
        assert (prefix / path).is_file(), path
    etc = prefix / "etc"
    assert (etc / CONFIG).is_file() and (etc / STAMP).is_file()
    assert sha256_check(etc).returncode == 0
    checked = prefix_python(prefix, "-m", "q2pconf", "check", str(etc / CONFIG), env=env)
    assert checked.returncode == 0, checked.stderr
    assert "OK" in checked.stdout


def test_installed_q2pconf_finds_the_conda_config(install, env):
    prefix = install()
    env = {**env, "CONDA_PREFIX": str(prefix)}
    bin_dir = prefix / "bin"
    for command in ([str(bin_dir / "python"), "-m", "q2pconf"], [str(bin_dir / "q2pconf")]):
        done = subprocess.run([*command, "info", "--json"], capture_output=True, text=True,
                              env=env, cwd=prefix, timeout=120)
        assert done.returncode == 0, done.stderr
        info = json.loads(done.stdout)
        assert info["source"] == "conda"
        assert info["path"] == str(prefix / "etc" / CONFIG)
    code = ("import importlib.metadata as m, q2pconf; "
            "print(q2pconf.__file__); print(m.distribution('q2pconf').locate_file('')); "
            "print(q2pconf.__version__)")
    where, dist, version = prefix_python(prefix, "-c", code, env=env).stdout.split()
    site = prefix / "lib" / SHORT / "site-packages"
    assert Path(where) == site / "q2pconf" / "__init__.py"
    assert Path(dist) == site
    assert version == condatools.pyproject()["project"]["version"]


def test_removing_the_package_removes_an_untouched_config(install, env):
    prefix = install()
    install(others(prefix))
    assert not list((prefix / "conda-meta").glob("q2pconf-*.json"))
    assert not (prefix / "bin" / "q2pconf").exists()
    assert not (prefix / "etc" / CONFIG).exists()
    assert not (prefix / "etc" / STAMP).exists()


def test_removing_the_package_keeps_an_edited_config(install, env):
    prefix = install()
    config = prefix / "etc" / CONFIG
    edited = config.read_text() + "\n# my edit\n"
    config.write_text(edited)
    install(others(prefix))
    assert not list((prefix / "conda-meta").glob("q2pconf-*.json"))
    assert config.read_text() == edited
    # reinstalling leaves the edit alone
    install()
    assert config.read_text() == edited


# -- the link scripts on their own ----------------------------------------------------------

def run_link_script(prefix: Path, action: str, env: dict[str, str],
                    readonly: Path | None = None) -> subprocess.CompletedProcess:
    """Run bin/.q2pconf-ACTION.sh as conda does: bash, with PREFIX and PKG_* set."""
    command = [require_tool("bash"), str(prefix / "bin" / f".q2pconf-{action}.sh")]
    if readonly is not None:
        command = readonly_command(readonly, command)
    version = condatools.pyproject()["project"]["version"]
    env = {**env, "PREFIX": str(prefix), "PKG_NAME": "q2pconf", "PKG_VERSION": version,
           "PKG_BUILDNUM": "0"}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=prefix,
                          timeout=120)


def unseed(prefix: Path) -> None:
    (prefix / "etc" / CONFIG).unlink()
    (prefix / "etc" / STAMP).unlink()


def test_post_link_seeds_a_missing_config_silently(install, env):
    prefix = install()
    unseed(prefix)
    for cache in (prefix / "lib").rglob("__pycache__"):
        shutil.rmtree(cache)
    done = run_link_script(prefix, "post-link", env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert sha256_check(prefix / "etc").returncode == 0
    assert not (prefix / ".messages.txt").exists()
    assert not list((prefix / "lib").rglob("*.pyc")), "post-link leaves no bytecode behind"


def test_post_link_leaves_an_existing_config_alone(install, env):
    prefix = install()
    config = prefix / "etc" / CONFIG
    config.write_text("[parsl]\n# mine\n")
    done = run_link_script(prefix, "post-link", env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert config.read_text() == "[parsl]\n# mine\n"


def test_post_link_on_a_read_only_etc_succeeds_with_a_message(install, env):
    prefix = install()
    unseed(prefix)
    done = run_link_script(prefix, "post-link", env, readonly=prefix / "etc")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert not (prefix / "etc" / CONFIG).exists()
    message = (prefix / ".messages.txt").read_text()
    assert str(prefix / "etc" / CONFIG) in message
    assert "Read-only file system" in message
    assert "q2pconf init --user" in message


def test_post_link_without_python_still_succeeds(install, env, tmp_path):
    prefix = install()
    unseed(prefix)
    (prefix / "bin" / "python").rename(tmp_path / "python-away")
    done = run_link_script(prefix, "post-link", env)
    assert (done.returncode, done.stdout) == (0, "")
    assert "could not write" in (prefix / ".messages.txt").read_text()


def test_pre_unlink_keeps_a_config_its_stamp_does_not_name(install, env):
    prefix = install()
    etc = prefix / "etc"
    (etc / "other.toml").write_text("x = 1\n")
    (etc / CONFIG).write_text("# edited\n")
    digest = subprocess.run(["sha256sum", "other.toml"], cwd=etc, capture_output=True,
                            text=True, check=True, timeout=60).stdout
    (etc / STAMP).write_text(digest)  # a valid check, but of another file
    done = run_link_script(prefix, "pre-unlink", env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert (etc / CONFIG).read_text() == "# edited\n"


def test_pre_unlink_without_etc_succeeds(install, env, tmp_path):
    prefix = install()
    (prefix / "etc").rename(tmp_path / "etc-away")
    done = run_link_script(prefix, "pre-unlink", env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


# -- running a pipeline with the installed package -------------------------------------------

def started_by(prefix: Path, cwd: Path, token: str) -> list[psutil.Process]:
    """Live processes (not this one) that mention `prefix`, carry `token` or run in `cwd`.

    All three are needed: Parsl's interchange renames itself ("parsl: HTEX interchange") with
    setproctitle, which overwrites its cmdline and environ, so only its cwd still tells.
    """
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid == os.getpid() or process.status() == psutil.STATUS_ZOMBIE:
                continue
            if (str(prefix) in " ".join(process.cmdline()) or Path(process.cwd()) == cwd
                    or process.environ().get(procs.TOKEN_VAR) == token):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def leftovers(prefix: Path, cwd: Path, token: str, timeout: float = 20) -> list[str]:
    """Command lines of what `started_by` still finds after `timeout` seconds; those are
    then killed, so a failing test leaves nothing running."""
    deadline = time.monotonic() + timeout
    while (alive := started_by(prefix, cwd, token)) and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = []
    for process in alive:
        try:
            lines.append(f"{process.pid}: {' '.join(process.cmdline())}")
            process.kill()
        except psutil.NoSuchProcess:
            continue
    return lines


def test_example_pipeline_runs_on_the_installed_package(install, env, tmp_path):
    prefix = install()
    token = procs.new_token()
    env = {**env, "CONDA_PREFIX": str(prefix), procs.TOKEN_VAR: token, "Q2PCONF_PROGRESS": "0",
           "PATH": os.pathsep.join([str(prefix / "bin"), env.get("PATH", "")])}
    work = tmp_path / "work"  # not the checkout: its q2pconf/ must not be importable
    work.mkdir()
    python = str(prefix / "bin" / "python")
    example = condatools.ROOT / "examples" / "amplicon.py"
    try:
        done = subprocess.run([python, str(example), "--samples", "3", "--depth", "200",
                               "--no-serial"], capture_output=True, text=True, env=env,
                              cwd=work, timeout=120)
        where = subprocess.run([python, "-c", "import q2pconf; print(q2pconf.__file__)"],
                               capture_output=True, text=True, env=env, cwd=work, timeout=60)
    finally:
        leftover = leftovers(prefix, work, token)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"config: {prefix / 'etc' / CONFIG} (source: conda)"
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()) == (prefix / "lib" / SHORT / "site-packages" / "q2pconf"
                                          / "__init__.py")
    rows = {tuple(line.split()[:3]) for line in lines if line.split()[:1] in (["denoise"],
                                                                              ["classify"])}
    assert rows == {("denoise", "3", "htex"), ("classify", "1", "htex")}, done.stdout
    assert not leftover, leftover
