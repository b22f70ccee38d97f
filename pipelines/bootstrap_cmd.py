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
import time

from rcforge.bootstrap.handlers import stage_handlers
from rcforge.bootstrap.options import BootstrapOptions, backend, check_model
from rcforge.core import generations
from rcforge.core.errors import InputError, RecipeError
from rcforge.core.manifest import Manifest
from rcforge.pipelines import runners
from rcforge.pipelines.bootstrap import BootstrapSettings, run_bootstrap
from rcforge.pipelines.ingest import ingest
from rcforge.recipe.tree import load_recipe


def handlers(options: BootstrapOptions, roots: dict, beam_args: list[str] | None = None):
    """The backend's describe and ground handlers. On Dask each worker process holds its own model (one worker per
    GPU): Beam's cross-process model sharing would start a server process, which a daemonic Dask worker may not."""
    make = backend(options.backend).adapter
    share = False if runners.runner(beam_args or []) == runners.DASK_RUNNER else None
    return stage_handlers(lambda stage: make(stage, options), options.model, image_roots=roots,
                          revision=options.revision, device=options.device, decoding=options.decoding,
                          share_model_across_processes=share)


def effective_options(recipe_options: BootstrapOptions | None, args) -> BootstrapOptions:
    """The recipe's options with the flags given on the command line in their place (``args.bootstrap_options``:
    field -> value, as `rcforge.pipelines.flags` declared each flag for its field)."""
    try:
        options = dataclasses.replace(recipe_options or BootstrapOptions(), **args.bootstrap_options)
    except ValueError as err:
        raise RecipeError(f"bootstrap: {err}") from None
    check_model(options)
    return options


def main(args, beam_args) -> dict:
    recipe = load_recipe(args.recipe)
    options = effective_options(recipe.bootstrap, args)
    try:
        manifest = Manifest.load(args.out, "bootstrap")
    except InputError:  # no earlier ingest in OUT: ingest below
        manifest = None
    settings = BootstrapSettings(options, seed=recipe.seed)
    started = time.perf_counter()
    ingest_seconds = None  # None: OUT's ingest was reused
    with generations.writing(args.out, "rcforge bootstrap", force=args.force), \
            runners.beam_options(beam_args, getattr(args, "workers", 0)) as beam_args:
        if manifest is None or manifest.ingest_fingerprint != recipe.ingest_fingerprint():
            manifest = ingest(recipe, args.out, beam_args=beam_args, progress=not args.no_progress,
                              force=args.force)
            ingest_seconds = round(time.perf_counter() - started, 3)
        describe, ground = handlers(options, manifest.image_roots(), beam_args)
        summary = run_bootstrap(args.out, describe, ground, settings, beam_args=beam_args,
                                progress=not args.no_progress)
    summary["stage_seconds"] = {"ingest": ingest_seconds, **summary["stage_seconds"]}
    summary["seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(summary, indent=2), file=sys.stdout)
    return summary
