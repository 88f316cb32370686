"""Checking config files: real-world configs build; every malformed file gets a ConfigError
that names the file, the key and a fix."""
from __future__ import annotations

import os
import string
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configs import config, htex, local, slurm, threads
from q2pconf._catalog import accepted as catalog
from q2pconf.config import check, from_dict, load
from q2pconf._base.cpus import default_workers
from q2pconf._base.errors import ConfigError

# The seed document's default, as printed there; numCPUs - 1 is filled in before parsing.
SEED_DEFAULT = """\
[parsl]
strategy = "None"

[[parsl.executors]]
class = "ThreadPoolExecutor"
label = "default"
max_threads = numCPUs - 1

[[parsl.executors]]
class = "HighThroughputExecutor"
label = "htex"
max_workers = numCPUs - 1

[parsl.executors.provider]
class = "LocalProvider"
"""

# QIIME 2 2024.10 and later: threads are 'tpool', worker processes are 'default'.
TPOOL = threads("tpool", max_threads=3)
QIIME2_2024_10 = config(TPOOL, htex("default", max_workers_per_node=3, provider=local()),
                        strategy="None")

SLURM = """\
[parsl]
strategy = "htex_auto_scale"

[[parsl.executors]]
class = "ThreadPoolExecutor"
label = "default"
max_threads = 2

[[parsl.executors]]
class = "HighThroughputExecutor"
label = "slurm"
max_workers_per_node = 8
cores_per_worker = 2

[parsl.executors.provider]
class = "SlurmProvider"
partition = "short"
walltime = "02:00:00"
nodes_per_block = 2
max_blocks = 4
worker_init = "module load qiime2"

[parsl.executors.provider.launcher]
class = "SrunLauncher"

[parsl.executor_mapping]
dada2 = { denoise_paired = "slurm", denoise_single = "slurm" }
"feature_table.summarize" = "default"
plot = "default"
"""


def write(tmp_path: Path, text: str | bytes, name: str = "qiime2_config.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def seed_default() -> str:
    return SEED_DEFAULT.replace("numCPUs - 1", str(default_workers()))


# -- real configs ----------------------------------------------------------------------------

def test_seed_default_verbatim_checks_and_builds(tmp_path):
    settings = check(write(tmp_path, seed_default()))
    assert settings.labels == ("default", "htex")
    assert any("max_workers" in w and "max_workers_per_node" in w for w in settings.warnings)
    built = settings.parsl_config()
    executor = {e.label: e for e in built.executors}["htex"]
    assert type(executor).__name__ == "HighThroughputExecutor"
    assert executor.max_workers_per_node == default_workers()
    assert built.strategy == "none"  # "None" would make parsl.load raise KeyError


def test_seed_default_warning_is_logged_on_load(tmp_path, caplog):
    path = write(tmp_path, seed_default())
    with caplog.at_level("WARNING", logger="q2pconf"):
        load(path)
    messages = [r.getMessage() for r in caplog.records if r.name == "q2pconf"]
    assert len(messages) == 1
    assert str(path) in messages[0] and "max_workers_per_node" in messages[0]


def test_qiime2_2024_10_default_builds(tmp_path):
    settings = check(write(tmp_path, QIIME2_2024_10))
    assert settings.labels == ("tpool", "default")
    assert settings.warnings == ()
    built = settings.parsl_config()
    kinds = {e.label: type(e).__name__ for e in built.executors}
    assert kinds == {"tpool": "ThreadPoolExecutor", "default": "HighThroughputExecutor"}
    assert type(built.executors[1].provider).__name__ == "LocalProvider"
    assert built.strategy == "none"


def test_slurm_config_builds_and_flattens_the_mapping(tmp_path):
    settings = check(write(tmp_path, SLURM))
    assert settings.mapping == {"dada2.denoise_paired": "slurm", "dada2.denoise_single": "slurm",
                                "feature_table.summarize": "default", "plot": "default"}
    assert settings.label_for("denoise_single", "dada2") == "slurm"
    assert settings.label_for("summarize", "feature_table") == "default"
    assert settings.label_for("plot", "any_plugin") == "default"
    assert settings.label_for("other", "dada2") is None
    executor = settings.executor("slurm")
    provider = executor.provider
    assert type(provider).__name__ == "SlurmProvider"
    assert (provider.partition, provider.walltime, provider.nodes_per_block) == (
        "short", "02:00:00", 2)
    assert provider.worker_init.strip().splitlines()[-1] == "module load qiime2"
    assert type(provider.launcher).__name__ == "SrunLauncher"
    assert executor.address is None  # not on LocalProvider: Parsl finds the node's address
    assert settings.parsl_config().strategy == "htex_auto_scale"


def test_mapping_only_file_uses_the_vendored_executors(tmp_path):
    text = '[parsl.executor_mapping]\ndada2 = { denoise_single = "htex" }\n'
    settings = check(write(tmp_path, text))
    assert settings.labels == ("default", "htex")
    assert settings.plan.vendored_executors
    assert settings.mapping == {"dada2.denoise_single": "htex"}
    assert settings.workers("htex") == default_workers()
    assert settings.workers("default") == default_workers()


def test_namespace_qualified_class_is_the_same_class(tmp_path):
    text = '[[parsl.executors]]\nclass = "parsl.executors.ThreadPoolExecutor"\nlabel = "default"\n'
    settings = check(write(tmp_path, text))
    assert settings.executor_class("default") == "ThreadPoolExecutor"
    assert type(settings.executor("default")).__name__ == "ThreadPoolExecutor"


def test_local_channel_is_dropped_with_a_warning(tmp_path):
    text = config(TPOOL, htex("default", max_workers_per_node=3,
                              provider=local(channel={"class": "LocalChannel"})),
                  strategy="None")
    settings = check(write(tmp_path, text))
    assert any("channel" in w for w in settings.warnings)
    assert type(settings.executor("default").provider).__name__ == "LocalProvider"


# Parsl moved the checkpoint keys into a memoizer object after 2024.12 (the project's floor):
# CI runs this file on both, and each Parsl checks its own branch of the tests below.
MEMOIZER_OBJECTS = "memoizer" in catalog.parameters("config", "Config")


def test_old_checkpoint_keys_move_into_the_memoizer_where_parsl_has_one(tmp_path):
    text = config(TPOOL, htex("default", max_workers_per_node=3, provider=local()),
                  checkpoint_mode="task_exit")
    settings = check(write(tmp_path, text))
    built = settings.parsl_config()
    if MEMOIZER_OBJECTS:
        assert any("memoizer" in w for w in settings.warnings)
        assert type(built.memoizer).__name__ == "BasicMemoizer"
        assert built.memoizer.checkpoint_mode == "task_exit"
    else:  # the key is current on this Parsl: nothing to say
        assert settings.warnings == () and built.checkpoint_mode == "task_exit"


def test_a_memoizer_table_works_on_a_parsl_without_memoizer_objects(tmp_path):
    text = config(TPOOL, htex("default", max_workers_per_node=3, provider=local()),
                  memoizer={"class": "BasicMemoizer", "checkpoint_mode": "task_exit"})
    built = check(write(tmp_path, text)).parsl_config()
    if MEMOIZER_OBJECTS:
        assert built.memoizer.checkpoint_mode == "task_exit"
    else:
        assert built.checkpoint_mode == "task_exit"


def test_worker_ports_is_refused_only_where_parsl_removed_it(tmp_path):
    path = write(tmp_path, config(threads("default"), htex("htex", worker_ports=[50000, 50001])))
    if "worker_ports" in catalog.parameters("executors", "HighThroughputExecutor"):
        checked = check(path)  # a tuple, as Parsl's typeguard wants (a list failed at start)
        assert checked.plan.executors["htex"].kwargs["worker_ports"] == (50000, 50001)
        assert checked.executor("htex").worker_ports == (50000, 50001)
        return
    with pytest.raises(ConfigError) as caught:
        check(path)
    assert caught.value.key == "parsl.executors[1].worker_ports"
    assert "no longer a Parsl setting" in caught.value.problem
    assert caught.value.fix.startswith("write worker_port = 54000 in its place")


def own_processes() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def test_building_starts_no_process_or_thread(tmp_path):
    import parsl  # noqa: F401  (importing Parsl is not what is measured)

    settings = check(write(tmp_path, SLURM))
    local = check(write(tmp_path, QIIME2_2024_10, "local.toml"))
    me = psutil.Process()
    processes, threads = own_processes(), me.num_threads()
    configs = [settings.parsl_config(), local.parsl_config(), local.executor("default")]
    assert own_processes() == processes
    assert me.num_threads() == threads
    assert not os.path.exists(configs[0].run_dir)  # nothing written either


# -- malformed files -------------------------------------------------------------------------

DEFAULT = threads("default")


# id: (file text, key path, words the problem names, words the fix names)
MALFORMED: dict[str, tuple[str | bytes, str, str, str]] = {
    "empty": ("", "parsl", "no [parsl] table", "[parsl]"),
    "misspelled-parsl": ("[parsel]\nstrategy = 'none'\n", "parsl", "no [parsl] table",
                         "rename [parsel] to [parsl]"),
    "parsl-not-table": ("parsl = 3\n", "parsl", "must be a table", "[parsl]"),
    "parsl-a-date": ("parsl = 2020-01-01\n", "parsl", "must be a table, not a date", "[parsl]"),
    "strategy-a-date-time": (config(DEFAULT, strategy=datetime(2020, 1, 1, 10)),
                             "parsl.strategy", "must be a string, not a date-time",
                             "strategy = "),
    "executors-single-table": ('[parsl.executors]\nclass = "ThreadPoolExecutor"\n',
                               "parsl.executors", "array of tables", "[[parsl.executors]]"),
    "executors-string": ('[parsl]\nexecutors = "ThreadPoolExecutor"\n', "parsl.executors",
                         "non-empty array", "[[parsl.executors]]"),
    "executors-empty": ("[parsl]\nexecutors = []\n", "parsl.executors", "non-empty array",
                        "[[parsl.executors]]"),
    "executor-is-string": ('[parsl]\nexecutors = ["ThreadPoolExecutor"]\n',
                           "parsl.executors[0]", "must be a table", "[[parsl.executors]]"),
    "executor-without-class": ('[[parsl.executors]]\nlabel = "default"\n',
                               "parsl.executors[0].class", "is missing", "ThreadPoolExecutor"),
    "class-not-string": ('[[parsl.executors]]\nclass = 3\nlabel = "default"\n',
                         "parsl.executors[0].class", "must be a string", "ThreadPoolExecutor"),
    "class-typo": ('[[parsl.executors]]\nclass = "ThreadPoolExecuter"\nlabel = "default"\n',
                   "parsl.executors[0].class", "'ThreadPoolExecuter' is not in parsl.executors",
                   "did you mean ThreadPoolExecutor?"),
    "class-os-system": ('[[parsl.executors]]\nclass = "os.system"\nlabel = "default"\n',
                        "parsl.executors[0].class", "'os.system' is not allowed",
                        "HighThroughputExecutor"),
    "class-builtins-eval": ('[[parsl.executors]]\nclass = "builtins.eval"\nlabel = "default"\n',
                            "parsl.executors[0].class", "'builtins.eval' is not allowed",
                            "ThreadPoolExecutor"),
    "class-dunder-import": ('[[parsl.executors]]\nclass = "__import__"\nlabel = "default"\n',
                            "parsl.executors[0].class", "'__import__' is not allowed",
                            "ThreadPoolExecutor"),
    "class-deep-dotted-path": (
        '[[parsl.executors]]\nclass = "parsl.executors.high_throughput.executor.'
        'HighThroughputExecutor"\nlabel = "default"\n', "parsl.executors[0].class",
        "is not allowed: only names from parsl.executors", "did you mean HighThroughputExecutor?"),
    "class-other-namespace": ('[[parsl.executors]]\nclass = "parsl.providers.LocalProvider"\n'
                              'label = "default"\n', "parsl.executors[0].class",
                              "is not allowed", "ThreadPoolExecutor"),
    "unknown-key": (config(threads("default", max_thread=2)), "parsl.executors[0].max_thread",
                    "no setting 'max_thread'", "did you mean max_threads?"),
    "string-for-int": (config(threads("default", max_threads="4")),
                       "parsl.executors[0].max_threads",
                       "must be a whole number, not a string", "max_threads = 4 (no quotes)"),
    "float-for-int": (config(threads("default", max_threads=4.0)),
                      "parsl.executors[0].max_threads",
                      "not a number (4.0)", "max_threads = 4 (no decimal point)"),
    "bool-for-int": (config(threads("default", max_threads=True)),
                     "parsl.executors[0].max_threads",
                     "not true or false", "write max_threads = "),
    "provider-on-threads": (config(threads("default", provider=local())),
                            "parsl.executors[0].provider", "ThreadPoolExecutor takes no provider",
                            "use HighThroughputExecutor"),
    "provider-as-string": (config(DEFAULT, htex("htex", provider="LocalProvider")),
                           "parsl.executors[1].provider", "must be a table naming a class",
                           'class = "LocalProvider"'),
    "unknown-provider": (config(DEFAULT, htex("htex", provider={"class": "SlurmProvder"})),
                         "parsl.executors[1].provider.class",
                         "'SlurmProvder' is not in parsl.providers",
                         "did you mean SlurmProvider?"),
    "unknown-launcher": (config(DEFAULT, htex("htex", provider=slurm(launcher="SrunLaunch"))),
                         "parsl.executors[1].provider.launcher.class", "not in parsl.launchers",
                         "did you mean SrunLauncher?"),
    "nodes-per-block-string": (config(DEFAULT, htex("htex", provider=slurm(nodes_per_block="2"))),
                               "parsl.executors[1].provider.nodes_per_block",
                               "must be a whole number", "nodes_per_block = 2"),
    "walltime-number": (config(DEFAULT, htex("htex", provider=slurm(walltime=30))),
                        "parsl.executors[1].provider.walltime", "must be a string",
                        'walltime = "'),
    "provider-unknown-key": (config(DEFAULT, htex("htex", provider=slurm(partion="short"))),
                             "parsl.executors[1].provider.partion", "no setting 'partion'",
                             "did you mean partition?"),
    "duplicate-label": (config(DEFAULT, DEFAULT), "parsl.executors[1].label", "used twice",
                        "its own label"),
    "no-default-label": ('[[parsl.executors]]\nclass = "ThreadPoolExecutor"\nlabel = "tpool"\n',
                         "parsl.executors", "no executor is labelled 'default'",
                         'label one executor "default"'),
    "no-label": ('[[parsl.executors]]\nclass = "ThreadPoolExecutor"\n', "parsl.executors[0]",
                 "has no label", 'label = "default"'),
    "label-with-space": ('[[parsl.executors]]\nclass = "ThreadPoolExecutor"\nlabel = "my pool"\n',
                         "parsl.executors[0].label", "not a usable label", "letters, digits"),
    "label-not-string": ('[[parsl.executors]]\nclass = "ThreadPoolExecutor"\nlabel = 1\n',
                         "parsl.executors[0].label", "must be a string", "label = "),
    "mapping-missing-label": (config(DEFAULT, htex("htex"),
                                     mapping={"dada2": {"denoise_single": "htx"}}),
                              "parsl.executor_mapping.dada2.denoise_single",
                              "no executor is labelled 'htx'", "did you mean htex?"),
    "mapping-flat-missing-label": (config(DEFAULT, mapping={"summarize": "big"}),
                                   "parsl.executor_mapping.summarize",
                                   "no executor is labelled 'big'", "default"),
    "mapping-qiime2-tpool": (config(DEFAULT, htex("htex"), mapping={"summarize": "tpool"}),
                             "parsl.executor_mapping.summarize",
                             "no executor is labelled 'tpool'",
                             "thread pool is labelled 'default': use 'default' instead"),
    "mapping-value-not-string": ("[parsl.executor_mapping]\nsummarize = 3\n",
                                 "parsl.executor_mapping.summarize",
                                 "must be an executor label (a string)",
                                 'summarize = "default"'),
    "mapping-not-table": ('[parsl]\nexecutor_mapping = "htex"\n', "parsl.executor_mapping",
                          "must be a table", "[parsl.executor_mapping]"),
    "bad-strategy": (config(DEFAULT, strategy="simpel"), "parsl.strategy",
                     "'simpel' is not a Parsl strategy", 'write strategy = "simple"'),
    "strategy-number": (config(DEFAULT, strategy=0), "parsl.strategy", "must be a string",
                        "strategy = "),
    "unknown-parsl-key": (config(DEFAULT, stratgy="none"), "parsl.stratgy",
                          "Config has no setting 'stratgy'", "did you mean strategy?"),
    "bad-exit-mode": (config(DEFAULT, exit_mode="clean"), "parsl.exit_mode",
                      "is not one of", 'write exit_mode = "cleanup"'),
    "managed-dependency-resolver": (config(DEFAULT, dependency_resolver="deep"),
                                    "parsl.dependency_resolver", "cannot be set",
                                    "remove dependency_resolver"),
    "managed-retry-handler": (config(DEFAULT, retry_handler="x"), "parsl.retry_handler",
                              "cannot be set", "remove retry_handler"),
    "removed-adhoc-provider": (config(DEFAULT, htex("htex", provider={"class": "AdHocProvider"})),
                               "parsl.executors[1].provider.class",
                               "AdHocProvider was removed", "LocalProvider"),
    "removed-ssh-channel": (config(DEFAULT, htex("htex", provider=slurm(channel={
                                "class": "SSHChannel", "hostname": "login.example.org"}))),
                            "parsl.executors[1].provider.channel",
                            "SSHChannel cannot work", "delete the channel table"),
    "old-and-new-worker-key": (config(DEFAULT, htex("htex", max_workers=2,
                                                    max_workers_per_node=2)),
                               "parsl.executors[1].max_workers", "old name of max_workers_per_node",
                               "remove max_workers"),
    # named as written, also where it moves into today's memoizer
    "checkpoint-mode-typo": (config(DEFAULT, checkpoint_mode="task_end"),
                             "parsl.checkpoint_mode", "is not one of",
                             'write checkpoint_mode = "task_exit"'),
    "memoizer-typo": ((config(DEFAULT, memoizer={"class": "BasicMemoiser"}),
                       "parsl.memoizer.class", "not in parsl.dataflow.memoization",
                       "did you mean BasicMemoizer?") if MEMOIZER_OBJECTS else
                      (config(DEFAULT, memoizer={"class": "BasicMemoiser"}),
                       "parsl.memoizer", "Config takes no memoizer", "checkpoint_mode")),
    "monitoring-typo": (config(DEFAULT, monitoring={"class": "MonitoringHub", "hub_adress": "x"}),
                        "parsl.monitoring.hub_adress", "no setting 'hub_adress'",
                        "did you mean hub_address?"),
}


@pytest.mark.parametrize("text,key,problem,fix", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_file_names_file_key_and_fix(tmp_path, text, key, problem, fix):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        check(path)
    error = caught.value
    message = str(error)
    assert message.startswith(f"{path}: {key}: ")
    assert (error.file, error.key) == (str(path), key)
    assert problem in error.problem
    first, second = message.split("\n")
    assert second.startswith("  Fix: ") and fix in second


def test_malformed_cases_are_many_and_distinct():
    assert len(MALFORMED) >= 30
    assert len({text for text, _, _, _ in MALFORMED.values()}) == len(MALFORMED)


@pytest.mark.parametrize("text", ["[parsl\n", '[parsl]\nstrategy = "none\n',
                                  "[parsl]\nstrategy = none\n", "[parsl]\n[parsl]\n"])
def test_toml_syntax_error_gives_line_and_column(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        check(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: is not valid TOML")
    assert "line" in message and "column" in message
    assert "\n  Fix: fix the syntax" in message


def test_binary_file(tmp_path):
    path = write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(ConfigError, match="is not UTF-8 text") as caught:
        check(path)
    assert str(caught.value).startswith(str(path)) and "Fix: save it as UTF-8" in str(caught.value)


def test_latin1_file(tmp_path):
    path = write(tmp_path, '[parsl]\n# caf\xe9\nstrategy = "none"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"byte 13 is invalid"):
        check(path)


def test_directory(tmp_path):
    with pytest.raises(ConfigError) as caught:
        check(tmp_path)
    assert str(caught.value) == (f"{tmp_path}: is a directory, not a config file\n"
                                 "  Fix: point to a TOML config file "
                                 "(`q2pconf init --prefix DIR` writes one)")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read: No such file"):
        check(tmp_path / "absent.toml")


def test_build_refusal_is_a_config_error(tmp_path):
    """Whatever Parsl's own checks refuse while building becomes a ConfigError (the file
    check catches what it can see first, so the refusal is made directly here)."""
    from parsl.executors import HighThroughputExecutor

    # A private, on purpose: every refusal a file could reach is made by check first, so no
    # public call gets here; this is the one place that wraps what Parsl's constructors raise.
    from q2pconf.config._build import _construct

    with pytest.raises(ConfigError) as caught:
        _construct("my.toml", "parsl.executors[1]", HighThroughputExecutor,
                   {"available_accelerators": [1, 2]})
    assert str(caught.value).startswith(
        "my.toml: parsl.executors[1]: Parsl refused this HighThroughputExecutor: ")
    assert "available_accelerators" in str(caught.value) and "\n  Fix: " in str(caught.value)


def test_array_items_are_checked_against_parsl_s_annotation(tmp_path):
    """`available_accelerators: int | Sequence[str]`: an array of numbers passed the check
    and then failed in Parsl's typeguard at start."""
    path = write(tmp_path, config(DEFAULT, htex("htex", available_accelerators=[1, 2])))
    with pytest.raises(ConfigError) as caught:
        check(path)
    assert caught.value.key == "parsl.executors[1].available_accelerators[0]"
    assert "must be a string, not" in caught.value.problem
    path = write(tmp_path, config(DEFAULT, htex("htex", available_accelerators=["0", "1"])))
    assert check(path).executor("htex").available_accelerators == ["0", "1"]


# -- property: nothing but ConfigError escapes ------------------------------------------------

VOCABULARY = ["class", "label", "provider", "launcher", "max_threads", "max_workers",
              "max_workers_per_node", "strategy", "executors", "executor_mapping", "channel",
              "worker_ports", "memoizer", "checkpoint_mode", "address", "walltime",
              "nodes_per_block", "partition", "run_dir", "retries", "monitoring"]
CLASSES = ["ThreadPoolExecutor", "HighThroughputExecutor", "MPIExecutor", "LocalProvider",
           "SlurmProvider", "SrunLauncher", "SingleNodeLauncher", "BasicMemoizer",
           "MonitoringHub", "address_by_hostname", "AdHocProvider", "SSHChannel",
           "LocalChannel", "ThreadPoolExecuter", "os.system", "__import__",
           "parsl.executors.ThreadPoolExecutor", "Config", ""]
LABELS = ["default", "htex", "tpool", "", "a b", ".x"]

keys = st.one_of(st.sampled_from(VOCABULARY), st.text(string.ascii_letters + "_.", max_size=8),
                 st.text(max_size=5).filter(lambda s: "\x00" not in s))
scalars = st.one_of(
    st.text(max_size=10), st.sampled_from(CLASSES + LABELS),
    st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True), st.booleans())
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


@st.composite
def objects(draw: Any, depth: int = 0) -> dict[str, Any]:
    """A table with a class from the vocabulary and a few random keys, maybe nested ones."""
    table: dict[str, Any] = draw(st.dictionaries(keys, values, max_size=3))
    if draw(st.booleans()):
        table["class"] = draw(st.sampled_from(CLASSES))
    if draw(st.booleans()):
        table["label"] = draw(st.sampled_from(LABELS))
    if depth < 2 and draw(st.booleans()):
        table[draw(st.sampled_from(["provider", "launcher", "channel", "address"]))] = draw(
            objects(depth + 1))
    return table


@st.composite
def documents(draw: Any) -> dict[str, Any]:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.dictionaries(keys, values, max_size=4))
    section: dict[str, Any] = draw(st.dictionaries(keys, values, max_size=3))
    if draw(st.booleans()):
        section["executors"] = draw(st.lists(objects(), max_size=3))
    if draw(st.booleans()):
        section["executor_mapping"] = draw(st.dictionaries(
            keys, st.one_of(st.sampled_from(LABELS), values,
                            st.dictionaries(keys, st.sampled_from(LABELS), max_size=2)),
            max_size=3))
    if draw(st.booleans()):
        section["strategy"] = draw(st.sampled_from(["None", "none", "simple", "fast", 1]))
    return {"parsl": section, **draw(st.dictionaries(keys, values, max_size=1))}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_any_document_checks_or_raises_config_error(tmp_path_factory, doc):
    try:
        from_dict(doc).parsl_config()  # what checks must build, or fail as a ConfigError
    except ConfigError:
        pass
    path = tmp_path_factory.mktemp("doc") / "qiime2_config.toml"
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    try:
        check(path)
    except ConfigError as error:
        assert str(error).startswith(str(path))
