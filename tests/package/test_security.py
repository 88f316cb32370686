"""A config file is code-adjacent: what it may name, where it may point, and how the files
q2pconf writes can (not) be tampered with."""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from configs import config, threads
from q2pconf.config import check, from_dict, load
from q2pconf._catalog import accepted as catalog
from q2pconf._base.paths import CONFIG_NAME
from q2pconf._base.files import write_new
from q2pconf.config._seed import seed_prefix
from q2pconf.config._templates import vendored_dict
from q2pconf._base.errors import ConfigError
from q2pconf.config._find import locate
from q2pconf.config._validate import plan

TESTS = Path(__file__).parents[1]
STAMP = f".{CONFIG_NAME}.sha256"
TPOOL = {"class": "ThreadPoolExecutor", "label": "default"}


def refused(doc: dict[str, object]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        plan(doc, "c.toml")
    return caught.value


# -- class names: only what Parsl's namespaces export -------------------------------------------
# (test_check covers os.system, builtins.eval, __import__, deep module paths and the wrong
# namespace; these are the remaining tricks.)

EXECUTOR_TRICKS = {
    "abstract-base-qualified": "parsl.executors.base.ParslExecutor",
    "abstract-base-bare": "ParslExecutor",
    "status-handling-base": "parsl.executors.status_handling.BlockProviderExecutor",
    "method-of-other-namespace": "parsl.providers.LocalProvider.__init__",
    "method-of-allowed-class": "ThreadPoolExecutor.__init__",
    "dunder-attribute": "parsl.executors.ThreadPoolExecutor.__globals__",
    "dunder-class": "__class__",
    "namespace-twice": "parsl.executors.parsl.executors.ThreadPoolExecutor",
    "empty-path-part": "parsl.executors..ThreadPoolExecutor",
    "upper-case-namespace": "PARSL.executors.ThreadPoolExecutor",
    "fullwidth-letter": "\uff34hreadPoolExecutor",
    "cyrillic-o": "ThreadPoolExecut\u043er",
    "combining-accent": "ThreadPoolExecutor\u0301",
    "zero-width-space": "Thread\u200bPoolExecutor",
    "trailing-space": "ThreadPoolExecutor ",
    "trailing-nul": "ThreadPoolExecutor\x00",
    "namespace-only": "parsl.executors",
}


@pytest.mark.parametrize("cls", EXECUTOR_TRICKS.values(), ids=EXECUTOR_TRICKS.keys())
def test_executor_class_tricks_are_refused(cls: str) -> None:
    error = refused({"parsl": {"executors": [{"class": cls, "label": "default"}]}})
    assert error.key == "parsl.executors[0].class"
    assert "is not allowed" in error.problem or "is not in parsl.executors" in error.problem


NESTED_TRICKS = {
    "provider-base": ("provider", "parsl.providers.base.ExecutionProvider"),
    "provider-cluster-base": ("provider", "parsl.providers.cluster_provider.ClusterProvider"),
    "provider-method": ("provider", "parsl.providers.LocalProvider.submit"),
    "launcher-base": ("launcher", "parsl.launchers.base.Launcher"),
    "launcher-wrapped": ("launcher", "parsl.launchers.launchers.wrap_command"),
}


@pytest.mark.parametrize("key,cls", NESTED_TRICKS.values(), ids=NESTED_TRICKS.keys())
def test_provider_and_launcher_class_tricks_are_refused(key: str, cls: str) -> None:
    table: dict[str, object] = {"class": cls}
    provider = table if key == "provider" else {"class": "SlurmProvider", "launcher": table}
    htex = {"class": "HighThroughputExecutor", "label": "htex", "provider": provider}
    error = refused({"parsl": {"executors": [TPOOL, htex]}})
    where = "parsl.executors[1].provider" + ("" if key == "provider" else ".launcher")
    assert error.key == f"{where}.class"


def test_memoizer_and_address_bases_are_refused() -> None:
    memo = refused({"parsl": {"memoizer": {"class": "Memoizer"}, "executors": [TPOOL]}})
    # Parsl 2024.12 (the floor) has no memoizer keyword at all: the whole table is refused
    takes_memoizer = "memoizer" in catalog.parameters("config", "Config")
    assert memo.key == ("parsl.memoizer.class" if takes_memoizer else "parsl.memoizer")
    # parsl.addresses holds helpers that are not address lookups; only those are allowed
    address = {"class": "get_all_addresses"}
    htex = {"class": "HighThroughputExecutor", "label": "htex", "address": address}
    assert refused({"parsl": {"executors": [TPOOL, htex]}}).key == \
        "parsl.executors[1].address.class"


def test_checking_tricks_imports_nothing(tmp_path: Path) -> None:
    """The check reads Parsl's source; it never imports or calls what a file names."""
    path = tmp_path / "c.toml"
    path.write_text('[[parsl.executors]]\nclass = "parsl.executors.base.ParslExecutor"\n'
                    'label = "default"\n')
    code = (f"import sys\nfrom q2pconf.config import check\ntry:\n    check({str(path)!r})\n"
            "except Exception as e:\n    print(type(e).__name__)\n"
            "print(sorted(m for m in sys.modules if m.startswith('parsl')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.stdout.split("\n")[:2] == ["ConfigError", "[]"], run.stderr


# -- labels become path parts (run_dir/<label>/...): no traversal ----------------------------

BAD_LABELS = {"parent-then-name": "../x", "slash": "a/b", "dot-dot": "..", "dot": ".",
              "hidden": ".hidden", "nul": "x\x00", "newline": "x\n", "absolute": "/tmp/x",
              "backslash": "a\\b", "tilde": "~", "empty": "", "internal": "_q2pconf_idle",
              "fullwidth-digit": "\uff11", "non-ascii-letter": "d\u00e9faut"}


@pytest.mark.parametrize("label", BAD_LABELS.values(), ids=BAD_LABELS.keys())
def test_labels_that_could_leave_the_run_directory_are_refused(label: str) -> None:
    htex = {"class": "HighThroughputExecutor", "label": label}
    error = refused({"parsl": {"executors": [TPOOL, htex]}})
    assert error.key == "parsl.executors[1].label"
    assert "not a usable label" in error.problem


@pytest.mark.parametrize("label", ["x.y", "a-b_c", "HTEX2"])
def test_plain_labels_with_dots_and_dashes_are_fine(label: str) -> None:
    htex = {"class": "HighThroughputExecutor", "label": label}
    assert label in plan({"parsl": {"executors": [TPOOL, htex]}}, "c.toml").executors


# -- run_dir: the file means the same directory wherever the pipeline starts --------------------

def config_with_run_dir(directory: Path, value: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(config(threads("default"), run_dir=value))
    return path


def test_relative_run_dir_is_next_to_the_config_file_not_the_cwd(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = config_with_run_dir(clean_env / "x", "runs")
    seen = []
    for cwd in (clean_env, clean_env / "x", Path("/")):
        monkeypatch.chdir(cwd)
        seen.append(check(path).parsl_config().run_dir)
    assert seen == [str(clean_env / "x" / "runs")] * 3


def test_relative_config_path_is_resolved_when_it_is_loaded(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_with_run_dir(clean_env / "x", "runs/../runs2")
    monkeypatch.chdir(clean_env)
    monkeypatch.setenv("QIIME2_CONFIG", "x/config.toml")
    settings = load()
    monkeypatch.chdir("/")  # the program moves on; the config it loaded does not
    assert settings.parsl_config().run_dir == str(clean_env / "x" / "runs/../runs2")


@pytest.mark.parametrize("value,under_home", [("~/runs", "runs"), ("~", "")])
def test_tilde_in_run_dir_is_the_home_directory(clean_env: Path, value: str,
                                                under_home: str) -> None:
    path = config_with_run_dir(clean_env / "x", value)
    expected = os.path.join(str(clean_env / "home"), under_home) if under_home else \
        str(clean_env / "home")
    assert check(path).parsl_config().run_dir == expected


def test_absolute_run_dir_is_kept_and_a_dict_has_no_file_to_be_relative_to(
        tmp_path: Path) -> None:
    path = config_with_run_dir(tmp_path / "x", str(tmp_path / "elsewhere"))
    assert check(path).parsl_config().run_dir == str(tmp_path / "elsewhere")
    doc = {"parsl": {"run_dir": "runs", "executors": [TPOOL]}}
    assert from_dict(doc).plan.options["run_dir"] == "runs"  # Parsl's own rule: the cwd


BAD_RUN_DIRS = {"nul": ('"runs\\u0000/x"', "contains a NUL byte"),
                "empty": ('""', "is empty"), "blank": ('"  "', "is empty"),
                "number": ("3", "must be a string"), "array": ('["a"]', "must be a string"),
                "table": ("{ path = \"a\" }", "must be a string"),
                "bool": ("true", "must be a string")}


@pytest.mark.parametrize("value,problem", BAD_RUN_DIRS.values(), ids=BAD_RUN_DIRS.keys())
def test_unusable_run_dir_is_a_config_error(tmp_path: Path, value: str, problem: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[parsl]\nrun_dir = {value}\n"
                    '[[parsl.executors]]\nclass = "ThreadPoolExecutor"\nlabel = "default"\n')
    with pytest.raises(ConfigError) as caught:
        check(path)
    assert caught.value.key == "parsl.run_dir"
    assert problem in caught.value.problem


def test_pipeline_started_elsewhere_writes_its_run_next_to_the_config(tmp_path: Path) -> None:
    path = config_with_run_dir(tmp_path / "x", "runs")
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CONDA_PREFIX"}
    env.update(QIIME2_CONFIG=str(path), HOME=str(tmp_path / "home"), Q2PCONF_PROGRESS="0",
               XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]))
    code = "import pipeline_steps as s; print(s.threads_only(3))"
    run = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[0, 2, 4]"
    assert list(cwd.iterdir()) == []
    assert (tmp_path / "x" / "runs" / "000" / "parsl.log").is_file()


# -- permissions of written files, whatever the umask --------------------------------------------

def q2pconf_under_umask(umask: int, env: dict[str, str], *args: str) -> None:
    script = f"umask {umask:03o} && exec \"$@\""
    run = subprocess.run(["sh", "-c", script, "sh", sys.executable, "-m", "q2pconf", *args],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o077], ids=["umask-000", "umask-077"])
def test_written_files_are_0644_and_new_directories_never_writable_by_others(
        clean_env: Path, umask: int) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("QIIME2_CONFIG", "CONDA_PREFIX")}
    seeded, initialised = clean_env / "seeded", clean_env / "initialised"
    seeded.mkdir()  # the environment's prefix exists (conda made it): q2pconf makes etc/
    initialised.mkdir()
    q2pconf_under_umask(umask, env, "seed", "--prefix", str(seeded))
    q2pconf_under_umask(umask, env, "init", "--prefix", str(initialised))
    q2pconf_under_umask(umask, env, "init", "--user")
    user = clean_env / "home" / ".config" / "qiime2" / CONFIG_NAME
    files = [seeded / "etc" / CONFIG_NAME, seeded / "etc" / STAMP,
             initialised / "etc" / CONFIG_NAME, user]
    assert {str(f): mode(f) for f in files} == {str(f): 0o644 for f in files}
    created = [seeded / "etc", initialised / "etc", user.parent, user.parent.parent]
    assert {str(d): mode(d) & 0o022 for d in created} == {str(d): 0 for d in created}


def test_without_hard_links_the_file_is_still_0644_under_umask_077(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some FUSE and network file systems refuse hard links; none is mounted here, so the
    refusal is simulated."""
    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    previous = os.umask(0o077)
    try:
        assert write_new(tmp_path / CONFIG_NAME, "x = 1\n") is True
    finally:
        os.umask(previous)
    assert mode(tmp_path / CONFIG_NAME) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_NAME]


# -- symlinks in etc/ ----------------------------------------------------------------------------
# (a symlink at etc/qiime2_config.toml itself: tests/test_default.py)

def test_symlink_planted_at_the_checksum_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    etc = tmp_path / "env" / "etc"
    etc.mkdir(parents=True)
    (etc / STAMP).symlink_to(victim)
    path, written = seed_prefix(tmp_path / "env")
    assert written and victim.read_text() == "precious"
    assert not (etc / STAMP).is_symlink()
    check_sum = subprocess.run(["sha256sum", "--status", "-c", STAMP], cwd=etc, timeout=60)
    assert check_sum.returncode == 0


@pytest.fixture
def prefix(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    env = clean_env / "env"
    env.mkdir()
    monkeypatch.setenv("CONDA_PREFIX", str(env))
    return env


def test_symlinked_etc_is_followed_for_seeding(clean_env: Path, prefix: Path) -> None:
    """conda users do link etc/ to shared storage: the seed lands there, readable by all."""
    shared = clean_env / "shared-etc"
    shared.mkdir()
    (prefix / "etc").symlink_to(shared)
    found = locate()
    assert (found.source, found.path) == ("vendored", prefix / "etc" / CONFIG_NAME)
    assert sorted(p.name for p in shared.iterdir()) == [STAMP, CONFIG_NAME]
    assert (prefix / "etc").is_symlink() and mode(shared / CONFIG_NAME) == 0o644
    assert locate().source == "conda"


def test_symlinked_etc_with_a_config_is_read_never_overwritten(clean_env: Path,
                                                               prefix: Path) -> None:
    shared = clean_env / "shared-etc"
    shared.mkdir()
    mine = shared / CONFIG_NAME
    mine.write_text('[parsl]\n[[parsl.executors]]\nclass = "ThreadPoolExecutor"\n'
                    'label = "default"\nmax_threads = 7\n')
    before = mine.read_bytes(), mine.stat().st_mtime_ns
    (prefix / "etc").symlink_to(shared)
    assert load().workers("default") == 7
    assert seed_prefix(prefix) == (prefix / "etc" / CONFIG_NAME, False)
    assert (mine.read_bytes(), mine.stat().st_mtime_ns) == before
    assert sorted(p.name for p in shared.iterdir()) == [CONFIG_NAME]


def test_dangling_etc_symlink_is_not_created_and_the_default_is_used_from_memory(
        clean_env: Path, prefix: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = clean_env / "gone" / "etc"
    (prefix / "etc").symlink_to(target)
    found = locate()
    assert (found.source, found.path) == ("in-memory", None)
    assert not (clean_env / "gone").exists()
    assert "q2pconf init --user" in caplog.text
    assert load().plan.vendored_executors or load().source == "in-memory"
    assert [e["label"] for e in vendored_dict()["parsl"]["executors"]] == list(load().labels)
