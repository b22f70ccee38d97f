"""`rcforge build RECIPE --out OUT`: ingest (or reuse it), then render dialogues into balanced Parquet shards.

Layout written (besides ingest's)::

    OUT/dialogues/part-NNNNN-of-MMMMM.parquet   dialogues (rcforge.schemas.DIALOGUE), sorted by id in a shard
    OUT/manifest.json                           + a "build" section: render settings, template hashes, counts

The Beam pipeline starts from the image-record part paths (a handful of elements) and expands with FlatMap
into row groups (one per batch ingest wrote: 500 to 1,000 images each, spread over the workers); each row
group's records are rendered (pure, seeded per record) and their dialogues written as one fragment per shard (shard = a
hash of the dialogue id, one of M); only (shard, fragment) pairs are grouped, and each shard's fragments are merged,
sorted by id and written atomically. Shard assignment is a function of the id and
rows are sorted within a shard, so any runner with any number of workers writes the same files.

Like ingest, a build writes a new output generation (`rcforge.core.generations`): shards, render errors and (unless
reused) the ingest are staged and OUT switches over only at the end, so a failed or killed build leaves the
previous output whole.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import zlib

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from rcforge import rc_tasks, readers, schemas
from rcforge.bootstrap.pairs import PairIndex, check_fresh
from rcforge.bootstrap.pairs import summary as bootstrap_pairs_summary
from rcforge.core import bulk, fsio, generations, visual_prompts
from rcforge.core.config import resolve_path
from rcforge.core.errors import InputError, RecipeError, TooManyBadRecords
from rcforge.core.ledger import ErrorRow
from rcforge.core.manifest import IMAGES_WITHOUT_DIALOGUES, BuildSection, Manifest
from rcforge.core.progress import Progress, read_counts, watching
from rcforge.pipelines import runners
from rcforge.pipelines.ingest import ingest_into, run_pipeline
from rcforge.pipelines.summary import print_build_summary, print_ingest_summary
from rcforge.recipe.tree import Recipe, load_recipe
from rcforge.render import coordinates, markup
from rcforge.render.renderer import Renderer
from rcforge.render.templating import TemplateStallError


def shard_of(dialogue_id: str, shards: int) -> int:
    return zlib.crc32(dialogue_id.encode()) % shards


def shard_name(index: int, shards: int) -> str:
    return f"part-{index:05d}-of-{shards:05d}.parquet"


def row_groups(path: str):
    """(path, row group) work items: a part's row groups are the batches ingest wrote (500 to 1,000 images)."""
    with fsspec.open(path, "rb") as f:
        n = pq.ParquetFile(f).metadata.num_row_groups
    return [(path, i) for i in range(n)]


def read_row_group(item):
    path, index = item
    with fsspec.open(path, "rb") as f:
        table = pq.ParquetFile(f).read_row_group(index)
    with bulk.gc_paused():
        records = table.to_pylist()
    yield from records


def write_shard(out_dir: str, index: int, shards: int, rows: list[dict]) -> tuple[str, int]:
    """One final shard from rows (sorted by id here)."""
    table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["id"]), schema=schemas.DIALOGUE)
    fs, path = fsspec.core.url_to_fs(out_dir)
    fs.makedirs(path, exist_ok=True)
    final = fsio.join(path, shard_name(index, shards))
    fsio.write_parquet(fs, final, table)
    return final, table.num_rows


#: the build ledger: images = with dialogues + without dialogues + render errors + skipped for want of a pair +
#: rejected for reserved markup in their text (``on_markup: reject``); ``texts_escaped`` counts annotation texts
#: whose reserved markup was escaped (`rcforge.render.markup`)
LEDGER_KEYS = ("images", "images_without_dialogues", "dialogues", "render_errors", "images_skipped_unpaired",
               "images_rejected_markup", "texts_escaped")


#: the ledger's tallies of written and filtered attempts, {"written": n, "filtered": {reason: n}}, present when
#: any was tried: hard negatives (`rcforge.rc_tasks.hard_negatives`) and dialogues asked with marks
#: (`rcforge.core.visual_prompts`; filtered: asked with coordinates instead); fragments count each outcome under
#: "<tally>:<outcome>"
HARD_NEGATIVES = "hard_negatives"
VISUAL_PROMPTS = "visual_prompts"
TALLIES = (HARD_NEGATIVES, VISUAL_PROMPTS)


def _fold_tallies(ledger: dict) -> None:
    for tally in TALLIES:
        outcomes = {k.split(":", 1)[1]: ledger.pop(k) for k in sorted(ledger) if k.startswith(f"{tally}:")}
        if outcomes:
            written = outcomes.pop("written", 0)
            ledger[tally] = {"written": written, "filtered": outcomes}


class RenderRowGroupFn(beam.DoFn):
    """Render the records of one row group and write their dialogues as one fragment per shard.

    Dialogues never cross the shuffle: each fragment is written where it is rendered, under a name that is a
    function of the row group (so a retried or rerun bundle overwrites, never duplicates), and only
    (shard, fragment path) pairs are grouped.
    """

    def __init__(self, renderer: Renderer, dialogues_dir: str, errors_dir: str, shards: int, pairs=None):
        self.renderer, self.dialogues_dir, self.errors_dir, self.shards = renderer, dialogues_dir, errors_dir, shards
        self.pairs = pairs  # rcforge.bootstrap.pairs.PairIndex: kept bootstrap pairs added to the records' refs
        self.dialogues = Metrics.counter("rcforge.build", "dialogues")
        self.images = Metrics.counter("rcforge.build", "images")
        self.failures = Metrics.counter("rcforge.build", "render_errors")

    def setup(self):
        if self.pairs is not None:
            self.pairs.load()

    def process(self, item):
        path, index = item
        by_shard: dict[int, list[dict]] = {}
        ledger = dict.fromkeys(LEDGER_KEYS, 0)
        errors = []
        with bulk.gc_paused():  # a row group is a bounded unit of work (see rcforge.core.bulk)
            self._render(item, by_shard, ledger, errors)
        fs, root = fsspec.core.url_to_fs(self.dialogues_dir)
        tag = f"{zlib.crc32(path.encode()):08x}-{index:05d}"
        ledger_dir = fsio.join(root, "_fragments", "ledger")
        fs.makedirs(ledger_dir, exist_ok=True)
        fsio.write_json(fs, fsio.join(ledger_dir, f"{tag}.json"), ledger)
        if errors:
            efs, eroot = fsspec.core.url_to_fs(self.errors_dir)
            efs.makedirs(eroot, exist_ok=True)
            fsio.write_parquet(efs, fsio.join(eroot, f"{tag}.parquet"),
                               pa.Table.from_pylist(errors, schemas.ERROR_RECORD))
        for shard, rows in sorted(by_shard.items()):
            folder = fsio.join(root, "_fragments", f"{shard:05d}")
            fs.makedirs(folder, exist_ok=True)
            fragment = fsio.join(folder, f"{tag}.parquet")
            fsio.write_parquet(fs, fragment, pa.Table.from_pylist(rows, schema=schemas.DIALOGUE))
            yield shard, fragment

    def _render(self, item, by_shard: dict, ledger: dict, errors: list) -> None:
        """The row group's records rendered: dialogues by shard, the ledger counted, render errors collected."""
        path, index = item
        for record in read_row_group(item):
            self.images.inc()
            ledger["images"] += 1
            if self.pairs is not None:
                record = self.pairs.attach(record)
                if record is None:  # its source renders only images with a kept pair
                    ledger["images_skipped_unpaired"] += 1
                    continue
            escaped = self.renderer.escaped
            before = {tally: dict(getattr(self.renderer, tally)) for tally in TALLIES}
            try:
                dialogues = list(self.renderer.dialogues(record))
            except TemplateStallError:
                raise  # the build's end, not a record's error: it would depend on the machine's load
            except markup.ReservedMarkup as err:  # the recipe's policy, not a failure: counted apart
                ledger["images_rejected_markup"] += 1
                errors.append(ErrorRow(record["source"], record["key"], path, f"row group {index}", "", "render",
                                       "image", "reserved_markup", str(err)[:500]).row())
                continue
            except Exception as err:  # dead letter: the record, stage and reason go to OUT/errors/render
                self.failures.inc()
                ledger["render_errors"] += 1
                errors.append(ErrorRow(record["source"], record["key"], path, f"row group {index}", "", "render",
                                       "image", type(err).__name__, str(err)[:500]).row())
                continue
            ledger["texts_escaped"] += self.renderer.escaped - escaped
            for tally, was in before.items():
                for outcome, n in getattr(self.renderer, tally).items():
                    if n > was.get(outcome, 0):
                        key = f"{tally}:{outcome}"
                        ledger[key] = ledger.get(key, 0) + n - was.get(outcome, 0)
            if not dialogues:
                ledger["images_without_dialogues"] += 1
            for dialogue in dialogues:
                self.dialogues.inc()
                ledger["dialogues"] += 1
                png = dialogue.pop(visual_prompts.PNG_KEY, None)
                if png is not None:
                    self._write_marked(dialogue["image_vp"], png)
                by_shard.setdefault(shard_of(dialogue["id"], self.shards), []).append(dialogue)

    def _write_marked(self, image_vp: str, png: bytes) -> None:
        """A marked image, under the generation's folder, once: its name is its content's hash, so any worker
        that writes it writes the same bytes (atomically)."""
        fs, root = fsspec.core.url_to_fs(fsio.join(os.path.dirname(self.dialogues_dir.rstrip("/")), image_vp))
        if not fs.exists(root):
            fs.makedirs(os.path.dirname(root), exist_ok=True)
            with fsio.atomic_write(fs, root, "wb") as f:
                f.write(png)


def merge_fragments(dialogues_dir: str, index: int, shards: int, fragments) -> tuple[str, int]:
    """The final shard: every fragment of it, sorted by id, written atomically; fragments removed."""
    fs, root = fsspec.core.url_to_fs(dialogues_dir)
    tables = []
    for fragment in sorted(fragments):
        with fs.open(fragment, "rb") as f:
            tables.append(pq.read_table(f, schema=schemas.DIALOGUE))
    table = pa.concat_tables(tables) if tables else schemas.DIALOGUE.empty_table()
    table = table.sort_by("id")  # byte order of UTF-8 = code point order = Python's sorted()
    final = fsio.join(root, shard_name(index, shards))
    fsio.write_parquet(fs, final, table)
    for fragment in fragments:
        fs.rm(fragment)
    return final, table.num_rows


def estimate_dialogues(manifest: Manifest, recipe: Recipe, pairs: int = 0) -> int:
    """An upper-end estimate from the ingest ledger, to choose the number of shards up front: ``per_image`` per
    image, plus one dialogue per annotation for each task that enumerates that annotation kind (what a task
    enumerates is its own: `TaskSpec.enumerate_needs`), each kept bootstrap pair as a ref, and with visual prompts'
    ``both`` a marked twin of up to ``rate`` of them."""
    render = recipe.render
    enumerating = [rc_tasks.get(name) for name, choice in render.tasks.items() if choice.weight > 0
                   and rc_tasks.get(name).enumerate is not None]
    total = 0.0
    for name, entry in manifest.sources.items():
        provided = readers.get(name).provides
        total += entry.records * render.per_image * render.source_weights.get(name, 1.0)
        for spec in enumerating:
            if not spec.enumerates(provided):
                continue
            for need in spec.enumerate_needs:
                tally = entry.ledger["annotations"].get(readers.LEDGER_ITEMS.get(need, need)) or {}
                total += tally.get("written", 0) + tally.get("repaired", 0)
    total += pairs * sum(1 for spec in enumerating if "refs" in spec.enumerate_needs)
    if render.visual_prompts is not None and render.visual_prompts.both:
        total *= 1 + render.visual_prompts.rate
    return int(total)


def build(recipe: Recipe, out: str, *, beam_args=None, progress=True, reuse_ingest=True, test_pipeline=None,
          force: bool = False):
    """Ingest (or reuse OUT's ingest), render, and switch OUT to the new generation (`rcforge.core.generations`):
    a failed or killed build leaves the previous output whole. Returns the manifest. ``force``: write into an OUT
    that holds other files and no rcforge output (`rcforge.core.generations.begin`). Holds OUT as its writer
    throughout (`rcforge.core.generations.writing`)."""
    with generations.writing(out, "rcforge build", force=force):
        return _build(recipe, out, beam_args=beam_args, progress=progress, reuse_ingest=reuse_ingest,
                      test_pipeline=test_pipeline, force=force)


def _build(recipe: Recipe, out: str, *, beam_args, progress, reuse_ingest, test_pipeline, force):
    generation = generations.begin(out, force=force)
    try:
        inputs = recipe.input_fingerprints()  # read once: every file's size, mtime and sampled hash
        fingerprint = recipe.ingest_fingerprint(inputs)
        manifest = _reusable_ingest(out, fingerprint, inputs) if reuse_ingest else None
        reused = manifest is not None
        if manifest is None:
            manifest = ingest_into(recipe, generation, beam_args=beam_args, progress=progress, inputs=inputs)
        section = render(recipe, manifest, out if reused else generation.root, generation, beam_args=beam_args,
                         test_pipeline=test_pipeline, progress=progress)
        manifest = manifest.with_build(dataclasses.replace(section, reused_ingest=reused),
                                       ingest_fingerprint=fingerprint)
        ledger = section.ledger
        failed, images = ledger["render_errors"], max(1, ledger["images"])
        if failed and (recipe.on_bad_records == "error" or failed / images > recipe.max_bad_fraction):
            generation.keep_manifest(manifest.to_json())  # for the user, in OUT/last-failed-run/
            raise TooManyBadRecords(f"render: {failed} of {ledger['images']} image records failed to render; see "
                                    f"{generation.errors_hint('render')}/ (the previous output is left as it was)")
        generation.commit(manifest.to_json(), replaces=("dialogues", "errors/render", visual_prompts.FOLDER)
                          if reused else ("images", "errors", "dialogues", visual_prompts.FOLDER))
    except BaseException as err:
        generation.abandon("build", err)
        raise
    return dataclasses.replace(manifest, generation=generation.number)


def _reusable_ingest(out: str, fingerprint: str, inputs: dict) -> Manifest | None:
    """OUT's manifest when its ingest was made from these inputs and settings and its parts are all there."""
    try:
        previous = Manifest.load(out, "build")
    except InputError:
        return None  # no manifest, or one that does not read: ingest again
    fs, out_path = fsspec.core.url_to_fs(out)
    same_schema = previous.schema.get("image_record") == schemas.SCHEMA_VERSION  # records of an older rcforge
    if (previous.ingest_fingerprint == fingerprint and same_schema
            and all(fs.exists(p) for p in previous.part_paths(out_path))):
        return dataclasses.replace(previous, build=None)
    if previous.ingest_fingerprint:
        changed = sorted(p for p, fp in inputs.items() if previous.inputs.get(p) != fp)
        print("inputs changed: re-ingesting" + (f" ({', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''})"
                                                 if changed else ""), file=sys.stderr)
    return None


def render(recipe: Recipe, manifest: Manifest, records_root: str, generation, *, beam_args=None,
           test_pipeline=None, progress: bool = True) -> BuildSection:
    """Render the image records the manifest lists (under ``records_root``) into the generation's dialogue
    shards; returns the manifest's build section. Progress (images rendered, dialogues, rate, ETA) is read from
    the row groups' ledger files, which every worker writes where the driver reads them."""
    renderer = Renderer(recipe.render, recipe.seed, manifest.image_roots())
    pairs = None
    if recipe.render.bootstrap_pairs is not None:
        check_fresh(recipe.render.bootstrap_pairs.folder)  # pairs decided from the candidates as they are now
        pairs = PairIndex(recipe.render.bootstrap_pairs)
    shards = max(1, math.ceil(estimate_dialogues(manifest, recipe, len(pairs) if pairs else 0)
                              / recipe.render.rows_per_shard))
    parts = manifest.part_paths(records_root)
    dialogues_dir = fsio.join(generation.root, "dialogues")
    errors_dir = fsio.join(generation.root, "errors", "render")
    dfs, dpath = fsspec.core.url_to_fs(dialogues_dir)
    started = time.perf_counter()

    def stage(pipeline):
        return (pipeline
                | "PartPaths" >> beam.Create(sorted(parts))
                | "RowGroups" >> beam.FlatMap(row_groups)
                | "SpreadRowGroups" >> beam.Reshuffle()
                | "RenderToFragments" >> beam.ParDo(RenderRowGroupFn(renderer, dialogues_dir, errors_dir, shards,
                                                                           pairs))
                | "GroupFragments" >> beam.GroupByKey()
                | "MergeShards" >> beam.MapTuple(
                    lambda i, fragments, n=shards: merge_fragments(dialogues_dir, i, n, list(fragments))))

    ledger_dir = fsio.join(dialogues_dir, "_fragments", "ledger")

    def rendered() -> dict[str, int]:
        counts = read_counts(ledger_dir)
        return {"images": counts.get("images", 0), "dialogues": counts.get("dialogues", 0)}

    with watching(Progress("render", enabled=progress, total=manifest.records()), rendered):
        run_pipeline(stage, beam_args, test_pipeline)
    # shards that received no dialogue are written empty, so the -of- series is complete
    written = {p.rsplit("/", 1)[-1] for p in dfs.glob(fsio.join(dpath, "part-*.parquet"))}
    for i in range(shards):
        if shard_name(i, shards) not in written:
            write_shard(dialogues_dir, i, shards, [])
    ledger = dict.fromkeys(LEDGER_KEYS, 0)
    for path in dfs.glob(fsio.join(dpath, "_fragments", "ledger", "*.json")):
        with dfs.open(path) as f:
            for k, v in json.load(f).items():
                ledger[k] = ledger.get(k, 0) + v
    _fold_tallies(ledger)
    if dfs.exists(fsio.join(dpath, "_fragments")):
        dfs.rm(fsio.join(dpath, "_fragments"), recursive=True)
    counts = _counts(dfs, dpath)
    ledger["images_with_dialogues"] = ledger["images"] - sum(ledger[k] for k in IMAGES_WITHOUT_DIALOGUES)
    ledger["balanced"] = ledger["dialogues"] == counts["total"] and ledger["images"] == manifest.records()
    return BuildSection(
        coordinates=recipe.render.coordinates,
        coordinate_params=coordinates.get(recipe.render.coordinates, recipe.render.frame).params,
        seed=recipe.seed,
        templates={"root": renderer.templates.root, "sha256": renderer.templates.hashes},
        bootstrap_pairs=None if pairs is None else {
            **bootstrap_pairs_summary(recipe.render.bootstrap_pairs.folder), "pairs": len(pairs),
            "only_paired_sources": list(recipe.render.bootstrap_pairs.only_paired_sources)},
        shards=tuple(shard_name(i, shards) for i in range(shards)),
        dialogues=counts["total"],
        ledger=ledger,
        by_task=counts["by_task"],
        by_source=counts["by_source"],
        seconds=round(time.perf_counter() - started, 3))


def _counts(fs, dpath) -> dict:
    by_task, by_source, total = {}, {}, 0
    for path in sorted(fs.glob(fsio.join(dpath, "part-*.parquet"))):
        with fs.open(path, "rb") as f:
            table = pq.read_table(f, columns=["task", "source"])
        total += table.num_rows
        for col, out in (("task", by_task), ("source", by_source)):
            for value, n in zip(*_value_counts(table.column(col))):
                out[value] = out.get(value, 0) + n
    return {"total": total, "by_task": dict(sorted(by_task.items())), "by_source": dict(sorted(by_source.items()))}


def _value_counts(column):
    vc = column.value_counts()
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()


def main(args, beam_args, *, test_pipeline=None) -> Manifest:
    recipe = load_recipe(args.recipe)
    overrides = {}
    if args.templates:
        overrides["templates"] = resolve_path(args.templates, None)
        if not fsio.exists(overrides["templates"]):
            raise RecipeError(f"--templates: {overrides['templates']} does not exist")
    if args.coordinates:
        overrides["coordinates"] = coordinates.canonical(args.coordinates)
    if overrides:
        recipe = dataclasses.replace(recipe, render=dataclasses.replace(recipe.render, **overrides))
    with runners.beam_options(beam_args, args.workers) as options:  # one cluster for the ingest and the render
        manifest = build(recipe, args.out, beam_args=options, progress=not args.no_progress,
                         reuse_ingest=not args.fresh_ingest, test_pipeline=test_pipeline, force=args.force)
    if not manifest.build.reused_ingest:
        print_ingest_summary(manifest, args.out, file=sys.stdout)
    print_build_summary(manifest, args.out, file=sys.stdout)
    return manifest
