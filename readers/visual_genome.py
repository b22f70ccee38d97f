"""Visual Genome 1.0 to 1.4: image_data, objects, relationships, region descriptions (+ attributes).

The real files are JSON arrays of 0.4-0.8 GB with one entry per image, all in the same image order (Pink's
loader relies on that). Two producers feed one joiner (`visual_genome_join`), which owns every rule:

- the columnar producer (`visual_genome_batch.read_batches`) parses each file in batches of images, in its own
  process for large inputs, and hands over Arrow columns while the files agree on the image ids and no
  relationship needs an endpoint adopted;
- the entry producer (`_entry_batches`) streams the files with ijson, one entry per image, in lockstep; a file
  whose image ids disagree is streamed once into an on-disk SQLite index keyed by image id and looked up from
  then on (`_Secondary`). It carries the raw relationship items, so the joiner can adopt endpoints.

The reader starts with the columnar producer and switches to the entry producer from the first image not yet
yielded (`visual_genome_join.Switch`); ``mode: per_image`` starts with the entry producer. Entries of a file
whose image is not in image_data.json are reported as orphans (``unknown_image``), and spare entries of an image it
lists as ``duplicate_image_entry``: each entry of each file is read once.

Schema differences handled: v1.0 calls ids ``id`` and gives objects one ``name`` (relationship endpoints too);
v1.2+ use ``object_id`` / ``relationship_id`` and ``names``; region descriptions use ``region_id`` or ``id``;
predicates, names and attributes vary in case and spacing and are lower-cased with spaces collapsed.
Relationships reference objects by id and carry their own copy of each endpoint: we keep the reference and check
that it names an object of the image, adopting the endpoint from its copy when objects.json lacks it (v1.0).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass
from typing import Iterator, Literal

import orjson
import pyarrow as pa

from rcforge import schemas
from rcforge.core import fsio
from rcforge.core.config import path_field
from rcforge.core.ledger import ErrorRow, SourceLedger
from rcforge.core.ledgerkeeper import ReadBatch
from rcforge.readers import ReadContext, register
from rcforge.readers import visual_genome_batch as columnar
from rcforge.readers.visual_genome_batch import LIST_KEY, entry_image_id, extract, items_of
from rcforge.readers.visual_genome_join import KEY_PREFIX, SOURCE, Switch, join

#: below this many bytes of input, starting parser processes costs more than it saves
PARALLEL_MIN_BYTES = 32 << 20


@dataclass(frozen=True)
class VisualGenomeConfig:
    """Visual Genome.

    root: folder with image_data.json, objects.json, relationships.json, region_descriptions.json and, when
      present, attributes.json (any of them may be .json.gz or named explicitly below).
    images: the image root; image paths are written relative to it.
    image_layout: "url" keeps the official sub-folder from the image url (``VG_100K_2/1.jpg``); "flat" expects
      every image directly in ``images`` (``1.jpg``).
    """

    root: str = path_field()
    images: str = path_field(must_exist=False)
    image_layout: Literal["url", "flat"] = "url"
    image_data: str = "image_data.json"
    objects: str = "objects.json"
    relationships: str = "relationships.json"
    region_descriptions: str = "region_descriptions.json"
    attributes: str | None = "attributes.json"  # DEFAULT_ATTRIBUTES: optional (VG without it has no attributes)
    #: which producer feeds the joiner (`visual_genome_join`) first: "columnar" parses batches in this process and
    #: "processes" each file in its own process (both while the files agree on the image order and need no
    #: adoption); "auto" uses processes for inputs over 32 MB on a multi-core machine; "per_image" starts with the
    #: entry producer (ijson, entry by entry, lockstep or keyed), which every mode switches to where needed
    mode: Literal["auto", "processes", "columnar", "per_image"] = "auto"


class _Secondary:
    """One per-image file joined to image_data: lockstep while ids agree, keyed (SQLite) once they do not. Each
    entry is taken at most once (an image listed twice takes the file's next entry for it, as lockstep does), so
    every entry no image took is a leftover: of an image the file does not list, or a spare entry of one it does."""

    def __init__(self, path: str, kind: str, work_dir: str, skip: int = 0):
        """``skip``: entries already joined by the columnar producer (which read them in lockstep)."""
        self.path, self.kind, self.work_dir = path, kind, work_dir
        self._iter = fsio.iter_json(path, "item", what=f"Visual Genome {kind} file")
        for _ in range(skip):
            next(self._iter, None)
        self._taken = skip  # entries taken in lockstep: the file's first ones
        self._db: sqlite3.Connection | None = None
        self.keyed = False

    def take(self, image_id) -> dict | None:
        """The next entry not yet taken for ``image_id``, or None when the file has none."""
        if not self.keyed:
            entry = next(self._iter, None)
            if entry is not None and entry_image_id(entry) == image_id:
                self._taken += 1
                return entry
            self._switch_to_keyed()
        return self._lookup(image_id)

    def _switch_to_keyed(self) -> None:
        self.keyed = True
        self._iter = iter(())
        fd, db_path = tempfile.mkstemp(prefix=f"vg-{self.kind}-", suffix=".sqlite", dir=self.work_dir)
        os.close(fd)
        db = sqlite3.connect(db_path)
        db.execute("CREATE TABLE e (seq INTEGER PRIMARY KEY, image_id TEXT, body BLOB)")
        batch = []
        for seq, entry in enumerate(fsio.iter_json(self.path, "item", what=f"Visual Genome {self.kind} file")):
            if seq >= self._taken:  # the entries taken in lockstep are not taken again
                batch.append((seq, str(entry_image_id(entry)), orjson.dumps(entry)))
            if len(batch) >= 5000:
                db.executemany("INSERT INTO e (seq, image_id, body) VALUES (?, ?, ?)", batch)
                batch.clear()
        db.executemany("INSERT INTO e (seq, image_id, body) VALUES (?, ?, ?)", batch)
        db.execute("CREATE INDEX e_image ON e (image_id, seq)")
        db.commit()
        self._db = db

    def _lookup(self, image_id) -> dict | None:
        row = self._db.execute("SELECT seq, body FROM e WHERE image_id = ? ORDER BY seq LIMIT 1",
                               (str(image_id),)).fetchone()
        if row is None:
            return None
        self._db.execute("DELETE FROM e WHERE seq = ?", (row[0],))
        return orjson.loads(row[1])

    def leftovers(self, listed: set) -> Iterator[tuple[dict, bool]]:
        """Every entry no image took, in file order, with whether image_data.json lists its image (a spare entry)
        or not (an orphan); after the last image."""
        known = {str(i) for i in listed}
        if not self.keyed:
            for entry in self._iter:
                yield entry, str(entry_image_id(entry)) in known
            return
        for image_id, body in self._db.execute("SELECT image_id, body FROM e ORDER BY seq"):
            yield orjson.loads(body), image_id in known


def leftover_error(kind: str, path: str, entry, listed: bool) -> ErrorRow:
    """The error row of an entry no image took: every item of it rejected, ``duplicate_image_entry`` when
    image_data.json lists its image (it took an earlier entry), else ``unknown_image``."""
    image_id = entry_image_id(entry)
    n = len(items_of(entry, LIST_KEY[kind]))
    reason, message = ("duplicate_image_entry", f"{n} {kind}(s) in another entry for image {image_id}, which no "
                       f"listing of it in image_data.json took (an earlier entry was joined)") if listed else \
        ("unknown_image", f"{n} {kind}(s) for image {image_id}, which image_data.json does not list")
    return ErrorRow(source=SOURCE, key=f"{KEY_PREFIX}/{image_id}", file=path, record=f"image_id={image_id}",
                    field="image_id", stage="join", kind=kind, reason=reason, message=message, items=n)


#: the attributes file looked for when the recipe names none; its absence is no error
DEFAULT_ATTRIBUTES = "attributes.json"


def input_files(config: VisualGenomeConfig) -> tuple[dict[str, str], str]:
    """(kind -> path of each per-image file, the image_data path); attributes.json only when present, unless the
    recipe names it (a misspelling must not pass silently)."""
    root = config.root
    files = {
        "object": fsio.require(fsio.join(root, config.objects), "sources.visual_genome objects file"),
        "relation": fsio.require(fsio.join(root, config.relationships), "sources.visual_genome relationships file"),
        "region": fsio.require(fsio.join(root, config.region_descriptions),
                               "sources.visual_genome region descriptions file"),
    }
    if config.attributes:
        attr_path = fsio.join(root, config.attributes)
        if fsio.exists(attr_path):
            files["attribute"] = attr_path
        elif config.attributes != DEFAULT_ATTRIBUTES:
            fsio.require(attr_path, "sources.visual_genome attributes file")
    return files, fsio.require(fsio.join(root, config.image_data), "sources.visual_genome image_data file")


@register(SOURCE, VisualGenomeConfig, provides=("object_categories", "relations", "regions", "attributes", "refs"))
def read(config: VisualGenomeConfig, ctx: ReadContext) -> Iterator[ReadBatch]:
    """Visual Genome (objects, relationships, regions, attributes), joined in batches of images in bounded memory."""
    root = config.root
    files, image_data_path = input_files(config)
    emitted: set = set()
    start = 0
    if config.mode != "per_image":
        # parser processes open the files themselves: not for memory:// (it lives in this process only)
        in_process_only = str(root).startswith("memory://")
        parallel = not in_process_only and (config.mode == "processes" or (
            config.mode == "auto" and (os.cpu_count() or 1) > 1
            and sum(fsio.size(p) for p in files.values()) > PARALLEL_MIN_BYTES))
        try:
            for batch in columnar.read_batches(files, image_data_path, config.image_layout, emitted,
                                               parallel=parallel):
                start += batch.images_read
                yield batch
            return
        except Switch:
            pass  # the files disagree on the image order, or a batch needs adoption: entry by entry from here
    yield from _entry_batches(files, image_data_path, config.image_layout, emitted, start, ctx.work_dir)


def _entry_batches(files: dict, image_data_path: str, layout: str, emitted: set, start: int, work_dir: str,
                   batch: int | None = None) -> Iterator[ReadBatch]:
    """The entry producer: image_data.json's images from ``start`` on, each with its entry of every file, joined in
    batches (raw relationship items included, for adoption); then the files' orphans."""
    batch = batch or columnar.BATCH
    secondaries = {kind: _Secondary(path, kind, work_dir, skip=start) for kind, path in files.items()}
    metas: list = []
    offset = start
    listed: set = set()  # every image id image_data.json lists (rejected or not): no orphans among their entries
    for index, meta in enumerate(fsio.iter_json(image_data_path, "item", what="Visual Genome image_data file")):
        listed.add(entry_image_id(meta))
        if index < start:
            continue  # already joined from the columnar producer
        metas.append(meta)
        if len(metas) >= batch:
            yield _join_entries(metas, offset, secondaries, files, image_data_path, layout, emitted)
            offset += len(metas)
            metas = []
    if metas:
        yield _join_entries(metas, offset, secondaries, files, image_data_path, layout, emitted)
    yield _orphans(secondaries, listed)


def _join_entries(metas, offset, secondaries, files, image_data_path, layout, emitted) -> ReadBatch:
    image_ids = [entry_image_id(m) for m in metas]
    entries = {kind: [sec.take(image_id) for image_id in image_ids] for kind, sec in secondaries.items()}
    raw = [item for entry in entries["relation"] for item in items_of(entry, LIST_KEY["relation"])]
    images = {"image_ids": image_ids, "meta": metas, "offset": offset}
    return join(images, {kind: extract(kind, e) for kind, e in entries.items()}, files, image_data_path, layout,
                emitted, raw_relations=raw)


def _orphans(secondaries: dict, listed: set) -> ReadBatch:
    """Every entry no image took (`_Secondary.leftovers`): its items read and rejected, one error row each."""
    ledger, errors = SourceLedger(SOURCE), []
    for kind, sec in secondaries.items():
        for entry, is_listed in sec.leftovers(listed):
            error = leftover_error(kind, sec.path, entry, is_listed)
            ledger.items[kind].read += error.items
            ledger.items[kind].rejected[error.reason] += error.items
            errors.append(error)
    return ReadBatch(table=pa.Table.from_pylist([], schema=schemas.IMAGE_RECORD), items_kept={}, items_repaired={},
                     image_repaired=pa.array([], pa.bool_()).to_numpy(zero_copy_only=False), ledger=ledger,
                     errors=errors)
