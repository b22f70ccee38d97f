"""`rcforge bootstrap RECIPE --out OUT [--model PATH_OR_HUB_ID] [--backend florence2|kosmos2|chat]
[--device cuda|cpu] [--batch-size N] [--lambda 0.5] ...`: ingest (or reuse it), then describe -> ground -> IoU
on the recipe's sources.

Every option is a key of the recipe's ``bootstrap`` section (`rcforge.bootstrap.options`); a flag given on the
command line overrides the recipe's value for this run.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from rcforge.bootstrap.handlers import Decoding, stage_handlers
from rcforge.bootstrap.options import BootstrapOptions, backend, backend_names
from rcforge.pipelines import runners
from rcforge.pipelines.bootstrap import BootstrapSettings, run_bootstrap
from rcforge.pipelines.ingest import ingest

from rcforge.config import flag_type
from rcforge.errors import InputError, RecipeError
from rcforge.manifest import Manifest
from rcforge.recipe import load_recipe


def handlers(options: BootstrapOptions, roots: dict, beam_args: list[str] | None = None):
    """The backend's describe and ground handlers. On Dask each worker process holds its own model (one worker per
    GPU): Beam's cross-process model sharing would start a server process, which a daemonic Dask worker may not."""
    decoding = Decoding(max_new_tokens=options.max_new_tokens, batch_size=options.batch_size,
                        temperature=options.temperature, top_p=options.top_p)
    make = backend(options.backend).adapter
    share = False if runners.runner(beam_args or []) == runners.DASK_RUNNER else None
    return stage_handlers(lambda stage: make(stage, options), options.model, image_roots=roots,
                          revision=options.revision, device=options.device, decoding=decoding,
                          share_model_across_processes=share)


#: flag -> option; each flag's default is None (not given: the recipe's value stands)
FLAGS = {
    "--model": ("model", str, "a local model folder or a hub id"),
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


def add_arguments(parser) -> None:
    parser.add_argument("recipe", help="recipe YAML (its bootstrap section holds the defaults of the flags below)")
    parser.add_argument("--out", required=True, help="output folder")
    for flag, (dest, kind, text) in FLAGS.items():
        # a numeric flag is checked against its option's one declared range before anything runs
        parse = flag_type(BootstrapOptions, dest) if kind in (int, float) else kind
        parser.add_argument(flag, dest=dest, type=parse, default=None, help=text,
                            choices=backend_names() if dest == "backend" else None)
    parser.add_argument("--no-uniqueness", dest="uniqueness", action="store_const", const=False, default=None,
                        help="keep pairs whose description also fits another box of the same category")
    parser.add_argument("--force", action="store_true",
                        help="write into an OUT that holds other files and no rcforge output (they are never removed)")
    runners.add_arguments(parser)


def effective_options(recipe_options: BootstrapOptions | None, args) -> BootstrapOptions:
    """The recipe's options with the flags given on the command line in their place."""
    options = recipe_options or BootstrapOptions()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(BootstrapOptions)
             if getattr(args, f.name, None) is not None}
    if isinstance(given.get("sources"), str):
        given["sources"] = tuple(s.strip() for s in given["sources"].split(",") if s.strip())
    try:
        options = dataclasses.replace(options, **given)
    except ValueError as err:
        raise RecipeError(f"bootstrap: {err}") from None
    if not options.model:
        raise RecipeError("bootstrap: no model: give --model or the recipe's bootstrap.model")
    return options


def main(args, beam_args) -> dict:
    recipe = load_recipe(args.recipe)
    options = effective_options(recipe.bootstrap, args)
    try:
        manifest = Manifest.load(args.out, "bootstrap")
    except InputError:  # no earlier ingest in OUT: ingest below
        manifest = None
    settings = BootstrapSettings(sources=options.sources, selection=options.selection, lam=options.lam,
                                 uniqueness=options.uniqueness, seed=recipe.seed)
    with runners.beam_options(beam_args, getattr(args, "workers", 0)) as beam_args:
        if manifest is None or manifest.ingest_fingerprint != recipe.ingest_fingerprint():
            manifest = ingest(recipe, args.out, beam_args=beam_args, progress=True, force=args.force)
        describe, ground = handlers(options, manifest.image_roots(), beam_args)
        summary = run_bootstrap(args.out, describe, ground, settings, beam_args=beam_args)
    print(json.dumps(summary, indent=2), file=sys.stdout)
    return summary
