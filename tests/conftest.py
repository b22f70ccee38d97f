"""Shared fixtures: the bundled sample data and helpers that run a reader or a whole ingest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
SAMPLE_RECIPE = REPO / "recipes" / "sample.yaml"


@pytest.fixture
def sample() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory) -> Path:
    """OUT of one `rcforge build` of the sample recipe, shared by the session: read it, or `copy_of` it."""
    from rcforge import cli

    out = tmp_path_factory.mktemp("sample-build") / "out"
    assert cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="session")
def sample_build_in(sample_build, tmp_path_factory):
    """``sample_build_in(fmt)``: OUT of the sample recipe built with ``--coordinates fmt`` (``pink`` is
    `sample_build` itself), made once a session on a copy of `sample_build`, so that it reuses its ingest."""
    import shutil

    from rcforge import cli

    built = {"pink": sample_build}

    def build_in(fmt: str) -> Path:
        if fmt not in built:
            out = tmp_path_factory.mktemp(f"sample-build-{fmt}") / "out"
            shutil.copytree(sample_build, out)
            assert cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--coordinates", fmt,
                             "--no-progress"]) == 0
            built[fmt] = out
        return built[fmt]

    return build_in


def copy_of(out: Path, tmp_path: Path) -> Path:
    """A private copy of a build's OUT, for a test that changes it."""
    import shutil

    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    return copy


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def read_records(out: Path, source: str) -> list[dict]:
    rows = []
    for part in sorted((out / "images" / source).glob("part-*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    return rows


def read_errors(out: Path, source: str) -> list[dict]:
    rows = []
    for part in sorted((out / "errors" / source).glob("part-*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    return rows


def ingest_one(tmp_path: Path, source: str, options: dict, **recipe_top) -> tuple[dict, Path]:
    """Ingest one source through the real pipeline code (no Beam), returning (manifest entry, out dir)."""
    from rcforge.pipelines.ingest import IngestSettings, ingest_source
    from rcforge.recipe.tree import recipe_from_mapping

    # reader tests run on annotation files whose images are not all bundled; tests/test_images.py checks files
    recipe_top.setdefault("verify_images", "off")
    recipe = recipe_from_mapping({"sources": {source: options}, **recipe_top}, base_dir=str(tmp_path))
    out = tmp_path / "out"
    settings = IngestSettings(out=str(out), policy=recipe.ingest_policy, progress=False)
    entry = ingest_source(source, recipe.sources[source], settings, checks=recipe.image_checks[source])
    return entry, out


def tamper_dialogue(out: Path, pick, change) -> dict:
    """Tamper with a build: the first dialogue of OUT's first shard that ``pick(row)`` selects is changed in place by
    ``change(row)`` and the shard written again; returns that row (as changed)."""
    import pyarrow as pa

    from rcforge import schemas

    shard = sorted(out.glob("dialogues/part-*.parquet"))[0]
    rows = pq.read_table(shard).to_pylist()
    target = next(r for r in rows if pick(r))
    change(target)
    pq.write_table(pa.Table.from_pylist(rows, schema=schemas.DIALOGUE), shard)
    return target


def records_by_key(out: Path, columns=("key", "objects")) -> dict[str, dict]:
    """OUT's image records (those ``columns``) by key, every source."""
    return {r["key"]: r for part in out.glob("images/*/part-*.parquet")
            for r in pq.read_table(part, columns=list(columns)).to_pylist()}
