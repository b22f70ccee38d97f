"""Evaluation images that must not leak into training data.

Every source's image record carries its COCO image id when it has one (RefCOCO and VQAv2 images are COCO
images; Visual Genome lists ``coco_id``; PointQA images are VG images, resolved through VG's image_data.json).
The recipe's ``exclude`` section names RefCOCO-family evaluation splits and/or files of COCO ids; the union is
matched against ``coco_id`` of every record of every source.
"""

from __future__ import annotations

import json

from rcforge import fsio
from rcforge.errors import InputError
from rcforge.readers.refcoco import load_refs
from rcforge.recipe import Recipe


def excluded_coco_ids(recipe: Recipe) -> tuple[frozenset[int], dict[str, int]]:
    """The COCO image ids to exclude, and how many each exclusion rule contributed."""
    ids: set[int] = set()
    counts: dict[str, int] = {}
    for cfg in recipe.exclude_refs:
        refs_path = fsio.join(cfg.root, cfg.dataset, f"refs({cfg.split_by}).p")
        wanted = set(cfg.splits)
        rule_ids = {int(ref["image_id"]) for ref in load_refs(refs_path) if ref.get("split") in wanted}
        counts[f"refcoco:{cfg.dataset}({cfg.split_by}):{','.join(cfg.splits)}"] = len(rule_ids)
        ids |= rule_ids
    for path in recipe.exclude_coco_id_files:
        text = fsio.read_text(path, "exclude.coco_ids file").strip()
        try:
            values = json.loads(text) if text.startswith("[") else [line for line in text.split() if line]
            rule_ids = {int(v) for v in values}
        except (ValueError, TypeError) as err:
            raise InputError(f"exclude.coco_ids file {path}: expected a JSON list or one id a line ({err})") from None
        counts[f"coco_ids:{path}"] = len(rule_ids)
        ids |= rule_ids
    return frozenset(ids), counts
