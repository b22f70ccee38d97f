"""`rcforge bootstrap RECIPE --out OUT --model PATH_OR_HUB_ID [--backend florence2|kosmos2] [--device cuda|cpu]
[--batch-size N] [--lambda 0.5]`: ingest (or reuse it), then describe -> ground -> IoU on the recipe's sources.

The recipe's ``bootstrap`` options are given as flags for now: sources (default objects365), selection (Pink's
defaults), samples per box, lambda, the uniqueness rule.
"""

from __future__ import annotations

import json
import sys

from rcforge.bootstrap.selection import SelectionConfig
from rcforge.pipelines.bootstrap import BootstrapSettings, run_bootstrap

from rcforge import fsio
from rcforge.errors import InputError, RecipeError

BACKENDS = ("florence2", "kosmos2")


def handlers(backend: str, model: str, roots: dict, args):
    common = {"image_roots": roots, "device": args.device, "batch_size": args.batch_size,
              "max_new_tokens": args.max_new_tokens}
    if backend == "florence2":
        from rcforge.bootstrap.florence2_handlers import (
            Florence2Describe,
            Florence2Ground,
        )

        return Florence2Describe(model, **common), Florence2Ground(model, **common)
    if backend == "kosmos2":
        from rcforge.bootstrap.kosmos2_handlers import Kosmos2Describe, Kosmos2Ground

        return Kosmos2Describe(model, **common), Kosmos2Ground(model, **common)
    raise RecipeError(f"Unknown backend {backend!r}; registered: {', '.join(BACKENDS)}")


def add_arguments(parser) -> None:
    parser.add_argument("recipe", help="recipe YAML")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--model", required=True, help="a local model folder or a hub id")
    parser.add_argument("--backend", choices=BACKENDS, default="florence2")
    parser.add_argument("--device", default="cpu", help="cuda or cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--lambda", dest="lam", type=float, default=0.5, help="IoU threshold (refilter changes it)")
    parser.add_argument("--sources", default="objects365", help="comma-separated sources to bootstrap")
    parser.add_argument("--samples", type=int, default=1, help="descriptions drawn per box (the best IoU wins)")
    parser.add_argument("--max-annotations", type=int, default=15, help="skip images with more objects")
    parser.add_argument("--min-area", type=float, default=2000.0, help="skip smaller boxes (px^2)")
    parser.add_argument("--no-uniqueness", action="store_true")


def main(args, beam_args) -> dict:
    from rcforge.pipelines.ingest import ingest

    from rcforge.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    try:
        fs_manifest = fsio.load_manifest(args.out, "bootstrap")
    except InputError:  # no earlier ingest in OUT: ingest below
        fs_manifest = None
    if fs_manifest is None or fs_manifest.get("ingest_fingerprint") != recipe.ingest_fingerprint():
        fs_manifest = ingest(recipe, args.out, beam_args=beam_args, progress=True)
    roots = {name: entry.get("image_root") or "" for name, entry in fs_manifest["sources"].items()}
    describe, ground = handlers(args.backend, args.model, roots, args)
    settings = BootstrapSettings(
        sources=tuple(s.strip() for s in args.sources.split(",") if s.strip()),
        selection=SelectionConfig(max_annotations=args.max_annotations, min_area=args.min_area,
                                  samples=args.samples),
        lam=args.lam, uniqueness=not args.no_uniqueness, seed=recipe.seed)
    summary = run_bootstrap(args.out, describe, ground, settings, beam_args=beam_args)
    print(json.dumps(summary, indent=2), file=sys.stdout)
    return summary
