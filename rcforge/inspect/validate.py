"""`rcforge validate OUT`: check a build before training on it; exit status 1 when anything is wrong.

Checks:
- every image-record part and dialogue shard has the declared schema;
- every box of the ``boxes`` column lies in [0, 1] with x1 < x2 and y1 < y2, and every point in [0, 1];
- every dialogue's first turn is the human's and starts with ``<image>\\n``;
- the boxes printed in the text parse back (with the dialogue's coordinate format) to the ``boxes`` column,
  each number within half a unit of its last digit;
- the manifest's ledgers balance, recomputed from their terms and from the parts rather than read from the
  ``balanced`` flags: images written + repaired equals the image-record rows, items written + repaired per kind
  equals the items in those rows, and the build's dialogue count equals the rows of the shards;
- keys of image records (per source) and dialogue ids are unique;
- every image-record box lies inside its image and every size is positive;
- every part and shard the manifest lists exists and reads whole (a missing or truncated file is a problem, not
  a traceback); with ``--images`` every image file exists under its source's image root.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import sys

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rcforge import schemas
from rcforge.core import fsio, generations, visual_prompts
from rcforge.core import images as images_mod
from rcforge.core import masks as rc_masks
from rcforge.core.manifest import IMAGES_WITHOUT_DIALOGUES
from rcforge.rc_tasks import hard_negatives
from rcforge.rc_tasks import negatives as rc_negatives
from rcforge.render import coordinates, markup

#: ledger kind -> the image-record column holding those items
ITEM_COLUMNS = {"object": "objects", "relation": "relations", "region": "regions", "caption": "captions",
                "ref": "refs", "qa": "qas"}


#: the manifest's shape, checked before anything of it is trusted: key -> the type its value must have (a dict
#: nested for a mapping whose keys are known, ``{"*": ...}`` for one whose keys are names)
COUNT = (int,)
LEDGER_TALLY = {"read": COUNT, "written": COUNT, "rejected": dict, "filtered": dict}
MANIFEST_SHAPE = {
    "sources": {"*": {"parts": list, "records": COUNT,
                      "ledger": {"images": LEDGER_TALLY, "annotations": {"*": LEDGER_TALLY}}}},
}
BUILD_SHAPE = {"shards": list, "dialogues": COUNT, "ledger": {"images": COUNT, "dialogues": COUNT}}


def _shape_problems(value, shape, where: str) -> list[str]:
    """Where ``value`` departs from ``shape`` (see `MANIFEST_SHAPE`), as problems naming the key path."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"manifest.json: {where or 'the document'} is {type(value).__name__}, expected a mapping"]
        if "*" in shape:
            return [p for key, sub in value.items() for p in _shape_problems(sub, shape["*"], f"{where}.{key}")]
        found = []
        for key, sub in shape.items():
            if key not in value:
                found.append(f"manifest.json: {where + '.' if where else ''}{key} is missing")
            else:
                found += _shape_problems(value[key], sub, f"{where + '.' if where else ''}{key}")
        return found
    kinds = shape if isinstance(shape, tuple) else (shape,)
    if not isinstance(value, kinds) or isinstance(value, bool):
        return [f"manifest.json: {where} is {type(value).__name__}, expected {' or '.join(k.__name__ for k in kinds)}"]
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        return [f"manifest.json: {where} holds a value that is not a file name"]
    return []


def validate(out: str, *, max_listed: int = 20, images: bool = False) -> list[str]:
    fs, path = fsspec.core.url_to_fs(out)
    manifest = generations.load_manifest(out, "validate")
    problems = _shape_problems(manifest, MANIFEST_SHAPE, "")
    if not problems and manifest.get("build") is not None:
        problems = _shape_problems(manifest["build"], BUILD_SHAPE, "build")
    if problems:  # nothing else of a manifest of the wrong shape can be trusted
        return problems
    for name, entry in manifest.get("sources", {}).items():
        _check_source(fs, path, name, entry, problems, images=images)
    build = manifest.get("build")
    shards = sorted(fs.glob(fsio.join(path, "dialogues", "part-*.parquet")))
    if build is not None:
        names = sorted(s.rsplit("/", 1)[-1] for s in shards)
        if names != sorted(build["shards"]):
            missing = sorted(set(build["shards"]) - set(names))
            problems.append(f"dialogue shards on disk ({len(names)}) differ from the manifest's "
                            f"({len(build['shards'])})" + (f"; missing: {', '.join(missing[:5])}" if missing else ""))
    seen_ids: set[str] = set()
    negatives: dict[str, list[tuple[str, str]]] = {}  # image key -> (dialogue id, proof of a negative)
    shown_masks: dict[str, list[tuple[str, str]]] = {}  # image key -> (dialogue id, RLE counts of a mask shown)
    dialogues = 0
    for shard in shards:
        if _check_schema(fs, shard, schemas.DIALOGUE, problems):
            dialogues += _check_dialogues(fs, shard, problems, max_listed, seen_ids,
                                          (build or {}).get("coordinate_params") or {}, negatives, shown_masks)
    if negatives or shown_masks:
        _check_against_records(fs, path, manifest, negatives, shown_masks, problems)
    if build is not None:
        ledger = build["ledger"]
        accounted = sum(ledger.get(k, 0) for k in ("images_with_dialogues", *IMAGES_WITHOUT_DIALOGUES))
        records = sum(e.get("records", 0) for e in manifest.get("sources", {}).values())
        if ledger.get("images") != records or accounted != ledger.get("images"):
            problems.append(f"build ledger does not balance: {ledger.get('images')} images rendered, {records} image "
                            f"records, {accounted} accounted for")
        if ledger.get("dialogues") != dialogues or build.get("dialogues") != dialogues:
            problems.append(f"build ledger does not balance: the manifest says {ledger.get('dialogues')} dialogues, "
                            f"the shards hold {dialogues}")
    for shard in sorted(fs.glob(fsio.join(path, "bootstrap", "candidates", "part-*.parquet"))):
        _check_schema(fs, shard, schemas.CANDIDATE, problems)
    for shard in sorted(fs.glob(fsio.join(path, "bootstrap", "pairs", "part-*.parquet"))):
        if _check_schema(fs, shard, schemas.PAIR, problems):
            _check_pairs(fs, shard, problems)
    return problems


def _row_negatives(row: dict, negatives: dict, report) -> None:
    """A dialogue's negative turns: each basis one that proves absence in its source, each with its proof in the
    provenance (``absent:<name>``, or a hard negative's ``hard_negative:...``), collected for
    `_check_against_records`."""
    bases = [t["negative_basis"] for t in row["turns"] if t.get("negative_basis")]
    proofs = [p for p in row["provenance"] if p.startswith(("absent:", "hard_negative:"))]
    for basis in bases:
        if not (rc_negatives.legal(row["source"], basis) or hard_negatives.legal(row["source"], basis)):
            report(f"{row['id']}: a negative turn's basis {basis!r} proves no absence in {row['source']} images")
    for turn in row["turns"]:
        claimed = turn.get("complete_basis")
        if claimed is not None and claimed != rc_negatives.complete_basis(row["source"]):
            report(f"{row['id']}: a {turn['task']} turn claims {claimed!r} completeness, which {row['source']}'s "
                   f"labels do not give")
    if len(proofs) < min(1, len(bases)):
        report(f"{row['id']}: a negative turn carries no proof in the provenance (absent:<name> or "
               f"hard_negative:...)")
    for proof in proofs:
        negatives.setdefault(row["key"], []).append((row["id"], proof))


def _row_masks(row: dict, shown: dict, report) -> None:
    """A dialogue's masks column: empty, or one entry per box; each mask an RLE of the image's size whose runs
    cover it exactly (`rcforge.core.masks.counts_of`), collected for `_check_against_records`."""
    if not row["masks"]:
        return
    if len(row["masks"]) != len(row["boxes"]):
        report(f"{row['id']}: {len(row['masks'])} masks for {len(row['boxes'])} boxes (one per box, in order)")
        return
    w, h = row["width"], row["height"]
    for i, mask in enumerate(row["masks"]):
        if mask is None:
            continue
        if mask["size"] != [h, w]:
            report(f"{row['id']}: mask {i} is of size {mask['size']}, not the image's [{h}, {w}]")
            continue
        try:
            runs = rc_masks.counts_of(mask["counts"] or "")
        except ValueError as err:
            report(f"{row['id']}: mask {i} does not decode ({err})")
            continue
        if sum(runs) != w * h or any(r < 0 for r in runs):
            report(f"{row['id']}: mask {i} covers {sum(runs)} pixels, not the image's {w * h}")
            continue
        shown.setdefault(row["key"], []).append((row["id"], mask["counts"]))


def _check_against_records(fs, path, manifest: dict, negatives: dict, shown_masks: dict, problems) -> None:
    """Every negative question's proof, against its image record: a category asked about as absent is carried
    by no object of the image and listed as proven absent; a hard negative's proof holds
    (`rcforge.rc_tasks.hard_negatives.holds`). Every mask a dialogue shows is the mask of an object of its
    image record."""
    columns = ["key", "source", "objects", "absent"]
    for entry in manifest.get("sources", {}).values():
        for part in entry.get("parts", []):
            table = _read(fs, fsio.join(path, part), [], columns=columns)
            if table is None:
                continue  # _check_source has said so
            for values in zip(*(table.column(c).to_pylist() for c in columns)):
                record = dict(zip(columns, values))
                for dialogue, proof in negatives.pop(record["key"], ()):
                    problem = _negative_contradiction(record, proof)
                    if problem:
                        problems.append(f"{dialogue}: {problem}")
                own = {(o.get("mask") or {}).get("counts") for o in record["objects"]}
                for dialogue, counts in shown_masks.pop(record["key"], ()):
                    if counts not in own:
                        problems.append(f"{dialogue}: shows a mask that no object of image record "
                                        f"{record['key']} has")
    for key, asked in [*negatives.items(), *shown_masks.items()]:
        problems.append(f"{asked[0][0]}: is checked against image {key}, whose record is not in the output")


def _negative_contradiction(record: dict, proof: str) -> str | None:
    if proof.startswith("hard_negative:"):
        problem = hard_negatives.holds(record, proof)
        return None if problem is None else f"its hard negative {proof!r} does not hold: {problem}"
    name = proof.split(":", 1)[1]
    if any(name in obj["names"] for obj in record["objects"]):
        return f"asks about {name!r} as absent, but image record {record['key']} has an object of that name"
    if name not in {a["name"] for a in record["absent"]}:
        return f"{name!r} is not proven absent by image record {record['key']}"
    return None


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


def _check_images(table, image_root: str, found: dict[str, list[str]]) -> None:
    """Each record's image file checked as ingest checks it (there, inside the root, a readable header, the size
    the record says), the problems gathered by reason so a folder of missing files is one line, not thousands."""
    checks = images_mod.ImageChecks(verify="header")
    columns = (table.column(c).to_pylist() for c in ("key", "image", "width", "height"))
    for key, image, width, height in zip(*columns):
        verdict = images_mod.check(image_root, image, width, height, checks)
        if verdict.reason:
            found.setdefault(verdict.reason, []).append(f"{key}: {verdict.message}")


def _check_source(fs, path, name, entry, problems, *, images: bool) -> None:
    """One source's ingest: its ledger recomputed from its terms and from its parts; keys, boxes and sizes."""
    ledger = entry.get("ledger", {})
    tallies = {"images": ledger.get("images", {}), **ledger.get("annotations", {})}
    for kind, t in tallies.items():
        accounted = (t.get("written", 0) + t.get("repaired", 0) + sum(t.get("rejected", {}).values())
                     + sum(t.get("filtered", {}).values()) + sum(t.get("excluded", {}).values()))
        if t.get("read", 0) != accounted:
            problems.append(f"ingest ledger of {name} does not balance: {kind} read {t.get('read', 0)}, accounted "
                            f"for {accounted}")
    rows, items, keys = 0, dict.fromkeys(ITEM_COLUMNS, 0), set()
    image_problems: dict[str, list[str]] = {}  # reason -> "key: message" of each image file with that problem
    image_root = entry.get("image_root")
    for part in entry.get("parts", []):
        full = fsio.join(path, part)
        if not _check_schema(fs, full, schemas.IMAGE_RECORD, problems):
            continue
        table = _read(fs, full, problems)
        if table is None:
            continue
        rows += table.num_rows
        for kind, column in ITEM_COLUMNS.items():
            items[kind] += int(pc.sum(pc.list_value_length(table.column(column))).as_py() or 0)
        for key in table.column("key").to_pylist():
            if key in keys:
                problems.append(f"{full}: image record {key} appears twice")
            keys.add(key)
        _check_record_boxes(full, table, problems)
        if images and image_root:
            _check_images(table, image_root, image_problems)
    for reason, found in sorted(image_problems.items(), key=lambda kv: -len(kv[1])):
        problems.append(f"{name}: {len(found):,} of {rows:,} image files {reason} under {image_root} (e.g. "
                        + "; ".join(found[:3]) + ")")
    written = tallies["images"].get("written", 0) + tallies["images"].get("repaired", 0)
    if rows != written or rows != entry.get("records", rows):
        problems.append(f"ingest ledger of {name} does not balance: it says {written} images written, the parts "
                        f"hold {rows}")
    for kind, n in items.items():
        t = tallies.get(kind, {})
        if n != t.get("written", 0) + t.get("repaired", 0):
            problems.append(f"ingest ledger of {name} does not balance: it says "
                            f"{t.get('written', 0) + t.get('repaired', 0)} {kind} items written, the parts hold {n}")


def _check_record_boxes(path, table, problems) -> None:
    """Sizes positive; every object, region and QA box inside its image with x1 < x2 and y1 < y2."""
    import numpy as np

    w = table.column("width").to_numpy(zero_copy_only=False).astype(np.float64)
    h = table.column("height").to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero((w <= 0) | (h <= 0))
    if len(bad):
        problems.append(f"{path}: {len(bad)} image record(s) with a size that is not positive, e.g. "
                        f"{table.column('key')[int(bad[0])].as_py()}")
    for column, field in (("objects", "box"), ("regions", "box"), ("qas", "box")):
        lists = table.column(column).combine_chunks()
        parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(lists)
        if not len(flat):
            continue
        boxes = flat.field(field)
        valid = boxes.is_valid().to_numpy(zero_copy_only=False)
        xy = np.asarray(boxes.fill_null([0.0, 0.0, 1.0, 1.0]).flatten()).reshape(-1, 4) if boxes.null_count else \
            np.asarray(boxes.flatten()).reshape(-1, 4)
        pw, ph = w[parents], h[parents]
        inside = ((0 <= xy[:, 0]) & (xy[:, 0] < xy[:, 2]) & (xy[:, 2] <= pw) &
                  (0 <= xy[:, 1]) & (xy[:, 1] < xy[:, 3]) & (xy[:, 3] <= ph))
        wrong = valid & ~inside
        if wrong.any():
            first = int(np.flatnonzero(wrong)[0])
            problems.append(f"{path}: {int(wrong.sum())} {column} box(es) outside their image, e.g. "
                            f"{table.column('key')[int(parents[first])].as_py()} {list(xy[first])}")


def _read(fs, path, problems, columns=None):
    try:
        with fs.open(path, "rb") as f:
            return pq.read_table(f, columns=columns)
    except FileNotFoundError:
        problems.append(f"{path}: missing")
    except (OSError, ValueError, pa.ArrowException) as err:
        problems.append(f"{path}: unreadable ({fsio.first_line(err)})")
    return None


def _batches(fs, path, columns, problems):
    """A shard's record batches, streamed; a file that breaks off is one problem, not a traceback."""
    try:
        with fs.open(path, "rb") as f:
            yield from pq.ParquetFile(f).iter_batches(batch_size=4096, columns=columns)
    except (OSError, ValueError, pa.ArrowException) as err:
        problems.append(f"{path}: unreadable, truncated or not Parquet ({fsio.first_line(err)})")


def _check_schema(fs, path, schema, problems) -> bool:
    try:
        with fs.open(path, "rb") as f:
            found = pq.read_schema(f)
    except FileNotFoundError:
        problems.append(f"{path}: missing (the manifest lists it)")
        return False
    except (OSError, ValueError, pa.ArrowException) as err:
        problems.append(f"{path}: unreadable, truncated or not Parquet ({fsio.first_line(err)})")
        return False
    if not found.remove_metadata().equals(schema.remove_metadata()):
        problems.append(f"{path}: schema differs from the declared {schema.metadata[b'rcforge.table'].decode()} "
                        "schema")
        return False
    return True


def _check_dialogues(fs, path, problems, max_listed, seen_ids: set, frame: dict, negatives: dict,
                     shown_masks: dict) -> int:
    """Check one shard's dialogues; returns its row count. ``frame``: the build's coordinate params (a format with
    a trainer's frame reads its numbers back in that frame); ``negatives`` and ``shown_masks`` collect the negative
    questions and the masks shown, which `_check_against_records` checks against their image records."""
    listed = 0
    rows = 0

    def report(message):
        nonlocal listed
        if listed < max_listed:
            problems.append(f"{path}: {message}")
        listed += 1

    columns = ["id", "conversations", "boxes", "points", "coordinates", "width", "height", "frame", "key", "source",
               "turns", "provenance", "masks", "groups", "image_vp", "image_vp_sha256", "marks"]
    out = posixpath.dirname(posixpath.dirname(path))  # the shard is OUT/dialogues/part-*.parquet
    hashes: dict[str, str | None] = {}  # marked images read so far (dialogues share them)
    formats = {name: fmt.framed(frame) for name, fmt in coordinates.FORMATTERS.items()}  # set once, not per row
    for batch in _batches(fs, path, columns, problems):
        rows += batch.num_rows
        for row in batch.to_pylist():
            if row["id"] in seen_ids:
                report(f"{row['id']}: the dialogue id appears twice")
            seen_ids.add(row["id"])
            _row_negatives(row, negatives, report)
            _row_masks(row, shown_masks, report)
            _row_marks(row, fs, out, hashes, report)
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
            fmt = formats.get(row["coordinates"])
            if fmt is None:
                report(f"{row['id']}: unknown coordinate format {row['coordinates']!r}")
                continue
            for i, turn in enumerate(turns):  # text from data never acts as the format's markup
                for token in markup.stray(turn["value"], fmt, first=i == 0)[:3]:
                    report(f"{row['id']}: turn {i + 1} holds {token!r}, reserved markup of the {fmt.name} format "
                           f"that the renderer did not write")
            images = sum(t["value"].count("<image>") for t in turns)
            if images != 1:
                report(f"{row['id']}: {images} <image> tokens in the dialogue; one image has exactly one")
            w, h = row["width"], row["height"]
            expected = fmt.frame_size(w, h)
            if row["frame"] != expected:
                report(f"{row['id']}: frame {row['frame']} is not the {fmt.name} frame of a {w}x{h} image under the "
                       f"build's settings ({expected})")
            if sum(row["groups"]) != len(row["boxes"]):
                report(f"{row['id']}: the groups column counts {sum(row['groups'])} boxes, the boxes column holds "
                       f"{len(row['boxes'])}")
                continue
            if fmt.placeholders:
                _check_placeholders(row, fmt, report)
                continue
            printed = [b for t in turns for b in fmt.parse(t["value"], w, h)]
            if len(printed) != len(row["boxes"]):
                report(f"{row['id']}: {len(printed)} boxes in the text, {len(row['boxes'])} in the boxes column")
                continue
            tolerance = fmt.tolerance(w, h)
            printed_points = [p for t in turns for p in fmt.parse_points(t["value"], w, h)]
            if len(printed_points) != len(row["points"]) or any(
                    abs(x - y) > tolerance for p, q in zip(printed_points, row["points"]) for x, y in zip(p, q)):
                report(f"{row['id']}: the points in the text {printed_points} do not match {row['points']}")
            for p, b in zip(printed, row["boxes"]):
                if any(abs(x - y) > tolerance for x, y in zip(p, b)):
                    report(f"{row['id']}: printed box {list(p)} does not match {b}")
    if listed > max_listed:
        problems.append(f"{path}: ... and {listed - max_listed} more")
    return rows


def _row_marks(row: dict, fs, out: str, hashes: dict, report) -> None:
    """A dialogue asked with marks (`rcforge.core.visual_prompts`): its marked image is OUT/images_vp/<sha256>.png, it
    exists and its bytes hash to that name; its marks name annotations the dialogue is about. A dialogue without a
    marked image has no marks."""
    image, sha, marks = row.get("image_vp"), row.get("image_vp_sha256"), row.get("marks") or []
    if image is None:
        if marks or sha:
            report(f"{row['id']}: marks or a marked image's hash without a marked image")
        return
    if image != f"{visual_prompts.FOLDER}/{sha}.png":
        report(f"{row['id']}: marked image {image!r:.80} is not named by its hash {sha!r:.80}")
        return
    if image not in hashes:
        path = fsio.join(out, image)
        if fs.exists(path):
            with fs.open(path, "rb") as f:
                hashes[image] = hashlib.sha256(f.read()).hexdigest()
        else:
            hashes[image] = None
    if hashes[image] is None:
        report(f"{row['id']}: its marked image {image} is missing")
    elif hashes[image] != sha:
        report(f"{row['id']}: its marked image {image} does not hash to its name (sha256 {hashes[image]})")
    if not marks:
        report(f"{row['id']}: a marked image without marks")
    for mark in marks:
        if mark["annotation"] not in row["provenance"]:
            report(f"{row['id']}: mark {mark['mark_id']} marks {mark['annotation']}, which the dialogue is not about")


def _check_placeholders(row: dict, fmt, report) -> None:
    """A placeholder format's dialogue: one box placeholder per group, one point placeholder per point, and the
    side table in [0, 1] (checked with the other boxes above)."""
    text = "".join(t["value"] for t in row["conversations"])
    boxes = text.count(fmt.placeholder) if fmt.placeholder_per_box else len(re.findall(fmt.pattern, text))
    points = len(re.findall(fmt.point_pattern, text))
    expected = len(row["boxes"]) if fmt.placeholder_per_box else len(row["groups"])
    if boxes != expected:
        report(f"{row['id']}: {boxes} {fmt.placeholder} placeholder(s) in the text for {expected} "
               f"{'box(es)' if fmt.placeholder_per_box else 'box group(s)'} in the side table")
    if points != len(row["points"]):
        report(f"{row['id']}: {points} <points> placeholder(s) in the text, {len(row['points'])} point(s)")


def add_arguments(parser) -> None:
    parser.add_argument("out", help="a build's (or ingest's) output folder")
    parser.add_argument("--images", action="store_true", help="also check that every image file exists")


def main(args, rest) -> None:
    problems = validate(args.out, images=getattr(args, "images", False))
    for note in generations.leftovers(args.out):  # not problems of the output: what a stopped run left beside it
        print(f"note: {note}", file=sys.stderr)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        print(f"rcforge validate: {len(problems)} problem(s) in {args.out}", file=sys.stderr)
        raise SystemExit(1)
    print(f"rcforge validate: {args.out} is valid")
