"""Arrow schemas of every table rcforge writes, declared once.

Nothing else in the project builds pyarrow types ad hoc: writers build tables against these schemas so that a
drifting field fails loudly at write time. Each schema has a committed JSON form next to this file
(`<name>.schema.json`); `python -m rcforge.schemas` rewrites them and a golden test compares.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

SCHEMA_VERSION = "4"

#: Canonical box: pixel coordinates (x1, y1, x2, y2) on the original image, 0 <= x1 < x2 <= width and
#: 0 <= y1 < y2 <= height. Readers convert every dataset's convention to this form once.
BOX = pa.list_(pa.float64(), 4)
#: A point (x, y) in pixels.
POINT = pa.list_(pa.float64(), 2)
#: Optional box / point inside a list of structs: a variable-length list (null when absent), because pyarrow
#: cannot read back a null fixed-size list nested in a list of structs from Parquet ("Expected all lists to be
#: of size=2"). Writers still give exactly 4 / 2 values.
OPTIONAL_BOX = pa.list_(pa.float64())
OPTIONAL_POINT = pa.list_(pa.float64())

#: A mask as COCO's compressed RLE: ``size`` [height, width] of the image, ``counts`` the RLE string
#: (`rcforge.core.masks`). Kept compressed from the reader to the shard: nothing decodes a whole source.
MASK = pa.struct([pa.field("size", pa.list_(pa.int64())),  # [height, width]
                  pa.field("counts", pa.string())])
# (the children are nullable and size a variable list because Arrow checks a null struct's children too)

#: a mask a dialogue shows: the object's RLE and, where the source gave them, its polygons (NExT-Chat reads those)
SHOWN_MASK = pa.struct([*MASK, pa.field("polygons", pa.list_(pa.list_(pa.float64())))])

OBJECT = pa.struct(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("names", pa.list_(pa.string()), nullable=False),
        pa.field("category_id", pa.int64()),
        pa.field("box", BOX, nullable=False),
        pa.field("ignore", pa.bool_(), nullable=False),
        pa.field("attributes", pa.list_(pa.string()), nullable=False),
        pa.field("synsets", pa.list_(pa.string()), nullable=False),
        # the object's mask (null: the source has none, e.g. Objects365 and Visual Genome, or it was rejected),
        # the polygons it came from (null for an RLE source), its area in pixels, and COCO's iscrowd (null
        # where the source does not say)
        pa.field("mask", MASK),
        pa.field("polygons", pa.list_(pa.list_(pa.float64()))),
        pa.field("area", pa.float64()),
        pa.field("iscrowd", pa.bool_()),
    ]
)

RELATION = pa.struct(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("subject_id", pa.int64(), nullable=False),
        pa.field("predicate", pa.string(), nullable=False),
        pa.field("object_id", pa.int64(), nullable=False),
    ]
)

REGION = pa.struct(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("phrase", pa.string(), nullable=False),
        pa.field("box", BOX, nullable=False),
    ]
)

CAPTION_PHRASE = pa.struct(
    [
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("types", pa.list_(pa.string()), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        # character span of the phrase in the caption text: text[start:end] == phrase text
        pa.field("start", pa.int32(), nullable=False),
        pa.field("end", pa.int32(), nullable=False),
        # the objects (boxes) of this image that the phrase refers to; empty for nobox / scene entities
        pa.field("object_ids", pa.list_(pa.int64()), nullable=False),
        pa.field("no_box", pa.bool_(), nullable=False),
        pa.field("scene", pa.bool_(), nullable=False),
    ]
)

CAPTION = pa.struct(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("phrases", pa.list_(CAPTION_PHRASE), nullable=False),
    ]
)

REF_SENTENCE = pa.struct(
    [
        pa.field("sent_id", pa.int64(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
    ]
)

REFERRING = pa.struct(
    [
        pa.field("ref_id", pa.int64(), nullable=False),
        pa.field("object_id", pa.int64(), nullable=False),
        pa.field("category_id", pa.int64()),
        pa.field("split", pa.string(), nullable=False),
        pa.field("sentences", pa.list_(REF_SENTENCE), nullable=False),
    ]
)

QA = pa.struct(
    [
        pa.field("id", pa.string(), nullable=False),
        # vqav2 | localqa | looktwiceqa
        pa.field("kind", pa.string(), nullable=False),
        pa.field("question", pa.string(), nullable=False),
        # LookTwiceQA's question that points instead of naming ("How many of these are there?")
        pa.field("point_question", pa.string()),
        # the single best answer (VQAv2 multiple_choice_answer, PointQA answer)
        pa.field("answer", pa.string()),
        # every annotator answer (VQAv2: the 10 answers), or every acceptable answer
        pa.field("answers", pa.list_(pa.string()), nullable=False),
        pa.field("question_type", pa.string()),
        pa.field("answer_type", pa.string()),
        pa.field("point", OPTIONAL_POINT),
        pa.field("box", OPTIONAL_BOX),
        pa.field("object_ids", pa.list_(pa.int64()), nullable=False),
    ]
)

#: a category proven absent from the image, and the proof (`rcforge.rc_tasks.negatives.BASES`): LVIS's
#: ``neg_category_ids`` ("lvis_neg"), a category of an exhaustively labelled vocabulary with no box in the image
#: ("exhaustive_vocab": COCO's 80 classes in RefCOCO's instances), or of one only claimed exhaustive
#: ("claimed_vocab": Objects365, when the recipe says so)
ABSENT = pa.struct([
    pa.field("name", pa.string(), nullable=False),
    pa.field("basis", pa.string(), nullable=False),
])

IMAGE_RECORD = pa.schema(
    [
        # stable key, "<source>/<image id>" (RefCOCO: "refcoco/<dataset>/<image id>")
        pa.field("key", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        # path relative to the source's image root (recorded in the manifest)
        pa.field("image", pa.string(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("split", pa.string()),
        # cross-dataset ids: exclusion matches on coco_id
        pa.field("coco_id", pa.int64()),
        pa.field("vg_id", pa.int64()),
        pa.field("flickr_id", pa.int64()),
        pa.field("objects", pa.list_(OBJECT), nullable=False),
        pa.field("relations", pa.list_(RELATION), nullable=False),
        pa.field("regions", pa.list_(REGION), nullable=False),
        pa.field("captions", pa.list_(CAPTION), nullable=False),
        pa.field("refs", pa.list_(REFERRING), nullable=False),
        pa.field("qas", pa.list_(QA), nullable=False),
        # categories proven absent from the image (negative questions ask only about these)
        pa.field("absent", pa.list_(ABSENT), nullable=False),
    ],
    metadata={"rcforge.table": "image_record", "rcforge.schema_version": SCHEMA_VERSION},
)

ERROR_RECORD = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        # the image key when known ("vg/12"), else ""
        pa.field("key", pa.string(), nullable=False),
        pa.field("file", pa.string(), nullable=False),
        # which record in the file: "image_id=12", "question_id=5", "<object> #3", ...
        pa.field("record", pa.string(), nullable=False),
        pa.field("field", pa.string(), nullable=False),
        # read | validate | join
        pa.field("stage", pa.string(), nullable=False),
        # what was rejected: image | object | relation | region | caption | ref | qa | annotation
        pa.field("kind", pa.string(), nullable=False),
        # short machine-readable reason, e.g. box_zero_area
        pa.field("reason", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
    ],
    metadata={"rcforge.table": "error", "rcforge.schema_version": SCHEMA_VERSION},
)

TURN = pa.struct(
    [
        pa.field("from", pa.string(), nullable=False),  # "human" | "gpt"
        pa.field("value", pa.string(), nullable=False),
    ]
)

TURN_SOURCE = pa.struct(
    [
        pa.field("task", pa.string(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),
        pa.field("template_id", pa.string(), nullable=False),
        # a counting turn: whether its count is proven by labels that mark every instance of the category (LVIS,
        # COCO-style exhaustive vocabularies), or only the count of what annotators happened to label (Visual
        # Genome); null for every other task (`rcforge.rc_tasks.counting`)
        pa.field("count_proven", pa.bool_()),
        # a negative turn (a category proven absent, answered "none"): the proof, `rcforge.rc_tasks.negatives`
        # ("lvis_neg", "exhaustive_vocab", "claimed_vocab"); null for every other turn
        pa.field("negative_basis", pa.string()),
        # a detection or counting turn whose answer lists every instance: the proof that it is complete
        # ("exhaustive_labels": LVIS; "claimed_labels": Objects365), null where the labels are partial (VG)
        pa.field("complete_basis", pa.string()),
    ]
)

#: one mark drawn on a dialogue's marked image (`rcforge.core.visual_prompts`): what the question calls it (mark_id with
#: its shape and colour), the annotation it marks ("object:12", "region:5") and that annotation's number
MARK = pa.struct([pa.field("mark_id", pa.string(), nullable=False), pa.field("shape", pa.string(), nullable=False),
                  pa.field("colour", pa.string(), nullable=False), pa.field("object_id", pa.int64(), nullable=False),
                  pa.field("annotation", pa.string(), nullable=False)])

DIALOGUE = pa.schema(
    [
        # stable: "<image key>/<k>" for sampled dialogues, "<image key>/<task>/<annotation>" for enumerated ones
        pa.field("id", pa.string(), nullable=False),
        # the image record's key ("vg/1"): joins a dialogue to its annotations in OUT/images
        pa.field("key", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        # path relative to the source's image root (manifest: sources.<name>.image_root)
        pa.field("image", pa.string(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        # task, variant and template of the first question-answer pair (all pairs: turns)
        pa.field("task", pa.string(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),
        pa.field("template_id", pa.string(), nullable=False),
        pa.field("turns", pa.list_(TURN_SOURCE), nullable=False),
        # LLaVA-style: the first human turn starts with "<image>\n"
        pa.field("conversations", pa.list_(TURN), nullable=False),
        # every box printed, normalized xyxy in the coordinate format's frame, in mention order
        pa.field("boxes", pa.list_(pa.list_(pa.float64(), 4)), nullable=False),
        pa.field("points", pa.list_(pa.list_(pa.float64(), 2)), nullable=False),
        # how many boxes each printed box mention holds, in print order (sum = len(boxes)): what a placeholder
        # format's side table needs (Shikra's boxes_seq: one list of box indices per <boxes>)
        pa.field("groups", pa.list_(pa.int32()), nullable=False),
        # the mask of each printed box, in the order of boxes (null for a box without one), when the dialogue
        # shows any (referring segmentation); empty otherwise. Each is the object's mask in its image record,
        # with the polygons it came from (null for an RLE source)
        pa.field("masks", pa.list_(SHOWN_MASK), nullable=False),
        # the annotation ids behind every mention and answer item ("object:12", "region:5", "ref:3", "qa:7")
        pa.field("provenance", pa.list_(pa.string()), nullable=False),
        pa.field("coordinates", pa.string(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        # [W', H']: the processed image the printed pixel numbers refer to (qwen2_5_vl: the trainer's frame, from
        # render.frame); null where the numbers are relative to the image itself
        pa.field("frame", pa.list_(pa.int32()), nullable=True),
        # visual prompts: the image with the question's regions marked, relative to OUT
        # ("images_vp/<sha256>.png", named by its content), and its sha256; null for a dialogue asked with
        # coordinates, which shows the image itself
        pa.field("image_vp", pa.string(), nullable=True),
        pa.field("image_vp_sha256", pa.string(), nullable=True),
        # the marks drawn on image_vp, in the order the question names them; empty without visual prompts
        pa.field("marks", pa.list_(MARK), nullable=False),
    ],
    metadata={"rcforge.table": "dialogue", "rcforge.schema_version": SCHEMA_VERSION},
)

CANDIDATE = pa.schema(
    [
        # the image record's key ("objects365/420917") and the annotated object
        pa.field("key", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("image", pa.string(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("object_id", pa.int64(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        # the original box (pixel xyxy), which a kept pair keeps
        pa.field("box", BOX, nullable=False),
        # which of the N descriptions drawn for this box
        pa.field("sample", pa.int32(), nullable=False),
        pa.field("description", pa.string()),
        # the box the description grounds back to (pixel xyxy); null on a format error
        pa.field("predicted_box", OPTIONAL_BOX),
        pa.field("iou", pa.float64(), nullable=False),
        # best IoU of the predicted box with another box of the same category in the image (uniqueness)
        pa.field("other_iou", pa.float64(), nullable=False),
        pa.field("format_error", pa.bool_(), nullable=False),
        # image | describe | ground: the image did not read, or which stage's reply did not parse
        pa.field("error_stage", pa.string()),
        pa.field("raw_describe", pa.string()),
        pa.field("raw_ground", pa.string()),
        pa.field("backend", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("model_revision", pa.string()),
        pa.field("describe_template", pa.string(), nullable=False),
        pa.field("ground_template", pa.string(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
    ],
    metadata={"rcforge.table": "candidate", "rcforge.schema_version": SCHEMA_VERSION},
)

PAIR = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("image", pa.string(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("object_id", pa.int64(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        # the ORIGINAL box of the object, as Pink keeps it (not the re-grounded one)
        pa.field("box", BOX, nullable=False),
        pa.field("description", pa.string(), nullable=False),
        pa.field("iou", pa.float64(), nullable=False),
        pa.field("sample", pa.int32(), nullable=False),
        pa.field("backend", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("lambda", pa.float64(), nullable=False),
    ],
    metadata={"rcforge.table": "pair", "rcforge.schema_version": SCHEMA_VERSION},
)

SCHEMAS: dict[str, pa.Schema] = {
    "image_record": IMAGE_RECORD,
    "error": ERROR_RECORD,
    "dialogue": DIALOGUE,
    "candidate": CANDIDATE,
    "pair": PAIR,
}

_HERE = Path(__file__).resolve().parent


def schema_to_jsonable(schema: pa.Schema) -> dict:
    """A stable, human-readable JSON form of an Arrow schema (for review and the golden test)."""

    def type_form(t: pa.DataType):
        if pa.types.is_struct(t):
            return {"struct": [field_form(t.field(i)) for i in range(t.num_fields)]}
        if pa.types.is_fixed_size_list(t):
            return {"fixed_size_list": type_form(t.value_type), "size": t.list_size}
        if pa.types.is_list(t):
            return {"list": type_form(t.value_type)}
        return str(t)

    def field_form(f: pa.Field):
        return {"name": f.name, "type": type_form(f.type), "nullable": f.nullable}

    meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    return {"metadata": meta, "fields": [field_form(f) for f in schema]}


def committed_path(name: str) -> Path:
    return _HERE / f"{name}.schema.json"


def write_committed() -> list[Path]:
    """Rewrite the committed JSON form of every schema; returns the paths written."""
    paths = []
    for name, schema in SCHEMAS.items():
        path = committed_path(name)
        path.write_text(json.dumps(schema_to_jsonable(schema), indent=2) + "\n")
        paths.append(path)
    return paths
