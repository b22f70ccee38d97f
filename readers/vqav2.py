"""VQAv2: the questions file and the annotations file (``multiple_choice_answer``, the 10 ``answers``, types).

Questions (~40 MB for train) are indexed by question id; the annotations file (~300 MB) is streamed with ijson
and each annotation is attached to its question's image. The official files carry no image sizes, so sizes come
from a COCO file's ``images`` list (``image_info``, e.g. ``instances_train2014.json``, streamed) or, failing
that, from the image file's header (Pillow reads only the header). Image file names follow the COCO 2014
convention ``COCO_<data_subtype>_<12-digit id>.jpg``; the COCO id is the image id.

Memory: the questions index and the grouped QA items of the whole file (a few hundred MB for train2014).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterator

from rcforge.readers import ReadContext, register

from rcforge import fsio
from rcforge.boxes import check_size
from rcforge.config import path_field
from rcforge.errors import BadRecord, InputError
from rcforge.ledger import (
    ErrorRow,
    ImageBuilder,
    ImageResult,
    image_record,
    rejected_image,
)

SOURCE = "vqav2"


@dataclass(frozen=True)
class VQAv2Config:
    """VQAv2.

    questions: ``v2_OpenEnded_mscoco_<subtype>_questions.json``.
    annotations: ``v2_mscoco_<subtype>_annotations.json``.
    images: the COCO image folder of that subtype (``train2014/``).
    image_info: optional COCO json with an ``images`` list giving width/height (else image headers are read).
    data_subtype: the COCO subtype in file names; empty: taken from the questions file (``train2014``).
    """

    questions: str = path_field()
    annotations: str = path_field()
    images: str = path_field(must_exist=False)
    image_info: str | None = path_field(default=None)
    data_subtype: str = ""


def image_size_from_file(path: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with fsio.open_binary(path, "image") as handle:
            with Image.open(handle) as img:
                return img.size
    except InputError:
        raise BadRecord("image_size_unavailable", f"no size known and no image file at {path}",
                        field="width") from None
    except (UnidentifiedImageError, OSError) as err:
        raise BadRecord("image_size_unavailable", f"cannot read the image header of {path}: {err}",
                        field="width") from None


@register(SOURCE, VQAv2Config)
def read(config: VQAv2Config, ctx: ReadContext) -> Iterator[ImageResult]:
    """VQAv2 questions with their answers, one record per COCO image."""
    what_q, what_a = "VQAv2 questions file", "VQAv2 annotations file"
    subtype = config.data_subtype or next(iter(fsio.iter_json(config.questions, "data_subtype", what=what_q)), "")
    questions: dict[int, tuple[int, str]] = {}
    bad: list[ErrorRow] = []
    for i, q in enumerate(fsio.iter_json(config.questions, "questions.item", what=what_q)):
        qid = q.get("question_id") if isinstance(q, dict) else None
        image_id = q.get("image_id") if isinstance(q, dict) else None
        text = " ".join(str(q.get("question") or "").split()) if isinstance(q, dict) else ""
        if not isinstance(qid, int) or not isinstance(image_id, int) or not text:
            field = "question_id" if not isinstance(qid, int) else "image_id" if not isinstance(image_id, int) \
                else "question"
            bad.append(ErrorRow(SOURCE, f"{SOURCE}/{image_id}", config.questions, f"questions[{i}]", field, "read",
                                "qa", "missing_field", f"question lacks a usable {field}"))
            continue
        if qid in questions:
            bad.append(ErrorRow(SOURCE, f"{SOURCE}/{image_id}", config.questions, f"question_id={qid}",
                                "question_id", "read", "qa", "duplicate_question_id", f"question {qid} repeats"))
            continue
        questions[qid] = (image_id, text)

    per_image: dict[int, list[dict]] = defaultdict(list)
    answered: set[int] = set()
    for i, ann in enumerate(fsio.iter_json(config.annotations, "annotations.item", what=what_a)):
        qid = ann.get("question_id") if isinstance(ann, dict) else None
        if qid not in questions or qid in answered:
            reason = "duplicate_annotation" if qid in answered else "unknown_question"
            bad.append(ErrorRow(SOURCE, f"{SOURCE}/?", config.annotations, f"annotations[{i}] (question_id={qid})",
                                "question_id", "join", "qa", reason,
                                f"annotation for question {qid!r}, " +
                                ("which was already answered" if reason == "duplicate_annotation"
                                 else "which the questions file does not have")))
            continue
        answered.add(qid)
        image_id, text = questions[qid]
        answers = [" ".join(str(a.get("answer", "")).split()) for a in (ann.get("answers") or [])
                   if isinstance(a, dict)]
        best = ann.get("multiple_choice_answer")
        if best is None and answers:
            best = Counter(answers).most_common(1)[0][0]
        per_image[image_id].append({
            "id": str(qid), "kind": "vqav2", "question": text, "point_question": None,
            "answer": None if best is None else str(best), "answers": answers,
            "question_type": ann.get("question_type"), "answer_type": ann.get("answer_type"),
            "point": None, "box": None, "object_ids": []})
    unanswered = [qid for qid in questions if qid not in answered]
    for qid in unanswered:
        image_id, _ = questions[qid]
        bad.append(ErrorRow(SOURCE, f"{SOURCE}/{image_id}", config.annotations, f"question_id={qid}",
                            "question_id", "join", "qa", "no_annotation", "question has no annotation"))
    del questions

    if bad:
        result = ImageResult(source=SOURCE, key=f"{SOURCE}/?", record=None, orphan=True, errors=bad)
        result.items_read["qa"] = len(bad)
        result.items_rejected["qa"] = len(bad)
        yield result

    sizes: dict[int, tuple] = {}
    if config.image_info:
        for img in fsio.iter_json(config.image_info, "images.item", what="image_info file"):
            if isinstance(img, dict) and img.get("id") in per_image:
                sizes[img["id"]] = (img.get("width"), img.get("height"))

    for image_id in sorted(per_image):
        qas = per_image[image_id]
        key = f"{SOURCE}/{image_id}"
        file_name = f"COCO_{subtype}_{image_id:012d}.jpg" if subtype else f"{image_id:012d}.jpg"
        try:
            if image_id in sizes:
                width, height = check_size(*sizes[image_id])
            else:
                width, height = image_size_from_file(fsio.join(config.images, file_name))
        except BadRecord as err:
            yield rejected_image(SOURCE, key, config.image_info or config.images, f"image_id={image_id}", err,
                                 items_read=Counter(qa=len(qas)))
            continue
        b = ImageBuilder(SOURCE, key, config.annotations, width, height)
        b.read("qa", len(qas))
        record = image_record(key, SOURCE, image_id, file_name, width, height, split=subtype or None,
                              coco_id=image_id, qas=qas)
        yield b.finish(record, coco_id=image_id)
