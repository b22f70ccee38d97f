"""Where a pipeline runs: Beam's runner options made from the command line, and a local Dask cluster when asked.

- No ``--runner``: the in-process FnApiRunner (the DirectRunner tries to download Prism first); ``--workers N``
  (N > 1) makes it Beam's ``multi_processing`` mode with N worker processes.
- ``--runner DaskRunner`` (Beam's DaskRunner, installed by the ``dask`` extra, with one fix:
  `rcforge.pipelines.dask_runner`): with ``--dask_client_address tcp://HOST:PORT`` the pipeline runs on that running
  cluster (a dask-jobqueue SLURMCluster, a dask-kubernetes cluster, ...); without one, a local cluster of
  ``--workers N`` processes (one thread each; N defaults to the CPU count) is started for the run and shut down
  afterwards.
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

#: Beam's DaskRunner with tagged outputs routed (`rcforge.pipelines.dask_runner`)
DASK_RUNNER = "rcforge.pipelines.dask_runner.DaskRunner"
#: short runner names Beam itself does not resolve
ALIASES = {"DaskRunner": DASK_RUNNER}


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


def _check_runner(name: str) -> None:
    """A runner Beam knows by name (``FlinkRunner``), rcforge's Dask runner, or a class path (``pkg.MyRunner``);
    anything else is refused in one line here instead of a ValueError from inside Beam."""
    import difflib

    from apache_beam.runners import runner as beam_runner

    from rcforge.core.errors import RecipeError

    if name == DASK_RUNNER or "." in name:
        return
    known = {n.lower(): n for n in beam_runner._RUNNER_MAP}  # noqa: SLF001 (Beam's own table of runner names)
    if name.lower() not in known:
        names = sorted({*ALIASES, "DirectRunner", "DataflowRunner", "FlinkRunner",
                                                 "SparkRunner", "PortableRunner", "PrismRunner"})
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise RecipeError(f"--runner {name}: not a runner Beam knows" + hint
                          + f"; one of {', '.join(names)}, or a runner class's full path")


def check_beam_args(command: str, beam_args: list[str]) -> None:
    """Refuse, before anything runs, the arguments that neither the command nor any Beam pipeline option declares:
    Beam itself only logs "Discarding unparseable args", so a mistyped flag would be ignored silently."""
    import difflib

    from apache_beam.options.pipeline_options import PipelineOptions

    from rcforge.core.errors import RecipeError

    if runner(beam_args) == DASK_RUNNER or any(a.startswith("--dask") for a in beam_args):
        try:  # Beam declares the Dask runner's options (--dask_client_address, ...) in the runner's module
            import apache_beam.runners.dask.dask_runner  # noqa: F401
        except ImportError:
            raise RecipeError("the Dask runner needs the dask extra: pip install -c requirements/lock.txt "
                              "-e '.[dask]'") from None
    _check_runner(runner(beam_args))
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    seen = {}
    for cls in PipelineOptions.__subclasses__():  # as Beam's own PipelineOptions.get_all_options collects them
        seen.setdefault(str(cls), cls)
    for cls in seen.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 (Beam's one way to list its options)
    try:
        _, unknown = parser.parse_known_args(beam_args)
    except SystemExit:  # a Beam option with a bad value: argparse has printed why
        raise RecipeError("a Beam pipeline option has a bad value (see above)") from None
    if not unknown:
        return
    known = [o for action in parser._actions for o in action.option_strings]  # noqa: SLF001
    known += [o for o in ("--workers", "--out", "--force", "--no-progress")]
    first = unknown[0].split("=", 1)[0]
    close = difflib.get_close_matches(first, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise RecipeError(f"unknown argument {unknown[0]!r}{hint}: it is neither a flag of rcforge {command} "
                      f"(see rcforge {command} --help) nor an Apache Beam pipeline option")
