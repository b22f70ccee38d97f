"""Objects365 v1 / v2 (COCO format): ``images``, ``annotations`` (``[x, y, w, h]`` floats), ``categories``.

The COCO format is read by `rcforge.readers.coco_format` (shared with LVIS): in memory for files up to
``in_memory_max_bytes``, else streamed through on-disk partitions (the v2 train file is one JSON of several GB
with ~1.7M images and ~25M boxes, and its annotations are not grouped by image). Per box, ``iscrowd`` becomes the
``ignore`` flag, the box is clipped to the image (counted as repaired), and a zero-area box, an unknown category
id or an annotation naming an unknown image is rejected with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from rcforge.core.ledgerkeeper import ReadBatch
from rcforge.readers import ReadContext, register
from rcforge.readers.coco_format import CocoFlavour, CocoFormatConfig, read_source

SOURCE = "objects365"


@dataclass(frozen=True)
class Objects365Config(CocoFormatConfig):
    """Objects365 in COCO format.

    annotations: the COCO json (``zhiyuan_objv2_train.json``, v1 ``objects365_train.json``; .gz allowed).
    images: the image root; ``file_name`` values are relative to it.
    mode: "auto" streams files larger than ``in_memory_max_bytes``; "memory" always parses the file whole;
      "stream" always streams.
    partitions: on-disk partitions of the streaming path (0: one per 64 MB of input, at least 8; at most
      1024).
    mask_processes: worker processes that check masks (Objects365 has none; LVIS and other COCO-format files
      do): -1 ("auto") one per CPU when the file holds at least 20,000 masks, 0 none (checked in the reader's
      process), N that many. The records are the same either way.
    claimed_negatives: take Objects365's vocabulary as exhaustively labelled, as the dataset claims (unverified):
      each record then lists the categories with no box in the image as ``absent`` (basis "claimed_vocab"),
      which negative questions ask about. Off by default.
    """

    claimed_negatives: bool = False


FLAVOUR = CocoFlavour(SOURCE, "Objects365 annotation file")


@register(SOURCE, Objects365Config, provides=("object_categories", "refs"), labels="claimed")
def read(config: Objects365Config, ctx: ReadContext) -> Iterator[ReadBatch]:
    """Objects365 (COCO format), parsed whole when small or streamed through on-disk partitions."""
    yield from read_source(FLAVOUR, config, ctx.work_dir, claimed_vocab=config.claimed_negatives)
