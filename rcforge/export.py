"""`rcforge export llava OUT FILE`: dialogue shards -> LLaVA-style JSON (a list) or JSONL (by extension).

Each item is ``{"id", "image", "conversations"}`` (plus ``task`` and ``source``). ``image`` is the image's path
under its source's image root as the manifest records it, or with ``--relative``, ``<source>/<image path>`` for
a training folder laid out one sub-folder per source. Shards are read one batch at a time and items written as
they come, so a corpus of any size exports in bounded memory.
"""

from __future__ import annotations

import json
import sys

import fsspec
import pyarrow.parquet as pq

from rcforge import fsio, images
from rcforge.errors import InputError
from rcforge.manifest import Manifest


def add_arguments(parser) -> None:
    parser.add_argument("format", choices=["llava"], help="output format")
    parser.add_argument("out", help="the build's output folder (holds dialogues/ and manifest.json)")
    parser.add_argument("file", help="a .json file (one list) or a .jsonl file (one item a line)")
    parser.add_argument("--relative", action="store_true", help="image paths as <source>/<path>")


def export_llava(out: str, file: str, *, relative: bool = False) -> int:
    fs, path = fsspec.core.url_to_fs(out)
    roots = Manifest.load(out, "export", "rcforge build").image_roots()
    shards = sorted(fs.glob(fsio.join(path, "dialogues", "part-*.parquet")))
    if not shards:
        raise InputError(f"export: no dialogue shards under {out}/dialogues")
    jsonl = file.endswith(".jsonl")
    n = 0
    skipped: list[str] = []
    with fsspec.open(file, "w", encoding="utf-8") as sink:
        if not jsonl:
            sink.write("[\n")
        for shard in shards:
            with fs.open(shard, "rb") as f:
                for batch in pq.ParquetFile(f).iter_batches(
                        batch_size=4096, columns=["id", "source", "image", "task", "conversations"]):
                    for row in batch.to_pylist():
                        full, refused = images.confine(roots.get(row["source"], ""), row["image"])
                        if refused:  # never pass on a path that leaves the images root
                            skipped.append(f"{row['id']}: {refused}")
                            continue
                        image = f"{row['source']}/{row['image']}" if relative else full
                        item = {"id": row["id"], "image": image, "conversations": row["conversations"],
                                "task": row["task"], "source": row["source"]}
                        text = json.dumps(item, ensure_ascii=False)
                        if jsonl:
                            sink.write(text + "\n")
                        else:
                            sink.write(("" if n == 0 else ",\n") + text)
                        n += 1
        if not jsonl:
            sink.write("\n]\n")
    if skipped:
        print(f"export: left out {len(skipped)} dialogue(s) whose image path leaves the images root, e.g. "
              f"{skipped[0]}", file=sys.stderr)
    return n


def main(args, rest) -> None:
    n = export_llava(args.out, args.file, relative=args.relative)
    print(f"wrote {n:,} dialogues to {args.file}")
