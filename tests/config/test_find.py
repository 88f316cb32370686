"""Lookup order, in temporary HOME / XDG / CONDA_PREFIX trees, read at call time."""
from __future__ import annotations

import os
from pathlib import Path

import appdirs
import platformdirs
import pytest

from q2pconf._base.errors import ConfigError
from q2pconf.config._find import locate, site_config_path, user_config_path

CONFIG = "qiime2_config.toml"
VALID = '[parsl]\nstrategy = "None"\n'


def put(path: Path, text: str = VALID) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def tree(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """One candidate path for every lookup step, none of them existing yet."""
    prefix = clean_env / "env"
    prefix.mkdir()
    monkeypatch.setenv("CONDA_PREFIX", str(prefix))
    return {
        "explicit": clean_env / "explicit.toml",
        "QIIME2_CONFIG": clean_env / "from-env.toml",
        "user": clean_env / "home" / ".config" / "qiime2" / CONFIG,
        "site": clean_env / "etc-xdg" / "qiime2" / CONFIG,
        "conda": prefix / "etc" / CONFIG,
    }


def test_each_step_wins_over_the_later_ones(tree, monkeypatch):
    order = ["explicit", "QIIME2_CONFIG", "user", "site", "conda"]
    for name in order:
        put(tree[name])
    monkeypatch.setenv("QIIME2_CONFIG", str(tree["QIIME2_CONFIG"]))
    for index, name in enumerate(order):
        explicit = tree["explicit"] if name == "explicit" else None
        found = locate(explicit)
        assert (found.source, found.path) == (name, tree[name])
        assert [step.source for step in found.trail] == order[:index]
        if name == "QIIME2_CONFIG":
            monkeypatch.delenv("QIIME2_CONFIG")
        elif name != "explicit":
            tree[name].unlink()


def test_trail_says_why_each_step_was_skipped(tree):
    put(tree["conda"])
    found = locate()
    notes = {step.source: (step.path, step.note) for step in found.trail}
    assert notes["explicit"] == (None, "no --parallel-config given")
    assert notes["QIIME2_CONFIG"] == (None, "not set")
    assert notes["user"] == (tree["user"], "no file")
    assert notes["site"] == (tree["site"], "no file")


def test_nothing_found_seeds_the_conda_prefix(tree):
    found = locate()
    assert (found.source, found.path) == ("vendored", tree["conda"])
    assert "[[parsl.executors]]" in tree["conda"].read_text()
    assert locate().source == "conda"  # QIIME 2's note: next time the seeded file is found


def test_seed_false_writes_nothing(tree):
    found = locate(seed=False)
    assert found.source == "in-memory" and found.path is None
    assert not tree["conda"].exists()


def test_missing_etc_directory_is_created(tree):
    assert not tree["conda"].parent.exists()
    assert locate().path == tree["conda"]


def test_no_conda_prefix_uses_memory_and_writes_nothing(clean_env, monkeypatch):
    monkeypatch.chdir(clean_env)
    before = sorted(os.listdir(clean_env))
    found = locate()
    assert (found.source, found.path) == ("in-memory", None)
    assert found.trail[-1].note == "CONDA_PREFIX not set"
    assert sorted(os.listdir(clean_env)) == before


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_conda_prefix_that_is_not_a_directory(clean_env, monkeypatch, kind):
    prefix = clean_env / "not-a-dir"
    if kind == "file":
        prefix.write_text("x")
    monkeypatch.setenv("CONDA_PREFIX", str(prefix))
    found = locate()
    assert found.source == "in-memory"
    assert "is not a directory" in found.trail[-1].note


def test_qiime2_config_naming_a_missing_file_is_an_error(tree, monkeypatch):
    put(tree["user"])  # must not silently fall through to it
    monkeypatch.setenv("QIIME2_CONFIG", str(tree["QIIME2_CONFIG"]))
    with pytest.raises(ConfigError) as caught:
        locate()
    assert "$QIIME2_CONFIG" in str(caught.value)
    assert str(tree["QIIME2_CONFIG"]) in str(caught.value)


def test_explicit_path_naming_a_missing_file_is_an_error(tree):
    with pytest.raises(ConfigError, match="--parallel-config names a file that does not exist"):
        locate(tree["explicit"])


def test_empty_qiime2_config_means_the_built_in_default(tree, monkeypatch):
    """As in QIIME 2: set but empty skips every file (and writes none), unlike unset."""
    monkeypatch.setenv("QIIME2_CONFIG", "")
    put(tree["user"])
    found = locate()
    assert (found.source, found.path) == ("QIIME2_CONFIG", None)
    monkeypatch.delenv("QIIME2_CONFIG")
    assert locate().source == "user"


def test_environment_changes_after_import_are_seen(tree, monkeypatch):
    put(tree["site"])
    assert locate().source == "site"
    other = tree["explicit"].parent / "xdg2"
    put(other / "qiime2" / CONFIG)
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(other))
    assert locate().path == other / "qiime2" / CONFIG
    monkeypatch.setenv("HOME", str(other))
    monkeypatch.delenv("XDG_CONFIG_HOME")
    put(other / ".config" / "qiime2" / CONFIG)
    assert locate().source == "user"


XDG_CASES = {
    "unset": {},
    "home-set": {"XDG_CONFIG_HOME": "/opt/cfg"},
    "dirs-set": {"XDG_CONFIG_DIRS": "/opt/site"},
    "dirs-several": {"XDG_CONFIG_DIRS": "/opt/first:/opt/second:/etc/xdg"},
    "dirs-trailing-slash": {"XDG_CONFIG_DIRS": "/opt/first/:/opt/second"},
    "all-set": {"XDG_CONFIG_HOME": "/a/b", "XDG_CONFIG_DIRS": "/c:/d"},
}


@pytest.mark.parametrize("env", XDG_CASES.values(), ids=XDG_CASES.keys())
def test_paths_equal_appdirs_the_way_qiime2_computes_them(clean_env, monkeypatch, env):
    for name in ("XDG_CONFIG_HOME", "XDG_CONFIG_DIRS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert str(user_config_path()) == os.path.join(appdirs.user_config_dir("qiime2"), CONFIG)
    assert str(site_config_path()) == os.path.join(appdirs.site_config_dir("qiime2"), CONFIG)
    assert user_config_path().parent == Path(platformdirs.user_config_dir("qiime2"))


# q2pconf works these out itself on Linux (platformdirs costs ~5 ms to import) and asks
# platformdirs for the rest: both must give platformdirs' answer in every case.
PLATFORMDIRS_CASES = {
    **XDG_CASES,
    "cache-set": {"XDG_CACHE_HOME": "/opt/cache"},
    "cache-trailing-slash": {"XDG_CACHE_HOME": "/opt/cache/"},
    "home-only": {"HOME": "/home/someone"},
    "home-trailing-slash": {"HOME": "/home/someone/"},
    "home-root": {"HOME": "/"},
    "home-relative": {"HOME": "someone"},
    "home-empty": {"HOME": ""},
    "xdg-empty": {"XDG_CONFIG_HOME": "", "XDG_CONFIG_DIRS": "", "XDG_CACHE_HOME": ""},
    "xdg-blank": {"XDG_CONFIG_HOME": " ", "XDG_CONFIG_DIRS": " ", "XDG_CACHE_HOME": " "},
    "xdg-relative": {"XDG_CONFIG_HOME": "cfg", "XDG_CONFIG_DIRS": "site:/opt/site",
                     "XDG_CACHE_HOME": "cache"},
    "dirs-empty-entry": {"XDG_CONFIG_DIRS": ":/opt/site"},
    "dirs-tilde": {"XDG_CONFIG_DIRS": "~/site:/opt/site"},
}


def per_spec(env: dict[str, str]) -> dict[str, str]:
    """`env` without what the XDG spec says to ignore: a variable, or an entry of
    XDG_CONFIG_DIRS, that is not an absolute path (and a HOME that is not). platformdirs
    ignores them itself only since a 4.x release of 2026 (its PR 540); 3.x, the floor, took
    them relative to the cwd."""
    kept = {}
    for name, value in env.items():
        if name == "XDG_CONFIG_DIRS":
            value = os.pathsep.join(e for e in value.split(os.pathsep) if e.startswith("/"))
        if value.startswith("/"):
            kept[name] = value
    return kept


@pytest.mark.parametrize("env", PLATFORMDIRS_CASES.values(), ids=PLATFORMDIRS_CASES.keys())
def test_paths_equal_platformdirs(clean_env, monkeypatch, env):
    from q2pconf._base.paths import user_cache_dir

    def use(values: dict[str, str]) -> None:
        for name in ("XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "XDG_CACHE_HOME", *env):
            monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    use(per_spec(env))
    expected = (Path(platformdirs.user_config_dir("qiime2")),
                Path(platformdirs.site_config_dir("qiime2")),
                platformdirs.user_cache_dir("q2pconf"))
    use(env)
    assert (user_config_path().parent, site_config_path().parent,
            user_cache_dir("q2pconf")) == expected


# -- odd environments ------------------------------------------------------------------------

def load_error() -> str:
    from q2pconf.config import load

    with pytest.raises(ConfigError) as caught:
        load()
    return str(caught.value)


def test_qiime2_config_pointing_at_a_directory(tree, monkeypatch):
    monkeypatch.setenv("QIIME2_CONFIG", str(tree["explicit"].parent))
    message = load_error()
    assert "is a directory, not a config file" in message
    assert "Traceback" not in message


def test_qiime2_config_pointing_at_a_broken_symlink(tree, monkeypatch):
    link = tree["explicit"].parent / "link.toml"
    link.symlink_to(tree["explicit"].parent / "gone.toml")
    monkeypatch.setenv("QIIME2_CONFIG", str(link))
    message = load_error()
    assert "$QIIME2_CONFIG names a broken symlink" in message and "gone.toml" in message


def test_home_unset_still_finds_the_user_config(clean_env, monkeypatch):
    import pwd

    monkeypatch.delenv("HOME")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    expected = Path(pwd.getpwuid(os.getuid()).pw_dir, ".config", "qiime2", CONFIG)
    assert user_config_path() == expected
    assert locate().source in ("user", "in-memory")


@pytest.mark.parametrize("name", ["XDG_CONFIG_HOME", "XDG_CONFIG_DIRS"])
def test_relative_xdg_paths_are_ignored(tree, monkeypatch, name):
    monkeypatch.chdir(tree["explicit"].parent)
    monkeypatch.setenv(name, "relative/dir")
    put(tree["explicit"].parent / "relative" / "dir" / "qiime2" / CONFIG)
    found = locate(seed=False)
    assert found.source == "in-memory"
    assert all(step.path is None or step.path.is_absolute() for step in found.trail)


@pytest.mark.parametrize("name", ["with space", "ünïcødé ✓", "tab\there"])
def test_conda_prefix_with_spaces_and_non_ascii(clean_env, monkeypatch, name):
    prefix = clean_env / name
    prefix.mkdir()
    monkeypatch.setenv("CONDA_PREFIX", str(prefix))
    found = locate()
    assert (found.source, found.path) == ("vendored", prefix / "etc" / CONFIG)
    from q2pconf.config import check

    assert check(found.path).labels == ("default", "htex")


def test_qiime2_config_pointing_at_an_unreadable_file(tree, monkeypatch):
    """Root reads anything, so the command runs as root without the capabilities that
    override file modes: the file's mode 000 then applies."""
    import subprocess
    import sys

    from conftest import require_tool

    setpriv = require_tool("setpriv")
    secret = put(tree["QIIME2_CONFIG"])
    secret.chmod(0)
    monkeypatch.setenv("QIIME2_CONFIG", str(secret))
    drop = "-dac_override,-dac_read_search"
    done = subprocess.run([setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}",
                           sys.executable, "-m", "q2pconf", "info"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"{secret}: cannot be read: Permission denied "
                                  "(named by $QIIME2_CONFIG)\n  Fix:")
    assert done.stderr.rstrip().endswith("or unset QIIME2_CONFIG")
    assert "Traceback" not in done.stderr
    assert secret.stat().st_mode & 0o777 == 0  # left as it was
