"""`rcforge stats OUT [--json FILE]`: corpus statistics computed by DuckDB over the dialogue shards.

Nothing loads the corpus into Python objects: every figure is one SQL query over ``OUT/dialogues/*.parquet``
(local paths, or any fsspec URL through DuckDB's fsspec bridge), so it scales to tens of millions of rows.

Figures, per source and per task: records, turns, characters, boxes per dialogue, the share of empty answers
(coarse_spatial's ``empty`` variant); over all boxes: an area histogram, an aspect-ratio histogram and a coarse
8x8 heatmap of box centres; for counting: the histogram of answered counts; template usage; the predicates
and categories most asked about (the dialogues' provenance joined to the image records); for bootstrap output:
candidates, format-error rate, IoU histogram, the survival curve over lambda, description lengths.
"""

from __future__ import annotations

import json
import sys

import fsspec

from rcforge.core import fsio
from rcforge.core.errors import InputError


def shards(out: str, *parts: str) -> list[str]:
    """The Parquet shards under OUT/<parts> (with their protocol for an object store): what `connect` reads."""
    fs, path = fsspec.core.url_to_fs(out)
    found = sorted(fs.glob(fsio.join(path, *parts, "part-*.parquet")))
    if "://" in str(out):
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        found = [f"{protocol}://{s}" for s in found]
    return found


def connect(out: str, view: str = "d", parts: tuple[str, ...] = ("dialogues",)):
    """A DuckDB connection with the shards under OUT/<parts> as the view ``view`` (stats, report and preview)."""
    import duckdb

    con = duckdb.connect()
    files = shards(out, *parts)
    if not files:
        raise InputError(f"stats: no shards under {out}/{'/'.join(parts)}")
    if "://" in str(out):
        con.register_filesystem(fsspec.core.url_to_fs(out)[0])
    con.read_parquet(files).create_view(view)
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
    # every question-answer turn by task and source, and how many are negatives (rcforge.rc_tasks.negatives)
    "negatives": """
        SELECT u.t.task AS task, d.source AS source, count(*) AS turns, count(u.t.negative_basis) AS negatives
        FROM d, unnest(d.turns) AS u(t) GROUP BY ALL ORDER BY task, source""",
    "negative_bases": """
        SELECT u.t.negative_basis AS basis, count(*) AS n FROM d, unnest(d.turns) AS u(t)
        WHERE u.t.negative_basis IS NOT NULL GROUP BY 1 ORDER BY 1""",
    "total": "SELECT count(*) AS dialogues, sum(len(boxes)) AS boxes FROM d",
}
QUERIES = list(SQL.values())

#: bootstrap candidates (view c): the survival curve counts objects keeping a pair at each lambda, with the
#: uniqueness rule of rcforge.bootstrap.decide
BOOTSTRAP_SQL = {
    "totals": """SELECT count(*) AS candidates, count(DISTINCT (key, object_id)) AS objects,
                        avg(CASE WHEN format_error AND error_stage NOT IN ('image', 'model') THEN 1.0 ELSE 0.0 END)
                            AS format_error_rate,
                        avg(CASE WHEN error_stage = 'image' THEN 1.0 ELSE 0.0 END) AS unreadable_image_rate,
                        avg(CASE WHEN error_stage = 'model' THEN 1.0 ELSE 0.0 END) AS model_failure_rate
                 FROM c""",
    "iou": """SELECT least(floor(iou * 10), 9)::INT AS bucket, count(*) AS n FROM c WHERE NOT format_error
              GROUP BY 1 ORDER BY 1""",
    "survival": """SELECT l.lam AS lambda,
                          count(DISTINCT CASE WHEN c.key IS NOT NULL THEN (c.key, c.object_id) END) AS pairs
                   FROM (SELECT (range / 10.0) AS lam FROM range(0, 11)) l
                   LEFT JOIN c ON NOT c.format_error AND c.iou >= l.lam
                        AND NOT (c.other_iou > 0 AND c.other_iou >= l.lam)
                   GROUP BY 1 ORDER BY 1""",
    "description_words": """SELECT least(len(string_split(trim(description), ' ')), 20) AS words, count(*) AS n
                            FROM c WHERE description IS NOT NULL AND trim(description) <> '' GROUP BY 1 ORDER BY 1""",
}


def _filled(rows: list[dict], key: str, bins) -> list[dict]:
    """A histogram with every bin in ``bins``, the empty ones with n 0 (a gap in a plot is a finding)."""
    counts = {r[key]: r["n"] for r in rows if r[key] is not None}
    unbinned = [{key: None, "n": r["n"]} for r in rows if r[key] is None]  # e.g. an answer with no number
    return [{key: b, "n": counts.get(b, 0)} for b in bins] + unbinned


def compute_bootstrap(out: str) -> dict | None:
    if not shards(out, "bootstrap", "candidates"):
        return None
    con = connect(out, "c", ("bootstrap", "candidates"))
    r = {name: _rows(con, sql) for name, sql in BOOTSTRAP_SQL.items()}
    return {**r["totals"][0],
            "iou_histogram": [{"iou_from": b["bucket"] / 10, "iou_to": (b["bucket"] + 1) / 10, "n": b["n"]}
                              for b in _filled(r["iou"], "bucket", range(10))],
            "survival_curve": [{"lambda": float(x["lambda"]), "pairs": x["pairs"]} for x in r["survival"]],
            "description_words": _filled(r["description_words"], "words", range(1, 21))}


#: the annotations behind the dialogues (view i: the image records), through the dialogues' provenance
ANNOTATION_SQL = {
    "top_predicates": """
        WITH p AS (SELECT d.key, d.task, split_part(x, ':', 2)::BIGINT AS rid
                   FROM d, unnest(d.provenance) AS t(x) WHERE x LIKE 'relation:%'),
             r AS (SELECT key, unnest(relations) AS rel FROM i)
        SELECT p.task, r.rel.predicate AS predicate, count(*) AS n FROM p JOIN r ON p.key = r.key AND p.rid = r.rel.id
        GROUP BY ALL ORDER BY n DESC, predicate LIMIT 25""",
    "top_categories": """
        WITH p AS (SELECT d.key, d.task, split_part(x, ':', 2)::BIGINT AS oid
                   FROM d, unnest(d.provenance) AS t(x) WHERE x LIKE 'object:%'),
             o AS (SELECT key, unnest(objects) AS obj FROM i)
        SELECT p.task, o.obj.names[1] AS category, count(*) AS n FROM p JOIN o ON p.key = o.key AND p.oid = o.obj.id
        GROUP BY ALL ORDER BY n DESC, category LIMIT 25""",
}


#: mask coverage (run where the shards have masks: builds before schema 3 lack them): dialogues that show a mask
#: per task and source, and image-record objects that carry one per source
SHOWN_MASKS_SQL = """
    SELECT source, task, count(*) AS dialogues, count(*) FILTER (WHERE len(masks) > 0) AS with_masks,
           sum(len(list_filter(masks, lambda m: m IS NOT NULL))) AS masks
    FROM d GROUP BY ALL HAVING with_masks > 0 ORDER BY source, task"""
OBJECT_MASKS_SQL = """
    WITH o AS (SELECT source, unnest(objects) AS obj FROM i)
    SELECT source, count(*) AS objects, count(obj.mask) AS with_mask FROM o GROUP BY source ORDER BY source"""


#: visual prompts (run where the shards have marks: builds before schema 4 lack them): the dialogues asked with
#: marks per task, and the marks per shape and colour
MARKED_SQL = """
    SELECT task, count(*) AS dialogues, sum(len(marks)) AS marks FROM d WHERE image_vp IS NOT NULL
    GROUP BY task ORDER BY task"""
MARK_SHAPES_SQL = """
    SELECT m.shape AS shape, m.colour AS colour, count(*) AS n FROM (SELECT unnest(marks) AS m FROM d)
    GROUP BY ALL ORDER BY shape, colour"""


def _visual_prompts(con) -> dict:
    """The dialogues asked with marks (per task) and the marks drawn (per shape and colour)."""
    if "marks" not in columns(con, "d"):
        return {"dialogues": [], "marks": []}
    return {"dialogues": _rows(con, MARKED_SQL), "marks": _rows(con, MARK_SHAPES_SQL)}


def columns(con, view: str) -> dict[str, str]:
    """A view's columns and their types (shards of older builds lack the newer columns)."""
    return {name: kind for (name, kind, *_) in con.execute(f"DESCRIBE {view}").fetchall()}


def _mask_coverage(con, images: bool) -> dict:
    """What share of dialogues shows a mask (per task and source) and of objects carries one (per source)."""
    shown = _rows(con, SHOWN_MASKS_SQL) if "masks" in columns(con, "d") else []
    objects = []
    if images and "mask STRUCT" in columns(con, "i").get("objects", ""):  # the objects have a mask field
        objects = [{**r, "share": r["with_mask"] / r["objects"] if r["objects"] else 0.0}
                   for r in _rows(con, OBJECT_MASKS_SQL)]
    return {"dialogues": shown, "objects": objects}


def compute(out: str) -> dict:
    bootstrap = compute_bootstrap(out)
    if not shards(out, "dialogues"):
        if bootstrap is None:
            raise InputError(f"stats: neither dialogue shards nor bootstrap candidates under {out}")
        return {"dialogues": 0, "boxes": 0, "by_task": [], "box_area_histogram": [],
                "box_aspect_log2_histogram": [], "box_centre_heatmap_8x8": [[0] * 8 for _ in range(8)],
                "counting_answers": [], "template_usage": [], "top_predicates": [], "top_categories": [],
                "negatives": _negatives([], []), "masks": {"dialogues": [], "objects": []},
                "visual_prompts": {"dialogues": [], "marks": []}, "bootstrap": bootstrap}
    con = connect(out)
    r = {name: _rows(con, sql) for name, sql in SQL.items()}
    images = shards(out, "images", "*")
    if images:
        con.read_parquet(images).create_view("i")
        r.update({name: _rows(con, sql) for name, sql in ANNOTATION_SQL.items()})
    heatmap = [[0] * 8 for _ in range(8)]
    for cell in r["heat"]:
        heatmap[cell["row"]][cell["col"]] = cell["n"]
    total = r["total"][0]
    return {
        "dialogues": total["dialogues"],
        "boxes": total["boxes"] or 0,
        "by_task": r["by_task"],
        "box_area_histogram": [{"area_from": b["bucket"] / 10, "area_to": (b["bucket"] + 1) / 10, "n": b["n"]}
                               for b in _filled(r["area"], "bucket", range(10))],
        "box_aspect_log2_histogram": _filled(r["aspect"], "log2_bucket", range(-4, 5)),
        "box_centre_heatmap_8x8": heatmap,
        "counting_answers": _filled(r["counts"], "count", range(0, 1 + max((c["count"] for c in r["counts"]
                                                                          if c["count"] is not None), default=-1))),
        "template_usage": r["templates"],
        "top_predicates": r.get("top_predicates", []),
        "top_categories": r.get("top_categories", []),
        "negatives": _negatives(r["negatives"], r["negative_bases"]),
        "masks": _mask_coverage(con, bool(images)),
        "visual_prompts": _visual_prompts(con),
        "bootstrap": bootstrap,
    }


def _negatives(by_task: list[dict], bases: list[dict]) -> dict:
    """Negative turns (a category proven absent, answered none): their total, share per task and source, and
    count per proof."""
    rows = [{**r, "share": r["negatives"] / r["turns"] if r["turns"] else 0.0} for r in by_task if r["negatives"]]
    return {"total": sum(r["negatives"] for r in by_task), "by_task_and_source": rows, "by_basis": bases}


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
    neg = figures["negatives"]
    if neg["total"]:
        console.print(f"Negatives: {neg['total']:,} turns ask about a category proven absent ("
                      + ", ".join(f"{b['basis']} {b['n']:,}" for b in neg["by_basis"]) + "); "
                      + ", ".join(f"{r['source']}/{r['task']} {r['share']:.1%}" for r in neg["by_task_and_source"]))
    masks = figures.get("masks") or {}
    if masks.get("dialogues") or any(r["with_mask"] for r in masks.get("objects", [])):
        console.print("Masks: " + ", ".join(f"{r['source']}/{r['task']} {r['with_masks']:,} of {r['dialogues']:,} "
                                            f"dialogues" for r in masks["dialogues"])
                      + ("; objects with a mask: " + ", ".join(f"{r['source']} {r['share']:.1%}"
                                                               for r in masks["objects"]) if masks["objects"] else ""))
    marked = figures.get("visual_prompts") or {}
    if marked.get("dialogues"):
        shapes: dict[str, int] = {}
        for r in marked["marks"]:
            shapes[r["shape"]] = shapes.get(r["shape"], 0) + r["n"]
        console.print("Visual prompts: " + ", ".join(f"{r['task']} {r['dialogues']:,} dialogues ({r['marks']:,} marks)"
                                                     for r in marked["dialogues"])
                      + "; marks by shape: " + ", ".join(f"{s} {n:,}" for s, n in sorted(shapes.items())))
    if any(r["n"] for r in figures["counting_answers"]):
        console.print("Counting answers: " + ", ".join(f"{r['count']}: {r['n']}" for r in figures["counting_answers"]))
    if figures["top_predicates"]:
        console.print("Top predicates: " + ", ".join(f"{p['predicate']} ({p['task']}) {p['n']}"
                                                     for p in figures["top_predicates"][:10]))
    if figures["top_categories"]:
        console.print("Top categories: " + ", ".join(f"{c['category']} ({c['task']}) {c['n']}"
                                                     for c in figures["top_categories"][:10]))
    if any(b["n"] for b in figures["box_area_histogram"]):
        console.print("Box areas (share of the image): " + ", ".join(
            f"{b['area_from']:.1f}-{b['area_to']:.1f}: {b['n']}" for b in figures["box_area_histogram"]))
    boot = figures.get("bootstrap")
    if boot:
        console.print(f"Bootstrap: {boot['candidates']:,} candidates for {boot['objects']:,} objects, "
                      f"{boot['format_error_rate']:.1%} replies that did not parse (format errors), "
                      f"{boot['unreadable_image_rate']:.1%} on images that did not read, "
                      f"{boot['model_failure_rate']:.1%} whose model call failed (a rerun of bootstrap retries them)")
        console.print("Pairs surviving at each lambda: " + ", ".join(
            f"{s['lambda']:.1f}: {s['pairs']:,}" for s in boot["survival_curve"]))
    if args.json:
        with fsspec.open(args.json, "w") as f:
            json.dump(figures, f, indent=2, default=float)
        console.print(f"Figures written to {args.json}")
