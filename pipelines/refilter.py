"""`rcforge refilter OUT --lambda 0.7 [--out OUT2] [--no-uniqueness]`: pairs for a new lambda from the
candidates alone, no model call.

Reads ``OUT/bootstrap/candidates/part-*.parquet`` shard by shard (the bootstrap stage writes every sample of
an object into one shard) and writes ``OUT2/bootstrap/pairs/`` with the same shard names, atomically, plus
``OUT2/bootstrap/refilter.json`` (lambda, counts).
"""

from __future__ import annotations

import sys
import time

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rcforge import schemas
from rcforge.bootstrap.decide import IMAGE_FAILED, MODEL_FAILED, decide
from rcforge.bootstrap.options import BootstrapOptions
from rcforge.bootstrap.pairs import decided_from
from rcforge.core import fsio, outlock
from rcforge.core.config import check_field, flag_type
from rcforge.core.errors import InputError


def refilter(out: str, lam: float, *, target: str | None = None, uniqueness: bool = True) -> dict:
    lam = check_field(BootstrapOptions, "lam", lam, "--lambda")  # before anything is written
    fs, path = fsspec.core.url_to_fs(out)
    shards = sorted(fs.glob(fsio.join(path, "bootstrap", "candidates", "part-*.parquet")))
    if not shards:
        raise InputError(f"refilter: no candidates under {out}/bootstrap/candidates (run rcforge bootstrap first)")
    target = target or out
    with outlock.writing(target, "rcforge refilter"):  # one writer per OUT
        return _write_pairs(fs, shards, target, lam, uniqueness, out)


#: the candidate columns the decision reads, which bootstrap always fills
DECIDED_ON = ("key", "object_id", "iou", "other_iou", "format_error")


def _read_candidates(fs, shard: str):
    """One candidate shard, or an `InputError` naming it when it is truncated, not Parquet, of another schema or
    holding nulls where the decision needs values (a damaged shard would otherwise be a traceback or, worse, a
    decision on missing numbers)."""
    try:
        with fs.open(shard, "rb") as f:
            table = pq.read_table(f, schema=schemas.CANDIDATE)
    except (pa.ArrowException, ValueError, OSError) as err:
        raise InputError(f"refilter: {shard} does not read as candidates ({fsio.first_line(err)}); "
                         f"rcforge validate OUT lists what is damaged") from None
    for column in DECIDED_ON:
        nulls = table.column(column).null_count
        if nulls:
            raise InputError(f"refilter: {shard} has {nulls} empty value(s) in column {column!r}, which bootstrap "
                             f"always fills (a damaged shard?)")
    return table


def _write_pairs(fs, shards: list[str], target: str, lam: float, uniqueness: bool, out: str) -> dict:
    tfs, tpath = fsspec.core.url_to_fs(target)
    pairs_dir = fsio.join(tpath, "bootstrap", "pairs")
    tfs.makedirs(pairs_dir, exist_ok=True)
    started = time.perf_counter()
    candidates = pairs = errors = unreadable = model_failed = 0
    for shard in shards:
        table = _read_candidates(fs, shard)
        candidates += table.num_rows
        # a candidate whose image did not read, or whose model call failed, is no format error: no reply exists
        failed = table.column("format_error").to_numpy(zero_copy_only=False)
        stage = table.column("error_stage")
        on_image = pc.equal(stage, IMAGE_FAILED).fill_null(False).to_numpy(zero_copy_only=False)
        on_model = pc.equal(stage, MODEL_FAILED).fill_null(False).to_numpy(zero_copy_only=False)
        unreadable += int(on_image.sum())
        model_failed += int(on_model.sum())
        errors += int((failed & ~on_image & ~on_model).sum())
        kept = decide(table, lam, uniqueness)
        pairs += kept.num_rows
        name = shard.rsplit("/", 1)[-1]
        fsio.write_parquet(tfs, fsio.join(pairs_dir, name), kept)
    summary = {"lambda": lam, "uniqueness": uniqueness, "candidates": candidates, "format_errors": errors,
               "unreadable_images": unreadable, "model_failures": model_failed, "pairs": pairs,
               "seconds": round(time.perf_counter() - started, 3),
               # what the pairs were decided from, so that a build can tell when they are stale
               "decided_from": decided_from(out)}
    fsio.write_json(tfs, fsio.join(tpath, "bootstrap", "refilter.json"), summary)
    return summary


def add_arguments(parser) -> None:
    parser.add_argument("out", help="a bootstrap output folder (holds bootstrap/candidates/)")
    parser.add_argument("--lambda", dest="lam", type=flag_type(BootstrapOptions, "lam"), required=True,
                        help="the IoU threshold, 0 to 1")
    parser.add_argument("--out", dest="target", help="write the pairs here instead (default: OUT)")
    parser.add_argument("--no-uniqueness", action="store_true", help="keep pairs that also ground elsewhere")


def main(args, rest) -> None:
    summary = refilter(args.out, args.lam, target=args.target, uniqueness=not args.no_uniqueness)
    print(f"lambda {summary['lambda']}: {summary['pairs']:,} pairs from {summary['candidates']:,} candidates "
          f"({summary['format_errors']:,} format errors, {summary['unreadable_images']:,} on images that did not "
          f"read, {summary['model_failures']:,} whose model call failed) in {summary['seconds']:.1f} s",
          file=sys.stdout)
