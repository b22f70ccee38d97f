"""The self-consistency decision: which bootstrap candidates become referring-expression / box pairs.

Measure first, decide after: the bootstrap stage writes every candidate with its IoU, so this decision is a cheap
column-wise step that `rcforge refilter` reruns for any lambda without a model.

A candidate is kept when
- its replies parsed (``format_error`` false),
- ``iou >= lambda`` (Pink keeps the pair at equality; lambda = 0.5 in the paper), and
- with the uniqueness rule on, its description does not also ground onto a different box of the same
  category: not (``other_iou > 0`` and ``other_iou >= lambda``), the same rule at every lambda, so refilter
  equals a fresh run.
Of the kept samples of one object (N descriptions per box), the one with the highest IoU wins (ties: the lowest
sample index). A pair keeps the description and the ORIGINAL box, as Pink does.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rcforge import schemas

#: a candidate's ``error_stage`` when no reply exists: its image did not read, or its model call raised (a batch
#: that failed: out of memory, a CUDA error, an adapter that does not pickle). Neither is a format error; a model
#: failure is not final either (a rerun of bootstrap does the image again)
IMAGE_FAILED = "image"
MODEL_FAILED = "model"


def keep_mask(table: pa.Table, lam: float, uniqueness: bool = True) -> np.ndarray:
    iou = table.column("iou").to_numpy(zero_copy_only=False)
    ok = ~table.column("format_error").to_numpy(zero_copy_only=False) & (iou >= lam)
    if uniqueness:
        other = table.column("other_iou").to_numpy(zero_copy_only=False)
        ok &= ~((other > 0) & (other >= lam))
    return ok


def decide(table: pa.Table, lam: float, uniqueness: bool = True) -> pa.Table:
    """Pairs (schema PAIR) from candidates (schema CANDIDATE); all samples of an object must be in ``table``."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda {lam} is not between 0 and 1")
    kept = table.filter(pa.array(keep_mask(table, lam, uniqueness)))
    if kept.num_rows:
        # best IoU first within (key, object): sort, then the first row of each group
        kept = kept.sort_by([("key", "ascending"), ("object_id", "ascending"), ("iou", "descending"),
                             ("sample", "ascending")])
        codes = pc.dictionary_encode(kept.column("key")).combine_chunks().indices.to_numpy(zero_copy_only=False)
        objects = kept.column("object_id").to_numpy()
        first = np.ones(len(codes), dtype=bool)
        first[1:] = (codes[1:] != codes[:-1]) | (objects[1:] != objects[:-1])
        kept = kept.filter(pa.array(first))
    columns = [kept.column(f.name) if f.name != "lambda" else pa.array(np.full(kept.num_rows, float(lam)))
               for f in schemas.PAIR]
    return pa.Table.from_arrays(columns, schema=schemas.PAIR)


def survival(table: pa.Table, lambdas=None, uniqueness: bool = True) -> list[dict]:
    """How many objects keep a pair at each lambda (the survival curve), from candidates alone."""
    lambdas = lambdas if lambdas is not None else [round(x * 0.1, 1) for x in range(11)]
    return [{"lambda": lam, "pairs": decide(table, lam, uniqueness).num_rows} for lam in lambdas]
