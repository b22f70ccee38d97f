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

from rcforge.core import fsio, masks
from rcforge.core.boxes import xywh_to_xyxy
from rcforge.core.config import number, path_field
from rcforge.core.contract import F, Int, ItemContract, Text, wrong_type
from rcforge.core.errors import BadRecord, InputError
from rcforge.core.ledger import (
    ErrorRow,
    ImageBuilder,
    ImageResult,
    filtered_image,
    image_record,
    rejected_image,
)
from rcforge.core.ledgerkeeper import ReadBatch, gather
from rcforge.readers import ReadContext, coco_contract, mask_pool, register

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
    mask_processes: worker processes that check the instances' masks (-1, "auto": one per CPU when there are at
      least 20,000; 0: none, in the reader's process; N: N). The records are the same either way.
    """

    root: str = path_field()
    images: str = path_field(must_exist=False)
    dataset: Literal["refcoco", "refcoco+", "refcocog"] = "refcoco"
    split_by: Literal["unc", "umd", "google"] = "unc"
    splits: tuple[str, ...] = ("train",)
    mask_processes: int = number(-1, -1, 256)


#: one ref of a refs pickle (the `refer` layout); each of its sentences must be usable, or the ref is rejected
REF = ItemContract("ref", (
    F("ref_id", Int()),
    F("image_id", Int()),
    F("ann_id", Int()),
    F("split", Text(nonempty=True)),
    F("category_id", Int(), required=False),
))
SENTENCE = ItemContract("sentence", (
    F("sent_id", Int()),
    F("sent", Text(nonempty=True, empty_reason="ref_no_sentences")),
))


def parse_ref(ref) -> dict:
    """A ref through the contract, with its sentences (``sentences[k].sent`` named when one breaks it)."""
    out = REF.parse(ref)
    sentences = ref.get("sentences")
    if not isinstance(sentences, list):
        raise wrong_type("sentences", "a list of sentences", sentences) if sentences is not None else \
            BadRecord("ref_no_sentences", "ref has no sentences", field="sentences")
    parsed = []
    for k, sentence in enumerate(sentences):
        try:
            parsed.append(SENTENCE.parse(sentence))
        except BadRecord as err:
            raise BadRecord(err.reason, f"sentences[{k}]: {err.message}", field=f"sentences[{k}].{err.field}") \
                from None
    if not parsed:
        raise BadRecord("ref_no_sentences", "ref has no sentence", field="sentences")
    out["sentences"] = [{"sent_id": s["sent_id"], "text": s["sent"]} for s in parsed]
    return out


def _load_instances(path: str):
    """COCO instances: every image and annotation through the COCO contract, then pycocotools' index of the
    usable ones (its loader prints; we keep stdout clean). Returns (index, bad images, bad annotations,
    categories that break the contract)."""
    from pycocotools.coco import COCO

    dataset = fsio.load_json(path, "instances file")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("images"), list) \
            or not isinstance(dataset.get("annotations"), list):
        raise InputError(f"instances file {path}: not a COCO file (needs arrays 'images' and 'annotations')")
    cats, bad_cats = coco_contract.categories(dataset.get("categories") or [], path)
    images, bad_images = [], []
    for i, img in enumerate(dataset["images"]):
        try:
            images.append({**img, **coco_contract.IMAGE.parse(img)})
        except BadRecord as err:
            bad_images.append((i, img, err))
    anns, bad_anns = [], []
    for i, ann in enumerate(dataset["annotations"]):
        try:
            anns.append({**ann, **coco_contract.annotation(ann)})
        except BadRecord as err:
            bad_anns.append((i, ann, err))
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns,
                    "categories": [{"id": c, "name": n} for c, n in cats.items()]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco, bad_images, bad_anns, bad_cats


def _owner(entry) -> int | None:
    """The image id an entry names, when it is a usable id (to count a broken entry against its image)."""
    value = entry.get("image_id") if isinstance(entry, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@register(SOURCE, RefCocoConfig, provides=("refs",))
def read(config: RefCocoConfig, ctx: ReadContext) -> Iterator[ReadBatch]:
    """RefCOCO / RefCOCO+ / RefCOCOg refs joined to their COCO instances, one record per image."""
    return gather(SOURCE, _results(config, ctx))


def _results(config: RefCocoConfig, ctx: ReadContext) -> Iterator[ImageResult]:
    refs_path = fsio.require(fsio.join(config.root, config.dataset, f"refs({config.split_by}).p"),
                             f"sources.refcoco refs file for {config.dataset}({config.split_by})")
    inst_path = fsio.require(fsio.join(config.root, config.dataset, "instances.json"),
                             f"sources.refcoco instances file for {config.dataset}")
    refs = load_refs(refs_path)
    coco, bad_images, bad_anns, bad_cats = _load_instances(inst_path)
    wanted = set(config.splits)
    refs_by_image: dict[int | None, list] = defaultdict(list)
    for i, ref in enumerate(refs):
        refs_by_image[_owner(ref)].append((i, ref))
    bad_anns_by_image: dict[int | None, list] = defaultdict(list)
    for i, ann, err in bad_anns:
        bad_anns_by_image[_owner(ann)].append((i, ann, err))

    for i, img, err in bad_images:
        image_id = img.get("id") if isinstance(img, dict) else None
        key = f"{SOURCE}/{config.dataset}/{image_id if isinstance(image_id, int) else f'images[{i}]'}"
        owner = image_id if isinstance(image_id, int) and not isinstance(image_id, bool) else object()
        counts = Counter(object=len(coco.imgToAnns.get(owner, [])) + len(bad_anns_by_image.pop(owner, [])),
                         ref=len(refs_by_image.pop(owner, [])))
        yield rejected_image(SOURCE, key, inst_path, f"images[{i}]", err, items_read=counts)
    seen_images = Counter(img["id"] for img in coco.dataset["images"])

    def mask_jobs(image_id) -> list[mask_pool.Job]:
        """The masks `_image` will check: those of an image it builds (once, with a ref of a wanted split)."""
        if seen_images[image_id] > 1 or not any(isinstance(r, dict) and r.get("split") in wanted
                                                for _, r in refs_by_image.get(image_id, ())):
            return []
        info = coco.imgs[image_id]
        return [mask_pool.Job(a["segmentation"], info["width"], info["height"], xywh_to_xyxy(*a["bbox"]))
                for a in coco.imgToAnns.get(image_id, []) if masks.present(a.get("segmentation"))]

    n_masks = sum(masks.present(a.get("segmentation")) for a in coco.dataset["annotations"])
    workers = mask_pool.processes(config.mask_processes, n_masks)
    for image_id, outcomes in mask_pool.checked(sorted(seen_images), mask_jobs, workers, ctx.work_dir):
        yield _image(config, image_id, coco, seen_images[image_id], refs_by_image.pop(image_id, []),
                     bad_anns_by_image.pop(image_id, []), bad_cats, wanted, refs_path, inst_path, outcomes)
    rejected_ids = {img.get("id") for _, img, _ in bad_images if isinstance(img, dict)}
    for image_id, anns in coco.imgToAnns.items():  # annotations of an image the file does not hold
        if image_id not in seen_images and image_id not in rejected_ids:
            for ann in anns:
                err = BadRecord("unknown_image", f"image_id {image_id!r} is not in the images of {inst_path}",
                                field="image_id")
                bad_anns_by_image[image_id].append((ann.get("id"), ann, err))
    yield from _orphans(config, refs_by_image, bad_anns_by_image, wanted, refs_path, inst_path)


def _image(config, image_id, coco, copies, image_refs, broken_anns, bad_cats, wanted, refs_path, inst_path,
           outcomes: list | None = None):
    """The `ImageResult` of one COCO image: its annotations as objects, its refs of the wanted splits
    (``outcomes``: its masks as worker processes checked them, in order, when they did)."""
    key = f"{SOURCE}/{config.dataset}/{image_id}"
    info = coco.imgs[image_id]
    anns = coco.imgToAnns.get(image_id, [])
    counts = Counter(object=len(anns) + len(broken_anns), ref=len(image_refs))
    record_desc = f"images[id={image_id}]"
    if copies > 1:
        return rejected_image(SOURCE, key, inst_path, record_desc,
                              BadRecord("duplicate_image_id", f"image id {image_id} appears {copies} times",
                                        field="id"), items_read=counts)
    if not any(isinstance(r, dict) and r.get("split") in wanted for _, r in image_refs):
        return filtered_image(SOURCE, key, "not_in_splits", items_read=counts)
    b = ImageBuilder(SOURCE, key, inst_path, info["width"], info["height"])
    for i, ann, err in broken_anns:
        b.read("object")
        b.reject("object", err, f"annotations[{i}] (id={ann.get('id') if isinstance(ann, dict) else None})")
    objects, object_ids = [], set()
    checked = iter(outcomes or ())  # a mask whose outcome is not there is checked here
    for ann in anns:
        mask = next(checked, None) if masks.present(ann.get("segmentation")) else None
        b.read("object")
        desc = f"annotations[id={ann['id']}]"
        cat = ann["category_id"]
        if cat not in coco.cats:
            why = bad_cats.get(cat, f"category_id {cat!r} is not in categories")
            b.reject("object", BadRecord("unknown_category_id", why, field="category_id"), desc)
            continue
        box = b.box("object", xywh_to_xyxy(*ann["bbox"]), desc, field="bbox")
        if box is None:
            continue
        object_ids.add(ann["id"])
        objects.append({"id": ann["id"], "names": [coco.cats[cat]["name"]], "category_id": cat, "box": box,
                        "ignore": bool(ann["iscrowd"]), "attributes": [], "synsets": [],
                        "iscrowd": bool(ann["iscrowd"]), **b.mask(ann.get("segmentation"), box, desc, checked=mask)})
    out_refs = []
    for i, ref in image_refs:
        b.read("ref")
        desc = f"refs[{i}] (ref_id={ref.get('ref_id') if isinstance(ref, dict) else None!r:.40})"
        if isinstance(ref, dict) and ref.get("split") not in wanted:
            b.filter("ref", "not_in_splits")
            continue
        try:
            parsed = parse_ref(ref)
            if parsed["ann_id"] not in object_ids:
                raise BadRecord("ref_unknown_annotation", f"ann_id {parsed['ann_id']} is not a usable annotation "
                                f"of image {image_id}", field="ann_id")
        except BadRecord as err:
            b.reject("ref", err, desc, file=refs_path)
            continue
        out_refs.append({"ref_id": parsed["ref_id"], "object_id": parsed["ann_id"],
                         "category_id": parsed["category_id"], "split": parsed["split"],
                         "sentences": parsed["sentences"]})
    record = image_record(key, SOURCE, image_id, info["file_name"], info["width"], info["height"],
                          coco_id=image_id, objects=objects, refs=out_refs,
                          absent=_absent(coco, anns, broken_anns))
    return b.finish(record)


def _absent(coco, anns, broken_anns) -> list[dict]:
    """COCO's categories with no annotation in the image, proven absent: COCO marks every instance of its 80
    classes (crowds as crowd regions), so a class with no annotation is not in the image (basis
    "exhaustive_vocab"). An image holding an annotation that did not read, or one of an unknown category, proves
    nothing: that annotation could be of any class."""
    if broken_anns or any(a["category_id"] not in coco.cats for a in anns):
        return []
    present = {coco.cats[a["category_id"]]["name"] for a in anns}
    names = sorted({c["name"] for c in coco.cats.values()} - present)
    return [{"name": name, "basis": "exhaustive_vocab"} for name in names]


def _orphans(config, refs_by_image, bad_anns_by_image, wanted, refs_path, inst_path) -> Iterator[ImageResult]:
    """Refs and broken annotations whose image the instances file does not hold (or cannot be named)."""
    for image_id in sorted(set(refs_by_image) | set(bad_anns_by_image), key=str):
        result = ImageResult(source=SOURCE, key=f"{SOURCE}/{config.dataset}/{image_id}", record=None, orphan=True)
        for i, ref in refs_by_image.get(image_id, []):
            result.items_read["ref"] += 1
            if isinstance(ref, dict) and ref.get("split") not in wanted:
                # another split's ref whose image this instances file lacks: not requested, not an error
                result.items_filtered[("ref", "not_in_splits")] += 1
                continue
            result.items_rejected["ref"] += 1
            try:
                REF.value(ref, "image_id") if isinstance(ref, dict) else REF.parse(ref)
                reason, field_name = "unknown_image", "image_id"
                message = f"image_id {image_id!r} is not in {inst_path}"
            except BadRecord as err:
                reason, field_name, message = err.reason, err.field, err.message
            ref_id = ref.get("ref_id") if isinstance(ref, dict) else None
            result.errors.append(ErrorRow(
                source=SOURCE, key=result.key, file=refs_path, record=f"refs[{i}] (ref_id={ref_id!r:.40})",
                field=field_name, stage="join", kind="ref", reason=reason, message=message))
        for i, ann, err in bad_anns_by_image.get(image_id, []):
            result.items_read["object"] += 1
            result.items_rejected["object"] += 1
            result.errors.append(ErrorRow(
                source=SOURCE, key=result.key, file=inst_path, record=f"annotations[{i}]", field=err.field,
                stage="validate", kind="object", reason=err.reason, message=err.message))
        yield result
