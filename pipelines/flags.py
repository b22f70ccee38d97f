"""The command-line flags of the pipeline commands (ingest, build, bootstrap), apart from their pipelines.

`rcforge --help` and `rcforge build --help` must answer at once, and the pipeline modules import Apache Beam
(and bootstrap torch) at import time; so each pipeline command's flags live here, in a module that imports
neither, and `rcforge.cli.main` imports the pipeline only to run it. Flags a command does not declare go to Beam,
which checks them against its own pipeline options (`rcforge.pipelines.runners.check_beam_args`).
"""

from __future__ import annotations

import argparse

from rcforge.bootstrap.options import BootstrapOptions, backend_names
from rcforge.core.config import Range, flag_type, number_flag

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


#: bootstrap flag -> (option of `BootstrapOptions`, type, help); each flag's default is None (not given: the
#: recipe's value stands)
BOOTSTRAP_FLAGS = {
    "--model": ("model", str, "a local model folder (relative to the working directory) or a hub id"),
    "--backend": ("backend", str, "a registered backend: florence2, kosmos2 or chat"),
    "--revision": ("revision", str, "a hub revision of the model"),
    "--chat-prompts": ("chat_prompts", str, "chat backend: a bundled prompt set (pink, llava, qwen2-vl, "
                                            "qwen2.5-vl) or a YAML file"),
    "--device": ("device", str, "cuda or cpu"),
    "--batch-size": ("batch_size", int, "requests per model call"),
    "--max-new-tokens": ("max_new_tokens", int, "the longest reply"),
    "--sources": ("sources", str, "comma-separated sources to bootstrap"),
    "--lambda": ("lam", float, "IoU threshold (refilter changes it without a model)"),
    "--samples": ("samples", int, "descriptions drawn per box (the best IoU wins)"),
    "--temperature": ("temperature", float, "sampling temperature of the extra descriptions (--samples > 1)"),
    "--top-p": ("top_p", float, "nucleus sampling of the extra descriptions"),
    "--max-annotations": ("max_annotations", int, "skip images with more objects"),
    "--min-area": ("min_area", float, "skip smaller boxes (px^2)"),
}


def bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML (its bootstrap section holds the defaults of the flags below)")
    parser.add_argument("--out", required=True, help="output folder")
    for flag, (dest, kind, text) in BOOTSTRAP_FLAGS.items():
        # a numeric flag is checked against its option's one declared range before anything runs
        parse = flag_type(BootstrapOptions, dest) if kind in (int, float) else kind
        parser.add_argument(flag, dest=dest, type=parse, default=None, help=text,
                            choices=backend_names() if dest == "backend" else None)
    parser.add_argument("--no-uniqueness", dest="uniqueness", action="store_const", const=False, default=None,
                        help="keep pairs whose description also fits another box of the same category")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines on the terminal")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)
    workers(parser)
