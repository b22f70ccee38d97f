"""The command-line flags of the pipeline commands (ingest, build, bootstrap), apart from their pipelines.

`rcforge --help` and `rcforge build --help` must answer at once, and the pipeline modules import Apache Beam
(and bootstrap torch) at import time; so each pipeline command's flags live here, in a module that imports
neither, and `rcforge.cli.main` imports the pipeline only to run it. Flags a command does not declare go to Beam,
which checks them against its own pipeline options (`rcforge.pipelines.runners.check_beam_args`).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

from rcforge.bootstrap.options import BootstrapOptions, backend_names
from rcforge.core.config import Range, flag_type, number_flag, recipe_key

FORCE_HELP = "write into an OUT that holds other files and no rcforge output (they are never removed)"


def workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=number_flag(int, Range(0)), default=0,
                        help="local worker processes: Beam multi_processing, or the size of the local Dask cluster "
                             "with --runner DaskRunner (0: one in-process worker; the CPU count for Dask)")


def ingest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML (local path or fsspec URL)")
    parser.add_argument("--out", required=True, help="output folder (local path or fsspec URL)")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines on the terminal")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)
    workers(parser)


def build(parser: argparse.ArgumentParser) -> None:
    ingest(parser)
    parser.add_argument("--fresh-ingest", action="store_true", help="ingest again even if OUT holds this ingest")
    parser.add_argument("--templates", help="a folder of template YAML files (overrides render.templates)")
    parser.add_argument("--coordinates", help="coordinate format (overrides render.coordinates)")


#: the `BootstrapOptions` that have a command-line flag, by recipe key (the flag is ``--`` + the key, ``_`` as
#: ``-``: ``--lambda``, ``--batch-size``), with their help; a flag given replaces the recipe's value for the run
BOOTSTRAP_FLAGS = {
    "model": "a local model folder (relative to the working directory) or a hub id",
    "backend": "a registered backend: florence2, kosmos2 or chat",
    "revision": "a hub revision of the model",
    "chat_prompts": "chat backend: a bundled prompt set (pink, llava, qwen2-vl, qwen2.5-vl) or a YAML file",
    "device": "cuda or cpu",
    "batch_size": "requests per model call",
    "max_new_tokens": "the longest reply",
    "sources": "comma-separated sources to bootstrap",
    "lambda": "IoU threshold (refilter changes it without a model)",
    "samples": "descriptions drawn per box (the best IoU wins)",
    "temperature": "sampling temperature of the extra descriptions (--samples > 1)",
    "top_p": "nucleus sampling of the extra descriptions",
    "max_annotations": "skip images with more objects",
    "min_area": "skip smaller boxes (px^2)",
}


class _Option(argparse.Action):
    """Puts a bootstrap flag's value in ``namespace.bootstrap_options`` under its option's field, so the command
    lays the flags given over the recipe's section without matching names."""

    def __call__(self, parser, namespace, values, option_string=None):
        value = self.const if self.nargs == 0 else values  # a switch (--no-uniqueness) sets its const
        namespace.bootstrap_options = {**namespace.bootstrap_options, self.dest: value}


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML (its bootstrap section holds the defaults of the flags below)")
    parser.add_argument("--out", required=True, help="output folder")
    fields = {recipe_key(f): f for f in dataclasses.fields(BootstrapOptions)}
    parser.set_defaults(bootstrap_options={})
    for key, text in BOOTSTRAP_FLAGS.items():
        option, kind = fields[key], typing.get_type_hints(BootstrapOptions)[fields[key].name]
        # a numeric flag is checked against its option's one declared range before anything runs
        parse = flag_type(BootstrapOptions, option.name) if kind in (int, float) else \
            _comma_list if key == "sources" else str
        parser.add_argument("--" + key.replace("_", "-"), dest=option.name, action=_Option, type=parse, help=text,
                            metavar=key.upper(), default=argparse.SUPPRESS,
                            choices=backend_names() if key == "backend" else None)
    parser.add_argument("--no-uniqueness", dest="uniqueness", action=_Option, nargs=0, const=False,
                        default=argparse.SUPPRESS,
                        help="keep pairs whose description also fits another box of the same category")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines on the terminal")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)
    workers(parser)
