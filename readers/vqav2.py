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

from rcforge.core import fsio
from rcforge.core.config import path_field
from rcforge.core.contract import F, FileShape, Int, ItemContract, Scalar, Text, wrong_type
from rcforge.core.errors import BadRecord, InputError
from rcforge.core.ledger import (
    ErrorRow,
    ImageBuilder,
    ImageResult,
    image_record,
    rejected_image,
)
from rcforge.core.ledgerkeeper import ReadBatch, gather
from rcforge.readers import ReadContext, coco_contract, register

SOURCE = "vqav2"

#: the contract of the two VQAv2 files (and the optional COCO image table, `coco_contract.IMAGE_SIZE`)
FILES = {"questions": FileShape("object", arrays=("questions",)),
         "annotations": FileShape("object", arrays=("annotations",))}
QUESTION = ItemContract("question", (
    F("question_id", Int()),
    F("image_id", Int()),
    F("question", Text(nonempty=True)),
))
ANSWER_ENTRY = ItemContract("answer", (F("answer", Scalar()),))
ANNOTATION = ItemContract("annotation", (
    F("question_id", Int()),
    F("multiple_choice_answer", Scalar(), required=False),
    F("question_type", Text(), required=False),
    F("answer_type", Text(), required=False),
))


def _answers(ann: dict) -> list[str]:
    value = ann.get("answers")
    if value is None:
        return []
    if not isinstance(value, list):
        raise wrong_type("answers", "a list of {answer: ...} entries", value)
    out = []
    for i, entry in enumerate(value):
        try:
            out.append(ANSWER_ENTRY.parse(entry)["answer"])
        except BadRecord as err:
            raise BadRecord(err.reason, f"answers[{i}]: {err.message}", field=f"answers[{i}].{err.field}") from None
    return out


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
    except InputError as err:  # missing, or not a regular file (a FIFO would block the read)
        raise BadRecord("image_size_unavailable", f"no size known and no readable image file: {err}",
                        field="width") from None
    except (UnidentifiedImageError, OSError) as err:
        raise BadRecord("image_size_unavailable", f"cannot read the image header of {path}: {err}",
                        field="width") from None


def _questions(config: VQAv2Config, bad: list[ErrorRow]) -> dict[int, tuple[int, str]]:
    """question id -> (image id, text) of every question that keeps the contract; the others go to ``bad``."""
    questions: dict[int, tuple[int, str]] = {}
    for i, q in enumerate(fsio.iter_json(config.questions, "questions.item", what="VQAv2 questions file")):
        try:
            parsed = QUESTION.parse(q)
        except BadRecord as err:
            image_id = q.get("image_id") if isinstance(q, dict) else None
            bad.append(ErrorRow(SOURCE, f"{SOURCE}/{image_id!r:.30}", config.questions, f"questions[{i}]", err.field,
                                "read", "qa", err.reason, err.message))
            continue
        qid, image_id, text = parsed["question_id"], parsed["image_id"], parsed["question"]
        if qid in questions:
            bad.append(ErrorRow(SOURCE, f"{SOURCE}/{image_id}", config.questions, f"question_id={qid}",
                                "question_id", "read", "qa", "duplicate_question_id", f"question {qid} repeats"))
            continue
        questions[qid] = (image_id, text)
    return questions


def _answered(config: VQAv2Config, questions: dict, bad: list[ErrorRow]) -> dict[int, list[dict]]:
    """image id -> its answered questions as qa items; unusable annotations and unanswered questions go to
    ``bad``."""
    per_image: dict[int, list[dict]] = defaultdict(list)
    answered: set[int] = set()
    for i, ann in enumerate(fsio.iter_json(config.annotations, "annotations.item", what="VQAv2 annotations file")):
        try:
            parsed = ANNOTATION.parse(ann)
            qid = parsed["question_id"]
            answers = _answers(ann)
        except BadRecord as err:
            qid = ann.get("question_id") if isinstance(ann, dict) else None
            if isinstance(qid, int) and qid in questions and qid not in answered:
                answered.add(qid)  # its question is rejected with the annotation: one qa item
            bad.append(ErrorRow(SOURCE, f"{SOURCE}/?", config.annotations,
                                f"annotations[{i}] (question_id={qid!r:.30})", err.field, "read", "qa", err.reason,
                                err.message))
            continue
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
        best = parsed["multiple_choice_answer"]
        if best is None and answers:
            best = Counter(answers).most_common(1)[0][0]
        per_image[image_id].append({
            "id": str(qid), "kind": "vqav2", "question": text, "point_question": None,
            "answer": best, "answers": answers,
            "question_type": parsed["question_type"], "answer_type": parsed["answer_type"],
            "point": None, "box": None, "object_ids": []})
    for qid in (q for q in questions if q not in answered):
        image_id, _ = questions[qid]
        bad.append(ErrorRow(SOURCE, f"{SOURCE}/{image_id}", config.annotations, f"question_id={qid}",
                            "question_id", "join", "qa", "no_annotation", "question has no annotation"))
    return per_image


def _sizes(config: VQAv2Config, wanted) -> dict[int, tuple | BadRecord]:
    """image id -> (width, height) from ``image_info`` (or the reason it is unusable), for the wanted images."""
    sizes: dict[int, tuple | BadRecord] = {}
    if config.image_info:
        for img in fsio.iter_json(config.image_info, "images.item", what="image_info file"):
            image_id = img.get("id") if isinstance(img, dict) else None
            if image_id not in wanted or image_id in sizes:
                continue  # not asked about, or listed twice (the first entry wins)
            try:
                parsed = coco_contract.IMAGE_SIZE.parse(img)
                sizes[image_id] = (parsed["width"], parsed["height"])
            except BadRecord as err:
                sizes[image_id] = err
    return sizes


@register(SOURCE, VQAv2Config, provides=("vqa",))
def read(config: VQAv2Config, ctx: ReadContext) -> Iterator[ReadBatch]:
    """VQAv2 questions with their answers, one record per COCO image."""
    return gather(SOURCE, _results(config, ctx))


def _results(config: VQAv2Config, ctx: ReadContext) -> Iterator[ImageResult]:
    subtype = config.data_subtype or next(iter(fsio.iter_json(config.questions, "data_subtype",
                                                               what="VQAv2 questions file")), "")
    bad: list[ErrorRow] = []
    per_image = _answered(config, _questions(config, bad), bad)
    if bad:
        result = ImageResult(source=SOURCE, key=f"{SOURCE}/?", record=None, orphan=True, errors=bad)
        result.items_read["qa"] = len(bad)
        result.items_rejected["qa"] = len(bad)
        yield result
    sizes = _sizes(config, per_image)
    for image_id in sorted(per_image):
        qas = per_image[image_id]
        key = f"{SOURCE}/{image_id}"
        file_name = f"COCO_{subtype}_{image_id:012d}.jpg" if subtype else f"{image_id:012d}.jpg"
        try:
            if isinstance(sizes.get(image_id), BadRecord):
                raise sizes[image_id]
            if image_id in sizes:
                width, height = sizes[image_id]
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
        yield b.finish(record)
