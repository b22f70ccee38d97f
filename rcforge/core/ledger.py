"""Accounting: every input record is written, repaired and written, filtered, excluded, or rejected with a reason.

Readers describe what they did with one image in an `ImageResult`, built with an `ImageBuilder`; the ingest loop
(`rcforge.pipelines.ingest`) turns results into counts in a `SourceLedger` and rows in the errors output, and
applies the bad-record policy. Keeping the counting in one place is what lets the manifest promise, per source
and per annotation kind::

    read == written + repaired + rejected + filtered + excluded

``written`` counts records written unchanged and ``repaired`` records written after a repair (a clipped box, an
image whose bad annotations were dropped).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from rcforge.core import masks
from rcforge.core.boxes import Box, canonical_box
from rcforge.core.errors import BadRecord

ITEM_KINDS = ("object", "attribute", "relation", "region", "caption", "ref", "qa", "mask")


@dataclass
class Tally:
    """Counts for one kind of record of one source."""

    read: int = 0
    written: int = 0
    repaired: int = 0
    rejected: Counter = field(default_factory=Counter)
    filtered: Counter = field(default_factory=Counter)
    excluded: Counter = field(default_factory=Counter)
    repairs: Counter = field(default_factory=Counter)
    #: objects taken from another file's copy (VG relationship endpoints missing from objects.json); they are
    #: also counted as read and written, so this is a subset, not a term of the balance
    adopted: int = 0

    def accounted(self) -> int:
        return (self.written + self.repaired + sum(self.rejected.values()) + sum(self.filtered.values())
                + sum(self.excluded.values()))

    def balanced(self) -> bool:
        return self.read == self.accounted()

    def to_json(self) -> dict:
        return {
            "read": self.read,
            "written": self.written,
            "repaired": self.repaired,
            "rejected": dict(sorted(self.rejected.items())),
            "filtered": dict(sorted(self.filtered.items())),
            "excluded": dict(sorted(self.excluded.items())),
            "repairs": dict(sorted(self.repairs.items())),
            "adopted": self.adopted,
            "balanced": self.balanced(),
        }

    def merge(self, other: "Tally") -> None:
        self.read += other.read
        self.written += other.written
        self.repaired += other.repaired
        self.rejected.update(other.rejected)
        self.filtered.update(other.filtered)
        self.excluded.update(other.excluded)
        self.repairs.update(other.repairs)
        self.adopted += other.adopted


@dataclass
class SourceLedger:
    source: str
    images: Tally = field(default_factory=Tally)
    items: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in ITEM_KINDS})

    def bad(self) -> int:
        return sum(self.images.rejected.values()) + sum(sum(t.rejected.values()) for t in self.items.values())

    def total_read(self) -> int:
        return self.images.read + sum(t.read for t in self.items.values())

    def balanced(self) -> bool:
        return self.images.balanced() and all(t.balanced() for t in self.items.values())

    def to_json(self) -> dict:
        return {
            "images": self.images.to_json(),
            "annotations": {k: t.to_json() for k, t in self.items.items() if t.read},
            "balanced": self.balanced(),
        }


def _printable(value):
    """``value``, a string with any lone surrogate written as its backslash escape (UTF-8 cannot hold one)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


@dataclass
class ErrorRow:
    """One row of the errors output (schema `rcforge.schemas.ERROR_RECORD`)."""

    source: str
    key: str
    file: str
    record: str
    field: str
    stage: str
    kind: str
    reason: str
    message: str
    #: how many items of ``kind`` this row rejects (an orphaned entry of a per-image file holds several); not a
    #: column of the errors output, where the message says the number
    items: int = 1

    def row(self) -> dict:
        """The row of the errors output (schema `rcforge.schemas.ERROR_RECORD`). Text quoted from the input (a
        key, a value) may hold a lone surrogate (a byte that is not UTF-8): it is written as its escape."""
        return {k: _printable(v) for k, v in self.__dict__.items() if k != "items"}

    def describe(self) -> str:
        where = f"{self.file}, {self.record}" + (f", field {self.field}" if self.field else "")
        return _printable(f"{where}: {self.message} [{self.reason}]")


@dataclass
class ImageResult:
    """What a reader made of one image: a record to write, or the reason it could not.

    ``record`` is None when the image itself was rejected (``errors`` then holds the image-level error) or
    filtered (``filtered`` holds the reason). Item-level counts cover the annotations the reader looked at.
    """

    source: str
    key: str
    record: dict | None
    errors: list[ErrorRow] = field(default_factory=list)
    items_read: Counter = field(default_factory=Counter)
    items_rejected: Counter = field(default_factory=Counter)
    items_repaired: Counter = field(default_factory=Counter)
    items_filtered: Counter = field(default_factory=Counter)  # (kind, reason) -> n
    repairs: Counter = field(default_factory=Counter)  # (kind, reason) -> n
    items_adopted: Counter = field(default_factory=Counter)
    filtered: str | None = None
    #: entries of an annotation file whose image the source does not list: counted as items, not as an image
    orphan: bool = False


class ImageBuilder:
    """Collects one image's annotations, rejecting bad ones with a reason, for a reader.

    >>> b = ImageBuilder("vg", "vg/1", "objects.json", 800, 600)
    >>> b.box("object", (10, 10, 20, 20), "object_id=5")
    (10.0, 10.0, 20.0, 20.0)
    """

    def __init__(self, source: str, key: str, file: str, width: int, height: int):
        self.source, self.key, self.file = source, key, file
        self.width, self.height = width, height
        self.result = ImageResult(source=source, key=key, record=None)
        self._item_repaired = False

    # -- items -------------------------------------------------------------------------------------------------
    def read(self, kind: str, n: int = 1) -> None:
        self.result.items_read[kind] += n

    def reject(self, kind: str, error: BadRecord, record: str, *, file: str | None = None,
               stage: str = "validate") -> None:
        self.result.items_rejected[kind] += 1
        self.result.errors.append(ErrorRow(
            source=self.source, key=self.key, file=file or self.file, record=error.record or record,
            field=error.field, stage=stage, kind=kind, reason=error.reason, message=error.message))

    def filter(self, kind: str, reason: str) -> None:
        """An item left out on purpose (not bad): counted as filtered with ``reason``."""
        self.result.items_filtered[(kind, reason)] += 1

    def adopted(self, kind: str) -> None:
        """An item taken from another file's copy of it (read and written as usual, and counted as adopted)."""
        self.result.items_adopted[kind] += 1

    def repaired(self, kind: str, reason: str) -> None:
        self.result.items_repaired[kind] += 1
        self.result.repairs[(kind, reason)] += 1

    def box(self, kind: str, xyxy: Sequence[float] | None, record: str, *, file: str | None = None,
            field: str = "box") -> Box | None:
        """Check and clip a pixel xyxy box for one item; None (and an error row) when it is unusable.

        ``xyxy`` may be None when the caller already failed to parse it (the caller rejects then).
        """
        try:
            box, repair = canonical_box(xyxy, self.width, self.height, field=field)
        except BadRecord as err:
            self.reject(kind, err, record, file=file)
            return None
        if repair:
            self.repaired(kind, repair)
        return box

    def mask(self, segmentation, box: Box, record: str, *, file: str | None = None, checked=None) -> dict:
        """The mask fields of a kept object (`rcforge.core.masks`) from its COCO ``segmentation``: {} when it has none;
        a segmentation that breaks the contract is rejected (kind ``mask``, with its reason) and the object is
        kept without it. ``checked``: the `rcforge.core.masks.outcome` already computed for it elsewhere (a worker
        process), used instead of checking again."""
        if not masks.present(segmentation):
            return {}
        self.read("mask")
        try:
            if checked is None:
                checked = masks.from_segmentation(segmentation, self.width, self.height, box)
            if isinstance(checked, BadRecord):
                raise checked
            return checked.fields()
        except BadRecord as err:
            self.reject("mask", err, record, file=file)
            return {}

    # -- the image ---------------------------------------------------------------------------------------------
    def finish(self, record: dict) -> ImageResult:
        """The image's result, with its record (exclusion reads the record's ``coco_id``)."""
        self.result.record = record
        return self.result


def image_record(key: str, source: str, image_id, image: str, width: int, height: int, **fields) -> dict:
    """An image record (schema `rcforge.schemas.IMAGE_RECORD`) with every absent part empty or null."""
    record = {"key": key, "source": source, "image_id": str(image_id), "image": image, "width": width,
              "height": height, "split": None, "coco_id": None, "vg_id": None, "flickr_id": None,
              "objects": [], "relations": [], "regions": [], "captions": [], "refs": [], "qas": [], "absent": []}
    unknown = set(fields) - set(record)
    if unknown:
        raise TypeError(f"image_record: unknown fields {sorted(unknown)}")
    record.update(fields)
    return record


def rejected_image(source: str, key: str, file: str, record: str, error: BadRecord, *,
                   stage: str = "read", items_read: Counter | None = None) -> ImageResult:
    """An `ImageResult` for an image that cannot be used at all."""
    result = ImageResult(source=source, key=key, record=None)
    result.errors.append(ErrorRow(source=source, key=key, file=file, record=error.record or record,
                                  field=error.field, stage=stage, kind="image", reason=error.reason,
                                  message=error.message))
    if items_read:
        result.items_read.update(items_read)
    return result


def filtered_image(source: str, key: str, reason: str, *, items_read: Counter | None = None) -> ImageResult:
    """An `ImageResult` for an image left out on purpose (not in the requested split, ...)."""
    result = ImageResult(source=source, key=key, record=None, filtered=reason)
    if items_read:
        result.items_read.update(items_read)
    return result
