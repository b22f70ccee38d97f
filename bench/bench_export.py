"""`rcforge export KIND` against a bare pyarrow-to-orjson loop over the same shards, and its peak memory.

    python bench/bench_export.py --rows 2000000 --out bench/data/export2m
    python bench/bench_export.py --rows 10000000 --out bench/data/export10m --kinds sharegpt --memory

Shards are made as for bench_stats.py (the dialogue schema, two turns, 0-6 boxes) in shards of 50,000 rows (a
build's default ``rows_per_shard``; one row group each, as the build writes them), with a build manifest naming
an image root per source. The floor reads the shards batch by batch (the export's columns), turns each row into a
dict and writes it with orjson, one line each. Each export kind is timed writing JSONL (qwen_vl: its JSON list).
``--memory`` runs each export in a child process and reports its peak RSS. Targets: every kind within 2x of the
floor; peak RSS under 1 GB at 10M dialogues.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import orjson
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_stats import SOURCES, make  # noqa: E402


def prepare(out: str, rows: int) -> None:
    if not os.path.exists(os.path.join(out, "dialogues")):
        started = time.perf_counter()
        make(out, rows, shard_rows=50_000)
        print(f"made {rows:,} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    manifest = {"stage": "build", "sources": {s: {"source": s, "image_root": f"/data/{s}/images"} for s in SOURCES},
                "build": {"coordinates": "pink"}}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def floor(out: str, file: str) -> tuple[int, float]:
    """The bare loop: shards -> batches -> dicts -> orjson lines."""
    from rcforge.inspect.export import COLUMNS

    started, n = time.perf_counter(), 0
    with open(file, "wb") as sink:
        for shard in sorted(os.listdir(os.path.join(out, "dialogues"))):
            for batch in pq.ParquetFile(os.path.join(out, "dialogues", shard)).iter_batches(batch_size=4096,
                                                                                           columns=COLUMNS):
                for row in batch.to_pylist():
                    sink.write(orjson.dumps(row) + b"\n")
                    n += 1
    return n, time.perf_counter() - started


def timed_export(kind: str, out: str, file: str) -> tuple[int, float]:
    from rcforge.inspect.export import export

    started = time.perf_counter()
    n = export(kind, out, file)
    return n, time.perf_counter() - started


def peak_rss_mb(code: str) -> float:
    """``code`` in a child process; the peak resident memory of that child, read by the child itself."""
    code += "; import resource, sys; sys.stdout.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))"
    done = subprocess.run([sys.executable, "-c", code], check=True, cwd="/tmp", capture_output=True, text=True)
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--kinds", nargs="*", default=["llava", "sharegpt", "swift", "internvl", "qwen_vl"])
    ap.add_argument("--memory", action="store_true", help="also run each export alone and report its peak RSS")
    args = ap.parse_args()
    prepare(args.out, args.rows)
    target = os.path.join(args.out, "export")
    n, bare = floor(args.out, target + ".jsonl")
    result = {"rows": n, "floor_s": round(bare, 2), "floor_rows_per_s": round(n / bare)}
    here = os.path.dirname(os.path.abspath(__file__))
    if args.memory:
        result["floor_peak_rss_mb"] = round(peak_rss_mb(
            f"import sys; sys.path.insert(0, {here!r}); import bench_export; "
            f"bench_export.floor({args.out!r}, {target + '.jsonl'!r})"))
    for kind in args.kinds:
        file = target + (".json" if kind == "qwen_vl" else ".jsonl")
        written, seconds = timed_export(kind, args.out, file)
        assert written == n, (kind, written, n)
        result[kind] = {"s": round(seconds, 2), "ratio": round(seconds / bare, 2)}
        if args.memory:
            result[kind]["peak_rss_mb"] = round(peak_rss_mb(
                f"from rcforge.inspect.export import export; export({kind!r}, {args.out!r}, {file!r})"))
        os.remove(file)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
