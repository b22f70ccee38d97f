"""The bootstrap pipeline: describe each selected box, ground the description again, write every candidate.

    image records -> select boxes -> RunInference(describe) -> parse -> RunInference(ground) -> parse -> IoU
      -> OUT/bootstrap/candidates/part-RRR-CCCCC.parquet -> decide (lambda) -> OUT/bootstrap/pairs/

Every candidate is written with its IoU, the best IoU with another box of the same category, format-error flag,
raw replies, backend, model id/revision, template ids and seed, so another lambda is `rcforge refilter`, never a
second GPU run. Resumable by image key: shards are written atomically, a rerun skips the images already in
candidate shards and writes its own shards (run RRR), so a killed run loses nothing that was written and
duplicates nothing. A box whose model call failed (its batch raised: out of memory, a CUDA error) is written as a
candidate with error stage "model", counted apart from format errors, and its image is done again, whole, by the
next run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import zlib
from dataclasses import dataclass

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.ml.inference.base import RunInference

from rcforge import schemas
from rcforge.bootstrap.decide import IMAGE_FAILED, MODEL_FAILED
from rcforge.bootstrap.handlers import BootstrapStage
from rcforge.bootstrap.options import BootstrapOptions
from rcforge.bootstrap.pairs import STATE, read_state
from rcforge.bootstrap.selection import SelectionConfig, score, select
from rcforge.core import fsio, outlock
from rcforge.core.errors import InputError
from rcforge.core.manifest import Manifest
from rcforge.core.progress import Progress, beacon, flush_beacons, read_counts, watching
from rcforge.pipelines.build import read_row_group, row_groups
from rcforge.pipelines.ingest import run_pipeline
from rcforge.pipelines.refilter import refilter


@dataclass(frozen=True)
class BootstrapSettings:
    """The pipeline's slice: the recipe's ``bootstrap`` options as they are (sources, box selection, λ,
    uniqueness), the recipe's seed, and how the work is split."""

    options: BootstrapOptions = BootstrapOptions()
    seed: int = 0
    chunks: int = 16
    #: only these image keys (all when None)
    only_keys: frozenset | None = None


def state_of(describe: BootstrapStage, ground: BootstrapStage, settings: BootstrapSettings,
             ingest_fingerprint: str | None) -> dict:
    """What the candidates of OUT depend on (not λ or uniqueness, which `refilter` changes): the models, their
    prompts, the box selection, the seed and the ingest. A resumed run must match it."""
    return {"describe": {"backend": describe.backend, "model": describe.model_id, "revision": describe.revision,
                         "template": describe.template_id},
            "ground": {"backend": ground.backend, "model": ground.model_id, "revision": ground.revision,
                       "template": ground.template_id},
            "selection": dataclasses.asdict(settings.options.selection), "sources": sorted(settings.options.sources),
            "seed": settings.seed, "ingest": ingest_fingerprint}


def state_key(state: dict) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]


def claim_state(out: str, state: dict) -> None:
    """Record what this run's candidates depend on; refuse to add to candidates made with other inputs (a
    resumed run skips the images already done, so mixing would serve an older model's candidates silently)."""
    fs, path = fsspec.core.url_to_fs(out)
    state = json.loads(json.dumps(state, default=str))  # as it reads back from the file
    has_candidates = bool(fs.glob(fsio.join(path, "bootstrap", "candidates", "part-*.parquet")))
    previous = read_state(out)
    previous.pop("key", None)
    if has_candidates and previous != state:
        if not previous:
            raise InputError(f"bootstrap: {out}/bootstrap/candidates has no record of the model and settings "
                             f"that made it; use another OUT, or remove {out}/bootstrap to start again")
        changed = sorted(k for k in set(state) | set(previous) if state.get(k) != previous.get(k))
        raise InputError(f"bootstrap: {out}/bootstrap/candidates were made with other {', '.join(changed)} "
                         f"({json.dumps({k: previous.get(k) for k in changed}, default=str)[:300]}); a rerun "
                         f"would mix them with this run's: use another OUT, or remove {out}/bootstrap")
    fs.makedirs(fsio.join(path, "bootstrap"), exist_ok=True)
    fsio.write_json(fs, fsio.join(path, "bootstrap", STATE), {**state, "key": state_key(state)})


def done_keys(out: str) -> set[str]:
    """The image keys whose candidates are written, for a rerun to skip. An image with a candidate whose model
    call failed is not done: its candidates are taken out of their shard (rewritten atomically) and the rerun
    does the image again, whole, so a transient failure costs a rerun, not the image."""
    fs, path = fsspec.core.url_to_fs(out)
    keys: set[str] = set()
    for shard in fs.glob(fsio.join(path, "bootstrap", "candidates", "part-*.parquet")):
        with fs.open(shard, "rb") as f:
            table = pq.read_table(f, schema=schemas.CANDIDATE)
        failed = set(table.filter(pc.equal(table.column("error_stage"), MODEL_FAILED)).column("key").to_pylist())
        if failed:
            table = table.filter(pc.invert(pc.is_in(table.column("key"), pa.array(sorted(failed), pa.string()))))
            if table.num_rows:
                fsio.write_parquet(fs, shard, table)
            else:
                fs.rm(shard)
        keys.update(table.column("key").to_pylist())
    return keys


def _run_number(out: str) -> int:
    """One more than the highest run number among the candidate shards (0 for the first run)."""
    fs, path = fsspec.core.url_to_fs(out)
    runs = [int(p.rsplit("/", 1)[-1].split("-")[1]) for p in fs.glob(fsio.join(path, "bootstrap", "candidates",
                                                                               "part-*.parquet"))]
    return max(runs, default=-1) + 1


def candidate(request: dict, description, raw_describe, predicted, raw_ground, error_stage, describe, ground,
              seed) -> dict:
    own, other = score(request, predicted)
    return {
        "key": request["key"], "source": request["source"], "image": request["image"],
        "width": request["width"], "height": request["height"], "object_id": request["object_id"],
        "category": request["category"], "box": request["box"], "sample": request["sample"],
        "description": description, "predicted_box": predicted, "iou": own, "other_iou": other,
        "format_error": error_stage is not None, "error_stage": error_stage, "raw_describe": raw_describe,
        "raw_ground": raw_ground, "backend": describe.backend, "model_id": describe.model_id,
        "model_revision": describe.revision, "describe_template": describe.template_id,
        "ground_template": ground.template_id, "seed": seed,
    }


def _request_of(element) -> dict:
    """The request dict of a dead-letter element (a request, or a (request, image) pair)."""
    return element[0] if isinstance(element, tuple) else element


def _error_text(err) -> str:
    """The dead-letter error as one line for the candidate's raw reply column. Beam's dead letters carry
    (exception class, repr of the exception, traceback lines): the repr alone is kept, as the traceback names
    the runner's own frames and would make the same failure read differently on another runner."""
    if isinstance(err, BaseException):
        return f"<failed> {type(err).__name__}: {err}"[:500]
    if isinstance(err, (tuple, list)) and len(err) >= 2 and isinstance(err[1], str):
        return f"<failed> {err[1]}"[:500]
    return f"<failed> {str(err).strip().splitlines()[-1] if str(err).strip() else err}"[:500]


def _write_chunk(out: str, run: int, chunk: int, rows) -> str:
    fs, path = fsspec.core.url_to_fs(out)
    folder = fsio.join(path, "bootstrap", "candidates")
    fs.makedirs(folder, exist_ok=True)
    rows = sorted(rows, key=lambda r: (r["key"], r["object_id"], r["sample"]))
    name = f"part-{run:03d}-{chunk:05d}.parquet"
    final = fsio.join(folder, name)
    fsio.write_parquet(fs, final, pa.Table.from_pylist(rows, schema=schemas.CANDIDATE))
    return final


def _selected(record: dict, selection: SelectionConfig, seed: int, beacons: str) -> list[dict]:
    """`select`, counted for the progress line."""
    requests = select(record, selection, seed)
    beacon(beacons).add("boxes selected", len(requests))
    return requests


def _run_watched(stage, beam_args, test_pipeline, beacons: str, progress: bool) -> None:
    """Run the pipeline with a progress line summed from the workers' beacons, which are removed afterwards."""
    line = Progress("bootstrap", enabled=progress, unit="grounded")
    try:
        with watching(line, lambda: read_counts(beacons)):
            run_pipeline(stage, beam_args, test_pipeline)
            flush_beacons()  # the in-process runner's last counts, for the stage's final line
    finally:
        fs, path = fsspec.core.url_to_fs(beacons)
        if fs.exists(path):
            fs.rm(path, recursive=True)


def _ingested(out: str, settings: BootstrapSettings) -> tuple[Manifest, list[str]]:
    """OUT's manifest and the image-record parts of the sources to bootstrap, or an `InputError` naming the
    sources OUT lacks."""
    manifest = Manifest.load(out, "bootstrap", "rcforge ingest")
    missing = [s for s in settings.options.sources if s not in manifest.sources]
    if missing:
        raise InputError(f"bootstrap: {out} has no image records for {', '.join(missing)}")
    return manifest, sorted(manifest.part_paths(fsspec.core.url_to_fs(out)[1], settings.options.sources))


def run_bootstrap(out: str, describe: BootstrapStage, ground: BootstrapStage, settings: BootstrapSettings, *,
                  beam_args=None, test_pipeline=None, progress: bool = True) -> dict:
    """Describe, ground and write every candidate, then decide the pairs for λ; returns the summary, with each
    stage's own seconds. Progress (boxes selected, described, grounded, failed) comes from the workers' beacons."""
    started = time.perf_counter()
    manifest, parts = _ingested(out, settings)
    claim_state(out, state_of(describe, ground, settings, manifest.ingest_fingerprint))
    skip = frozenset(done_keys(out))
    run = _run_number(out)
    seed, chunks = settings.seed, settings.chunks
    beacons = fsio.join(out, "bootstrap", f".progress-{run:03d}")

    def after_describe(result):
        beacon(beacons).add("described")
        request, raw = result.example, result.inference
        description = describe.parse(raw, request)
        if description is None:
            return beam.pvalue.TaggedOutput("failed", candidate(request, None, raw, None, None, "describe",
                                                                describe, ground, seed))
        return {**request, "description": description, "raw_describe": raw}

    def dead_letters(dlq, stage_name: str):
        """The requests a stage could not run (an image that does not read, a batch the model failed on), as
        candidates with their error: every selected box is accounted for."""
        failed_records = [p | f"{stage_name}Unreadable{i}" >> beam.Map(lambda pair: (pair[0], IMAGE_FAILED, pair[1]))
                          for i, p in enumerate(dlq.failed_preprocessing)]
        failed_batches = (dlq.failed_inferences
                          | f"{stage_name}FailedBatches" >> beam.FlatMap(
                              lambda pair: [(r, MODEL_FAILED, pair[1]) for r in pair[0]]))
        return ((*failed_records, failed_batches)
                | f"{stage_name}DeadLetters" >> beam.Flatten()
                | f"{stage_name}AsCandidates" >> beam.MapTuple(failed_candidate))

    def failed_candidate(element, where: str, err):
        beacon(beacons).add("failed")
        request, text = _request_of(element), _error_text(err)
        if "raw_describe" in request:  # it failed in the ground stage, after a description
            return candidate(request, request["description"], request["raw_describe"], None, text, where,
                             describe, ground, seed)
        return candidate(request, None, text, None, None, where, describe, ground, seed)

    def after_ground(result):
        beacon(beacons).add("grounded")
        request, raw = result.example, result.inference
        box = ground.parse(raw, request)
        return candidate(request, request["description"], request["raw_describe"], box, raw,
                         None if box is not None else "ground", describe, ground, seed)

    def stage(p):
        requests = (p
                    | "PartPaths" >> beam.Create(parts)
                    | "RowGroups" >> beam.FlatMap(row_groups)
                    | "Spread" >> beam.Reshuffle()
                    | "Records" >> beam.FlatMap(read_row_group)
                    | "NotDoneYet" >> beam.Filter(lambda r, only=settings.only_keys: r["key"] not in skip
                                                  and (only is None or r["key"] in only))
                    | "SelectBoxes" >> beam.FlatMap(_selected, settings.options.selection, seed, beacons))
        described_raw, describe_dlq = requests | "Describe" >> RunInference(describe).with_exception_handling()
        described = described_raw | "ParseDescription" >> beam.Map(after_describe).with_outputs("failed", main="ok")
        grounded_raw, ground_dlq = described.ok | "Ground" >> RunInference(ground).with_exception_handling()
        grounded = grounded_raw | "ParseBox" >> beam.Map(after_ground)
        return ((grounded, described.failed, dead_letters(describe_dlq, "Describe"),
                 dead_letters(ground_dlq, "Ground"))
                | "Candidates" >> beam.Flatten()
                | "ByImageChunk" >> beam.Map(lambda c: (zlib.crc32(c["key"].encode()) % chunks, c))
                | "GroupChunks" >> beam.GroupByKey()
                | "WriteCandidates" >> beam.MapTuple(lambda chunk, rows: _write_chunk(out, run, chunk, list(rows))))

    with outlock.writing(out, "rcforge bootstrap"):
        _run_watched(stage, beam_args, test_pipeline, beacons, progress)
    models_seconds = time.perf_counter() - started
    summary = refilter(out, settings.options.lam, uniqueness=settings.options.uniqueness)
    summary["skipped_images_already_done"] = len(skip)
    summary["run"] = run
    summary["stage_seconds"] = {"describe_and_ground": round(models_seconds, 3), "refilter": summary.pop("seconds")}
    return summary
