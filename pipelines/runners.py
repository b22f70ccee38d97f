"""Where a pipeline runs: Beam's runner options made from the command line, and a local Dask cluster when asked.

- No ``--runner``: the in-process FnApiRunner (the DirectRunner tries to download Prism first); ``--workers N``
  (N > 1) makes it Beam's ``multi_processing`` mode with N worker processes.
- ``--runner DaskRunner`` (Beam's DaskRunner, installed by the ``dask`` extra, with one fix:
  `rcforge.pipelines.dask_runner`): with ``--dask_client_address tcp://HOST:PORT`` the pipeline runs on that running cluster (a
  dask-jobqueue SLURMCluster, a dask-kubernetes cluster, ...); without one, a local cluster of ``--workers N``
  processes (one thread each; N defaults to the CPU count) is started for the run and shut down afterwards.
- Any other runner (Dataflow, Flink, Spark, PortableRunner) takes Beam's own options unchanged.

Nothing the pipelines do relies on the driver's memory or disk: workers read inputs and write outputs through
fsspec URLs, and the driver gathers manifests from OUT. On a cluster whose workers do not share the driver's
disk, OUT and the inputs must be URLs every worker reaches (gs://, s3://, a shared file system).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Iterator

from rcforge.config import Range, number_flag

#: Beam's DaskRunner with tagged outputs routed (`rcforge.pipelines.dask_runner`)
DASK_RUNNER = "rcforge.pipelines.dask_runner.DaskRunner"
#: short runner names Beam itself does not resolve
ALIASES = {"DaskRunner": DASK_RUNNER}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=number_flag(int, Range(0)), default=0,
                        help="local worker processes: Beam multi_processing, or the size of the local Dask cluster "
                             "with --runner DaskRunner (0: one in-process worker; the CPU count for Dask)")


def _split(args: list[str], name: str) -> tuple[str | None, list[str]]:
    """(the value of ``--name`` in Beam's arguments, the other arguments), as Beam's own argparse reads them."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument(f"--{name}")
    known, rest = parser.parse_known_args(args)
    return getattr(known, name), rest


def runner(beam_args: list[str]) -> str:
    """The runner the arguments ask for, by its full name where rcforge knows a short one."""
    name = _split(beam_args, "runner")[0] or "FnApiRunner"
    return ALIASES.get(name, name)


def resolved(beam_args: list[str] | None) -> list[str]:
    """The arguments with one ``--runner=<full name>`` (FnApiRunner when none is given)."""
    name, rest = _split(list(beam_args or []), "runner")
    name = name or "FnApiRunner"
    return [*rest, f"--runner={ALIASES.get(name, name)}"]


@contextlib.contextmanager
def beam_options(beam_args: list[str] | None, workers: int = 0) -> Iterator[list[str]]:
    """Beam's arguments for a run (see the module docstring); a local Dask cluster lives as long as the block."""
    args = resolved(beam_args)
    name = runner(args)
    if name != DASK_RUNNER:
        if workers > 1 and name == "FnApiRunner":
            args += ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
        yield args
        return
    if _split(args, "dask_client_address")[0]:
        yield args
        return
    from dask.distributed import LocalCluster

    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    try:
        yield [*args, f"--dask_client_address={cluster.scheduler_address}"]
    finally:
        cluster.close()


def release(result) -> None:
    """Close what a finished run holds open: the Dask runner's client, before its cluster goes (a client left
    open tries to reconnect to a closed scheduler for 30 s)."""
    client = getattr(result, "client", None)
    if client is not None:
        client.close()
