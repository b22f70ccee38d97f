"""LVIS v1: COCO-format instance annotations of 1,203 categories on COCO 2017 images, with federated labels.

Files: ``lvis_v1_train.json`` / ``lvis_v1_val.json`` (the val images are COCO 2017 train and val images). The
format is COCO's (read by `rcforge.readers.coco_format`, streamed when large), with three differences:

- an image names its file by ``coco_url`` (``http://images.cocodataset.org/train2017/000000391895.jpg``); the
  record's image path is the last two parts (``train2017/000000391895.jpg``), under ``images``, the COCO 2017
  folder that holds ``train2017/`` and ``val2017/``. A ``file_name``, where present, wins;
- labels are federated: each image lists the categories that are *not* exhaustively annotated on it
  (``not_exhaustive_category_ids``). Their boxes are kept but flagged ``ignore``, so counting, detection and
  spatial answers never ask about them (a category with an ignored box is never counted or detected). The
  image's ``neg_category_ids`` (verified absent by annotators) become the record's ``absent`` categories
  (basis "lvis_neg"), which negative questions ask about (`rcforge.rc_tasks.negatives`);
- category names are written with underscores (``aerosol_can``, ``bow_(weapon)``); dialogues print spaces.

Image ids are COCO ids, so RefCOCO evaluation images are excluded through them, as for the other sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from rcforge.core.contract import F, Int, ItemContract, Spec, Text, wrong_type
from rcforge.core.errors import BadRecord
from rcforge.core.ledgerkeeper import ReadBatch
from rcforge.readers import ReadContext, register
from rcforge.readers.coco_format import CocoFlavour, CocoFormatConfig, read_source

SOURCE = "lvis"


class IntList(Spec):
    """A list of integer ids (``not_exhaustive_category_ids``, ``neg_category_ids``)."""

    expected = "a list of integer ids"

    def check(self, value, name: str) -> list[int]:
        if not isinstance(value, list):
            raise wrong_type(name, self.expected, value)
        return [Int().check(v, name) for v in value]


#: an ``images`` entry of an LVIS file
IMAGE = ItemContract("image", (
    F("id", Int()),
    F("width", Int(lo=1, hi=1_000_000)),
    F("height", Int(lo=1, hi=1_000_000)),
    F("coco_url", Text(nonempty=True), required=False),
    F("file_name", Text(nonempty=True), required=False),
    F("not_exhaustive_category_ids", IntList(), required=False, default=[]),
    F("neg_category_ids", IntList(), required=False, default=[]),
))


def image_fields(image: dict) -> tuple[str, tuple[int, ...]]:
    """(the image's path under the COCO 2017 folder, its not exhaustively annotated categories)."""
    if image["file_name"]:
        path = image["file_name"]
    elif image["coco_url"]:
        parts = image["coco_url"].split("?")[0].rstrip("/").split("/")
        if len(parts) < 2 or not parts[-1]:
            raise BadRecord("wrong_type", f"coco_url {image['coco_url']!r:.80} does not end in <folder>/<file>",
                            field="coco_url")
        path = "/".join(parts[-2:])
    else:
        raise BadRecord("missing_field", "image has neither 'coco_url' nor 'file_name'", field="coco_url")
    return path, tuple(image["not_exhaustive_category_ids"])


FLAVOUR = CocoFlavour(SOURCE, "LVIS annotation file", image=IMAGE, image_fields=image_fields,
                      category_name=lambda name: name.replace("_", " "), coco_ids=True,
                      negatives=lambda image: tuple(image["neg_category_ids"]))


@dataclass(frozen=True)
class LvisConfig(CocoFormatConfig):
    """LVIS v1.

    annotations: ``lvis_v1_train.json`` or ``lvis_v1_val.json`` (.gz allowed).
    images: the COCO 2017 folder holding ``train2017/`` and ``val2017/``.
    mode, in_memory_max_bytes, partitions, mask_processes: as for objects365 (the train file, ~1 GB, is streamed).
    """



@register(SOURCE, LvisConfig, provides=("object_categories", "refs"), labels="exhaustive")
def read(config: LvisConfig, ctx: ReadContext) -> Iterator[ReadBatch]:
    """LVIS v1 (COCO format, federated labels), parsed whole when small or streamed through partitions."""
    yield from read_source(FLAVOUR, config, ctx.work_dir)
