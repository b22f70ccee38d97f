"""Evaluation images that must not leak into training data.

Every source's image record carries its COCO image id when it has one (RefCOCO and VQAv2 images are COCO
images; Visual Genome lists ``coco_id``; PointQA images are VG images, resolved through VG's image_data.json).
The recipe's ``exclude`` section names RefCOCO-family evaluation splits and/or files of COCO ids; the union is
matched against ``coco_id`` of every record of every source.
"""

from __future__ import annotations

from rcforge.core import fsio
from rcforge.core.contract import Int
from rcforge.core.errors import BadRecord, InputError
from rcforge.readers.refcoco import load_refs
from rcforge.recipe.tree import Recipe

#: an id in an exclusion file: an integer, never a float, boolean or string (no coercion)
COCO_ID = Int()


def _coco_ids(path: str) -> set[int]:
    """A file of COCO ids: a JSON array of integers, or one integer a line. Anything else (``true``, ``458752.9``,
    ``"x"``, an object) is an `InputError` naming the file and the entry, never coerced: a coerced id would
    exclude the wrong image and let an evaluation image through."""
    what = "exclude.coco_ids file"
    text = fsio.read_text(path, what).strip()
    if text.startswith(("[", "{")):
        values = fsio.load_json(path, what)
        if not isinstance(values, list):
            raise InputError(f"{what} {path}: expected a JSON array of COCO image ids, found "
                             f"{type(values).__name__}")
    else:
        values = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    values.append(int(line.strip()))
                except ValueError:
                    raise InputError(f"{what} {path}: line {number} ({line.strip()[:40]!r}) is not an integer "
                                     "COCO image id") from None
    ids = set()
    for i, value in enumerate(values):
        try:
            ids.add(COCO_ID.check(value, f"[{i}]"))
        except BadRecord as err:
            raise InputError(f"{what} {path}: entry {err.message}") from None
    return ids


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
        rule_ids = _coco_ids(path)
        counts[f"coco_ids:{path}"] = len(rule_ids)
        ids |= rule_ids
    return frozenset(ids), counts
