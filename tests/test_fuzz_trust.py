"""The hostile-input suite of trust round two: one group of generated cases per class of defect.

Every case runs a real command in process, under an alarm that turns a hang into a failure, and asserts what a user
would check: the exit status, no traceback, one clear line where the command fails, nothing touched outside OUT,
and, where the command writes, a balanced ledger that counts what was read and leaves the good records as they
are. The groups:

- plans: a PUBLISH.json or a staging folder planted in OUT, reaching outside it, for every command;
- os: OUT that cannot be a folder (a file, a dangling symlink, a path under a file, a symlink loop);
- special files: a FIFO or a folder where an annotation file is expected, for every file of every source;
- drops: records that name unknown images, questions, annotations or objects, and bad partition counts;
- bytes: NUL, escape and DEL characters, and lone surrogates, in every text field of every source;
- validate: truncated, empty, garbage, duplicated, folder-for-file and column-dropped outputs;
- options: bad values of every command's flags and arguments.

Hostile masks (27 cases, both COCO-format paths) are in tests/test_masks.py. Reserved markup (tests/test_markup.py),
template limits (tests/test_template_limits.py), the writer lock and a full disk (tests/test_outlock.py) and stale
bootstrap state (tests/test_bootstrap_pipeline.py) have property and concurrency tests of their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_fuzz_inputs import OWNER, SOURCES, _records, _run, _set_in_file

from rcforge import cli
from rcforge.core import generations

from conftest import SAMPLE_RECIPE, read_errors

HANG_SECONDS = 120


class Hung(BaseException):
    """Raised by the alarm: not an Exception, so that no handler in the command can take it for an error."""


def _command(argv: list, capsys) -> tuple[int, str]:
    """``rcforge argv`` in process, under the hang guard: (exit status, stdout + stderr)."""
    def stop(*_):
        raise Hung(f"rcforge {' '.join(map(str, argv))} hung for {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(HANG_SECONDS)
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's refusal (exit 2), or a command that exits with its status
        code = stop.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _tree(root: Path, *skip: Path) -> dict:
    """Every file under ``root`` outside ``skip``, with its bytes' hash: what "nothing touched" compares."""
    files = {}
    for path in root.rglob("*"):
        if any(path == s or s in path.parents for s in skip):
            continue
        if path.is_symlink():
            files[path] = ("link", os.readlink(path))
        elif path.is_file():
            files[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def _one_clean_failure(code: int, text: str, *, codes=(1,)) -> str:
    assert "Traceback" not in text, text
    assert code in codes, (code, text)
    lines = [line for line in text.strip().splitlines() if line.startswith("rcforge")]
    assert lines, text
    return lines[-1]


# -- plans: an OUT folder is data ----------------------------------------------------------------------------------
READERS = {
    "validate": lambda out, t: ["validate", out],
    "stats": lambda out, t: ["stats", out],
    "report": lambda out, t: ["report", out, "--html", t / "report.html"],
    "preview": lambda out, t: ["preview", out, "--html", t / "preview.html", "--n", "2"],
    "export": lambda out, t: ["export", "sharegpt", out, t / "export.json"],
}


def _plant_remove_outside(out: Path, victim: Path) -> None:
    staged = out / generations.STAGING / "g000099-planted"
    staged.mkdir(parents=True)
    (staged / generations.PLAN).write_text(json.dumps(
        {"generation": 99, "replaces": ["images"], "move": [], "remove": [str(victim)]}))


def _plant_relative_escape(out: Path, victim: Path) -> None:
    staged = out / generations.STAGING / "g000099-planted"
    staged.mkdir(parents=True)
    (staged / generations.PLAN).write_text(json.dumps(
        {"generation": 99, "replaces": ["images"], "move": [], "remove": [os.path.relpath(victim, out)]}))


def _plant_staging_link(out: Path, victim: Path) -> None:
    """OUT/.staging is a symlink to a folder outside OUT holding a plan that removes the victim."""
    elsewhere = victim.parent / "elsewhere"
    _plant_remove_outside(elsewhere, victim)
    (out / generations.STAGING).symlink_to(elsewhere / generations.STAGING, target_is_directory=True)


PLANTS = {"absolute": _plant_remove_outside, "relative": _plant_relative_escape, "linked": _plant_staging_link}


def _planted(sample_build: Path, tmp_path: Path, plant: str) -> tuple[Path, Path]:
    """A copy of the sample build with ``plant`` done to it, and the file outside OUT that the plan aims at."""
    out = tmp_path / "out"
    shutil.copytree(sample_build, out)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    PLANTS[plant](out, victim)
    return out, victim


@pytest.mark.parametrize("command", sorted(READERS))
@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_planted_plan_is_never_carried_out_by_a_reader(sample_build, tmp_path, capsys, command, plant):
    out, victim = _planted(sample_build, tmp_path, plant)
    before = _tree(tmp_path)
    code, text = _command(READERS[command](out, tmp_path / "made"), capsys)
    assert "Traceback" not in text, text
    assert victim.read_text() == "keep me"
    after = _tree(tmp_path, tmp_path / "made")
    assert after == before, (code, text)  # a reader writes nothing in OUT, nor anywhere else but its target


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_planted_plan_is_refused_by_a_writer(sample_build, tmp_path, capsys, plant):
    out, victim = _planted(sample_build, tmp_path, plant)
    before = _tree(tmp_path)
    code, text = _command(["ingest", SAMPLE_RECIPE, "--out", out, "--no-progress"], capsys)
    line = _one_clean_failure(code, text)
    assert generations.PLAN in line or generations.STAGING in line, line
    assert victim.read_text() == "keep me" and _tree(tmp_path) == before


# -- os: OUT that cannot be a folder -------------------------------------------------------------------------------
def _out_a_file(t: Path) -> Path:
    (t / "out").write_text("a file of the user's")
    return t / "out"


def _out_dangling(t: Path) -> Path:
    (t / "out").symlink_to(t / "nowhere")
    return t / "out"


def _out_under_a_file(t: Path) -> Path:
    (t / "file").write_text("a file of the user's")
    return t / "file" / "out"


def _out_loop(t: Path) -> Path:
    (t / "out").symlink_to(t / "out")
    return t / "out"


OUTS = {"a file": _out_a_file, "a dangling symlink": _out_dangling, "under a file": _out_under_a_file,
        "a symlink loop": _out_loop}
COMMANDS_ON_OUT = {
    "ingest": lambda out, t: ["ingest", SAMPLE_RECIPE, "--out", out, "--no-progress"],
    "build": lambda out, t: ["build", SAMPLE_RECIPE, "--out", out, "--no-progress"],
    **READERS,
}


@pytest.mark.parametrize("command", sorted(COMMANDS_ON_OUT))
@pytest.mark.parametrize("make", sorted(OUTS))
def test_an_out_that_cannot_be_a_folder_is_one_line(tmp_path, capsys, command, make):
    out = OUTS[make](tmp_path)
    before = _tree(tmp_path)
    code, text = _command(COMMANDS_ON_OUT[command](out, tmp_path / "made"), capsys)
    line = _one_clean_failure(code, text)
    assert "out" in line, line
    assert _tree(tmp_path, tmp_path / "made") == before


# -- special files where an annotation file is expected ------------------------------------------------------------
ANNOTATION_FILES = {
    "visual_genome": ["image_data.json", "objects.json", "relationships.json", "region_descriptions.json",
                      "attributes.json"],
    "objects365": ["o365.json"],
    "vqav2": ["questions.json", "annotations.json", "image_info.json"],
    "pointqa": ["local.json", "looktwice.json", "image_data.json"],
    "flickr30k_entities": ["Annotations/4945942737.xml", "Sentences/4945942737.txt", "train.txt"],
    "refcoco": ["refcoco/refs(unc).p", "refcoco/instances.json"],
}


@pytest.mark.parametrize("special", ["fifo", "folder"])
@pytest.mark.parametrize("source, file", [(s, f) for s, files in ANNOTATION_FILES.items() for f in files])
def test_a_special_file_for_an_annotation_file_is_one_line_never_a_hang(tmp_path, capsys, source, file, special):
    sources = SOURCES[source](tmp_path / "data")
    path = tmp_path / "data" / file
    path.unlink()
    if special == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    code, text, out = _run(tmp_path, sources, capsys)
    says = "FIFO" if special == "fifo" else "folder"
    if file.startswith(("Annotations/", "Sentences/")):  # Flickr30K's per-image files: that image is rejected
        assert "Traceback" not in text and code == 0, text
        rows = [e for e in read_errors(out, source) if e["file"].endswith(file)]
        assert rows and says in rows[0]["message"], rows
        return
    line = _one_clean_failure(code, text)
    assert Path(file).name in line and says in line, line


# -- drops: every record a reader sees is read exactly once in the ledger -------------------------------------------
def _totals(manifest: dict, source: str) -> tuple[int, int]:
    """(records read, records not written: rejected + filtered + excluded), images and items together."""
    ledger = manifest["sources"][source]["ledger"]
    tallies = [ledger["images"], *ledger["annotations"].values()]
    read = sum(t["read"] for t in tallies)
    gone = sum(sum(t[k].values()) for t in tallies for k in ("rejected", "filtered", "excluded"))
    return read, gone


def _vg_orphan(name: str, key: str, item: dict):
    def add(root: Path) -> int:
        data = json.loads((root / name).read_text())
        data.append({"image_id": 777777, key: [item, item]})
        (root / name).write_text(json.dumps(data))
        return 2
    return add


def _o365_orphan(root: Path) -> int:
    data = json.loads((root / "o365.json").read_text())
    data["annotations"].append(dict(data["annotations"][0], id=999_999, image_id=123_456_789))
    (root / "o365.json").write_text(json.dumps(data))
    return 1


def _vqa_orphan_annotation(root: Path) -> int:
    data = json.loads((root / "annotations.json").read_text())
    data["annotations"].append(dict(data["annotations"][0], question_id=987_654_321))
    (root / "annotations.json").write_text(json.dumps(data))
    return 1


def _refcoco_orphan_annotation(root: Path) -> int:
    path = root / "refcoco" / "instances.json"
    data = json.loads(path.read_text())
    data["annotations"].append(dict(data["annotations"][0], id=88_888_888, image_id=123_456_789))
    path.write_text(json.dumps(data))
    return 1


def _refcoco_orphan_ref(root: Path) -> int:
    path = root / "refcoco" / "refs(unc).p"
    refs = pickle.loads(path.read_bytes())
    refs.append(dict(refs[0], ref_id=77, ann_id=55_555_555, image_id=123_456_789))
    path.write_bytes(pickle.dumps(refs, protocol=2))
    return 1


def _pointqa_orphan(root: Path) -> int:
    data = json.loads((root / "local.json").read_text())
    data["999999"] = data["1"]
    (root / "local.json").write_text(json.dumps(data))
    return 1 + len(data["1"])  # an image that image_data.json does not list, and its questions


ORPHANS = {
    "vg-objects": ("visual_genome", _vg_orphan("objects.json", "objects",
                                               {"object_id": 1, "names": ["x"], "x": 1, "y": 1, "w": 2, "h": 2})),
    "vg-relationships": ("visual_genome", _vg_orphan("relationships.json", "relationships", {
        "relationship_id": 1, "predicate": "on", "subject": {"object_id": 1}, "object": {"object_id": 2}})),
    "vg-regions": ("visual_genome", _vg_orphan("region_descriptions.json", "regions",
                                               {"region_id": 1, "phrase": "x", "x": 1, "y": 1, "width": 2,
                                                "height": 2})),
    "vg-attributes": ("visual_genome", _vg_orphan("attributes.json", "attributes",
                                                  {"object_id": 1, "attributes": ["red"]})),
    "o365-annotation": ("objects365", _o365_orphan),
    "vqa-annotation": ("vqav2", _vqa_orphan_annotation),
    "refcoco-annotation": ("refcoco", _refcoco_orphan_annotation),
    "refcoco-ref": ("refcoco", _refcoco_orphan_ref),
    "pointqa-image": ("pointqa", _pointqa_orphan),
}


@pytest.mark.parametrize("case", sorted(ORPHANS))
def test_records_of_unknown_images_are_counted_never_dropped(tmp_path, tmp_path_factory, capsys, case):
    source, add = ORPHANS[case]
    (tmp_path / "clean").mkdir()
    code, text, clean_out = _run(tmp_path / "clean", SOURCES[source](tmp_path / "clean" / "data"), capsys)
    assert code == 0, text
    sources = SOURCES[source](tmp_path / "data")
    added = add(tmp_path / "data")
    code, text, out = _run(tmp_path, sources, capsys)
    assert "Traceback" not in text and code == 0, text
    manifest = json.loads((out / "manifest.json").read_text())
    clean = json.loads((clean_out / "manifest.json").read_text())
    assert manifest["sources"][source]["ledger"]["balanced"]
    read, gone = _totals(manifest, source)
    clean_read, clean_gone = _totals(clean, source)
    # everything added is read and accounted for as not written (an image of its own counts as well as its items)
    assert read - clean_read == gone - clean_gone >= added, (case, manifest["sources"][source]["ledger"])
    assert _records(out, source) == _records(clean_out, source)


@pytest.mark.parametrize("partitions", [-1, -(2**70), 2**70, 1.5, "two", True, [8]])
def test_a_partition_count_that_is_not_a_count_is_refused(tmp_path, capsys, partitions):
    """0 means one partition per 64 MB; anything but a count is refused before reading, never read as none."""
    source = "objects365"
    sources = SOURCES[source](tmp_path / "data")
    sources[source]["partitions"] = partitions
    code, text, _ = _run(tmp_path, sources, capsys)
    line = _one_clean_failure(code, text)
    assert "partitions" in line, line


# -- bytes: text that would break the text pipeline rejects its record only -----------------------------------------
TEXT_FIELDS = [
    ("visual_genome", "objects.json", (0, "objects", 0, "names"), "names", list),
    ("visual_genome", "objects.json", (0, "objects", 0, "synsets"), "synsets", list),
    ("visual_genome", "relationships.json", (0, "relationships", 0, "predicate"), "predicate", str),
    ("visual_genome", "region_descriptions.json", (0, "regions", 0, "phrase"), "phrase", str),
    ("visual_genome", "attributes.json", (0, "attributes", 0, "attributes"), "attributes", list),
    ("objects365", "o365.json", ("images", 0, "file_name"), "file_name", str),
    ("vqav2", "questions.json", ("questions", 0, "question"), "question", str),
    ("vqav2", "annotations.json", ("annotations", 0, "multiple_choice_answer"), "multiple_choice_answer", str),
    ("vqav2", "annotations.json", ("annotations", 0, "answers", 0, "answer"), "answer", str),
    ("pointqa", "local.json", ("1", 0, "question"), "question", str),
    ("refcoco", "refcoco/refs(unc).p", (0, "sentences", 0, "sent"), "sent", str),
    ("refcoco", "refcoco/instances.json", ("images", 0, "file_name"), "file_name", str),
]
BAD_CHARS = {"nul": "\x00", "escape": "\x1b", "del": "\x7f", "surrogate": "\ud83d"}


@pytest.mark.parametrize("bad", sorted(BAD_CHARS))
@pytest.mark.parametrize("source, file, path, field, shape", TEXT_FIELDS,
                         ids=[f"{s}-{f}-{p[-1]}" for s, f, p, _, _ in TEXT_FIELDS])
def test_a_character_that_breaks_text_rejects_its_record_only(tmp_path, tmp_path_factory, capsys, source, file,
                                                              path, field, shape, bad):
    from test_fuzz_inputs import _clean

    clean = _clean(tmp_path_factory, source, capsys)
    sources = SOURCES[source](tmp_path / "data")
    text = f"a{BAD_CHARS[bad]}b"
    _set_in_file(tmp_path / "data" / file, path, [text] if shape is list else text)
    code, output, out = _run(tmp_path, sources, capsys)
    assert "Traceback" not in output and code == 0, output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"][source]["ledger"]["balanced"]
    records = _records(out, source)
    errors = read_errors(out, source)
    # JSON turns a lone surrogate escape into U+FFFD when it parses it: then nothing bad is left to reject
    if not (bad == "surrogate" and not file.endswith(".p")):
        named = [e for e in errors if e["reason"] == "bad_text" and field in e["field"] and e["file"].endswith(file)]
        assert named, errors
    for row in records.values():
        flat = json.dumps(row, default=str, ensure_ascii=False)
        assert BAD_CHARS[bad] not in flat and "\\u0000" not in flat and "\\u001b" not in flat
    touched = {e["key"] for e in errors} | {OWNER[source]}
    assert {k: v for k, v in records.items() if k not in touched} == \
        {k: v for k, v in clean.items() if k not in touched}


# -- validate: every corruption is found, never a crash -------------------------------------------------------------
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_text("this is not what rcforge wrote\n")


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside.txt").write_text("x")


def _doubled(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table]), path)


def _column_dropped(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.drop_columns([table.column_names[-1]]), path)


def _nulled(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.set_column(0, table.field(0).with_nullable(True),
                                    pa.nulls(table.num_rows, table.field(0).type)), path)


def _missing(path: Path) -> None:
    path.unlink()


CORRUPTIONS = {"truncated": _truncate, "empty": _empty, "garbage": _garbage, "a folder": _folder,
               "rows doubled": _doubled, "a column dropped": _column_dropped, "first column null": _nulled,
               "missing": _missing}
SHARDS = {"images": "images/vqav2/part-*.parquet", "dialogues": "dialogues/part-*.parquet",
          "images (columnar source)": "images/visual_genome/part-*.parquet"}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
@pytest.mark.parametrize("shard", sorted(SHARDS))
def test_validate_finds_every_corrupted_shard_and_never_crashes(sample_build, tmp_path, capsys, shard, corruption):
    out = tmp_path / "out"
    shutil.copytree(sample_build, out)
    target = sorted(out.glob(SHARDS[shard]))[0]
    CORRUPTIONS[corruption](target)
    code, text = _command(["validate", out], capsys)
    assert "Traceback" not in text
    assert code == 1, text
    assert target.name in text, text


@pytest.mark.parametrize("corruption", ["truncated", "empty", "garbage", "a folder", "missing"])
def test_validate_names_a_corrupted_manifest(sample_build, tmp_path, capsys, corruption):
    out = tmp_path / "out"
    shutil.copytree(sample_build, out)
    CORRUPTIONS[corruption](out / "manifest.json")
    code, text = _command(["validate", out], capsys)
    assert "Traceback" not in text and code == 1, text
    assert "manifest.json" in text or "not an rcforge output" in text, text


# -- options: a bad value of any flag is one line ------------------------------------------------------------------
def _option_cases():
    recipe = SAMPLE_RECIPE
    return {
        "ingest --workers -1": ["ingest", recipe, "--out", "{out}", "--workers", "-1"],
        "ingest --workers x": ["ingest", recipe, "--out", "{out}", "--workers", "x"],
        "ingest --runnr": ["ingest", recipe, "--out", "{out}", "--runnr", "DirectRunner"],
        "ingest --runner Nope": ["ingest", recipe, "--out", "{out}", "--runner", "NopeRunner"],
        "ingest unknown protocol recipe": ["ingest", "nosuch://bucket/r.yaml", "--out", "{out}"],
        "ingest unknown protocol out": ["ingest", recipe, "--out", "nosuch://bucket/out"],
        "ingest missing recipe": ["ingest", "{t}/absent.yaml", "--out", "{out}"],
        "ingest recipe a folder": ["ingest", "{t}", "--out", "{out}"],
        "build --coordinates nope": ["build", recipe, "--out", "{out}", "--coordinates", "nope"],
        "build --seed x": ["build", recipe, "--out", "{out}", "--seed", "x"],
        "build --turns 0": ["build", recipe, "--out", "{out}", "--turns", "0"],
        "export unknown kind": ["export", "nope", "{built}", "{t}/x.json"],
        "export unknown protocol": ["export", "llava", "{built}", "nosuch://bucket/x.json"],
        "export missing out": ["export", "llava", "{t}/absent", "{t}/x.json"],
        "stats missing out": ["stats", "{t}/absent"],
        "stats unknown protocol": ["stats", "nosuch://bucket/out"],
        "report missing out": ["report", "{t}/absent", "--html", "{t}/r.html"],
        "preview --n -1": ["preview", "{built}", "--html", "{t}/p.html", "--n", "-1"],
        "preview --task nope": ["preview", "{built}", "--html", "{t}/p.html", "--task", "nope"],
        "validate missing out": ["validate", "{t}/absent"],
        "validate a file": ["validate", recipe],
        "refilter --lambda 2": ["refilter", "{built}", "--lambda", "2"],
        "refilter --lambda nan": ["refilter", "{built}", "--lambda", "nan"],
        "refilter without candidates": ["refilter", "{built}", "--lambda", "0.5"],
        "bootstrap missing model": ["bootstrap", recipe, "--out", "{out}", "--model", "{t}/no-model"],
        "bootstrap --batch-size 0": ["bootstrap", recipe, "--out", "{out}", "--model", "{t}/no-model",
                                     "--batch-size", "0"],
        "unknown command": ["frobnicate"],
    }


OPTION_CASES = _option_cases()


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_a_bad_option_is_one_line_and_touches_nothing(sample_build, tmp_path, capsys, case):
    built = tmp_path / "built"
    shutil.copytree(sample_build, built)
    argv = [str(a).format(out=tmp_path / "out", t=tmp_path, built=built) for a in OPTION_CASES[case]]
    before = _tree(tmp_path)
    code, text = _command(argv, capsys)
    assert "Traceback" not in text, text
    assert code in (1, 2), (code, text)
    assert text.strip(), case
    assert _tree(tmp_path, tmp_path / "out") == before
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet"))
