"""Drawing visual prompts, against a bare Pillow loop on the same images.

    python bench/bench_marks.py [--images 200] [--marks 2]

Both loops run in this one process (images per second per core) over the bundled real photos (VG 1 and 2, 800x600;
the COCO image of VQAv2, 640x480), each loop on the same files in the same order:
- "pillow": open and decode the file, draw ``--marks`` rectangle outlines with ImageDraw, encode PNG (the same
  settings as rcforge: compress_level 6);
- "rcforge": open and decode, then `rcforge.core.visual_prompts.place`: choose each mark's shape and colour, check it
  is legible (inside, cover, contrast, overlap), draw the marks and encode the PNG with its sha256.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from pathlib import Path

from PIL import Image, ImageDraw

from rcforge.core import visual_prompts

REPO = Path(__file__).resolve().parents[1]
PHOTOS = [REPO / "sample_data/visual_genome/images/1.jpg", REPO / "sample_data/visual_genome/images/2.jpg",
          REPO / "sample_data/vqav2/images/COCO_train2014_000000458752.jpg"]


def _objects(size, n, rng):
    w, h = size
    out = []
    for k in range(n):
        x1, y1 = rng.uniform(0.05, 0.6) * w, rng.uniform(0.1, 0.6) * h
        out.append({"id": k, "ref": f"object:{k}", "box": (x1, y1, x1 + rng.uniform(0.15, 0.3) * w,
                                                         y1 + rng.uniform(0.15, 0.3) * h), "mask": None})
    return out


def pillow(paths, n_marks):
    rng = random.Random(0)
    for path in paths:
        image = Image.open(path).convert("RGB")
        pen = ImageDraw.Draw(image)
        for obj in _objects(image.size, n_marks, rng):
            pen.rectangle(obj["box"], outline=(230, 25, 75), width=4)
        image.save(io.BytesIO(), format="PNG", compress_level=6)


def rcforge(paths, n_marks):
    rng = random.Random(0)
    settings = visual_prompts.VisualPromptSettings(shapes=("number", "box", "ellipse", "arrow"))
    written = 0
    for path in paths:
        image = Image.open(path).convert("RGB")
        placed = visual_prompts.place(image, _objects(image.size, n_marks, rng), settings, rng)
        written += not isinstance(placed, str)
    return written


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--marks", type=int, default=2)
    args = ap.parse_args()
    paths = [PHOTOS[i % len(PHOTOS)] for i in range(args.images)]
    results = {}
    for name, loop in (("pillow", pillow), ("rcforge", rcforge)):
        loop(paths[:3], args.marks)  # warm: imports, fonts
        started = time.process_time()
        extra = loop(paths, args.marks)
        seconds = time.process_time() - started
        results[name] = {"cpu_seconds": round(seconds, 2), "images_per_s_per_core": round(len(paths) / seconds, 1)}
        if name == "rcforge":
            results[name]["marked"] = extra
    results["rcforge_vs_pillow"] = round(results["rcforge"]["images_per_s_per_core"]
                                         / results["pillow"]["images_per_s_per_core"], 2)
    print(json.dumps({"images": args.images, "marks": args.marks, **results}, indent=1))


if __name__ == "__main__":
    main()
