"""`q2pconf` command line: info, check, init, seed, report (a script's --parallel: _arguments)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from q2pconf._base.errors import ConfigError

if TYPE_CHECKING:
    from q2pconf.config._settings import Settings

EPILOG = """examples:
  q2pconf info                       which config is used, and why
  q2pconf check my_config.toml       validate a file without running anything
  q2pconf init --user                write an editable config for yourself
  q2pconf info --runs                your latest pipeline runs and their traces
  q2pconf report                     an HTML report of your last run
  q2pconf tune --what-if             a better config from your last run, and its predicted time
  QIIME2_CONFIG=my.toml python run.py   use a config for one run
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2


class _Version(argparse.Action):
    """`--version`: prints "q2pconf 0.1.0" and exits, as argparse's version action does; the
    installed version is read only when asked (importlib.metadata is not on the lookup)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0,
                         help="print q2pconf's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from importlib.metadata import version

        print(f"{parser.prog} {version('q2pconf')}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="q2pconf", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Find, check and write QIIME 2 parallel (Parsl) configs.")
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(name: str, run: Any, help: str, example: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help,
                                  epilog=f"example:\n  {example}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(run=run)
        return sub

    info = command("info", _info, "show which config file is used and why",
                   "q2pconf info --json")
    info.add_argument("--json", action="store_true", help="print JSON for scripts")
    info.add_argument("--parallel-config", metavar="PATH", help="an explicit config file")
    info.add_argument("--runs", action="store_true",
                      help="list your latest pipeline runs and their trace files instead")

    report = command("report", _report, "write the HTML report of a pipeline run",
                     "q2pconf report            (your last run; prints the file's path)")
    report.add_argument("target", metavar="RUN", nargs="?",
                        help="a run's .run.json or .trace.tsv file, or a directory of runs "
                        "(default: your last run)")
    report.add_argument("-o", "--output", metavar="FILE", help="write the report here instead "
                        "of beside the trace")

    tune = command("tune", _tune, "write a better config from traced runs, and predict the "
                   "run's time with it", "q2pconf tune --what-if     (your last run)")
    tune.add_argument("targets", metavar="RUN", nargs="*",
                      help="runs' .run.json or .trace.tsv files, or directories of runs "
                      "(default: your last run); the newest one's config is tuned")
    tune.add_argument("-o", "--output", metavar="FILE", help="write the tuned config here "
                      "(default: beside the newest run, <name>.tuned.toml)")
    tune.add_argument("--what-if", action="store_true", help="also predict the time with "
                      "1, 2, 4, 8 workers (blocks) of each executor")
    tune.add_argument("--json", action="store_true", help="print JSON for scripts")

    check = command("check", _check, "validate a config file; writes and starts nothing",
                    "q2pconf check ~/.config/qiime2/qiime2_config.toml")
    check.add_argument("file", help="the config file to check")

    init = command("init", _init, "write the commented default config to edit",
                   "q2pconf init --user   (then edit the path it prints)")
    where = init.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true",
                       help="your user config directory (the default)")
    where.add_argument("--site", action="store_true", help="the site config directory")
    where.add_argument("--prefix", metavar="DIR", help="DIR/etc/qiime2_config.toml")
    init.add_argument("--template", default="local", choices=_template_names(),
                      help="which machine to write a config for (default: local)")
    init.add_argument("--force", action="store_true",
                      help="replace an existing file, keeping a timestamped backup")

    seed = command("seed", _seed, "seed PREFIX/etc/qiime2_config.toml if missing (for conda)",
                   'q2pconf seed --prefix "$CONDA_PREFIX"')
    seed.add_argument("--prefix", metavar="DIR", required=True, help="the environment prefix")
    return parser


def _template_names() -> list[str]:
    from q2pconf.config._templates import TEMPLATES

    return list(TEMPLATES)


def _info(args: argparse.Namespace) -> int:
    from q2pconf.config._settings import load

    if args.runs:
        return _runs(args.json)
    settings = load(args.parallel_config)
    if args.json:
        print(json.dumps({
            "path": None if settings.path is None else str(settings.path),
            "source": settings.source,
            "trail": [{"source": s.source, "path": None if s.path is None else str(s.path),
                       "note": s.note} for s in settings.trail],
            "executors": list(settings.labels),
            "mapping": settings.mapping,
        }, indent=2))
        return 0
    print(f"config: {_where(settings)}\nsource: {settings.source}")
    for step in settings.trail:
        print(f"  skipped {step.source:<14} {step.path or '-'}: {step.note}")
    _summary(settings)
    return 0


def _runs(as_json: bool) -> int:
    """The latest traced runs, newest first: when, which pipeline, how it ended, the trace."""
    from q2pconf._observe.runfiles import index_path, readable, recent

    runs = readable(recent())
    if as_json:
        print(json.dumps([{"pipeline": r.meta.get("pipeline"), "started": r.meta.get("started"),
                           "outcome": r.meta.get("outcome") if r.complete else "incomplete",
                           "steps": len(r.rows), "trace": str(r.trace_path),
                           "run": str(r.meta_path)} for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no traced run recorded in {index_path()}")
    for r in runs:
        outcome = r.meta.get("outcome") if r.complete else "incomplete"
        print(f"{r.meta.get('started')}  {r.meta.get('pipeline')}  {outcome}, "
              f"{len(r.rows)} step attempts\n  trace: {r.trace_path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from q2pconf._observe.report import write_report

    output = None if args.output is None else Path(args.output)
    print(write_report(args.target, output))
    return 0


def _tune(args: argparse.Namespace) -> int:
    from q2pconf._observe.tuned import tune_and_write, words

    summary = tune_and_write(args.targets, args.output)
    print(json.dumps(summary, indent=2) if args.json else words(summary, args.what_if))
    return 0


EMPTY_QIIME2_CONFIG = ("the built-in default: QIIME2_CONFIG is set but empty, which QIIME 2 "
                       "reads as \"use the built-in default\" (unset it to use your config "
                       "files)")


def _where(settings: Settings) -> str:
    if settings.path is not None:
        return str(settings.path)
    if settings.source == "QIIME2_CONFIG":
        return EMPTY_QIIME2_CONFIG
    return "the built-in default (held in memory, nothing written)"


def _check(args: argparse.Namespace) -> int:
    from q2pconf.config._settings import check

    settings = check(args.file)
    for message in settings.warnings:
        print(f"warning: {message}", file=sys.stderr)
    print(f"{args.file}: OK")
    _summary(settings)
    return 0


def _summary(settings: Settings) -> None:
    print("executors:")
    for label in settings.labels:
        workers = settings.workers(label)
        size = "" if workers is None else f", workers: {workers or 'one per core'}"
        print(f"  {label:<10} {settings.executor_class(label)}{size}")
    print("mapping:" + ("" if settings.mapping else
                        " none (a step runs where its @step(executor=...) names, else on "
                        "'default')"))
    for step, label in settings.mapping.items():
        print(f"  {step} -> {label}")
    if settings.plan.mapping_only:
        print("  (the file holds only a mapping: the executors above are the vendored ones, "
              "and a ParallelConfig block can give it others; a label the executors in force "
              "lack fails when a pipeline starts)")


def _init(args: argparse.Namespace) -> int:
    from q2pconf._base.files import write_new
    from q2pconf.config._templates import render

    path = _init_target(args)
    text = render(args.template, path)
    try:
        if args.force and os.path.lexists(path):
            backup = _backup_name(path)
            os.replace(path, backup)
            print(f"kept the old file as {backup}")
        written = write_new(path, text)
    except OSError as error:
        raise ConfigError(path, "", f"cannot be written: {error.strerror or error}",
                          "choose a directory you can write (--user, or --prefix DIR)") from None
    if not written:
        raise ConfigError(path, "", "already exists; nothing was changed",
                          "edit it, or rerun with --force to replace it (a backup is kept)")
    print(f"wrote {path}\nedit it, then check it with: q2pconf check {path}")
    return 0


def _backup_name(path: Path) -> Path:
    """A timestamped name beside `path` that no earlier backup holds (two --force runs in
    the same second must not replace the first backup)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    number = 0
    while True:
        backup = path.with_name(f"{path.name}.{stamp}{f'.{number}' if number else ''}.bak")
        if not os.path.lexists(backup):
            return backup
        number += 1


def _init_target(args: argparse.Namespace) -> Path:
    from q2pconf._base.paths import conda_config_path, site_config_path, user_config_path

    if args.prefix:
        from q2pconf.config._seed import existing_prefix

        return conda_config_path(existing_prefix(args.prefix))
    return site_config_path() if args.site else user_config_path()


def _seed(args: argparse.Namespace) -> int:
    from q2pconf.config._seed import seed_prefix

    try:
        seed_prefix(args.prefix)
    except OSError as error:
        target = Path(args.prefix, "etc", "qiime2_config.toml")
        print(f"q2pconf: could not write {target}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0
