"""Image checks at ingest (`rcforge.core.images`): JPEG headers (and full decodes) checked per second.

    python bench/bench_images.py --images 4000 --out bench/data/jpeg

Writes ``--images`` JPEGs of COCO-like sizes (640x480 .. 500x375, quality 90, a gradient so the files have real
entropy), then times `rcforge.core.images.check` over all of them:
- one thread (one core): the per-core rate the issue asks for (>= 2,000 headers/s);
- `check_many` through a pool of ``images.THREADS`` threads, which ingest uses for ``decode`` and for object
  stores (`rcforge.core.images.wants_pool`), not for local headers, where it is slower than one thread.
The files are read once before timing, so every mode sees a warm page cache (a cold network store is slower and
is where the thread pool helps most).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from rcforge.core import images
from rcforge.core.images import ImageChecks

SIZES = [(640, 480), (480, 640), (640, 427), (500, 375)]


def generate(out: str, n: int) -> list[tuple[str, int, int]]:
    os.makedirs(out, exist_ok=True)
    items = []
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        name = f"{i:07d}.jpg"
        path = os.path.join(out, name)
        if not os.path.exists(path):
            x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
            y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
            pixels = (x * 0.6 + y * 0.4 + (i % 97)) % 256 * np.ones((1, 1, 3), np.float32)
            Image.fromarray(pixels.astype(np.uint8)).save(path, "JPEG", quality=90)
        items.append((name, w, h))
    return items


def timed(label: str, root: str, items, checks: ImageChecks, pool=None, limit: int | None = None) -> float:
    items = items[:limit] if limit else items
    started = time.perf_counter()
    verdicts = images.check_many(root, items, checks, pool)
    seconds = time.perf_counter() - started
    assert all(v.ok for v in verdicts), [v for v in verdicts if not v.ok][:3]
    rate = len(items) / seconds
    print(f"{label:<44} {len(items):>6} images in {seconds:6.2f} s: {rate:>9,.0f} /s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--out", default="bench/data/jpeg")
    args = parser.parse_args()
    items = generate(args.out, args.images)
    for name, _, _ in items:  # warm the page cache
        with open(os.path.join(args.out, name), "rb") as f:
            f.read()
    cores = os.cpu_count()
    print(f"{cores} cores; {images.THREADS} threads in the ingest pool")
    header = ImageChecks(verify="header")
    decode = ImageChecks(verify="decode")
    timed("header, 1 thread (per core)", args.out, items, header)
    with ThreadPoolExecutor(images.THREADS) as pool:
        timed(f"header, pool of {images.THREADS} threads", args.out, items, header, pool)
        timed("decode, 1 thread (per core)", args.out, items, decode, None, 1000)
        timed(f"decode, pool of {images.THREADS} threads", args.out, items, decode, pool, 1000)
    timed("off (path confinement only), 1 thread", args.out, items, ImageChecks(verify="off"))


if __name__ == "__main__":
    main()
