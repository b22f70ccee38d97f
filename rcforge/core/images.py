"""Image files checked at ingest: confined to their root, opened, and measured against the annotation.

An annotation is only as true as the image it describes. Before an image record is written, its file is checked
according to the recipe's ``verify_images`` (top level, or per source):

- ``header`` (the default): Pillow reads the header only. The file must exist inside the images root, be an
  image format Pillow identifies, and have the size the annotation gives (as stored: EXIF orientation is not
  applied, as in the COCO tools). About 60 µs a JPEG from the page cache (17,000 a second on one core).
- ``decode``: the whole image is decoded too, which also catches truncated and corrupt pixel data (about 0.7 ms
  a 640x480 JPEG; Pillow's decoders release the GIL, so a thread pool spreads them over the cores).
- ``off``: only the path is checked (no file is opened).

A size mismatch rejects the image (``image_size_mismatch``), unless ``verify_images_mismatch: rescale``: then
every box and point of the record is mapped to the real size, and the image is counted as repaired
(``image_rescaled``). An image with more than ``max_image_pixels`` pixels is rejected from its header
(``image_too_large``) before anything is decoded: a decompression bomb never reaches the decoder.

Paths are confined to the images root (`confine`): absolute paths, URLs, ``..`` steps and, on local disks,
symlinks that resolve outside the root are rejected (``image_path_outside_root``), so `preview` and `export`,
which use the same function, never read or pass on a file outside it.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import fsspec
from PIL import Image, UnidentifiedImageError

from rcforge.core import fsio, masks
from rcforge.core.config import number
from rcforge.core.errors import InputError

#: Pillow's own default limit (``Image.MAX_IMAGE_PIXELS``): about 0.25 GB of 24-bit pixels
MAX_IMAGE_PIXELS = 89_478_485
#: threads that open image files at once, per source being ingested
THREADS = 8

# rcforge applies its own pixel limit from the header, before decoding; Pillow's warning would only repeat it
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class ImageChecks:
    """How a source's image files are checked (recipe keys ``verify_images``, ``verify_images_mismatch``,
    ``max_image_pixels``)."""

    verify: Literal["header", "decode", "off"] = "header"
    mismatch: Literal["reject", "rescale"] = "reject"
    max_pixels: int = number(MAX_IMAGE_PIXELS, 1)


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one image: fine (``reason`` None), to be rescaled to ``size``, or rejected."""

    reason: str | None = None
    message: str = ""
    size: tuple[int, int] | None = None  # the real (width, height) of an image to rescale

    @property
    def ok(self) -> bool:
        return self.reason is None


FINE = Verdict()


def unsafe_path(image) -> str | None:
    """Why an image path, taken as written, would leave its images root (absolute, a URL, a ``..`` step, empty),
    or None."""
    if not isinstance(image, str) or not image.strip():
        return "the image path is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in image) or any("\ud800" <= c <= "\udfff" for c in image):
        return f"the image path {image!r:.80} holds a control character or a lone surrogate"
    if image.startswith(("/", "\\")) or "://" in image or (len(image) > 1 and image[1] == ":"):
        return f"the image path {image!r:.80} is absolute"
    if ".." in image.replace("\\", "/").split("/"):
        return f"the image path {image!r:.80} climbs out of the images root"
    return None


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def confine(root: str, image: str) -> tuple[str | None, str | None]:
    """``(root/image, None)`` when the file stays inside ``root``, else ``(None, why)``. On a local disk the path
    is resolved, so a symlink (of the file or of a folder on the way) that points outside the root is caught."""
    why = unsafe_path(image)
    if why:
        return None, why
    full = fsio.join(root, image)
    if _is_local(full):
        real_root = os.path.realpath(root.removeprefix("file://"))
        real = os.path.realpath(full.removeprefix("file://"))
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            return None, f"the image path {image!r:.80} resolves outside the images root (a symlink)"
    return full, None


def check(root: str, image: str, width: int, height: int, checks: ImageChecks) -> Verdict:
    """Check one image file against its annotation (see the module docstring)."""
    full, why = confine(root, image)
    if why:
        return Verdict("image_path_outside_root", why)
    if checks.verify == "off":
        return FINE
    if not (_is_local(full) and os.path.isdir(full.removeprefix("file://"))):  # a folder: "missing", below
        try:
            fsio.check_regular(full, "image")
        except InputError as err:  # a FIFO would block the read forever
            return Verdict("image_unreadable", str(err))
    try:
        with (open(full.removeprefix("file://"), "rb") if _is_local(full) else fsspec.open(full, "rb").open()) as f:
            with Image.open(f) as im:
                real_w, real_h = im.size
                if real_w * real_h > checks.max_pixels:
                    return Verdict("image_too_large", f"{image}: {real_w}x{real_h} pixels is more than "
                                                      f"max_image_pixels ({checks.max_pixels:,})")
                if checks.verify == "decode":
                    im.load()
    except FileNotFoundError:
        return Verdict("image_missing", f"{image}: no such file under the images root {root}")
    except IsADirectoryError:
        return Verdict("image_missing", f"{image}: is a folder, not an image file")
    except UnidentifiedImageError:
        return Verdict("image_unreadable", f"{image}: not an image file Pillow can read (empty or corrupt?)")
    except Image.DecompressionBombError as err:
        return Verdict("image_too_large", f"{image}: {err}")
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # Pillow's decoders report corrupt data so
        return Verdict("image_unreadable", f"{image}: {type(err).__name__}: {str(err)[:200]}")
    if (real_w, real_h) != (width, height):
        if checks.mismatch == "rescale":
            return Verdict(None, "", (real_w, real_h))
        return Verdict("image_size_mismatch", f"{image}: the image is {real_w}x{real_h}, the annotation says "
                                              f"{width}x{height}")
    return FINE


def wants_pool(root: str, checks: ImageChecks) -> bool:
    """Whether checks of this root gain from a thread pool (measured in bench/bench_images.py): full decodes do
    (Pillow's decoders release the GIL: 1.6x on 2 cores), and so do header reads from an object store (latency
    overlaps). Header reads of local files do not: Pillow parses a JPEG header in Python under the GIL, and a pool
    of threads ran at a third of one thread's rate (4,900 vs 17,000 headers/s)."""
    return checks.verify == "decode" or (checks.verify == "header" and not _is_local(root))


def check_many(root: str, items: Sequence[tuple[str, int, int]], checks: ImageChecks,
               pool: ThreadPoolExecutor | None = None, chunk: int = 16) -> list[Verdict]:
    """`check` over (image, width, height) items, in order; through ``pool`` when given, ``chunk`` items a task."""
    if checks.verify == "off" or pool is None or len(items) < 2:
        return [check(root, image, w, h, checks) for image, w, h in items]
    chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    return [v for part in pool.map(lambda part: [check(root, i, w, h, checks) for i, w, h in part], chunks)
            for v in part]


def _scaled(values: Iterable[float] | None, sx: float, sy: float, width: int, height: int):
    if values is None:
        return None
    values = list(values)
    limits = (width, height) * (len(values) // 2)
    return [min(max(v * (sx if i % 2 == 0 else sy), 0.0), limits[i]) for i, v in enumerate(values)]


def rescale_record(record: dict, size: tuple[int, int]) -> dict:
    """The record with every box, point and mask mapped from its annotated size to the image's real ``size``."""
    width, height = size
    sx, sy = width / record["width"], height / record["height"]
    record = dict(record, width=width, height=height)
    record["objects"] = [dict(o, box=_scaled(o["box"], sx, sy, width, height), **masks.rescaled(o, width, height))
                         for o in record["objects"]]
    record["regions"] = [dict(r, box=_scaled(r["box"], sx, sy, width, height)) for r in record["regions"]]
    record["qas"] = [dict(q, box=_scaled(q.get("box"), sx, sy, width, height),
                          point=_scaled(q.get("point"), sx, sy, width, height)) for q in record["qas"]]
    return record
