"""`rcforge ingest RECIPE --out OUT`: annotation files -> image records (Parquet) + errors + manifest.

Layout written::

    OUT/images/<source>/part-NNNNN.parquet   image records (rcforge.schemas.IMAGE_RECORD)
    OUT/errors/<source>/part-NNNNN.parquet   rejected records with their reasons (rcforge.schemas.ERROR_RECORD)
    OUT/manifest.json                        recipe, parts, and the per-source ledger

Each source is one unit of work: its reader streams the files (a VG or Objects365 file cannot be split without
reading it), and the DoFn writes its parts directly, so memory stays bounded by one image plus one batch of
rows whatever the input size. Beam runs the sources in parallel on any runner (``--runner``, plus any Beam
pipeline option); the driver then gathers the per-source ledgers into the manifest.

The run writes a new output generation (`rcforge.core.generations`): everything is staged under OUT/.staging/ and
OUT switches to it only when every source is written and its ledger balances, so a failed or killed run leaves
the previous output whole (a failure keeps its errors under OUT/last-failed-run/).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

import apache_beam as beam
import fsspec
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

import rcforge
from rcforge import readers, schemas
from rcforge.core import bulk, fsio, generations, images
from rcforge.core.errors import LedgerError
from rcforge.core.ledger import ErrorRow
from rcforge.core.ledgerkeeper import Ledgerkeeper
from rcforge.core.manifest import Manifest
from rcforge.core.progress import Progress
from rcforge.core.writer import PartWriter
from rcforge.pipelines import flags, runners
from rcforge.pipelines.summary import print_ingest_summary
from rcforge.recipe.exclusion import excluded_coco_ids
from rcforge.recipe.tree import IngestPolicy, Recipe, load_recipe


@dataclass(frozen=True)
class IngestSettings:
    out: str  # where this run writes: its generation's staging folder (laid out like OUT)
    errors_hint: str = ""  # where the user finds the errors if the run stops (OUT/last-failed-run/errors)
    policy: IngestPolicy = IngestPolicy()  # the recipe's slice: on_bad_records, max_bad_fraction, rows_per_part
    progress: bool = True


class _SourceOutput:
    """The Parquet writers of one source (records and errors), with their Beam counters."""

    def __init__(self, name: str, settings: IngestSettings):
        self.records = PartWriter(fsio.join(settings.out, "images", name), schemas.IMAGE_RECORD,
                                  rows_per_part=settings.policy.rows_per_part)
        self.errors = PartWriter(fsio.join(settings.out, "errors", name), schemas.ERROR_RECORD,
                                 rows_per_part=max(settings.policy.rows_per_part, 100000))
        self.records.clear_existing()
        self.errors.clear_existing()
        self._written = Metrics.counter(f"rcforge.ingest.{name}", "images_written")
        self._bad = Metrics.counter(f"rcforge.ingest.{name}", "bad_records")

    def write_error(self, error: ErrorRow) -> None:
        self.errors.write(error.row())
        self._bad.inc()

    def write_table(self, table: pa.Table) -> None:
        self.records.write_table(table)
        self._written.inc(table.num_rows)


def ingest_source(name: str, config, settings: IngestSettings, exclude: frozenset[int] = frozenset(),
                  checks: images.ImageChecks = images.ImageChecks()) -> dict:
    """Read one source and write its image records, errors and ledger; returns the source's manifest entry.

    Pure Python, no Beam: the Beam DoFn and the benchmarks call this.
    """
    spec = readers.get(name)
    output = _SourceOutput(name, settings)
    progress = Progress(name, enabled=settings.progress)
    work_dir = tempfile.mkdtemp(prefix=f"rcforge-{name}-")
    keeper = Ledgerkeeper(name, settings.policy, exclude, output.write_table, output.write_error,
                          errors_hint=settings.errors_hint or fsio.join(settings.out, "errors"),
                          images_root=str(getattr(config, "images", "") or ""), checks=checks)
    started = time.perf_counter()
    # Parsing allocates millions of small acyclic dicts; with the cyclic collector on, its repeated scans of the
    # live batches cost more than the parse itself (measured 2.2x slower on VG). Off for this loop only.
    try:
        with bulk.gc_paused():
            for batch in spec.read(config, readers.ReadContext(work_dir=work_dir, source=name)):
                keeper.take(batch)
                progress.update(keeper.ledger.images.read)
            ledger = keeper.finish()
        parts, error_parts = output.records.close(), output.errors.close()
    except BaseException:
        output.records.abort()
        # the errors collected so far are what the user needs to see why the run stopped: flush them, never drop
        output.errors.close()
        raise
    finally:
        keeper.close()
        progress.close()
        shutil.rmtree(work_dir, ignore_errors=True)
    entry = {
        "source": name,
        "image_root": getattr(config, "images", None),
        "parts": [_relative(p, settings.out) for p in parts],
        "error_parts": [_relative(p, settings.out) for p in error_parts],
        "records": output.records.rows,
        "errors": output.errors.rows,
        "seconds": round(time.perf_counter() - started, 3),
        "ledger": ledger.to_json(),
    }
    fs, path = fsspec.core.url_to_fs(fsio.join(settings.out, "_ledgers"))
    fs.makedirs(path, exist_ok=True)
    fsio.write_json(fs, fsio.join(path, f"{name}.json"), entry)
    return entry


def _relative(path: str, root: str) -> str:
    root_path = fsspec.core.url_to_fs(root)[1].rstrip("/")
    path_only = fsspec.core.url_to_fs(path)[1]
    return path_only[len(root_path) + 1:] if path_only.startswith(root_path + "/") else path


class IngestSourceFn(beam.DoFn):
    """Beam wiring: one source name in, its manifest entry out."""

    def __init__(self, recipe: Recipe, settings: IngestSettings, exclude: frozenset[int]):
        self.recipe, self.settings, self.exclude = recipe, settings, exclude

    def process(self, name: str):
        yield ingest_source(name, self.recipe.sources[name], self.settings, self.exclude,
                            self.recipe.image_checks.get(name, images.ImageChecks()))


def build_pipeline(pipeline: beam.Pipeline, recipe: Recipe, settings: IngestSettings, exclude: frozenset[int]):
    return (pipeline
            | "SourceNames" >> beam.Create(sorted(recipe.sources))
            | "IngestSource" >> beam.ParDo(IngestSourceFn(recipe, settings, exclude)))


def ingest(recipe: Recipe, out: str, *, beam_args: list[str] | None = None, progress: bool = True,
           test_pipeline: beam.Pipeline | None = None, inputs: dict | None = None, force: bool = False) -> Manifest:
    """Ingest into a new generation of OUT and switch OUT to it (`rcforge.core.generations`); returns the manifest.
    ``inputs``: the recipe's `input_fingerprints`, taken before reading (computed here when not given).
    ``force``: write into an OUT that holds other files and no rcforge output (`rcforge.core.generations.begin`).
    Holds OUT as its writer throughout (`rcforge.core.generations.writing`)."""
    with generations.writing(out, "rcforge ingest", force=force):
        return _ingest(recipe, out, beam_args=beam_args, progress=progress, test_pipeline=test_pipeline,
                       inputs=inputs, force=force)


def _ingest(recipe: Recipe, out: str, *, beam_args, progress, test_pipeline, inputs, force) -> Manifest:
    generation = generations.begin(out, force=force)
    try:
        manifest = ingest_into(recipe, generation, beam_args=beam_args, progress=progress,
                               test_pipeline=test_pipeline, inputs=inputs)
        # a new ingest makes the dialogues of the previous one stale: they go with it
        generation.commit(manifest.to_json(), replaces=("images", "errors", "dialogues"))
    except BaseException as err:
        generation.abandon("ingest", err)
        raise
    return dataclasses.replace(manifest, generation=generation.number)


def ingest_into(recipe: Recipe, generation: generations.Generation, *, beam_args: list[str] | None = None,
                progress: bool = True, test_pipeline: beam.Pipeline | None = None,
                inputs: dict | None = None) -> Manifest:
    """Run the ingest pipeline into ``generation``'s staging folder; returns its manifest (not committed).

    Raises `LedgerError` when a source's ledger does not balance (its manifest is then kept for the user)."""
    inputs = recipe.input_fingerprints() if inputs is None else inputs
    out = generation.root
    settings = IngestSettings(out=out, errors_hint=generation.errors_hint(), policy=recipe.ingest_policy,
                              progress=progress)
    exclude, exclude_counts = excluded_coco_ids(recipe)
    fs, out_path = fsspec.core.url_to_fs(out)
    ledger_dir = fsio.join(out_path, "_ledgers")
    started = time.perf_counter()
    run_pipeline(lambda p: build_pipeline(p, recipe, settings, exclude), beam_args, test_pipeline)
    sources = {}
    for name in sorted(recipe.sources):
        with fs.open(fsio.join(ledger_dir, f"{name}.json")) as f:
            sources[name] = json.load(f)
    fs.rm(ledger_dir, recursive=True)
    manifest = Manifest.from_json({
        "rcforge_version": rcforge.__version__,
        "stage": "ingest",
        "schema": {"image_record": schemas.SCHEMA_VERSION},
        "recipe_path": recipe.path,
        "recipe": recipe.to_json(),
        "ingest_fingerprint": recipe.ingest_fingerprint(inputs),
        "inputs": inputs,
        "seed": recipe.seed,
        "exclusion": {"coco_ids": len(exclude), "rules": exclude_counts,
                      "excluded_images": {n: sum(s["ledger"]["images"]["excluded"].values())
                                          for n, s in sources.items()}},
        "sources": sources,
        "totals": {
            "records": sum(s["records"] for s in sources.values()),
            "errors": sum(s["errors"] for s in sources.values()),
            "balanced": all(s["ledger"]["balanced"] for s in sources.values()),
        },
        "seconds": round(time.perf_counter() - started, 3),
    })
    unbalanced = [n for n, s in manifest.sources.items() if not s.balanced]
    if unbalanced:
        generation.keep_manifest(manifest.to_json())
        raise LedgerError(f"the ledger of {', '.join(unbalanced)} does not balance (see "
                          f"{fsio.join(generation.out, generations.FAILED, generations.MANIFEST)}): some input "
                          "records are not accounted for; the previous output is left as it was")
    return manifest


def run_pipeline(stage, beam_args: list[str] | None, test_pipeline: beam.Pipeline | None = None) -> None:
    """Build ``stage(pipeline)`` and run it to completion: on ``test_pipeline`` when given, else on a pipeline
    made from the Beam arguments (FnApiRunner unless ``--runner`` says otherwise)."""
    if test_pipeline is not None:
        stage(test_pipeline)
        test_pipeline.run().wait_until_finish()
        return
    pipeline = beam.Pipeline(options=PipelineOptions(runners.resolved(beam_args)))
    stage(pipeline)
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        runners.release(result)


def run(argv=None, *, test_pipeline=None) -> Manifest:
    """Entry point: app flags are parsed here, everything else is passed to Beam (``--runner``, ...)."""
    parser = argparse.ArgumentParser(prog="rcforge ingest", description=__doc__.split("\n\n")[0])
    flags.ingest(parser)
    args, beam_args = parser.parse_known_args(argv)
    return main(args, beam_args, test_pipeline=test_pipeline)


def main(args, beam_args, *, test_pipeline=None) -> Manifest:
    recipe = load_recipe(args.recipe)
    with runners.beam_options(beam_args, getattr(args, "workers", 0)) as options:
        manifest = ingest(recipe, args.out, beam_args=options, progress=not args.no_progress,
                          test_pipeline=test_pipeline, force=args.force)
    print_ingest_summary(manifest, args.out, file=sys.stdout)
    return manifest


if __name__ == "__main__":  # pragma: no cover
    run()
