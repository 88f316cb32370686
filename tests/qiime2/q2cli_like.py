"""A command line shaped like q2cli's for the dummy plugin, written as a q2pconf user writes
one: the pipeline's command takes --parallel and --parallel-config (add_parallel_arguments),
the plain step's command does not. It prints its pid and the results as JSON."""
from __future__ import annotations

import argparse
import json
import os

import q2pconf

import dummy_plugin


def main() -> None:
    parser = argparse.ArgumentParser(prog="dummy-plugin")
    commands = parser.add_subparsers(required=True, dest="command")
    pipeline = commands.add_parser("resumable-pipeline")
    pipeline.add_argument("--i-int-list", type=int, nargs="+", required=True)
    q2pconf.add_parallel_arguments(pipeline)
    method = commands.add_parser("concatenate-ints")
    for name in ("--i-ints1", "--i-ints2", "--i-ints3"):
        method.add_argument(name, type=int, nargs="+", required=True)
    method.add_argument("--p-int1", type=int, required=True)
    method.add_argument("--p-int2", type=int, required=True)
    args = parser.parse_args()

    if args.command == "concatenate-ints":
        result = dummy_plugin.concatenate_ints(args.i_ints1, args.i_ints2, args.i_ints3,
                                               int1=args.p_int1, int2=args.p_int2)
    else:
        int_list = args.i_int_list
        int_dict = {str(index): value for index, value in enumerate(int_list)}
        settings = q2pconf.config_from_args(args)
        if settings is None:
            result = dummy_plugin.resumable_pipeline.serial(int_list, int_dict)
        else:
            with q2pconf.ParallelConfig(settings):
                result = dummy_plugin.resumable_pipeline(int_list, int_dict)
    print(json.dumps({"pid": os.getpid(), "result": result}))


if __name__ == "__main__":
    main()
