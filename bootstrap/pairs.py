"""Kept bootstrap pairs as a source for rendering: each pair becomes a referring expression of its object on the
image record, so `grounding` and `grounded_caption` enumerate it like a RefCOCO ref (and detection, counting and
coarse_spatial run on the same images as before).

The recipe names the folder that holds ``bootstrap/pairs/`` (an OUT of `rcforge bootstrap`, or of
`rcforge refilter --out` for another lambda)::

    render:
      bootstrap_pairs:
        from: ../out/o365          # relative to the recipe
        only_paired_sources: [objects365]  # images of these sources without a kept pair are skipped

A pair becomes ``{"ref_id": object_id, "object_id": ..., "split": "bootstrap", "sentences": [{"sent_id": sample,
"text": description}]}`` (the description of the ORIGINAL box, as Pink keeps it). The index is loaded once per
worker process: the pairs sorted by image key, looked up by binary search.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rcforge.rc_tasks.grounding import BOOTSTRAP_SPLIT

from rcforge import fsio
from rcforge.errors import InputError

COLUMNS = ["key", "source", "object_id", "category", "description", "sample"]


@dataclass(frozen=True)
class PairsSource:
    """The recipe's ``render.bootstrap_pairs``."""

    folder: str
    only_paired_sources: tuple[str, ...] = ()


def pair_shards(folder: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(folder)
    shards = sorted(fs.glob(fsio.join(path, "bootstrap", "pairs", "part-*.parquet")))
    if not shards:
        raise InputError(f"render.bootstrap_pairs: no pairs under {folder}/bootstrap/pairs (run rcforge bootstrap "
                         f"or rcforge refilter --out there first)")
    return [fs.unstrip_protocol(s) if "://" in folder else s for s in shards]


def summary(folder: str) -> dict:
    """What the build manifest records about the pairs: the folder, the refilter summary (lambda, counts)."""
    fs, path = fsspec.core.url_to_fs(folder)
    info = {"from": folder}
    decision = fsio.join(path, "bootstrap", "refilter.json")
    if fs.exists(decision):
        with fs.open(decision) as f:
            info["refilter"] = json.load(f)
    return info


class PairIndex:
    """The kept pairs of a folder by image key. Pickles as its folder (Beam ships it to workers) and loads on
    first use."""

    def __init__(self, source: PairsSource):
        self.source = source
        self._keys = None
        self._table = None

    def __getstate__(self):
        return {"source": self.source}

    def __setstate__(self, state):
        self.__init__(state["source"])

    def load(self) -> "PairIndex":
        if self._keys is None:
            tables = []
            for shard in pair_shards(self.source.folder):
                with fsspec.open(shard, "rb") as f:
                    tables.append(pq.read_table(f, columns=COLUMNS))
            table = pa.concat_tables(tables).sort_by([("key", "ascending"), ("object_id", "ascending"),
                                                      ("sample", "ascending")])
            self._table = table
            self._keys = table.column("key").to_numpy(zero_copy_only=False)
        return self

    def __len__(self) -> int:
        return self.load()._table.num_rows

    def refs(self, key: str) -> list[dict]:
        """The image's pairs as referring expressions (empty when it has none)."""
        self.load()
        lo, hi = np.searchsorted(self._keys, key, "left"), np.searchsorted(self._keys, key, "right")
        if lo == hi:
            return []
        rows = self._table.slice(lo, hi - lo).to_pylist()
        return [{"ref_id": r["object_id"], "object_id": r["object_id"], "category_id": None, "split": BOOTSTRAP_SPLIT,
                 "sentences": [{"sent_id": r["sample"], "text": r["description"]}]} for r in rows]

    def attach(self, record: dict) -> dict | None:
        """The record with its pairs among its refs; None when it has none and its source is one of
        ``only_paired_sources``."""
        refs = self.refs(record["key"])
        if not refs:
            return None if record["source"] in self.source.only_paired_sources else record
        return {**record, "refs": list(record["refs"]) + refs}
