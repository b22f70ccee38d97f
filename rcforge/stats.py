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


def compute(out: str) -> dict:
    con = _connect(out)
    by_task = _rows(con, """
        SELECT source, task, count(*) AS records,
               sum(len(conversations)) // 2 AS turns,
               sum(list_sum(list_transform(conversations, lambda t: length(t.value)))) AS characters,
               avg(len(boxes)) AS boxes_per_dialogue,
               avg(CASE WHEN variant = 'empty' THEN 1.0 ELSE 0.0 END) AS empty_answer_rate
        FROM d GROUP BY source, task ORDER BY source, task""")
    boxes = """(SELECT unnest(boxes) AS b FROM d)"""
    area = _rows(con, f"""
        SELECT least(floor((b[3] - b[1]) * (b[4] - b[2]) * 10), 9)::INT AS bucket, count(*) AS n
        FROM {boxes} GROUP BY bucket ORDER BY bucket""")
    aspect = _rows(con, f"""
        SELECT greatest(least(round(log2((b[3] - b[1]) / (b[4] - b[2]))), 4), -4)::INT AS log2_bucket,
               count(*) AS n
        FROM {boxes} WHERE b[4] > b[2] AND b[3] > b[1] GROUP BY log2_bucket ORDER BY log2_bucket""")
    heat = _rows(con, f"""
        SELECT least(floor((b[2] + b[4]) / 2 * 8), 7)::INT AS row, least(floor((b[1] + b[3]) / 2 * 8), 7)::INT AS col,
               count(*) AS n
        FROM {boxes} GROUP BY row, col""")
    heatmap = [[0] * 8 for _ in range(8)]
    for cell in heat:
        heatmap[cell["row"]][cell["col"]] = cell["n"]
    counts = _rows(con, """
        SELECT try_cast(regexp_extract(conversations[2].value, '\\d+') AS INTEGER) AS count, count(*) AS n
        FROM d WHERE task = 'counting' GROUP BY 1 ORDER BY 1""")
    templates = _rows(con, """SELECT template_id, count(*) AS n FROM d GROUP BY 1 ORDER BY n DESC, 1""")
    total = con.execute("SELECT count(*), sum(len(boxes)) FROM d").fetchone()
    return {
        "dialogues": total[0],
        "boxes": total[1] or 0,
        "by_task": by_task,
        "box_area_histogram": [{"area_from": r["bucket"] / 10, "area_to": (r["bucket"] + 1) / 10, "n": r["n"]}
                               for r in area],
        "box_aspect_log2_histogram": aspect,
        "box_centre_heatmap_8x8": heatmap,
        "counting_answers": counts,
        "template_usage": templates,
    }


def add_arguments(parser) -> None:
    parser.add_argument("out", help="a build's output folder (local path or fsspec URL)")
    parser.add_argument("--json", help="also write the figures to this JSON file")


def main(args, rest) -> None:
    from rich.console import Console
    from rich.table import Table

    figures = compute(args.out)
    console = Console(file=sys.stdout, width=120)
    table = Table(title=f"rcforge stats: {figures['dialogues']:,} dialogues, {figures['boxes']:,} boxes",
                  title_justify="left")
    for col in ("source", "task", "records", "turns", "characters", "boxes/dialogue", "empty answers"):
        table.add_column(col, justify="left" if col in ("source", "task") else "right")
    for r in figures["by_task"]:
        table.add_row(r["source"], r["task"], f"{r['records']:,}", f"{r['turns']:,}", f"{r['characters']:,}",
                      f"{r['boxes_per_dialogue']:.2f}", f"{r['empty_answer_rate']:.1%}")
    console.print(table)
    if figures["counting_answers"]:
        console.print("Counting answers: " + ", ".join(f"{r['count']}: {r['n']}" for r in figures["counting_answers"]))
    console.print("Box areas (share of the image): " + ", ".join(
        f"{b['area_from']:.1f}-{b['area_to']:.1f}: {b['n']}" for b in figures["box_area_histogram"]))
    if args.json:
        with fsspec.open(args.json, "w") as f:
            json.dump(figures, f, indent=2, default=float)
        console.print(f"Figures written to {args.json}")
