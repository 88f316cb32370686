"""A script's own --parallel and --parallel-config PATH, as q2cli's pipeline commands take them:
add them to the script's argparse parser, then ask which config the parsed arguments name.

    parser = q2pconf.add_parallel_arguments(argparse.ArgumentParser())
    settings = q2pconf.config_from_args(parser.parse_args())   # None: run serially
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from q2pconf.config._settings import Settings


def add_parallel_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add q2cli's --parallel and --parallel-config PATH to a script's own parser."""
    group = parser.add_argument_group("parallel execution")
    group.add_argument("--parallel", action="store_true",
                       help="run in parallel with the config QIIME 2 would find")
    group.add_argument("--parallel-config", metavar="PATH",
                       help="run in parallel with this config file (implies --parallel)")
    return parser


def config_from_args(args: argparse.Namespace) -> Settings | None:
    """The config the parsed --parallel/--parallel-config ask for; None to run serially."""
    from q2pconf.config._settings import load

    explicit = getattr(args, "parallel_config", None)
    if explicit is None and not getattr(args, "parallel", False):
        return None
    return load(explicit)
