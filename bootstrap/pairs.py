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

from rcforge.core import fsio
from rcforge.core.errors import InputError
from rcforge.rc_tasks.grounding import BOOTSTRAP_SPLIT

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


#: what made the candidates of an OUT (``bootstrap/state.json``, written by
#: `rcforge.pipelines.bootstrap.claim_state`)
STATE = "state.json"


def read_state(out: str) -> dict:
    """OUT's bootstrap state ({} when there is none, or one that does not read)."""
    fs, path = fsspec.core.url_to_fs(out)
    state = fsio.read_json(fs, fsio.join(path, "bootstrap", STATE))
    return state if isinstance(state, dict) else {}


def decided_from(out: str) -> dict:
    """The candidates of ``out`` as pairs depend on them: the folder, the key of the `STATE` that made them and
    each candidate shard's name and size (a resumed run adds shards). `rcforge refilter` records it with the
    pairs."""
    fs, path = fsspec.core.url_to_fs(out)
    key = read_state(out).get("key")
    shards = {s.rsplit("/", 1)[-1]: int(fs.size(s))
              for s in sorted(fs.glob(fsio.join(path, "bootstrap", "candidates", "part-*.parquet")))}
    return {"folder": out, "state": key, "shards": shards}


def check_fresh(folder: str) -> None:
    """Refuse pairs decided from candidates that have changed since (a resumed bootstrap added some, another
    model's run replaced them): the build would serve an older decision silently."""
    pair_shards(folder)  # there are pairs at all
    info = summary(folder).get("refilter")
    then = info.get("decided_from") if isinstance(info, dict) else None
    if not isinstance(then, dict) or not isinstance(then.get("folder"), str):
        raise InputError(f"render.bootstrap_pairs: {folder}/bootstrap/refilter.json does not say which candidates "
                         f"its pairs were decided from; run rcforge refilter again to decide them")
    now = decided_from(then["folder"])
    if now["state"] != then.get("state") or now["shards"] != then.get("shards"):
        raise InputError(f"render.bootstrap_pairs: the pairs in {folder} were decided from candidates in "
                         f"{then['folder']} that have changed since ({len(then.get('shards') or {})} shards then, "
                         f"{len(now['shards'])} now); run rcforge refilter {then['folder']} --lambda "
                         f"{info.get('lambda')} --out {folder} again")


def summary(folder: str) -> dict:
    """What the build manifest records about the pairs: the folder, the refilter summary (lambda, counts)."""
    fs, path = fsspec.core.url_to_fs(folder)
    info = {"from": folder}
    decision = fsio.join(path, "bootstrap", "refilter.json")
    if fs.exists(decision):
        try:
            info["refilter"] = json.loads(fs.cat_file(decision))
        except ValueError:
            raise InputError(f"render.bootstrap_pairs: {decision} is not valid JSON") from None
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
