"""Inputs and OUT on an S3-compatible object store: moto's server (`moto[server]`, from the package registries),
started by the test on 127.0.0.1, reached through fsspec's s3fs. The recipe, its annotation files and its images
live in the bucket; ingest and build write OUT there; the records equal those of the local sample build."""

from __future__ import annotations

import uuid

import pyarrow.parquet as pq
import pytest

from rcforge import cli

from conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture
def bucket(monkeypatch):
    import fsspec

    moto_server = pytest.importorskip("moto.server")  # imported here, not when the inner loop collects
    s3fs = pytest.importorskip("s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
    monkeypatch.setitem(fsspec.config.conf, "s3", options)  # every s3:// path of the run reaches the server
    for name, value in options.items():  # and in worker processes, which read fsspec's settings from the env
        monkeypatch.setenv(f"FSSPEC_S3_{name.upper()}", value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    name = f"rcforge-{uuid.uuid4().hex[:8]}"  # moto keeps its buckets per process, not per server
    fs.mkdir(name)
    fs.put(str(REPO / "sample_data"), f"{name}/sample_data", recursive=True)
    fs.put(str(REPO / "recipes"), f"{name}/recipes", recursive=True)
    yield fs, name
    server.stop()


def _rows(fs, folder: str) -> list[dict]:
    rows = []
    for path in sorted(fs.glob(f"{folder}/dialogues/part-*.parquet")):
        with fs.open(path, "rb") as f:
            rows += pq.read_table(f).to_pylist()
    return rows


@pytest.mark.parametrize("runner", [[], ["--runner", "DaskRunner", "--workers", "2"]], ids=["fnapi", "dask"])
def test_build_with_recipe_inputs_and_out_in_an_object_store(bucket, sample_build, runner):
    """On Dask, the worker processes share nothing with the driver but the object store."""
    fs, name = bucket
    assert cli.main(["build", f"s3://{name}/recipes/sample.yaml", "--out", f"s3://{name}/out", "--no-progress",
                     *runner]) == 0
    remote = _rows(fs, f"{name}/out")
    local = [r for p in sorted((sample_build / "dialogues").glob("part-*.parquet"))
             for r in pq.read_table(p).to_pylist()]
    assert len(remote) == len(local) > 0
    assert [r["conversations"] for r in remote] == [r["conversations"] for r in local]
    assert [r["boxes"] for r in remote] == [r["boxes"] for r in local]
    assert fs.exists(f"{name}/out/manifest.json") and not fs.exists(f"{name}/out/.staging")
    assert cli.main(["validate", f"s3://{name}/out"]) == 0
