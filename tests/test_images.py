"""Image files at ingest (`verify_images`): a damaged image file rejects its image, with the file, record and
field named, over every source and both Visual Genome paths; a size mismatch can be rescaled instead; nothing
outside the images root is ever read.

Each source's clean input (from the fuzz suite) gets real JPEG files of the annotated sizes; then the file of one
image is damaged in one way. The command must exit 0, reject that image with the expected reason (or not, where
the check cannot see the damage), keep the ledger balanced and write every other record as the clean run does.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image
from test_fuzz_inputs import OWNER, SOURCES, _run

from rcforge.core import images
from rcforge.core.images import ImageChecks, check, confine

from conftest import read_errors, read_records

# rcforge silences Pillow's bomb warning at import (its own limit applies first); pytest resets warning filters
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


def _jpeg(size: tuple[int, int], colour=(90, 120, 150)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def _with_images(tmp_path: Path, source: str, capsys) -> tuple[dict, Path, dict]:
    """(sources, images root, records of a clean run) with a JPEG of the annotated size for every record."""
    sources = SOURCES[source](tmp_path / "data")
    (tmp_path / "off").mkdir()
    code, text, out = _run(tmp_path / "off", sources, capsys)
    assert code == 0, text
    records = {r["key"]: r for r in read_records(out, source)}
    root = Path(sources[source]["images"])
    for record in records.values():
        path = root / record["image"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg((record["width"], record["height"])))
    return sources, root, records


def _ingest(tmp_path: Path, sources: dict, capsys, **top):
    tmp_path.mkdir()
    code, text, out = _run(tmp_path, sources, capsys, verify_images=top.pop("verify_images", "header"), **top)
    assert code == 0 and "Traceback" not in text, text
    return out


def _damage_truncate(path: Path, record: dict) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _damage_bomb(path: Path, record: dict) -> None:
    # a 1-bit PNG of 10,000 x 10,000 pixels: 10 kB on disk, 100 M pixels once decoded
    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())


def _damage_symlink_out(path: Path, record: dict) -> None:
    outside = path.parents[len(Path(record["image"]).parts)].parent / "outside.jpg"
    outside.write_bytes(_jpeg((record["width"], record["height"])))
    path.unlink()
    path.symlink_to(outside)


#: damage -> (what it does to the file, reason in header mode, reason in decode mode); None: not seen
DAMAGES = {
    "missing": (lambda p, r: p.unlink(), "image_missing", "image_missing"),
    "empty": (lambda p, r: p.write_bytes(b""), "image_unreadable", "image_unreadable"),
    "garbage": (lambda p, r: p.write_bytes(os.urandom(2048)), "image_unreadable", "image_unreadable"),
    "text": (lambda p, r: p.write_text("<html>not found</html>"), "image_unreadable", "image_unreadable"),
    "truncated": (_damage_truncate, None, "image_unreadable"),
    "other_size": (lambda p, r: p.write_bytes(_jpeg((r["width"] + 7, r["height"]))), "image_size_mismatch",
                   "image_size_mismatch"),
    "bomb": (_damage_bomb, "image_too_large", "image_too_large"),
    "folder": (lambda p, r: (p.unlink(), p.mkdir()), "image_missing", "image_missing"),
    "symlink_out": (_damage_symlink_out, "image_path_outside_root", "image_path_outside_root"),
}

_clean: dict = {}


#: the inner loop (pytest -m "not slow") runs every damage on these; CI runs every source
FAST_SOURCES = ("vqav2",)


@pytest.mark.parametrize("mode", ["header", pytest.param("decode", marks=pytest.mark.slow)])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("source", [s if s in FAST_SOURCES else pytest.param(s, marks=pytest.mark.slow)
                                    for s in sorted(SOURCES)])
def test_a_damaged_image_file_rejects_its_image_and_nothing_else(tmp_path, capsys, source, damage, mode):
    sources, root, clean = _with_images(tmp_path, source, capsys)
    owner = clean[OWNER[source]]
    damage_fn, header_reason, decode_reason = DAMAGES[damage]
    damage_fn(root / owner["image"], owner)
    out = _ingest(tmp_path / "run", sources, capsys, verify_images=mode)
    manifest = json.loads((out / "manifest.json").read_text())
    ledger = manifest["sources"][source]["ledger"]
    assert ledger["balanced"]
    records = {r["key"]: r for r in read_records(out, source)}
    assert {k: v for k, v in records.items() if k != owner["key"]} == \
        {k: v for k, v in clean.items() if k != owner["key"]}
    reason = header_reason if mode == "header" else decode_reason
    image_errors = [e for e in read_errors(out, source) if e["kind"] == "image"]
    if reason is None:
        assert records[owner["key"]] == owner and not image_errors
        return
    assert owner["key"] not in records
    (error,) = image_errors
    assert (error["reason"], error["record"], error["field"]) == (reason, owner["key"], "image")
    assert error["file"] == str(root / owner["image"]) and owner["image"] in error["message"]
    assert ledger["images"]["rejected"] == {reason: 1}


@pytest.mark.parametrize("source", [s if s in FAST_SOURCES else pytest.param(s, marks=pytest.mark.slow)
                                    for s in sorted(SOURCES)])
def test_a_size_mismatch_is_rescaled_when_asked(tmp_path, capsys, source):
    sources, root, clean = _with_images(tmp_path, source, capsys)
    owner = clean[OWNER[source]]
    real = (owner["width"] // 2, owner["height"] * 2)
    (root / owner["image"]).write_bytes(_jpeg(real))
    out = _ingest(tmp_path / "run", sources, capsys, verify_images_mismatch="rescale")
    ledger = json.loads((out / "manifest.json").read_text())["sources"][source]["ledger"]
    assert ledger["balanced"] and ledger["images"]["repairs"] == {"image_rescaled": 1}
    records = {r["key"]: r for r in read_records(out, source)}
    assert {k: v for k, v in records.items() if k != owner["key"]} == \
        {k: v for k, v in clean.items() if k != owner["key"]}
    got = records[owner["key"]]
    assert (got["width"], got["height"]) == real
    sx, sy = real[0] / owner["width"], real[1] / owner["height"]
    for before, after in zip(owner["objects"] + owner["regions"], got["objects"] + got["regions"]):
        assert after["box"] == pytest.approx([before["box"][0] * sx, before["box"][1] * sy,
                                              before["box"][2] * sx, before["box"][3] * sy])
        assert 0 <= after["box"][0] < after["box"][2] <= real[0] and 0 <= after["box"][1] < after["box"][3] <= real[1]
    for before, after in zip(owner["qas"], got["qas"]):
        if before["point"] is not None:
            assert after["point"] == pytest.approx([before["point"][0] * sx, before["point"][1] * sy])


def test_the_visual_genome_columnar_path_checks_images_too(tmp_path, capsys):
    """The sample VG goes through the columnar reader (batches of rows, not one result per image)."""
    sources, root, clean = _with_images(tmp_path, "visual_genome", capsys)
    (root / "2.jpg").unlink()
    (root / "1.jpg").write_bytes(_jpeg((400, 300)))
    out = _ingest(tmp_path / "run", sources, capsys, verify_images_mismatch="rescale")
    ledger = json.loads((out / "manifest.json").read_text())["sources"]["visual_genome"]["ledger"]
    assert ledger["balanced"] and ledger["images"]["rejected"] == {"image_missing": 1}
    assert ledger["images"]["repairs"] == {"image_rescaled": 1}
    assert ledger["annotations"]["object"]["rejected"]["image_rejected"] == len(clean["vg/2"]["objects"])
    records = {r["key"]: r for r in read_records(out, "visual_genome")}
    assert sorted(records) == ["vg/1", "vg/3"] and records["vg/3"] == clean["vg/3"]
    assert (records["vg/1"]["width"], records["vg/1"]["height"]) == (400, 300)


def test_a_pixel_limit_from_the_recipe_and_per_source_settings(tmp_path, capsys):
    sources, root, clean = _with_images(tmp_path, "vqav2", capsys)
    out = _ingest(tmp_path / "limit", sources, capsys, max_image_pixels=1000)
    ledger = json.loads((out / "manifest.json").read_text())["sources"]["vqav2"]["ledger"]
    assert ledger["images"]["rejected"] == {"image_too_large": len(clean)}
    sources["vqav2"]["max_image_pixels"] = 10**7  # a source's own key wins over the top level
    out = _ingest(tmp_path / "source-wins", sources, capsys, max_image_pixels=1000)
    assert {r["key"] for r in read_records(out, "vqav2")} == set(clean)


def test_symlinks_inside_the_root_are_followed_and_those_leaving_it_are_not(tmp_path):
    root = tmp_path / "images"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.jpg").write_bytes(_jpeg((20, 10)))
    (root / "alias").symlink_to(root / "real")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "b.jpg").write_bytes(_jpeg((20, 10)))
    (root / "escape").symlink_to(tmp_path / "secret")
    checks = ImageChecks()
    assert check(str(root), "alias/a.jpg", 20, 10, checks).ok
    assert check(str(root), "escape/b.jpg", 20, 10, checks).reason == "image_path_outside_root"
    assert confine(str(root), "escape/b.jpg")[0] is None and confine(str(root), "alias/a.jpg")[1] is None
    # the check never opens a file it refuses
    assert check(str(root), "escape/b.jpg", 20, 10, ImageChecks(verify="off")).reason == "image_path_outside_root"


def test_the_image_checks_are_recipe_keys_with_clear_errors(tmp_path):
    from rcforge.core.errors import RecipeError
    from rcforge.recipe.tree import recipe_from_mapping

    sources = SOURCES["vqav2"](tmp_path / "data")
    recipe = recipe_from_mapping({"sources": sources, "verify_images": False})  # YAML's bare `off`
    assert recipe.image_checks["vqav2"] == ImageChecks(verify="off")
    for top, key in (({"verify_images": "full"}, "verify_images"), ({"verify_images_mismatch": "scale"},
                                                                      "verify_images_mismatch"),
                     ({"max_image_pixels": 0}, "max_image_pixels"), ({"max_image_pixels": "1e6"}, "max_image_pixels")):
        with pytest.raises(RecipeError, match=key):
            recipe_from_mapping({"sources": sources, **top})
    with pytest.raises(RecipeError, match="sources.vqav2.verify_images"):
        recipe_from_mapping({"sources": {"vqav2": {**sources["vqav2"], "verify_images": 3}}})
    assert images.MAX_IMAGE_PIXELS == Image.MAX_IMAGE_PIXELS  # Pillow's own default


def test_preview_and_export_never_read_or_pass_on_a_file_outside_the_root(sample_build, tmp_path, capsys):
    """A build whose image root later holds a symlink to a secret (or whose shard was edited to name one)."""
    import base64

    import pyarrow.parquet as pq

    from rcforge import cli
    from rcforge.inspect.preview import render_html

    from conftest import copy_of

    out = copy_of(sample_build, tmp_path)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(_jpeg((800, 600), colour=(1, 2, 3)))
    root = tmp_path / "vg-images"
    root.mkdir()
    (root / "1.jpg").symlink_to(secret)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["sources"]["visual_genome"]["image_root"] = str(root)
    (out / "manifest.json").write_text(json.dumps(manifest))
    shard = next((out / "dialogues").glob("part-*.parquet"))
    table = pq.read_table(shard)
    rows = table.to_pylist()
    vqa = next(r for r in rows if r["source"] == "vqav2")
    vqa["image"] = "../../../../../../" + str(secret).lstrip("/")
    pq.write_table(table.from_pylist(rows, schema=table.schema), shard)

    chosen = [r for r in rows if r["source"] == "visual_genome" and r["image"] == "1.jpg"][:1] + [vqa]
    page = render_html(str(out), chosen)
    assert base64.b64encode(secret.read_bytes()[:300])[:200].decode() not in page
    assert page.count("refused:") == 2

    target = tmp_path / "export.jsonl"
    assert cli.main(["export", "llava", str(out), str(target)]) == 0
    assert "left out" in capsys.readouterr().err
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(exported) == len(rows) - len([r for r in rows if r["source"] == "visual_genome"
                                             and r["image"] == "1.jpg"]) - 1
    assert not any(e["image"] == str(root / "1.jpg") or ".." in e["image"] for e in exported)
