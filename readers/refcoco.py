"""RefCOCO / RefCOCO+ / RefCOCOg: ``refs(unc|umd|google).p`` + ``instances.json`` (the `refer` layout).

Files: ``<root>/<dataset>/refs(<split_by>).p`` and ``<root>/<dataset>/instances.json``. The instances file is a
COCO file of a few tens of MB (pycocotools loads it); the refs file is a Python pickle. A pickle can run code when
loaded, so it is read with `SafeUnpickler`, which builds plain containers and scalars and refuses any class or
function reference. One record per COCO image: every instance of the image as an object (COCO ``[x, y, w, h]``
to xyxy), and the refs of the requested splits with their sentences. Images with no ref in those splits are
filtered (``not_in_splits``).
"""

from __future__ import annotations

import contextlib
import io
import pickle
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterator, Literal

from rcforge.readers import ReadContext, register

from rcforge import fsio
from rcforge.boxes import check_size, xywh_to_xyxy
from rcforge.config import path_field
from rcforge.errors import BadRecord, InputError
from rcforge.ledger import (
    ErrorRow,
    ImageBuilder,
    ImageResult,
    filtered_image,
    image_record,
    rejected_image,
)

SOURCE = "refcoco"


class SafeUnpickler(pickle.Unpickler):
    """Unpickles plain data only: dict, list, tuple, set, str, bytes, int, float, bool, None.

    Any global (class, function) reference is refused, which is what code execution through a pickle needs.
    """

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain containers and scalars "
                                     "are allowed in a refs file")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing a persistent id: only plain containers and scalars are allowed")


def safe_loads(data: bytes, what: str = "pickle"):
    try:
        return SafeUnpickler(io.BytesIO(data), encoding="utf-8").load()
    except pickle.UnpicklingError as err:
        raise InputError(f"{what}: {err}") from None
    except (EOFError, ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError, AttributeError) as err:
        raise InputError(f"{what}: truncated or malformed pickle ({type(err).__name__}: {err})") from None


def load_refs(path: str) -> list[dict]:
    refs = safe_loads(fsio.read_bytes(path, "refs file"), what=f"refs file {path}")
    if not isinstance(refs, list):
        raise InputError(f"refs file {path}: expected a list of refs, got {type(refs).__name__}")
    return refs


@dataclass(frozen=True)
class RefCocoConfig:
    """RefCOCO-family referring expressions.

    root: the `refer` data folder holding ``<dataset>/refs(<split_by>).p`` and ``<dataset>/instances.json``.
    splits: which ref splits to keep (unc: train, val, testA, testB; umd: train, val, test; google: train, val).
    images: the COCO train2014 image folder.
    """

    root: str = path_field()
    images: str = path_field(must_exist=False)
    dataset: Literal["refcoco", "refcoco+", "refcocog"] = "refcoco"
    split_by: Literal["unc", "umd", "google"] = "unc"
    splits: tuple[str, ...] = ("train",)


def _load_instances(path: str):
    """COCO instances through pycocotools (its loader prints; we keep stdout clean)."""
    from pycocotools.coco import COCO

    dataset = fsio.load_json(path, "instances file")
    if not isinstance(dataset, dict) or "images" not in dataset or "annotations" not in dataset:
        raise InputError(f"instances file {path}: not a COCO file (needs 'images' and 'annotations')")
    coco = COCO()
    coco.dataset = dataset
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
    except (KeyError, TypeError) as err:
        raise InputError(f"instances file {path}: an image, annotation or category lacks {err} "
                         "(pycocotools cannot index it)") from None
    return coco


@register(SOURCE, RefCocoConfig)
def read(config: RefCocoConfig, ctx: ReadContext) -> Iterator[ImageResult]:
    """RefCOCO / RefCOCO+ / RefCOCOg refs joined to their COCO instances, one record per image."""
    refs_path = fsio.require(fsio.join(config.root, config.dataset, f"refs({config.split_by}).p"),
                             f"sources.refcoco refs file for {config.dataset}({config.split_by})")
    inst_path = fsio.require(fsio.join(config.root, config.dataset, "instances.json"),
                             f"sources.refcoco instances file for {config.dataset}")
    refs = load_refs(refs_path)
    coco = _load_instances(inst_path)
    wanted = set(config.splits)
    refs_by_image: dict[int, list] = defaultdict(list)
    for i, ref in enumerate(refs):
        image_id = ref.get("image_id") if isinstance(ref, dict) else None
        refs_by_image[image_id if isinstance(image_id, int) else -1].append((i, ref))

    seen_images = Counter(img.get("id") for img in coco.dataset["images"])
    image_ids = sorted(i for i in seen_images if isinstance(i, int))
    for image_id in image_ids:
        key = f"{SOURCE}/{config.dataset}/{image_id}"
        info = coco.imgs[image_id]
        anns = coco.imgToAnns.get(image_id, [])
        image_refs = refs_by_image.pop(image_id, [])
        counts = Counter(object=len(anns), ref=len(image_refs))
        record_desc = f"images[id={image_id}]"
        if seen_images[image_id] > 1:
            yield rejected_image(SOURCE, key, inst_path, record_desc,
                                 BadRecord("duplicate_image_id", f"image id {image_id} appears "
                                           f"{seen_images[image_id]} times", field="id"), items_read=counts)
            continue
        kept_refs = [(i, r) for i, r in image_refs if r.get("split") in wanted]
        if not kept_refs:
            yield filtered_image(SOURCE, key, "not_in_splits", items_read=counts)
            continue
        try:
            width, height = check_size(info.get("width"), info.get("height"))
        except BadRecord as err:
            yield rejected_image(SOURCE, key, inst_path, record_desc, err, items_read=counts)
            continue
        b = ImageBuilder(SOURCE, key, inst_path, width, height)
        objects, object_ids = [], set()
        for ann in anns:
            b.read("object")
            desc = f"annotations[id={ann.get('id')}]"
            try:
                cat = ann.get("category_id")
                if cat not in coco.cats:
                    raise BadRecord("unknown_category_id", f"category_id {cat!r} is not in categories",
                                    field="category_id")
                bbox = ann.get("bbox")
                if not isinstance(bbox, list) or len(bbox) != 4:
                    raise BadRecord("missing_field", "bbox is missing or not [x, y, w, h]", field="bbox")
                xyxy = xywh_to_xyxy(*bbox)
            except BadRecord as err:
                b.reject("object", err, desc)
                continue
            box = b.box("object", xyxy, desc, field="bbox")
            if box is None:
                continue
            object_ids.add(ann["id"])
            objects.append({"id": int(ann["id"]), "names": [coco.cats[cat].get("name", str(cat))],
                            "category_id": int(cat), "box": box, "ignore": bool(ann.get("iscrowd", 0)),
                            "attributes": [], "synsets": []})
        out_refs = []
        for _, ref in image_refs:
            b.read("ref")
            desc = f"ref_id={ref.get('ref_id')}"
            if ref.get("split") not in wanted:
                b.filter("ref", "not_in_splits")
                continue
            try:
                ann_id = ref.get("ann_id")
                if ann_id not in object_ids:
                    raise BadRecord("ref_unknown_annotation", f"ann_id {ann_id!r} is not a usable annotation of "
                                    f"image {image_id}", field="ann_id")
                sentences = [{"sent_id": int(s.get("sent_id", -1)), "text": " ".join(str(s.get("sent", "")).split())}
                             for s in (ref.get("sentences") or []) if str(s.get("sent", "")).strip()]
                if not sentences:
                    raise BadRecord("ref_no_sentences", "ref has no sentence", field="sentences")
                out_refs.append({"ref_id": int(ref["ref_id"]), "object_id": int(ann_id),
                                 "category_id": ref.get("category_id"), "split": str(ref["split"]),
                                 "sentences": sentences})
            except BadRecord as err:
                b.reject("ref", err, desc, file=refs_path)
            except (KeyError, TypeError, ValueError) as err:
                b.reject("ref", BadRecord("malformed_record", f"malformed ref ({err})"), desc, file=refs_path)
        record = image_record(key, SOURCE, image_id, str(info.get("file_name")), width, height,
                              coco_id=image_id, objects=objects, refs=out_refs)
        yield b.finish(record, coco_id=image_id)

    for image_id, leftover in sorted(refs_by_image.items(), key=lambda kv: str(kv[0])):
        result = ImageResult(source=SOURCE, key=f"{SOURCE}/{config.dataset}/{image_id}", record=None, orphan=True)
        for i, ref in leftover:
            result.items_read["ref"] += 1
            if isinstance(ref, dict) and ref.get("split") not in wanted:
                # another split's ref whose image this instances file lacks: not requested, not an error
                result.items_filtered[("ref", "not_in_splits")] += 1
                continue
            result.items_rejected["ref"] += 1
            result.errors.append(ErrorRow(
                source=SOURCE, key=result.key, file=refs_path, record=f"refs[{i}] (ref_id={ref.get('ref_id')})",
                field="image_id", stage="join", kind="ref", reason="unknown_image",
                message=f"image_id {image_id!r} is not in {inst_path}"))
        yield result
