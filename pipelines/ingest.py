"""`rcforge ingest RECIPE --out OUT`: annotation files -> image records (Parquet) + errors + manifest.

Layout written::

    OUT/images/<source>/part-NNNNN.parquet   image records (rcforge.schemas.IMAGE_RECORD)
    OUT/errors/<source>/part-NNNNN.parquet   rejected records with their reasons (rcforge.schemas.ERROR_RECORD)
    OUT/manifest.json                        recipe, parts, and the per-source ledger

Each source is one unit of work: its reader streams the files (a VG or Objects365 file cannot be split without
reading it), and the DoFn writes its parts directly, so memory stays bounded by one image plus one batch of
rows whatever the input size. Beam runs the sources in parallel on any runner (``--runner``, plus any Beam
pipeline option); the driver then gathers the per-source ledgers into the manifest.

The run writes a new output generation (`rcforge.generations`): everything is staged under OUT/.staging/ and
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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import apache_beam as beam
import fsspec
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from rcforge.pipelines import flags, runners

import rcforge
from rcforge import bulk, fsio, generations, images, readers, schemas
from rcforge.errors import LedgerError, TooManyBadRecords
from rcforge.exclusion import excluded_coco_ids
from rcforge.ledger import ErrorRow, ImageResult, SourceLedger
from rcforge.manifest import Manifest
from rcforge.progress import Progress
from rcforge.recipe import IngestPolicy, Recipe, load_recipe
from rcforge.summary import print_ingest_summary
from rcforge.writer import PartWriter

#: check the bad-record threshold once this many records of a source were read (and always at the end)
THRESHOLD_MIN_READ = 10000
#: image results collected before their files are checked (in parallel) and written
CHECK_BATCH = 256


@dataclass(frozen=True)
class IngestSettings:
    out: str  # where this run writes: its generation's staging folder (laid out like OUT)
    errors_hint: str = ""  # where the user finds the errors if the run stops (OUT/last-failed-run/errors)
    policy: IngestPolicy = IngestPolicy()  # the recipe's slice: on_bad_records, max_bad_fraction, rows_per_part
    progress: bool = True


def _reject_image(result: ImageResult, file: str, verdict: images.Verdict) -> ImageResult:
    """The result with its record rejected at the image check (the file is missing, unreadable, of another
    size, too large, or outside the images root)."""
    result.errors.insert(0, ErrorRow(result.source, result.key, file, result.key, "image", "validate", "image",
                                     verdict.reason, verdict.message))
    result.record = None
    return result


class Ledgerkeeper:
    """Applies one `ImageResult` to the ledger, the writers and the bad-record policy."""

    def __init__(self, source: str, settings: IngestSettings, exclude: frozenset[int], write, write_error,
                 write_table=None, *, images_root: str = "", checks: images.ImageChecks = images.ImageChecks()):
        self.source, self.settings, self.exclude = source, settings, exclude
        self.ledger = SourceLedger(source)
        self._write, self._write_error, self._write_table = write, write_error, write_table
        self._exclude_array = np.array(sorted(exclude), dtype=np.int64)
        self._checked_at = 0
        self.images_root, self.checks = images_root, checks
        self._pool = ThreadPoolExecutor(images.THREADS) if images.wants_pool(images_root, checks) else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def take_many(self, results: list[ImageResult]) -> None:
        """Check the image files of the records to write (in parallel), then `take` each result in order."""
        todo = [r for r in results if r.record is not None and not r.orphan
                and (r.coco_id is None or r.coco_id not in self.exclude)]
        verdicts = images.check_many(self.images_root, [(r.record["image"], r.record["width"], r.record["height"])
                                                        for r in todo], self.checks, self._pool)
        for result, verdict in zip(todo, verdicts):
            if verdict.size is not None:
                result.record = images.rescale_record(result.record, verdict.size)
                result.rescaled = True
            elif not verdict.ok:
                _reject_image(result, fsio.join(self.images_root, str(result.record["image"])), verdict)
        for result in results:
            self.take(result)

    def take(self, result: ImageResult) -> None:
        led = self.ledger
        for error in result.errors:
            self._error(error)
        for kind, n in result.items_read.items():
            led.items[kind].read += n
        for error in result.errors:
            if error.kind != "image":
                led.items[error.kind].rejected[error.reason] += error.items
        for (kind, reason), n in result.repairs.items():
            led.items[kind].repairs[reason] += n
        for kind, n in result.items_adopted.items():
            led.items[kind].adopted += n
        filtered_items = Counter()
        for (kind, reason), n in result.items_filtered.items():
            led.items[kind].filtered[reason] += n
            filtered_items[kind] += n
        if result.orphan:
            self._maybe_check()
            return
        led.images.read += 1
        # annotations that were read and neither rejected nor filtered one by one
        kept = {kind: n - result.items_rejected.get(kind, 0) - filtered_items[kind]
                for kind, n in result.items_read.items()}
        if result.record is None:
            if result.filtered:
                led.images.filtered[result.filtered] += 1
                for kind, n in kept.items():
                    led.items[kind].filtered["image_" + result.filtered] += n
            else:
                reason = next((e.reason for e in result.errors if e.kind == "image"), "rejected")
                led.images.rejected[reason] += 1
                for kind, n in kept.items():
                    led.items[kind].rejected["image_rejected"] += n
        elif result.coco_id is not None and result.coco_id in self.exclude:
            led.images.excluded["evaluation_image"] += 1
            for kind, n in kept.items():
                led.items[kind].excluded["evaluation_image"] += n
        else:
            self._write(result.record)
            for kind, n in kept.items():
                repaired = result.items_repaired.get(kind, 0)
                led.items[kind].repaired += repaired
                led.items[kind].written += n - repaired
            if result.rescaled:
                led.images.repairs["image_rescaled"] += 1
            if result.items_rejected or result.items_repaired or result.rescaled:
                led.images.repaired += 1
            else:
                led.images.written += 1
        self._maybe_check()

    def take_batch(self, batch) -> None:
        """Apply a `BatchResult` (a columnar reader's batch of records with its own accounting)."""
        led = self.ledger
        for error in batch.errors:
            self._error(error)
        led.images.merge(batch.ledger.images)
        for kind, tally in batch.ledger.items.items():
            led.items[kind].merge(tally)
        table = batch.table
        coco = table.column("coco_id").fill_null(-1).to_numpy(zero_copy_only=False)
        excluded = np.isin(coco, self._exclude_array) if len(self._exclude_array) else np.zeros(len(coco), bool)
        table, rejected, image_repaired = self._check_table(table, excluded, batch.image_repaired)
        kept_rows = ~excluded & ~rejected
        for kind, kept in batch.items_kept.items():
            repaired = batch.items_repaired.get(kind, np.zeros_like(kept))
            if excluded.any():
                led.items[kind].excluded["evaluation_image"] += int(kept[excluded].sum())
            if rejected.any():
                led.items[kind].rejected["image_rejected"] += int(kept[rejected].sum())
            led.items[kind].repaired += int(repaired[kept_rows].sum())
            led.items[kind].written += int((kept[kept_rows] - repaired[kept_rows]).sum())
        if excluded.any():
            led.images.excluded["evaluation_image"] += int(excluded.sum())
        if not kept_rows.all():
            table = table.filter(pa.array(kept_rows))
        led.images.repaired += int((image_repaired & kept_rows).sum())
        led.images.written += int((~image_repaired & kept_rows).sum())
        self._write_table(table)
        self._maybe_check()

    def _check_table(self, table: pa.Table, excluded: np.ndarray, image_repaired: np.ndarray):
        """The image checks over a columnar batch: (table with rescaled rows, rejected rows, repaired rows)."""
        rows = np.flatnonzero(~excluded)
        names, widths, heights = (table.column(c).to_pylist() for c in ("image", "width", "height"))
        verdicts = images.check_many(self.images_root, [(names[i], widths[i], heights[i]) for i in rows],
                                     self.checks, self._pool)
        rejected = np.zeros(table.num_rows, bool)
        rescale = {}
        for i, verdict in zip(rows, verdicts):
            if verdict.size is not None:
                rescale[int(i)] = verdict.size
            elif not verdict.ok:
                rejected[i] = True
                key = table.column("key")[int(i)].as_py()
                self.ledger.images.rejected[verdict.reason] += 1
                self._error(ErrorRow(self.source, key, fsio.join(self.images_root, str(names[i])), key, "image",
                                     "validate", "image", verdict.reason, verdict.message))
        if rescale:
            records = table.to_pylist()
            for i, size in rescale.items():
                records[i] = images.rescale_record(records[i], size)
            table = pa.Table.from_pylist(records, schema=table.schema)
            image_repaired = image_repaired.copy()
            image_repaired[list(rescale)] = True
            self.ledger.images.repairs["image_rescaled"] += len(rescale)
        return table, rejected, image_repaired

    def _error(self, error: ErrorRow) -> None:
        """Write an error row, or stop at the first one under ``on_bad_records: error``."""
        if self.settings.policy.on_bad_records == "error":
            raise TooManyBadRecords(f"bad record (on_bad_records: error): {error.describe()}")
        self._write_error(error)

    def _maybe_check(self, final: bool = False) -> None:
        read = self.ledger.total_read()
        if not final and read - self._checked_at < THRESHOLD_MIN_READ:
            return
        self._checked_at = read
        bad = self.ledger.bad()
        if read and bad / read > self.settings.policy.max_bad_fraction:
            raise TooManyBadRecords(
                f"{self.source}: {bad} of {read} records are bad ({bad / read:.1%}), more than max_bad_fraction "
                f"{self.settings.policy.max_bad_fraction:.1%}; see the errors output under "
                f"{self.settings.errors_hint or fsio.join(self.settings.out, 'errors')}/{self.source}/")

    def finish(self) -> SourceLedger:
        self._maybe_check(final=True)
        return self.ledger


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

    def write(self, record: dict) -> None:
        self.records.write(record)
        self._written.inc()

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
    keeper = Ledgerkeeper(name, settings, exclude, output.write, output.write_error, output.write_table,
                          images_root=str(getattr(config, "images", "") or ""), checks=checks)
    pending: list[ImageResult] = []  # image results wait in small batches, so their files are checked together

    def take_pending():
        keeper.take_many(pending)
        pending.clear()
        progress.update(keeper.ledger.images.read)

    started = time.perf_counter()
    # Parsing allocates millions of small acyclic dicts; with the cyclic collector on, its repeated scans of the
    # live batches cost more than the parse itself (measured 2.2x slower on VG). Off for this loop only.
    try:
        with bulk.gc_paused():
            for result in spec.read(config, readers.ReadContext(work_dir=work_dir, source=name)):
                if isinstance(result, ImageResult):
                    pending.append(result)
                    if len(pending) >= CHECK_BATCH:
                        take_pending()
                else:
                    take_pending()
                    keeper.take_batch(result)
                    progress.update(keeper.ledger.images.read)
            take_pending()
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
    """Ingest into a new generation of OUT and switch OUT to it (`rcforge.generations`); returns the manifest.
    ``inputs``: the recipe's `input_fingerprints`, taken before reading (computed here when not given).
    ``force``: write into an OUT that holds other files and no rcforge output (`rcforge.generations.begin`).
    Holds OUT as its writer throughout (`rcforge.generations.writing`)."""
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
