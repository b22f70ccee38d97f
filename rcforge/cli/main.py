"""The `rcforge` command. Each subcommand lives with its pipeline and registers here by name.

Only the chosen subcommand's module is imported, and a pipeline command's flags are declared apart from its
pipeline (`rcforge.pipelines.flags`), so ``--help``, ``--version``, ``tasks`` and ``sources`` answer without
importing Apache Beam, torch or transformers. Flags a pipeline command does not declare go to Beam
(``--runner``, ``--direct_num_workers``, ...) so the same command runs locally or on Dataflow / Flink / Spark;
they are checked against Beam's own options first. Any other command refuses a flag it does not know.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from dataclasses import dataclass

from rcforge.core.errors import RcforgeError


@dataclass(frozen=True)
class Command:
    """A subcommand: ``module`` holds ``main(args, rest)``; ``flags`` is "module:function" adding its flags to a
    parser (default: ``module.add_arguments``); a ``beam`` command passes the flags it does not know to Beam."""

    module: str
    help: str
    flags: str | None = None
    beam: bool = False
    #: it reads a built OUT: a Parquet file there that does not read is the user's damaged output, not a bug
    reads_output: bool = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        module, _, function = (self.flags or f"{self.module}:add_arguments").partition(":")
        getattr(importlib.import_module(module), function)(parser)


COMMANDS = {
    "bootstrap": Command("rcforge.pipelines.bootstrap_cmd",
                         "describe boxes, ground the descriptions, keep pairs with IoU >= lambda",
                         "rcforge.pipelines.flags:bootstrap", beam=True),
    "build": Command("rcforge.pipelines.build", "ingest, then render every task into dialogue shards (Parquet)",
                     "rcforge.pipelines.flags:build", beam=True),
    "ingest": Command("rcforge.pipelines.ingest", "read the recipe's annotation files into image records (Parquet)",
                      "rcforge.pipelines.flags:ingest", beam=True),
    "refilter": Command("rcforge.pipelines.refilter",
                        "pairs for another IoU threshold from bootstrap candidates, no model"),
    "tasks": Command("rcforge.cli.tasks", "list the registered tasks, their variants and options"),
    "export": Command("rcforge.inspect.export",
                      "write dialogue shards as a trainer's file: llava, sharegpt, swift, internvl, qwen_vl",
                      reads_output=True),
    "stats": Command("rcforge.inspect.stats", "corpus statistics of a build (DuckDB over the shards)",
                     reads_output=True),
    "report": Command("rcforge.inspect.report", "an HTML page of plots of a build's statistics", reads_output=True),
    "preview": Command("rcforge.inspect.preview",
                       "an HTML gallery of sampled dialogues with their boxes drawn on the images", reads_output=True),
    "validate": Command("rcforge.inspect.validate",
                        "check shards against the schema, the coordinate format and the ledgers", reads_output=True),
    "sources": Command("rcforge.cli.sources", "list the registered dataset readers and their recipe options"),
}

TOP_FLAGS = {"--version", "-v", "--verbose", "-h", "--help"}


def chosen(argv: list[str]) -> str | None:
    """The subcommand named on the command line: the first argument that is not a top-level flag."""
    for arg in argv:
        if arg not in TOP_FLAGS:
            return arg if arg in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the flags of ``command`` only (the others are listed by name and help)."""
    parser = argparse.ArgumentParser(
        prog="rcforge", description="Build referring-and-grounding instruction corpora for multimodal LLMs.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show Apache Beam's own log messages, and the traceback behind an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, spec in COMMANDS.items():
        sp = sub.add_parser(name, help=spec.help, description=spec.help)
        if name == command:
            spec.add_arguments(sp)
    return parser


def os_error(err: OSError) -> str:
    """An operating-system error as one line: what happened, to which path, and what to do."""
    import errno

    what = err.strerror or str(err)
    where = f": {err.filename}" if err.filename else ""
    advice = {errno.ENOSPC: "free space on that disk or write OUT elsewhere",
              errno.EDQUOT: "free space in your quota or write OUT elsewhere",
              errno.EROFS: "OUT must be on a writable file system",
              errno.EACCES: "check the permissions of that path",
              errno.EPERM: "check the permissions of that path",
              errno.EISDIR: "give a file path, not a folder",
              errno.ENOTDIR: "a folder on that path is a file",
              errno.ENOENT: "it is not there (a symbolic link to a missing file?)"}.get(err.errno, "")
    return f"{what}{where}" + (f"; {advice}" if advice else "")


def main(argv=None) -> int:
    as_program = argv is None  # the console script or python -m: not a caller that goes on after us
    argv = list(sys.argv[1:] if argv is None else argv)
    if not args_verbose(argv):
        # Beam logs a traceback for a failing step before re-raising it, and warns about optional cloud
        # libraries at import; our own one-line error says what went wrong. -v shows them.
        logging.getLogger().setLevel(logging.ERROR)
        logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
    command = chosen(argv)
    parser = build_parser(command)
    try:
        if command and COMMANDS[command].beam:
            args, rest = parser.parse_known_args(argv)
        else:
            args, rest = parser.parse_args(argv), []
        if args.version:
            from rcforge import __version__

            print(__version__)
            return 0
        if not args.command:
            parser.print_help()
            return 2
        if rest:
            from rcforge.pipelines.runners import check_beam_args

            check_beam_args(command, rest)
        importlib.import_module(COMMANDS[command].module).main(args, rest)
    except KeyboardInterrupt:
        # a writer's staged generation is left for the next writer to clear; the previous output stays whole
        print(f"rcforge {command}: interrupted" if command else "rcforge: interrupted", file=sys.stderr)
        if as_program:
            # leave now: a pipeline's threads are mid-step, and the interpreter's exit would join them (slow, and
            # under load they can end the process by the same signal instead of with our status)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`rcforge tasks | head`): stop quietly; point stdout at devnull so
        # the interpreter's final flush does not complain either
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as err:
        cause = user_error(err, reads_output=COMMANDS[command].reads_output)
        if cause is None or args_verbose(argv):
            raise  # a bug, or -v asked for the traceback behind the one-line error
        # a recipe or input error, or the disk is full, OUT is read-only, a target is a folder: the user's to
        # fix, said in one line (a writer stages its output, so the previous output in OUT stays whole)
        text = os_error(cause) if isinstance(cause, OSError) else str(cause)
        print(f"rcforge {command}: error: {text}", file=sys.stderr)
        return 1
    return 0


def args_verbose(argv: list[str]) -> bool:
    return "-v" in argv or "--verbose" in argv


def user_error(err: BaseException, *, reads_output: bool = False) -> BaseException | None:
    """The error behind ``err`` that is the user's to fix: an `RcforgeError`, an operating-system error, a URL
    with a protocol fsspec does not know, or (for a command that reads a built OUT) a damaged Parquet file that
    pyarrow or DuckDB refuses; itself, or one it was raised from or while handling (Beam re-raises a step's
    error wrapped, e.g. as ``RuntimeError: OSError: ... [while running ...]``). None when the error is a bug,
    whose traceback is the useful report."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, RcforgeError) or (isinstance(err, OSError) and not isinstance(err, BrokenPipeError)):
            return err
        if isinstance(err, ValueError) and str(err).startswith("Protocol not known"):
            return InputErrorText(f"{err}: a path or URL names a storage protocol fsspec does not know (local "
                                  f"paths, file://, s3:// with the s3 extra, gs:// with gcsfs, ...)")
        if reads_output and type(err).__module__.split(".")[0] in ("pyarrow", "duckdb", "_duckdb"):
            from rcforge.core.fsio import first_line

            return InputErrorText(f"a file of the output does not read ({first_line(err, 300)}); rcforge validate "
                                  f"OUT lists what is damaged")
        err = err.__cause__ or err.__context__
    return None


class InputErrorText(RcforgeError):
    """A user error found by its kind (`user_error`), with the text to print."""
