"""Inputs and OUT on an S3-compatible object store: moto's server (`moto[server]`, from the package registries),
started by the test on 127.0.0.1, reached through fsspec's s3fs. The recipe, its annotation files and its images
live in the bucket; ingest and build write OUT there; the records equal those of the local sample build."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from conftest import REPO

from rcforge import cli

pytestmark = pytest.mark.slow
moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")


@pytest.fixture
def bucket(monkeypatch):
    import fsspec

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
    monkeypatch.setitem(fsspec.config.conf, "s3", options)  # every s3:// path of the run reaches the server
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    fs.mkdir("rcforge")
    fs.put(str(REPO / "sample_data"), "rcforge/sample_data", recursive=True)
    fs.put(str(REPO / "recipes"), "rcforge/recipes", recursive=True)
    yield fs
    server.stop()


def _rows(fs, folder: str) -> list[dict]:
    rows = []
    for path in sorted(fs.glob(f"{folder}/dialogues/part-*.parquet")):
        with fs.open(path, "rb") as f:
            rows += pq.read_table(f).to_pylist()
    return rows


def test_build_with_recipe_inputs_and_out_in_an_object_store(bucket, sample_build):
    assert cli.main(["build", "s3://rcforge/recipes/sample.yaml", "--out", "s3://rcforge/out", "--no-progress"]) == 0
    remote = _rows(bucket, "rcforge/out")
    local = [r for p in sorted((sample_build / "dialogues").glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(remote) == len(local) > 0
    assert [r["conversations"] for r in remote] == [r["conversations"] for r in local]
    assert [r["boxes"] for r in remote] == [r["boxes"] for r in local]
    assert bucket.exists("rcforge/out/manifest.json") and not bucket.exists("rcforge/out/.staging")
    assert cli.main(["validate", "s3://rcforge/out"]) == 0
