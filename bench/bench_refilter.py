"""`rcforge refilter` on synthetic bootstrap candidates (target: 25M candidates in under 30 s).

    python bench/bench_refilter.py --candidates 25000000 --out bench/data/cand25m

Candidates are made column-wise in the CANDIDATE schema (1M per shard, 2 samples per object, 3% format
errors), then `rcforge.pipelines.refilter.refilter` is timed at lambda 0.7.
"""

import argparse
import json
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def make(out: str, total: int, per_shard: int = 1_000_000, seed: int = 0) -> None:
    from rcforge import schemas

    rng = np.random.default_rng(seed)
    folder = os.path.join(out, "bootstrap", "candidates")
    os.makedirs(folder, exist_ok=True)
    shards = (total + per_shard - 1) // per_shard
    for s in range(shards):
        n = min(per_shard, total - s * per_shard)
        base = s * per_shard
        obj = (base + np.arange(n)) // 2
        key = pa.array(np.char.add("objects365/", (obj // 12).astype(str))).cast(pa.string())
        box = pa.FixedSizeListArray.from_arrays(pa.array(np.tile([10.0, 10.0, 80.0, 90.0], n)), 4)
        errors = rng.random(n) < 0.03
        iou = np.where(errors, 0.0, rng.random(n))
        pred = pa.ListArray.from_arrays(pa.array(np.arange(0, 4 * n + 1, 4, dtype=np.int32)),
                                        pa.array(np.tile([12.0, 11.0, 82.0, 88.0], n)))
        strings = lambda v: pa.array(np.full(n, v))  # noqa: E731
        columns = {
            "key": key, "source": strings("objects365"), "image": strings("x.jpg"),
            "width": pa.array(np.full(n, 769, np.int32)), "height": pa.array(np.full(n, 512, np.int32)),
            "object_id": pa.array(obj.astype(np.int64)), "category": strings("cup"), "box": box,
            "sample": pa.array((np.arange(n) % 2).astype(np.int32)), "description": strings("the red cup on the left"),
            "predicted_box": pred, "iou": pa.array(iou), "other_iou": pa.array(rng.random(n) * 0.5),
            "format_error": pa.array(errors), "error_stage": pa.nulls(n, pa.string()),
            "raw_describe": strings(""), "raw_ground": strings(""), "backend": strings("florence2"),
            "model_id": strings("microsoft/Florence-2-base"), "model_revision": pa.nulls(n, pa.string()),
            "describe_template": strings("florence2.describe"), "ground_template": strings("florence2.ground"),
            "seed": pa.array(np.zeros(n, np.int64)),
        }
        table = pa.Table.from_arrays([columns[f.name] for f in schemas.CANDIDATE], schema=schemas.CANDIDATE)
        pq.write_table(table, os.path.join(folder, f"part-{s:05d}.parquet"), compression="zstd")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=25_000_000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lambda", dest="lam", type=float, default=0.7)
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.out, "bootstrap", "candidates")):
        t = time.perf_counter()
        make(args.out, args.candidates)
        print(f"made {args.candidates:,} candidates in {time.perf_counter() - t:.1f} s")
    from rcforge.pipelines.refilter import refilter

    started = time.perf_counter()
    summary = refilter(args.out, args.lam)
    print(json.dumps({**summary, "wall_seconds": round(time.perf_counter() - started, 2)}, indent=1))


if __name__ == "__main__":
    main()
