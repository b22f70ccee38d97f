"""`rcforge stats` on synthetic dialogue shards against DuckDB running the same queries directly.

    python bench/bench_stats.py --rows 10000000 --out bench/data/stats10m

Shards are made column-wise with pyarrow in the dialogue schema (tasks, sources, 2-4 turns, 0-6 boxes); then
`rcforge.inspect.stats.compute` is timed against the bare SQL of its queries on one DuckDB connection (the floor).
Target: stats within 2x of DuckDB itself.
"""

import argparse
import json
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TASKS = ["relation", "coarse_spatial", "counting", "detection", "grounding", "grounded_caption", "vqa"]
SOURCES = ["visual_genome", "objects365", "refcoco", "vqav2"]


def _arr(values, type=None):
    a = pa.array(values, type=type)
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def make(out: str, rows: int, shard_rows: int = 1_000_000, seed: int = 0) -> None:
    from rcforge import schemas

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out, "dialogues"), exist_ok=True)
    shards = (rows + shard_rows - 1) // shard_rows
    for s in range(shards):
        n = min(shard_rows, rows - s * shard_rows)
        ids = pa.array([f"img/{s}/{i}" for i in range(n)])
        task = _arr(np.array(TASKS)[rng.integers(0, len(TASKS), n)])
        source = _arr(np.array(SOURCES)[rng.integers(0, len(SOURCES), n)])
        nbox = rng.integers(0, 7, n)
        xy = rng.random((int(nbox.sum()), 2)) * 0.6
        wh = rng.random((int(nbox.sum()), 2)) * 0.4 + 0.001
        flat = np.concatenate([xy, xy + wh], axis=1).reshape(-1)
        boxes = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(nbox)]).astype(np.int32)),
                                         pa.FixedSizeListArray.from_arrays(pa.array(flat), 4))
        counts = rng.integers(1, 12, n).astype(str)
        human = _arr(np.char.add("<image>\nHow many things are there in region ", counts))
        gpt = _arr(np.char.add("There are ", counts))
        turn = pa.StructArray.from_arrays([_arr(np.tile(["human", "gpt"], n)),
                                           pa.concat_arrays([human, gpt]).take(
                                               pa.array(np.stack([np.arange(n), np.arange(n) + n], 1).reshape(-1)))],
                                          fields=list(schemas.TURN))
        conversations = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), turn)
        empty_lists = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)),
                                               pa.array([], pa.list_(pa.float64(), 2)))
        turns = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), pa.StructArray.from_arrays(
            [task, pa.array(["v"] * n), pa.array(["t.v.q01+a01"] * n)], fields=list(schemas.TURN_SOURCE)))
        table = pa.Table.from_arrays([
            ids, ids, source, pa.array(["x.jpg"] * n), pa.array(["1"] * n), pa.array(np.full(n, 640, np.int32)),
            pa.array(np.full(n, 480, np.int32)), task, pa.array(["v"] * n),
            _arr(np.char.add("t.v.q", rng.integers(1, 11, n).astype(str))), turns, conversations, boxes,
            empty_lists, pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.string())),
            pa.array(["pink"] * n), pa.array(np.zeros(n, np.int64))], schema=schemas.DIALOGUE)
        pq.write_table(table, os.path.join(out, "dialogues", f"part-{s:05d}-of-{shards:05d}.parquet"),
                       compression="zstd")


def bare_duckdb(out: str) -> float:
    """The same SQL as rcforge.inspect.stats.compute, on one connection, results fetched: the floor."""
    import duckdb

    from rcforge.inspect import stats

    con = duckdb.connect()
    started = time.perf_counter()
    con.read_parquet(os.path.join(out, "dialogues", "part-*.parquet")).create_view("d")
    for sql in stats.QUERIES:
        con.execute(sql).fetchall()
    return time.perf_counter() - started


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.out, "dialogues")):
        t = time.perf_counter()
        make(args.out, args.rows)
        print(f"made {args.rows:,} rows in {time.perf_counter() - t:.1f} s")
    from rcforge.inspect.stats import compute

    floor = bare_duckdb(args.out)
    started = time.perf_counter()
    figures = compute(args.out)
    ours = time.perf_counter() - started
    print(json.dumps({"rows": figures["dialogues"], "boxes": figures["boxes"], "duckdb_s": round(floor, 2),
                      "rcforge_stats_s": round(ours, 2), "ratio": round(ours / floor, 2)}, indent=1))


if __name__ == "__main__":
    main()
