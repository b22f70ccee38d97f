"""`rcforge validate OUT`: check a build before training on it; exit status 1 when anything is wrong.

Checks:
- every image-record part and dialogue shard has the declared schema;
- every box of the ``boxes`` column lies in [0, 1] with x1 < x2 and y1 < y2, and every point in [0, 1];
- every dialogue's first turn is the human's and starts with ``<image>\\n``;
- the boxes printed in the text parse back (with the dialogue's coordinate format) to the ``boxes`` column,
  each number within half a unit of its last digit;
- the manifest's ledgers balance (ingest, per source and kind; build, images and dialogues).
"""

from __future__ import annotations

import sys

import fsspec
import pyarrow.parquet as pq

from rcforge import coordinates, fsio, schemas


def validate(out: str, *, max_listed: int = 20) -> list[str]:
    fs, path = fsspec.core.url_to_fs(out)
    manifest = fsio.load_manifest(out, "validate")
    problems: list[str] = []
    for name, entry in manifest.get("sources", {}).items():
        if not entry["ledger"]["balanced"]:
            problems.append(f"ingest ledger of {name} does not balance")
        for part in entry["parts"]:
            _check_schema(fs, fsio.join(path, part), schemas.IMAGE_RECORD, problems)
    build = manifest.get("build")
    shards = sorted(fs.glob(fsio.join(path, "dialogues", "part-*.parquet")))
    if build is not None:
        if not build["ledger"]["balanced"]:
            problems.append("build ledger does not balance")
        names = sorted(s.rsplit("/", 1)[-1] for s in shards)
        if names != sorted(build["shards"]):
            problems.append(f"dialogue shards on disk ({len(names)}) differ from the manifest's "
                            f"({len(build['shards'])})")
    for shard in shards:
        if _check_schema(fs, shard, schemas.DIALOGUE, problems):
            _check_dialogues(fs, shard, problems, max_listed)
    for shard in sorted(fs.glob(fsio.join(path, "bootstrap", "candidates", "part-*.parquet"))):
        _check_schema(fs, shard, schemas.CANDIDATE, problems)
    for shard in sorted(fs.glob(fsio.join(path, "bootstrap", "pairs", "part-*.parquet"))):
        if _check_schema(fs, shard, schemas.PAIR, problems):
            _check_pairs(fs, shard, problems)
    return problems


def _check_pairs(fs, path, problems) -> None:
    """Every kept pair has a description, a box inside its image, and an IoU at least its lambda."""
    import numpy as np

    with fs.open(path, "rb") as f:
        table = pq.read_table(f, columns=["key", "object_id", "width", "height", "box", "description", "iou",
                                          "lambda"])
    if not table.num_rows:
        return
    box = np.asarray(table.column("box").combine_chunks().flatten()).reshape(-1, 4)
    w = table.column("width").to_numpy()
    h = table.column("height").to_numpy()
    bad_box = ~((0 <= box[:, 0]) & (box[:, 0] < box[:, 2]) & (box[:, 2] <= w) &
                (0 <= box[:, 1]) & (box[:, 1] < box[:, 3]) & (box[:, 3] <= h))
    bad_iou = table.column("iou").to_numpy() < table.column("lambda").to_numpy()
    empty = np.array([not (d or "").strip() for d in table.column("description").to_pylist()])
    for mask, what in ((bad_box, "a box outside its image"), (bad_iou, "an IoU below its lambda"),
                       (empty, "an empty description")):
        if mask.any():
            first = int(np.flatnonzero(mask)[0])
            problems.append(f"{path}: {int(mask.sum())} pair(s) with {what}, e.g. "
                            f"{table.column('key')[first].as_py()} object {table.column('object_id')[first].as_py()}")


def _check_schema(fs, path, schema, problems) -> bool:
    with fs.open(path, "rb") as f:
        found = pq.read_schema(f)
    if not found.remove_metadata().equals(schema.remove_metadata()):
        problems.append(f"{path}: schema differs from the declared {schema.metadata[b'rcforge.table'].decode()} "
                        "schema")
        return False
    return True


def _check_dialogues(fs, path, problems, max_listed) -> None:
    listed = 0

    def report(message):
        nonlocal listed
        if listed < max_listed:
            problems.append(f"{path}: {message}")
        listed += 1

    with fs.open(path, "rb") as f:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=4096,
                                                    columns=["id", "conversations", "boxes", "points",
                                                             "coordinates"]):
            for row in batch.to_pylist():
                turns = row["conversations"]
                if not turns or turns[0]["from"] != "human" or not turns[0]["value"].startswith("<image>\n"):
                    report(f"{row['id']}: the first turn is not the human's starting with <image>")
                for box in row["boxes"]:
                    x1, y1, x2, y2 = box
                    if not (0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0):
                        report(f"{row['id']}: box {box} is not inside [0, 1] with x1 < x2, y1 < y2")
                for point in row["points"]:
                    if not all(0.0 <= v <= 1.0 for v in point):
                        report(f"{row['id']}: point {point} is not inside [0, 1]")
                fmt = coordinates.FORMATTERS.get(row["coordinates"])
                if fmt is None:
                    report(f"{row['id']}: unknown coordinate format {row['coordinates']!r}")
                    continue
                printed = [b for t in turns for b in fmt.parse_boxes(t["value"])]
                if len(printed) != len(row["boxes"]):
                    report(f"{row['id']}: {len(printed)} boxes in the text, {len(row['boxes'])} in the boxes column")
                    continue
                tolerance = fmt.unit / 2 + 1e-9
                for p, b in zip(printed, row["boxes"]):
                    if any(abs(x - y) > tolerance and not (fmt.name == "qwen" and y >= 0.9995) for x, y in zip(p, b)):
                        report(f"{row['id']}: printed box {list(p)} does not match {b}")
    if listed > max_listed:
        problems.append(f"{path}: ... and {listed - max_listed} more")


def add_arguments(parser) -> None:
    parser.add_argument("out", help="a build's (or ingest's) output folder")


def main(args, rest) -> None:
    problems = validate(args.out)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        print(f"rcforge validate: {len(problems)} problem(s) in {args.out}", file=sys.stderr)
        raise SystemExit(1)
    print(f"rcforge validate: {args.out} is valid")
