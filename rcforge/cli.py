"""The `rcforge` command. Each subcommand lives with its pipeline and registers here by name.

App flags are parsed by the subcommand; flags it does not know go to Apache Beam (``--runner``,
``--direct_num_workers``, ...), so the same command runs locally or on Dataflow / Flink / Spark.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rcforge.errors import RcforgeError

#: subcommand -> (module with add_arguments(parser) and main(args, beam_args), one-line help)
COMMANDS = {
    "bootstrap": ("rcforge.pipelines.bootstrap_cmd", "describe boxes, ground the descriptions, keep pairs with IoU >= lambda"),
    "build": ("rcforge.pipelines.build", "ingest, then render every task into dialogue shards (Parquet)"),
    "ingest": ("rcforge.pipelines.ingest", "read the recipe's annotation files into image records (Parquet)"),
    "refilter": ("rcforge.pipelines.refilter", "pairs for another IoU threshold from bootstrap candidates, no model"),
    "tasks": ("rcforge.tasks_cmd", "list the registered tasks, their variants and options"),
    "export": ("rcforge.export", "write dialogue shards as a trainer's file: llava, sharegpt, swift, internvl, qwen_vl"),
    "stats": ("rcforge.stats", "corpus statistics of a build (DuckDB over the shards)"),
    "report": ("rcforge.report", "an HTML page of plots of a build's statistics"),
    "preview": ("rcforge.preview", "an HTML gallery of sampled dialogues with their boxes drawn on the images"),
    "validate": ("rcforge.validate", "check shards against the schema, the coordinate format and the ledgers"),
    "sources": ("rcforge.sources_cmd", "list the registered dataset readers and their recipe options"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rcforge", description="Build referring-and-grounding instruction corpora for multimodal LLMs.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="show Apache Beam's own log messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(sp)
    return parser


def main(argv=None) -> int:
    if not (argv or sys.argv[1:]).count("-v") and "--verbose" not in (argv or sys.argv[1:]):
        # Beam logs a traceback for a failing step before re-raising it, and warns about optional cloud
        # libraries at import; our own one-line error says what went wrong. -v shows them.
        logging.getLogger().setLevel(logging.ERROR)
        logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.version:
        import rcforge

        print(rcforge.__version__)
        return 0
    if not args.command:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        module.main(args, rest)
    except RcforgeError as err:
        print(f"rcforge {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
