"""The path Flink and Spark deployments use: Beam's PortableRunner against Beam's local job service
(``--job_endpoint embed``) with an EXTERNAL worker pool (``python -m apache_beam.runners.worker.worker_pool_main``)
in its own process. The sample build's records equal the in-process runner's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from rcforge import cli

from conftest import SAMPLE_RECIPE

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def worker_pool():
    port = _free_port()
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    pool = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                             f"--service_port={port}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline:  # wait until it listens
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield f"localhost:{port}"
    pool.terminate()
    pool.wait(timeout=30)


def test_sample_build_on_the_portable_runner_with_an_external_worker_pool(sample_build, tmp_path, worker_pool):
    out = tmp_path / "portable"
    assert cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--runner", "PortableRunner",
                     "--job_endpoint", "embed", "--environment_type", "EXTERNAL",
                     "--environment_config", worker_pool]) == 0
    for sub in ("dialogues", "images"):
        ours = sorted(p.relative_to(out) for p in (out / sub).rglob("*.parquet"))
        theirs = sorted(p.relative_to(sample_build) for p in (sample_build / sub).rglob("*.parquet"))
        assert ours == theirs and ours
        assert all(pq.read_table(out / p).equals(pq.read_table(sample_build / p)) for p in ours)
