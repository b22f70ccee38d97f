"""`rcforge export KIND OUT FILE`: dialogue shards -> the training file of a trainer, streamed.

Kinds (each item is one dialogue; ``FILE`` ending ``.jsonl`` gives one item a line, ``.json`` one list):

- ``llava``: ``{"id", "image", "conversations", "task", "source"}`` (LLaVA's ``from``/``value`` turns).
- ``sharegpt``: LLaMA-Factory's ShareGPT form, ``{"messages": [{"role": "user"|"assistant", "content"}],
  "images": [path]}``, and its ``dataset_info.json`` entry written beside FILE (merged into one already there),
  named after FILE's stem.
- ``swift``: ms-swift's ``{"messages": [...], "images": [path]}``, JSONL.
- ``internvl``: InternVL's fine-tune JSONL ``{"id", "image", "width", "height", "conversations"}`` and the meta
  JSON of its data mixture (``<stem>_meta.json``: root, annotation, data_augment, repeat_time, length).
- ``qwen_vl``: the Qwen-VL fine-tune JSON list ``{"id", "conversations": [{"from": "user"|"assistant",
  "value"}]}``, the image as ``Picture 1: <img>path</img>`` at the head of the first user turn.

Image paths: the image's absolute path under its source's root (as the manifest records it); with
``--relative``, ``<source>/<image path>`` (a training folder laid out one sub-folder per source); with
``--image-root ROOT``, the absolute path relative to ROOT. A path that leaves its images root is never passed
on: that dialogue is left out and counted. Shards are read one batch at a time and items written as they come
(orjson), so a corpus of any size exports in bounded memory.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Callable

import fsspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from rcforge.core import fsio, images, visual_prompts
from rcforge.core.config import Range, number_flag
from rcforge.core.errors import InputError
from rcforge.core.manifest import Manifest
from rcforge.render import coordinates

COLUMNS = ["id", "source", "image", "task", "width", "height", "conversations", "image_vp"]
#: columns a build of an older rcforge lacks: read when the shard has them
OPTIONAL = {"image_vp"}
#: what the placeholder formats' items are made of besides (columns builds before them lack: read only for these)
SIDE_TABLE = ["coordinates", "boxes", "points", "groups", "masks"]
ROLES = {"human": "user", "gpt": "assistant"}
IMAGE_TOKEN = "<image>\n"


def _llava(row: dict, image: str) -> dict:
    return {"id": row["id"], "image": image, "conversations": row["conversations"], "task": row["task"],
            "source": row["source"]}


def _messages(row: dict, image: str) -> dict:
    """LLaMA-Factory's and ms-swift's form: role/content messages, the ``<image>`` tag kept where it is."""
    return {"messages": [{"role": ROLES[t["from"]], "content": t["value"]} for t in row["conversations"]],
            "images": [image]}


def _internvl(row: dict, image: str) -> dict:
    return {"id": row["id"], "image": image, "width": row["width"], "height": row["height"],
            "conversations": row["conversations"]}


def _side_table(row: dict, image: str) -> dict:
    """Shikra's item (and NExT-Chat's): the text with its placeholders, the boxes and points in pixels of the image
    under ``target``, and per turn ``boxes_seq`` / ``points_seq``, one list of indices per placeholder, in the
    order the placeholders stand (shikras/shikra@ff79a4c mllm/dataset/process_function/box_process_function.py,
    BoxFormatProcess; mllm/dataset/single_image_dataset/rec.py for the item's shape). A mask travels as its
    polygons (NExT-Chat's RES reads them with pycocotools.mask.frPyObjects), or its RLE where it has none."""
    w, h = row["width"], row["height"]
    fmt = coordinates.get(row["coordinates"])
    placeholder = fmt.placeholder
    groups = iter(row["groups"])
    next_box = next_point = 0
    turns = []
    for turn in row["conversations"]:
        item = {"from": turn["from"], "value": turn["value"]}
        seq = []
        for _ in range(turn["value"].count(placeholder)):
            k = next(groups)
            seq.append(list(range(next_box, next_box + k)))
            next_box += k
        points = turn["value"].count("<points>")
        if seq:
            item["boxes_seq"] = seq
        if points:
            item["points_seq"] = [[next_point + j] for j in range(points)]
            next_point += points
        turns.append(item)
    # width and height beside the boxes, as the family's dataset classes leave them for BoxFormatProcess
    target = {"boxes": [fmt.to_pixels(b, w, h) for b in row["boxes"]],
              "points": [fmt.to_pixels(p, w, h) for p in row["points"]], "width": w, "height": h}
    if row["masks"]:
        target["masks"] = [None if m is None else m["polygons"] or {"size": m["size"], "counts": m["counts"]}
                           for m in row["masks"]]
    return {"id": row["id"], "img_path": image, "width": w, "height": h, "target": target, "conversations": turns,
            "task": row["task"], "source": row["source"]}


def _ferret(row: dict, image: str) -> dict:
    """Ferret's item (apple/ml-ferret@3c9e5c9 ferret/train/train.py, lines 986-1077): each turn's
    ``<bbox_location>`` numbered from 0 in that turn, its boxes in pixels in ``box_x1y1x2y2[turn]`` and, where the
    dialogue shows masks, their RLE in ``masks[turn]`` (Ferret decodes ``counts`` as ASCII). Its dataset loaders
    (load_refexp, load_flickr, ...) add ``dataset`` and ``location_instruction`` when they read the file."""
    w, h = row["width"], row["height"]
    fmt = coordinates.get(row["coordinates"])
    boxes = iter(fmt.to_pixels(b, w, h) for b in row["boxes"])
    shown = iter(row["masks"] or [None] * len(row["boxes"]))
    turns, per_turn, masks = [], [], []
    for turn in row["conversations"]:
        parts = turn["value"].split(fmt.placeholder)
        value = parts[0] + "".join(f"<bbox_location{i}>{part}" for i, part in enumerate(parts[1:]))
        turns.append({"from": turn["from"], "value": value})
        per_turn.append([next(boxes) for _ in parts[1:]])
        masks.append([None if m is None else {"size": m["size"], "counts": m["counts"]}
                      for m in (next(shown) for _ in parts[1:])])
    item = {"id": row["id"], "image": image, "image_w": w, "image_h": h, "conversations": turns,
            "box_x1y1x2y2": per_turn}
    if row["masks"]:
        item["masks"] = masks
    return item


def _groma(row: dict, image: str) -> dict:
    """Groma Instruct's item (FoundationVision/Groma@d3a95b6 groma/data/datasets/groma.py, GromaInstruct.preprocess):
    ``file_name``, ``width``, ``height``, ``boxes`` in pixels [x, y, w, h], and ``conversation`` with, on each
    answer, ``box_inds``: the boxes of its ``<ground_box>`` tokens in order. Its loader writes the image line and
    ``[grounding]`` itself, so the questions go without ``<image>``."""
    w, h = row["width"], row["height"]
    fmt = coordinates.get(row["coordinates"])
    boxes = []
    for b in row["boxes"]:
        x1, y1, x2, y2 = fmt.to_pixels(b, w, h)
        boxes.append([x1, y1, x2 - x1, y2 - y1])
    turns, next_box = [], 0
    for turn in row["conversations"]:
        shown = turn["value"].count("<ground_box>") + turn["value"].count("<refer_box>")
        item = {"from": turn["from"], "value": turn["value"].removeprefix(IMAGE_TOKEN)}
        if turn["from"] == "gpt":
            item["box_inds"] = list(range(next_box, next_box + shown))
        next_box += shown
        turns.append(item)
    return {"id": row["id"], "file_name": image, "width": w, "height": h, "boxes": boxes, "conversation": turns}


def _no_points(trainer: str) -> Callable[[dict], str | None]:
    """The refusal of a trainer whose items hold boxes only: a dialogue that shows points."""
    return lambda row: f"{trainer}'s items hold boxes, not points" if row["points"] else None


def _groma_refuses(row: dict) -> str | None:
    """What GromaInstruct cannot take: points, boxes in a question (it reads boxes of answers only), or a dialogue
    whose answers show no box (it stacks the answers' boxes)."""
    if row["points"]:
        return _no_points("Groma Instruct")(row)
    if any("<refer_box>" in t["value"] for t in row["conversations"] if t["from"] == "human"):
        return "Groma Instruct's loader reads the boxes of answers only"
    if not any("<ground_box>" in t["value"] for t in row["conversations"] if t["from"] == "gpt"):
        return "Groma Instruct's loader needs a box in an answer"
    return None


_REF = re.compile(r"<ref-object>([^<]*)</ref-object>")


def _swift_objects(row: dict, image: str) -> dict:
    """ms-swift's item with its grounding side table: messages whose ``<ref-object>`` and ``<bbox>`` take, in order,
    the phrases of ``objects.ref`` and the boxes of ``objects.bbox`` (pixels, ``bbox_type`` "real", ms-swift
    normalizes them as the model's template wants)."""
    w, h = row["width"], row["height"]
    fmt = coordinates.get(row["coordinates"])
    refs, messages = [], []
    for turn in row["conversations"]:
        refs += _REF.findall(turn["value"])
        messages.append({"role": ROLES[turn["from"]], "content": _REF.sub("<ref-object>", turn["value"])})
    boxes = [[round(v, 2) for v in fmt.to_pixels(b, w, h)] for b in row["boxes"]]
    return {"messages": messages, "images": [image],
            "objects": {"ref": refs, "bbox": boxes, "bbox_type": "real", "image_id": [0] * len(boxes)}}


def _qwen_vl(row: dict, image: str) -> dict:
    turns = []
    for i, t in enumerate(row["conversations"]):
        value = t["value"]
        if i == 0:
            value = f"Picture 1: <img>{image}</img>\n" + value.removeprefix(IMAGE_TOKEN)
        turns.append({"from": ROLES[t["from"]], "value": value})
    return {"id": row["id"], "conversations": turns}


def _dataset_info(file: str, count: int, image_root: str | None) -> dict[str, dict]:
    """LLaMA-Factory's ``dataset_info.json`` entry for a ShareGPT file with role/content messages."""
    return {"dataset_info.json": {_stem(file): {
        "file_name": os.path.basename(file), "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}}}


def _internvl_meta(file: str, count: int, image_root: str | None) -> dict[str, dict]:
    """InternVL's data-mixture meta file (internvl_chat/shell/data/*.json): one entry for this annotation."""
    return {f"{_stem(file)}_meta.json": {_stem(file): {
        "root": image_root or "", "annotation": file, "data_augment": False, "repeat_time": 1, "length": count}}}


@dataclass(frozen=True)
class TrainerSettings:
    """The image settings the trainer is given, which decide the frame of a format that prints pixels of the
    processed image (qwen2_5_vl): LLaMA-Factory's ``image_max_pixels`` / ``image_min_pixels`` (its defaults,
    src/llamafactory/hparams/model_args.py ProcessorArguments :305-312 [ff6d4d1]) and ms-swift's ``MAX_PIXELS``
    (qwen_vl_utils' default, the processor's)."""

    image_max_pixels: int = 768 * 768
    image_min_pixels: int = 32 * 32
    max_pixels: int = coordinates.MAX_PIXELS


def _llamafactory_frame(t: TrainerSettings) -> dict:
    return {"image_max_pixels": t.image_max_pixels, "image_min_pixels": t.image_min_pixels}


def _llamafactory_notes(t: TrainerSettings, relative: bool, framed: bool) -> list[str]:
    notes = []
    if framed:
        notes.append(f"LLaMA-Factory: train with image_max_pixels: {t.image_max_pixels} and image_min_pixels: "
                     f"{t.image_min_pixels} (the frame the build's pixel boxes were checked against)")
    if relative:
        notes.append("LLaMA-Factory: set media_dir to the folder that holds one sub-folder per source (the image "
                     "paths are <source>/<path>, resolved against media_dir)")
    return notes


def _swift_frame(t: TrainerSettings) -> dict:
    return {"max_pixels": t.max_pixels}


def _swift_notes(t: TrainerSettings, relative: bool, framed: bool) -> list[str]:
    return [f"ms-swift: run with MAX_PIXELS={t.max_pixels} (the frame the build's pixel boxes were checked "
            f"against)"] if framed else []


@dataclass(frozen=True)
class ExportKind:
    name: str
    item: Callable[[dict, str], dict]
    #: the file forms the consumer reads
    suffixes: tuple[str, ...] = (".json", ".jsonl")
    #: (FILE, items written, image root) -> {file name beside FILE: JSON to merge into it}
    sidecars: Callable[[str, int, str | None], dict[str, dict]] | None = None
    #: the coordinate formats (`rcforge.render.coordinates` names) its trainer trains (the family's template exists
    #: there); a build in another format is refused, since a trainer fed it would learn boxes in the wrong format,
    #: or the family's tokens as plain text, without a word. The README's family table is checked against this.
    coordinates: tuple[str, ...] = ()
    #: the formats whose template in this trainer learns one round per item: each dialogue is written as one item
    #: per question-answer round instead of losing its earlier rounds
    single_round: tuple[str, ...] = ()
    #: the frame settings (``render.frame``) this trainer gives images, from what it is told; None: the
    #: processor's defaults
    frame: Callable[[TrainerSettings], dict] | None = None
    #: the settings its user must give the trainer, written beside FILE (``<stem>.training.txt``)
    notes: Callable[[TrainerSettings, bool, bool], list[str]] | None = None
    #: a dialogue its trainer cannot read -> why (it is left out and counted); None: every dialogue is written
    refuses: Callable[[dict], str | None] | None = None
    #: its items carry the numbers beside the text (`SIDE_TABLE` columns: the placeholder formats)
    side_table: bool = False


#: Qwen2-VL, Qwen2.5-VL and Qwen3-VL: LLaMA-Factory's qwen2_vl / qwen3_vl templates and ms-swift's qwen templates
_QWEN_MESSAGES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
KINDS = {kind.name: kind for kind in (
    ExportKind("llava", _llava, coordinates=("pink", "shikra", "minigpt_v2")),
    # LLaMA-Factory has no Florence-2 or Kosmos-2 template (src/llamafactory/data/template.py registers none)
    ExportKind("sharegpt", _messages, sidecars=_dataset_info, coordinates=_QWEN_MESSAGES, frame=_llamafactory_frame,
               notes=_llamafactory_notes),
    # ms-swift has no Kosmos-2 template; its Florence-2 one is an encoder-decoder template that encodes the last
    # query only, loss on the last round (modelscope/ms-swift swift/llm/template/template/microsoft.py,
    # FlorenceTemplate: is_encoder_decoder, _encode takes inputs.to_history()["query"])
    ExportKind("swift", _messages, suffixes=(".jsonl",), coordinates=(*_QWEN_MESSAGES, "florence2"),
               single_round=("florence2",), frame=_swift_frame, notes=_swift_notes),
    ExportKind("internvl", _internvl, suffixes=(".jsonl",), sidecars=_internvl_meta, coordinates=("internvl",)),
    ExportKind("qwen_vl", _qwen_vl, suffixes=(".json",), coordinates=("qwen_vl",)),
    ExportKind("shikra_jsonl", _side_table, suffixes=(".jsonl",), coordinates=("shikra_jsonl",), side_table=True),
    # NExT-Chat's BoxFormatProcess asserts that no turn holds <points> (NExT-ChatV/NExT-Chat@1e6c20f
    # mllm/dataset/process_function/box_process_function.py, line 81)
    ExportKind("nextchat", _side_table, suffixes=(".jsonl",), coordinates=("nextchat",), side_table=True,
               refuses=_no_points("NExT-Chat")),
    ExportKind("swift_objects", _swift_objects, suffixes=(".jsonl",), coordinates=("swift_objects",), side_table=True,
               refuses=_no_points("ms-swift")),
    ExportKind("groma", _groma, suffixes=(".json",), coordinates=("groma",), side_table=True, refuses=_groma_refuses),
    # Ferret's box_x1y1x2y2 holds boxes only (its loader picks a point of a box itself, in questions)
    ExportKind("ferret", _ferret, suffixes=(".json",), coordinates=("ferret",), side_table=True,
               refuses=_no_points("Ferret")),
)}


def kinds_for(fmt: str) -> list[str]:
    """The export kinds whose trainer trains ``fmt`` (the README's family table lists these)."""
    return [name for name, kind in KINDS.items() if fmt in kind.coordinates]


def check_coordinates(spec: ExportKind, built: str) -> None:
    """Refuse to export a build whose boxes are printed in a format ``spec``'s trainer does not train."""
    if built in spec.coordinates:
        return
    others = kinds_for(built)
    elsewhere = (f"export it with {' or '.join(others)} instead" if others else
                 f"no export kind trains {built} (no trainer rcforge writes for has its template); read the shards "
                 f"with the family's own code")
    wanted = " or ".join(f"--coordinates {name}" for name in spec.coordinates)
    raise InputError(f"export {spec.name}: this build prints its boxes in the {built!r} format, which the "
                     f"{spec.name} trainer does not train (it trains {', '.join(spec.coordinates)}): {elsewhere}, "
                     f"or build again with {wanted} (or render.coordinates in the recipe)")


def check_frame(spec: ExportKind, built_format: str, params: dict, out: str, trainer: TrainerSettings) -> None:
    """Refuse an export whose trainer would see an image in another frame than the one the build printed its
    pixel boxes for (only qwen2_5_vl prints pixels of the processed image), naming the image size, both frames
    and the ``render.frame`` that gives the trainer's."""
    base = coordinates.get(built_format)
    if not base.FRAME:
        return
    told = spec.frame(trainer) if spec.frame else {}
    built, wanted = base.framed(params), base.framed(told)
    if built.frame_settings == wanted.frame_settings:
        return  # the same settings give every image the same frame: no need to read the sizes
    for w, h in _sizes(out):
        theirs, ours = wanted.scale(w, h), built.scale(w, h)
        if theirs == ours:
            continue
        given = ", ".join(f"{k}: {v}" for k, v in wanted.frame_settings.items() if v != base.FRAME[k])
        raise InputError(
            f"export {spec.name}: its trainer, as set ({', '.join(f'{k}={v}' for k, v in told.items())}), gives a "
            f"{w}x{h} image the frame {theirs[0]}x{theirs[1]}, but this build printed its {built_format} boxes for "
            f"{ours[0]}x{ours[1]}; build again with render.frame: {{{given}}} in the recipe, or give export the "
            f"settings the trainer will really use")


def _sizes(out: str) -> set[tuple[int, int]]:
    """Every (width, height) of the build's dialogues (two columns read, shard by shard)."""
    sizes: set[tuple[int, int]] = set()
    for _, batch in _shard_batches(out, ["width", "height"]):
        sizes.update(zip(batch.column("width").to_pylist(), batch.column("height").to_pylist()))
    return sizes


def _write_notes(spec: ExportKind, file: str, trainer: TrainerSettings, relative: bool, framed: bool) -> None:
    """The trainer settings the export assumed, beside FILE and on stderr: what its user must set."""
    notes = spec.notes(trainer, relative, framed) if spec.notes else []
    if not notes:
        return
    path = fsio.join(os.path.dirname(file) or ".", f"{_stem(file)}.training.txt")
    fs, local = fsspec.core.url_to_fs(path)
    with fsio.atomic_write(fs, local, "w") as f:
        f.write("\n".join(notes) + "\n")
    for note in notes:
        print(f"export {spec.name}: {note}", file=sys.stderr)


def rounds(row: dict) -> list[dict]:
    """A dialogue as single-round dialogues, one per question and answer, each starting with the image token:
    ids ``<id>#<round>``, for a trainer that learns one round per item."""
    turns = row["conversations"]
    items = []
    for k in range(0, len(turns) - 1, 2):
        question, answer = dict(turns[k]), turns[k + 1]
        if not question["value"].startswith(IMAGE_TOKEN):
            question["value"] = IMAGE_TOKEN + question["value"]
        items.append({**row, "id": f"{row['id']}#{k // 2}", "conversations": [question, answer]})
    return items


def _stem(file: str) -> str:
    name = os.path.basename(file)
    return name[: name.index(".")] if "." in name else name


class ImagePaths:
    """A dialogue's image path as the export writes it (see the module docstring); ``None`` and a reason when it
    must not be passed on. Recent answers are kept: consecutive dialogues share images, and resolving a path on a
    local disk is a system call."""

    def __init__(self, roots: dict[str, str], *, relative: bool = False, image_root: str | None = None,
                 keep: int = 4096):
        self.roots, self.relative, self.keep = roots, relative, keep
        self.image_root = os.path.abspath(image_root) if image_root else None
        self._recent: dict[tuple[str, str], tuple[str | None, str | None]] = {}

    def __call__(self, source: str, image: str) -> tuple[str | None, str | None]:
        key = (source, image)
        found = self._recent.get(key)
        if found is None:
            found = self._resolve(source, image)
            if len(self._recent) >= self.keep:
                self._recent.clear()
            self._recent[key] = found
        return found

    def _resolve(self, source: str, image: str) -> tuple[str | None, str | None]:
        full, refused = images.confine(self.roots.get(source, ""), image)
        if refused:
            return None, refused
        if self.relative:
            return f"{source}/{image}", None
        if self.image_root:
            local = os.path.abspath(full.removeprefix("file://"))
            if os.path.commonpath([local, self.image_root]) != self.image_root:
                return None, f"the image {local} is not under --image-root {self.image_root}"
            return os.path.relpath(local, self.image_root), None
        return full, None


def _check_roles(rows: list[dict], shard: str) -> None:
    """rcforge writes turns human, gpt, human, gpt, ...: any other role (a damaged or edited shard) would reach
    the trainer as a role it does not know, or as a KeyError here; it is refused, naming the dialogue."""
    for row in rows:
        for i, turn in enumerate(row["conversations"] or []):
            if turn.get("from") != ("human" if i % 2 == 0 else "gpt"):
                raise InputError(f"export: {shard}: dialogue {row.get('id')!r} turn {i + 1} has role "
                                 f"{turn.get('from')!r}; rcforge's turns alternate human and gpt (rcforge validate "
                                 f"OUT checks the shards)")


def _shard_batches(out: str, columns: list[str]):
    """(shard, Arrow batch) of ``columns`` of a build's dialogue shards, shard by shard; a shard that does not
    read is one `InputError` naming it."""
    fs, path = fsspec.core.url_to_fs(out)
    shards = sorted(fs.glob(fsio.join(path, "dialogues", "part-*.parquet")))
    if not shards:
        raise InputError(f"export: no dialogue shards under {out}/dialogues")
    for shard in shards:
        with fs.open(shard, "rb") as f:
            try:
                parquet = pq.ParquetFile(f)
                present = set(parquet.schema_arrow.names)
                wanted = [c for c in columns if c in present or c not in OPTIONAL]
                for batch in parquet.iter_batches(batch_size=4096, columns=wanted):
                    yield shard, batch
            except (pa.ArrowException, ValueError) as err:  # truncated, not Parquet, or a column missing
                raise InputError(f"export: {shard} does not read ({fsio.first_line(err)}); rcforge "
                                 f"validate OUT lists what is damaged") from None


def _batches(out: str, columns: list[str] = COLUMNS):
    """The dialogue rows of a build, shard by shard, one Arrow batch (a list of row dicts) at a time."""
    for shard, batch in _shard_batches(out, columns):
        rows = batch.to_pylist()
        _check_roles(rows, shard)
        yield rows


def export(kind: str, out: str, file: str, *, relative: bool = False, image_root: str | None = None,
           trainer: TrainerSettings = TrainerSettings()) -> int:
    """Write the build's dialogues in ``kind``'s form to ``file`` (and its sidecar files); returns the count.
    ``trainer``: the image settings the trainer will be given (the frame of pixel coordinates)."""
    if kind not in KINDS:
        raise InputError(f"export: unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    spec = KINDS[kind]
    suffix = ".jsonl" if file.endswith(".jsonl") else ".json" if file.endswith(".json") else None
    if suffix not in spec.suffixes:
        raise InputError(f"export {kind}: FILE must end with {' or '.join(spec.suffixes)} (the form its trainer "
                         f"reads), got {file!r}")
    if relative and image_root:
        raise InputError("export: give --relative or --image-root, not both")
    manifest = Manifest.load(out, "export", "rcforge build")
    if manifest.build is not None:  # without a build there are no dialogues: _batches says so
        check_coordinates(spec, manifest.build.coordinates)
        check_frame(spec, manifest.build.coordinates, manifest.build.coordinate_params or {}, out, trainer)
    # a dialogue asked with marks shows its marked image (OUT/images_vp/), as if from a source of that name
    paths = ImagePaths({**manifest.image_roots(), visual_prompts.FOLDER: fsio.join(out, visual_prompts.FOLDER)},
                       relative=relative, image_root=image_root)
    sidecars = {}
    if spec.sidecars:  # read (and refuse) an existing sidecar before the data is written, not after
        sidecars = {name: _existing_json(fsio.join(os.path.dirname(file) or ".", name))
                    for name in spec.sidecars(file, 0, image_root)}
    split = manifest.build is not None and manifest.build.coordinates in spec.single_round
    columns = COLUMNS + (SIDE_TABLE if spec.side_table else [])
    n, (left_out, first) = _write(spec, _batches(out, columns), paths, file, jsonl=suffix == ".jsonl", split=split)
    if split:
        print(f"export {kind}: its {manifest.build.coordinates} template trains one round per item: each dialogue "
              f"was written as one item per round ({n:,} items)", file=sys.stderr)
    if spec.sidecars:
        for name, entry in spec.sidecars(file, n, image_root).items():
            path = fsio.join(os.path.dirname(file) or ".", name)
            fs, local = fsspec.core.url_to_fs(path)
            fsio.write_json(fs, local, {**sidecars[name], **entry})
    framed = manifest.build is not None and bool(coordinates.get(manifest.build.coordinates).FRAME)
    _write_notes(spec, file, trainer, relative, framed)
    if left_out:
        print(f"export: left out {left_out:,} dialogue(s) that {kind}'s trainer cannot take, e.g. {first}",
              file=sys.stderr)
    return n


def _write(spec: ExportKind, batches, paths: ImagePaths, file: str, *, jsonl: bool,
           split: bool = False) -> tuple[int, tuple[int, str]]:
    """Items one line each (JSONL) or as one list (JSON), written one batch at a time; with ``split``, one item
    per round (`rounds`). Returns the count written and (how many were left out, the first one's reason)."""
    n, left_out, first = 0, 0, ""
    item, dumps = spec.item, orjson.dumps
    fs, path = fsspec.core.url_to_fs(file)
    with fsio.atomic_write(fs, path, "wb") as sink:  # whole or not at all: a refused row leaves no half file
        if not jsonl:
            sink.write(b"[\n")
        for rows in batches:
            lines = []
            for row in rows:
                marked = row.get("image_vp")
                image, refused = paths(*marked.split("/", 1)) if marked else paths(row["source"], row["image"])
                refused = refused or (spec.refuses(row) if spec.refuses else None)
                if refused:  # never pass on a path that leaves the images root
                    left_out += 1
                    first = first or f"{row['id']}: {refused}"
                    continue
                lines += [dumps(item(part, image)) for part in (rounds(row) if split else (row,))]
            if lines:
                if jsonl:
                    sink.write(b"\n".join(lines) + b"\n")
                else:
                    sink.write((b",\n" if n else b"") + b",\n".join(lines))
                n += len(lines)
        if not jsonl:
            sink.write(b"\n]\n")
    return n, (left_out, first)


def _existing_json(path: str) -> dict:
    """The JSON object at ``path`` that an export adds its entry to (``{}`` when absent); an `InputError` when it
    is not valid JSON or not an object (the user's file is never overwritten)."""
    if not fsio.exists(path):
        return {}
    try:
        current = json.loads(fsio.read_text(path, "dataset info"))
    except ValueError as err:
        raise InputError(f"export: {path} exists and is not valid JSON ({err}); fix or move it, it is never "
                         f"overwritten") from None
    if not isinstance(current, dict):
        raise InputError(f"export: {path} exists and is not a JSON object; cannot add the dataset entry")
    return current


def add_arguments(parser) -> None:
    parser.add_argument("format", choices=sorted(KINDS), help="the trainer's format")
    parser.add_argument("out", help="the build's output folder (holds dialogues/ and manifest.json)")
    parser.add_argument("file", help="a .json file (one list) or a .jsonl file (one item a line)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--relative", action="store_true", help="image paths as <source>/<path>")
    where.add_argument("--image-root", help="image paths relative to this folder")
    defaults = TrainerSettings()
    parser.add_argument("--image-max-pixels", type=number_flag(int, Range(1)), default=defaults.image_max_pixels,
                        help="LLaMA-Factory's image_max_pixels for the training run (sharegpt; default %(default)s)")
    parser.add_argument("--image-min-pixels", type=number_flag(int, Range(0)), default=defaults.image_min_pixels,
                        help="LLaMA-Factory's image_min_pixels (sharegpt; default %(default)s)")
    parser.add_argument("--max-pixels", type=number_flag(int, Range(1)), default=defaults.max_pixels,
                        help="ms-swift's MAX_PIXELS for the training run (swift; default %(default)s)")


def main(args, rest) -> None:
    trainer = TrainerSettings(args.image_max_pixels, args.image_min_pixels, args.max_pixels)
    n = export(args.format, args.out, args.file, relative=args.relative, image_root=args.image_root, trainer=trainer)
    print(f"wrote {n:,} dialogues to {args.file}")
