"""The one-screen summary printed at the end of a run."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from rcforge.core.manifest import Manifest


def print_ingest_summary(manifest: Manifest, out: str, file=None) -> None:
    console = Console(file=file or sys.stdout, width=110)
    table = Table(title="rcforge ingest", title_justify="left")
    for col in ("source", "read", "written", "repaired", "rejected", "filtered", "excluded", "objects",
                "bad items", "s"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, entry in manifest.sources.items():
        images = entry.ledger["images"]
        items = entry.ledger["annotations"]
        bad_items = sum(sum(t["rejected"].values()) for t in items.values())
        objects = items.get("object", {})
        table.add_row(
            name, f"{images['read']:,}", f"{images['written']:,}", f"{images['repaired']:,}",
            f"{sum(images['rejected'].values()):,}", f"{sum(images['filtered'].values()):,}",
            f"{sum(images['excluded'].values()):,}",
            f"{objects.get('written', 0) + objects.get('repaired', 0):,}", f"{bad_items:,}",
            f"{entry.seconds:.1f}")
    console.print(table)
    totals = manifest.totals
    status = "balanced" if totals["balanced"] else "NOT BALANCED"
    console.print(f"{totals['records']:,} image records, {totals['errors']:,} error rows; ledger {status}; "
                  f"{manifest.exclusion['coco_ids']:,} COCO ids excluded.")
    reasons = {}
    for name, entry in manifest.sources.items():
        led = entry.ledger
        for kind, tally in [("image", led["images"]), *led["annotations"].items()]:
            for reason, n in tally["rejected"].items():
                reasons[(name, kind, reason)] = reasons.get((name, kind, reason), 0) + n
    if reasons:
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:5]
        console.print("Top rejection reasons: " + "; ".join(f"{s}/{k}: {r} x{n}" for (s, k, r), n in top))
    errors = f"{out}/errors/<source>/" if totals["errors"] else "none (no folder written)"
    console.print(f"Records: {out}/images/<source>/part-*.parquet   errors: {errors}   "
                  f"ledger: {out}/manifest.json")


def print_build_summary(manifest: Manifest, out: str, file=None) -> None:
    console = Console(file=file or sys.stdout, width=110)
    build = manifest.build
    table = Table(title="rcforge build", title_justify="left")
    table.add_column("task")
    table.add_column("dialogues", justify="right")
    for task, n in build.by_task.items():
        table.add_row(task, f"{n:,}")
    console.print(table)
    sources = ", ".join(f"{s} {n:,}" for s, n in build.by_source.items())
    led = build.ledger
    console.print(f"{led['images']:,} image records: {led['images_with_dialogues']:,} with dialogues, "
                  f"{led['images_without_dialogues']:,} with nothing any task could ask, "
                  f"{led['render_errors']:,} failed" + (f" ({out}/errors/render/)" if led['render_errors'] else "")
                  + (f", {led['images_skipped_unpaired']:,} skipped without a bootstrap pair"
                     if led.get("images_skipped_unpaired") else "")
                  + (f", {led['images_rejected_markup']:,} rejected for reserved markup in their text "
                     f"({out}/errors/render/)" if led.get("images_rejected_markup") else ""))
    hard = led.get("hard_negatives")
    if hard:
        filtered = hard["filtered"]
        console.print(f"Hard negatives: {hard['written']:,} written, {sum(filtered.values()):,} not proven and "
                      f"filtered" + (" (" + ", ".join(f"{r} {n:,}" for r, n in sorted(filtered.items())) + ")"
                                     if filtered else "") + ".")
    marked = led.get("visual_prompts")
    if marked:
        filtered = marked["filtered"]
        console.print(f"Visual prompts: {marked['written']:,} dialogues asked with marks (their images in "
                      f"OUT/images_vp/), {sum(filtered.values()):,} asked with coordinates instead"
                      + (" (" + ", ".join(f"{r} {n:,}" for r, n in sorted(filtered.items())) + ")"
                         if filtered else "") + ".")
    if led.get("texts_escaped"):
        console.print(f"{led['texts_escaped']:,} annotation texts held the format's reserved markup: escaped "
                      f"(render.on_markup).")
    if build.bootstrap_pairs:
        info = build.bootstrap_pairs
        decided = info.get("refilter", {})
        console.print(f"Bootstrap pairs: {info['pairs']:,} from {info['from']}"
                      + (f" (lambda {decided['lambda']})" if "lambda" in decided else ""))
    console.print(f"{build.dialogues:,} dialogues in {len(build.shards)} shard(s) ({sources}); coordinates "
                  f"{build.coordinates}, seed {build.seed}"
                  + ("; ingest reused" if build.reused_ingest else "") + ".")
    ingest = "reused" if build.reused_ingest else f"{manifest.seconds:.1f} s"
    console.print(f"Stages: ingest {ingest}, render {build.seconds:.1f} s.")
    console.print(f"Dialogues: {out}/dialogues/   manifest: {out}/manifest.json   "
                  f"LLaVA JSON: rcforge export llava {out} FILE.json")
