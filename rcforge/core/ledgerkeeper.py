"""The reader seam: every reader yields `ReadBatch` units, and one `Ledgerkeeper.take` applies each to the ledger,
the writers and the bad-record policy.

A `ReadBatch` is an Arrow table of image records (`rcforge.schemas.IMAGE_RECORD`) with what the reader did to get
it: per row, how many annotations of each kind the record holds and how many of those were repaired; the error
rows; and a `SourceLedger` of everything else (reads, rejections, filters, adoptions, repairs by reason). Its shape
follows NeMo Curator's ``DocumentBatch`` and Hugging Face datasets' ``ArrowBasedBuilder._generate_tables``: a
table plus its bookkeeping, so a columnar reader (Visual Genome's) hands over its tables as they are.

The per-record readers keep describing one image at a time with an `ImageBuilder` (`rcforge.core.ledger`) and
gather their `ImageResult`\\ s into batches with `BatchBuilder` (or `gather`); the counting rules for one image
live in `BatchBuilder.add`, once, and what only the keeper knows (the evaluation images to exclude, the image
files' checks) is applied in `Ledgerkeeper.take`.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from rcforge import schemas
from rcforge.core import fsio, images
from rcforge.core.errors import TooManyBadRecords
from rcforge.core.ledger import ErrorRow, ImageResult, SourceLedger

#: image results a per-record reader gathers into one batch: the image files of a batch are checked together (in
#: parallel), and the writer regroups rows into row groups of its own size whatever the batch size
BATCH_RESULTS = 256
#: check the bad-record threshold once this many records of a source were read (and always at the end)
THRESHOLD_MIN_READ = 10000


@dataclass
class ReadBatch:
    """A batch of image records (``table``, against IMAGE_RECORD) with its accounting.

    ``items_kept`` / ``items_repaired``: per row of ``table``, how many items of each kind are in the record and
    how many of those were repaired; ``image_repaired``: per row, whether the record lost or repaired anything.
    ``ledger`` holds everything else (images and items read, rejected, filtered, adopted; repairs by reason); the
    rows' own fate (written, repaired, excluded, rejected at the image check) is the keeper's to count.
    """

    table: pa.Table
    items_kept: dict[str, np.ndarray]
    items_repaired: dict[str, np.ndarray]
    image_repaired: np.ndarray
    ledger: SourceLedger
    errors: list[ErrorRow] = field(default_factory=list)

    @property
    def images_read(self) -> int:
        return self.ledger.images.read


class BatchBuilder:
    """Gathers a per-record reader's `ImageResult`\\ s into one `ReadBatch`: the one place that turns what a
    reader did with an image into counts."""

    def __init__(self, source: str):
        self.source = source
        self._reset()

    def _reset(self) -> None:
        self.ledger = SourceLedger(self.source)
        self.errors: list[ErrorRow] = []
        self._records: list[dict] = []
        self._kept: list[dict[str, int]] = []
        self._repaired: list[dict[str, int]] = []
        self._image_repaired: list[bool] = []
        self.results = 0

    def add(self, result: ImageResult) -> None:
        led = self.ledger
        self.results += 1
        self.errors.extend(result.errors)
        for kind, n in result.items_read.items():
            led.items[kind].read += n
        for error in result.errors:
            if error.kind != "image":
                led.items[error.kind].rejected[error.reason] += error.items
        for (kind, reason), n in result.repairs.items():
            led.items[kind].repairs[reason] += n
        for kind, n in result.items_adopted.items():
            led.items[kind].adopted += n
        filtered_items = Counter()
        for (kind, reason), n in result.items_filtered.items():
            led.items[kind].filtered[reason] += n
            filtered_items[kind] += n
        if result.orphan:  # entries whose image the source does not list: items, not an image
            return
        led.images.read += 1
        # annotations that were read and neither rejected nor filtered one by one
        kept = {kind: n - result.items_rejected.get(kind, 0) - filtered_items[kind]
                for kind, n in result.items_read.items()}
        if result.record is None:
            if result.filtered:
                led.images.filtered[result.filtered] += 1
                for kind, n in kept.items():
                    led.items[kind].filtered["image_" + result.filtered] += n
            else:
                reason = next((e.reason for e in result.errors if e.kind == "image"), "rejected")
                led.images.rejected[reason] += 1
                for kind, n in kept.items():
                    led.items[kind].rejected["image_rejected"] += n
            return
        self._records.append(result.record)
        self._kept.append(kept)
        self._repaired.append(dict(result.items_repaired))
        self._image_repaired.append(bool(result.items_rejected or result.items_repaired))

    def __len__(self) -> int:
        return self.results

    def take(self) -> ReadBatch:
        """The batch gathered so far; the builder starts a new one."""
        n = len(self._records)
        kinds = sorted({kind for row in self._kept for kind in row})

        def column(rows: list[dict[str, int]], kind: str) -> np.ndarray:
            return np.fromiter((row.get(kind, 0) for row in rows), dtype=np.int64, count=n)

        batch = ReadBatch(table=pa.Table.from_pylist(self._records, schema=schemas.IMAGE_RECORD),
                          items_kept={kind: column(self._kept, kind) for kind in kinds},
                          items_repaired={kind: column(self._repaired, kind) for kind in kinds},
                          image_repaired=np.array(self._image_repaired, dtype=bool), ledger=self.ledger,
                          errors=self.errors)
        self._reset()
        return batch


def gather(source: str, results: Iterable[ImageResult], size: int = BATCH_RESULTS) -> Iterator[ReadBatch]:
    """A per-record reader's results as batches of ``size`` results each (the last one smaller)."""
    builder = BatchBuilder(source)
    for result in results:
        builder.add(result)
        if len(builder) >= size:
            yield builder.take()
    if len(builder):
        yield builder.take()


class Ledgerkeeper:
    """Applies each `ReadBatch` of a source to its ledger, its writers and the bad-record policy.

    ``policy`` is the recipe's slice that steers bad input (``on_bad_records``, ``max_bad_fraction``);
    ``exclude`` the COCO ids of evaluation images a build must not see; ``errors_hint`` where the user finds the
    errors if the run stops.
    """

    def __init__(self, source: str, policy, exclude: frozenset[int], write_table: Callable[[pa.Table], None],
                 write_error: Callable[[ErrorRow], None], *, errors_hint: str,
                 images_root: str = "", checks: images.ImageChecks = images.ImageChecks()):
        self.source, self.policy, self.errors_hint = source, policy, errors_hint
        self.ledger = SourceLedger(source)
        self._write_table, self._write_error = write_table, write_error
        self._exclude = np.array(sorted(exclude), dtype=np.int64)
        self._checked_at = 0
        self.images_root, self.checks = images_root, checks
        self._pool = ThreadPoolExecutor(images.THREADS) if images.wants_pool(images_root, checks) else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def take(self, batch: ReadBatch) -> None:
        led = self.ledger
        for error in batch.errors:
            self._error(error)
        led.images.merge(batch.ledger.images)
        for kind, tally in batch.ledger.items.items():
            led.items[kind].merge(tally)
        table = batch.table
        coco = table.column("coco_id").fill_null(-1).to_numpy(zero_copy_only=False)
        excluded = np.isin(coco, self._exclude) if len(self._exclude) else np.zeros(len(coco), bool)
        table, rejected, image_repaired = self._check_images(table, excluded, batch.image_repaired)
        kept_rows = ~excluded & ~rejected
        for kind, kept in batch.items_kept.items():
            repaired = batch.items_repaired.get(kind, np.zeros_like(kept))
            if excluded.any():
                led.items[kind].excluded["evaluation_image"] += int(kept[excluded].sum())
            if rejected.any():
                led.items[kind].rejected["image_rejected"] += int(kept[rejected].sum())
            led.items[kind].repaired += int(repaired[kept_rows].sum())
            led.items[kind].written += int((kept[kept_rows] - repaired[kept_rows]).sum())
        if excluded.any():
            led.images.excluded["evaluation_image"] += int(excluded.sum())
        if not kept_rows.all():
            table = table.filter(pa.array(kept_rows))
        led.images.repaired += int((image_repaired & kept_rows).sum())
        led.images.written += int((~image_repaired & kept_rows).sum())
        self._write_table(table)
        self._maybe_check()

    def _check_images(self, table: pa.Table, excluded: np.ndarray, image_repaired: np.ndarray):
        """The image files' checks over a batch's rows (those not excluded): (the table with rescaled rows
        replaced, the rejected rows, the repaired rows)."""
        rows = np.flatnonzero(~excluded)
        names, widths, heights = (table.column(c).to_pylist() for c in ("image", "width", "height"))
        verdicts = images.check_many(self.images_root, [(names[i], widths[i], heights[i]) for i in rows],
                                     self.checks, self._pool)
        rejected = np.zeros(table.num_rows, bool)
        rescale = {}
        for i, verdict in zip(rows, verdicts):
            if verdict.size is not None:
                rescale[int(i)] = verdict.size
            elif not verdict.ok:
                rejected[i] = True
                key = table.column("key")[int(i)].as_py()
                self.ledger.images.rejected[verdict.reason] += 1
                self._error(ErrorRow(self.source, key, fsio.join(self.images_root, str(names[i])), key, "image",
                                     "validate", "image", verdict.reason, verdict.message))
        if rescale:
            table = _rescaled(table, rescale)
            image_repaired = image_repaired.copy()
            image_repaired[list(rescale)] = True
            self.ledger.images.repairs["image_rescaled"] += len(rescale)
        return table, rejected, image_repaired

    def _error(self, error: ErrorRow) -> None:
        """Write an error row, or stop at the first one under ``on_bad_records: error``."""
        if self.policy.on_bad_records == "error":
            raise TooManyBadRecords(f"bad record (on_bad_records: error): {error.describe()}")
        self._write_error(error)

    def _maybe_check(self, final: bool = False) -> None:
        read = self.ledger.total_read()
        if not final and read - self._checked_at < THRESHOLD_MIN_READ:
            return
        self._checked_at = read
        bad = self.ledger.bad()
        if read and bad / read > self.policy.max_bad_fraction:
            raise TooManyBadRecords(
                f"{self.source}: {bad} of {read} records are bad ({bad / read:.1%}), more than max_bad_fraction "
                f"{self.policy.max_bad_fraction:.1%}; see the errors output under {self.errors_hint}/{self.source}/")

    def finish(self) -> SourceLedger:
        self._maybe_check(final=True)
        return self.ledger


def _rescaled(table: pa.Table, sizes: dict[int, tuple[int, int]]) -> pa.Table:
    """``table`` with the records of rows ``sizes`` mapped to their image file's real size (rare: only those rows
    leave Arrow, to be rescaled as records)."""
    rows = sorted(sizes)
    records = [images.rescale_record(record, sizes[i]) for i, record in zip(rows, table.take(rows).to_pylist())]
    fixed = pa.Table.from_pylist(records, schema=table.schema)
    order = np.arange(table.num_rows)
    order[rows] = table.num_rows + np.arange(len(rows))
    return pa.concat_tables([table, fixed]).take(order)
