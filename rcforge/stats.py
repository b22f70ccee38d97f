"""`rcforge stats OUT [--json FILE]`: corpus statistics computed by DuckDB over the dialogue shards.

Nothing loads the corpus into Python objects: every figure is one SQL query over ``OUT/dialogues/*.parquet``
(local paths, or any fsspec URL through DuckDB's fsspec bridge), so it scales to tens of millions of rows.

Figures, per source and per task: records, turns, characters, boxes per dialogue, the share of empty answers
(coarse_spatial's ``empty`` variant); over all boxes: an area histogram, an aspect-ratio histogram and a coarse
8x8 heatmap of box centres; for counting: the histogram of answered counts; template usage.
"""

from __future__ import annotations

import json
import sys

import fsspec

from rcforge import fsio
from rcforge.errors import InputError


def _connect(out: str):
    import duckdb

    con = duckdb.connect()
    fs, path = fsspec.core.url_to_fs(out)
    shards = sorted(fs.glob(fsio.join(path, "dialogues", "part-*.parquet")))
    if not shards:
        raise InputError(f"stats: no dialogue shards under {out}/dialogues (run rcforge build first)")
    if "://" in str(out):
        con.register_filesystem(fs)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        shards = [f"{protocol}://{s}" for s in shards]
    con.read_parquet(shards).create_view("d")
    return con


def _rows(con, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


_BOXES = "(SELECT unnest(boxes) AS b FROM d)"

#: every query of the figures, by name (the benchmark runs the same SQL on bare DuckDB)
SQL = {
    "by_task": """
        SELECT source, task, count(*) AS records,
               sum(len(conversations)) // 2 AS turns,
               sum(list_sum(list_transform(conversations, lambda t: length(t.value)))) AS characters,
               avg(len(boxes)) AS boxes_per_dialogue,
               avg(CASE WHEN variant = 'empty' THEN 1.0 ELSE 0.0 END) AS empty_answer_rate
        FROM d GROUP BY source, task ORDER BY source, task""",
    "area": f"""
        SELECT least(floor((b[3] - b[1]) * (b[4] - b[2]) * 10), 9)::INT AS bucket, count(*) AS n
        FROM {_BOXES} GROUP BY bucket ORDER BY bucket""",
    "aspect": f"""
        SELECT greatest(least(round(log2((b[3] - b[1]) / (b[4] - b[2]))), 4), -4)::INT AS log2_bucket,
               count(*) AS n
        FROM {_BOXES} WHERE b[4] > b[2] AND b[3] > b[1] GROUP BY log2_bucket ORDER BY log2_bucket""",
    "heat": f"""
        SELECT least(floor((b[2] + b[4]) / 2 * 8), 7)::INT AS row, least(floor((b[1] + b[3]) / 2 * 8), 7)::INT AS col,
               count(*) AS n
        FROM {_BOXES} GROUP BY row, col""",
    "counts": """
        SELECT try_cast(regexp_extract(conversations[2].value, '\\d+') AS INTEGER) AS count, count(*) AS n
        FROM d WHERE task = 'counting' GROUP BY 1 ORDER BY 1""",
    "templates": "SELECT template_id, count(*) AS n FROM d GROUP BY 1 ORDER BY n DESC, 1",
    "total": "SELECT count(*) AS dialogues, sum(len(boxes)) AS boxes FROM d",
}
QUERIES = list(SQL.values())


def compute(out: str) -> dict:
    con = _connect(out)
    r = {name: _rows(con, sql) for name, sql in SQL.items()}
    heatmap = [[0] * 8 for _ in range(8)]
    for cell in r["heat"]:
        heatmap[cell["row"]][cell["col"]] = cell["n"]
    total = r["total"][0]
    return {
        "dialogues": total["dialogues"],
        "boxes": total["boxes"] or 0,
        "by_task": r["by_task"],
        "box_area_histogram": [{"area_from": b["bucket"] / 10, "area_to": (b["bucket"] + 1) / 10, "n": b["n"]}
                               for b in r["area"]],
        "box_aspect_log2_histogram": r["aspect"],
        "box_centre_heatmap_8x8": heatmap,
        "counting_answers": r["counts"],
        "template_usage": r["templates"],
    }


def count_tokens(out: str, tokenizer_path: str, batch_size: int = 4096) -> dict[tuple[str, str], int]:
    """Tokens of every turn per (source, task) with a transformers tokenizer (a local folder or a hub id).

    The text is tokenized in batches by the tokenizer's fast (Rust) implementation, shard by shard.
    """
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    fs, path = fsspec.core.url_to_fs(out)
    totals: dict[tuple[str, str], int] = {}
    for shard in sorted(fs.glob(fsio.join(path, "dialogues", "part-*.parquet"))):
        with fs.open(shard, "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_size,
                                                        columns=["source", "task", "conversations"]):
                keys = list(zip(batch.column("source").to_pylist(), batch.column("task").to_pylist()))
                texts, owners = [], []
                for i, turns in enumerate(batch.column("conversations").to_pylist()):
                    for turn in turns:
                        texts.append(turn["value"])
                        owners.append(i)
                if not texts:
                    continue
                ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
                for owner, tokens in zip(owners, ids):
                    totals[keys[owner]] = totals.get(keys[owner], 0) + len(tokens)
    return totals


def add_arguments(parser) -> None:
    parser.add_argument("out", help="a build's output folder (local path or fsspec URL)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--tokenizer", help="count tokens with this transformers tokenizer (folder or hub id)")


def main(args, rest) -> None:
    from rich.console import Console
    from rich.table import Table

    figures = compute(args.out)
    if args.tokenizer:
        tokens = count_tokens(args.out, args.tokenizer)
        for r in figures["by_task"]:
            r["tokens"] = tokens.get((r["source"], r["task"]), 0)
        figures["tokenizer"] = args.tokenizer
    console = Console(file=sys.stdout, width=120)
    table = Table(title=f"rcforge stats: {figures['dialogues']:,} dialogues, {figures['boxes']:,} boxes",
                  title_justify="left")
    columns = ["source", "task", "records", "turns", "characters", *(["tokens"] if args.tokenizer else []),
               "boxes/dialogue", "empty answers"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("source", "task") else "right")
    for r in figures["by_task"]:
        tokens = [f"{r['tokens']:,}"] if args.tokenizer else []
        table.add_row(r["source"], r["task"], f"{r['records']:,}", f"{r['turns']:,}", f"{r['characters']:,}",
                      *tokens, f"{r['boxes_per_dialogue']:.2f}", f"{r['empty_answer_rate']:.1%}")
    console.print(table)
    if figures["counting_answers"]:
        console.print("Counting answers: " + ", ".join(f"{r['count']}: {r['n']}" for r in figures["counting_answers"]))
    console.print("Box areas (share of the image): " + ", ".join(
        f"{b['area_from']:.1f}-{b['area_to']:.1f}: {b['n']}" for b in figures["box_area_histogram"]))
    if args.json:
        with fsspec.open(args.json, "w") as f:
            json.dump(figures, f, indent=2, default=float)
        console.print(f"Figures written to {args.json}")
