"""Coordinate formats: how the boxes and points of an image record are written as text, one format per model family.

A format is chosen per recipe (``render.coordinates``). Tasks never format coordinates: they hand the renderer
`Mention`s (pixel boxes or points, and for objects a phrase naming them), and the renderer calls the format. So
a new task never touches this module, and a new format never touches a task. A format decides:

- how a box and a point print (`Formatter.normalize`, `Formatter.boxes_text`, `Formatter.point_text`);
- how a phrase is tied to its boxes (``ties``): answers tie a mention's phrase, questions never do (a question's
  box must not give its answer away). Where the phrase already stands right before the box in the text (a
  Flickr30K caption, "the {{ o.name }} {{ o.box }}"), tag formats wrap it in place; elsewhere they add it;
- how several boxes of one mention are joined;
- the answer form for grounding and detection where the family has its own (``json_kinds``: Qwen2.5-VL and
  Qwen3-VL answer with a JSON list);
- a task identifier in front of each question (``task_ids``: MiniGPT-v2, Florence-2's task tokens);
- answers in the family's own form instead of a template (`Formatter.answers_itself`: Qwen's JSON lists,
  Florence-2's ``phrase<loc..>`` grammar);
- ``params``: the frame, the bins or grid, the rounding and the pixel limits, recorded in the build's manifest.

Every format reads its own text back (`Formatter.parse`, normalized to [0, 1] in the format's frame), within
`Formatter.tolerance` of the ``boxes`` column; the round-trip tests hold each format to its family's own parser.

Conventions, each from the family's own code (commit in brackets):

- ``pink`` (default; Pink, Shikra's notation on the original image): ``[x1/W,y1/H,x2/W,y2/H]`` with 3 decimals,
  clamped to [0, 1]; several boxes of one mention as separate brackets in ascending area; a point ``[0.500,0.250]``.
- ``shikra``: the image padded to a square (offset ``(max - min) // 2`` on the short side), divided by the side,
  3 decimals; several boxes as ``[a;b]``.
- ``qwen_vl`` (alias ``qwen``), Qwen-VL: ``<ref>phrase</ref><box>(x1,y1),(x2,y2)</box>``, integers "normalized
  values in the range [0, 1000)" (QwenLM/Qwen-VL README.md:968 [aa00ed0]; the fine-tune example at :945). Its
  evaluation divides by 999 instead (eval_mm/evaluate_grounding.py:203): the two writers disagree at the edge. We
  follow the documented training format, the contract users write data against: round(v * 1000), 1.0 written
  999 (a 0.1% difference, below the format's unit); several boxes of one phrase as consecutive ``<box>`` tags.
- ``qwen2_vl``, Qwen2-VL: integers 0..1000 with its special tokens,
  ``<|object_ref_start|>phrase<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`` (the tokens of the
  Qwen2-VL tokenizer), written as Qwen's own converter writes them: ``round(x / w * 1000)`` clamped to [0, 1000],
  so the right or bottom edge is 1000 (QwenLM/Qwen3-VL qwen-vl-finetune/tools/process_bbox.ipynb, cell 3,
  ``convert_to_qwen2vl_format`` [9658872]; ms-swift's ``normalize_bbox`` agrees).
- ``qwen2_5_vl``, Qwen2.5-VL: absolute pixels of the image as its processor resizes it, ``smart_resize`` with
  factor 28 and pixel limits 4*28*28 and 16384*28*28 by default (QwenLM/Qwen2.5-VL qwen-vl-utils/src/qwen_vl_utils/
  vision_process.py:25-27, 59-85 [f0af299]; the recipe's ``render.frame`` sets the limits a trainer uses),
  written as Qwen's converter writes them: ``round(x * W' / W)`` clamped to [0, W' - 1] (process_bbox.ipynb,
  cell 5, ``convert_to_qwen25vl_format`` [9658872]); grounding and detection answers as a fenced JSON list
  ``[{"bbox_2d": [x1, y1, x2, y2], "label": "phrase"}]`` (the form its cookbook parses, and Qwen3-VL's
  evaluation strips, evaluation/ODinW-13/run_odinw.py:217-231); a box or point inside other text is a JSON object
  (``{"bbox_2d": [...]}``, ``{"point_2d": [x, y]}``): the form of Qwen's own fine-tune grounding example
  (QwenLM/Qwen3-VL qwen-vl-finetune/README.md:106-117 [9658872], an answer ``{"bbox_2d": [135, 114, 1016, 672]}``).
  Qwen publishes no form for a box inside a question (its cookbooks ask in words and answer in JSON), so a
  question's box is written as that same object, which ``json.loads`` reads wherever it stands.
- ``qwen3_vl``, Qwen3-VL: the same JSON with relative integers 0..1000 (round(v * 1000); its evaluation divides by
  1000, QwenLM/Qwen3-VL evaluation/ODinW-13/run_odinw.py:240 [9658872]).
- ``internvl``, InternVL: ``<ref>phrase</ref><box>[[x1, y1, x2, y2], ...]</box>`` on 0..1000, truncated with
  int() as its data-format guide writes; several boxes of one phrase inside one ``<box>`` (the parser of its
  demo, OpenGVLab/InternVL streamlit_demo/app.py:195-211 [2410d1d], reads ``<ref>..</ref><box>[[..]]</box>`` and
  divides by 1000).
- ``florence2``, Florence-2: ``phrase<loc_x1><loc_y1><loc_x2><loc_y2>``, bins floor(v * 1000) clamped to 999, as
  transformers' Florence2 processor quantizes; a bin reads back as its centre (bin + 0.5) / 1000. Answers with
  boxes are its grammar, ``phrase<loc..>phrase<loc..>`` with no prose (what its post-processor parses); its task
  tokens start the questions of grounding, detection and grounded captions (see `Florence2`).
- ``kosmos2``, Kosmos-2: ``<phrase>phrase</phrase><object><patch_index_UL><patch_index_LR></object>`` on a 32 x 32
  grid, several boxes joined by ``</delimiter_of_multi_objects/>`` inside one object, as transformers' Kosmos2
  processor writes and its ``post_process_generation`` reads.
- ``minigpt_v2``, MiniGPT-v2: ``{<x1><y1><x2><y2>}`` on 0..100 truncated with int() (Vision-CAIR/MiniGPT-4
  minigpt4/datasets/datasets/coco_dataset.py:73-74 [d94738a]); a phrase as ``<p>phrase</p> {...}`` and several
  boxes joined by ``<delim>`` (flickr.py:146; demo_v2.py:81-91, 211); a task identifier before each question,
  ``[refer]`` (coco_dataset.py:36-42), ``[identify]`` (:101-107), ``[detection]`` (flickr.py:80), ``[grounding]``
  (flickr.py:33), ``[vqa]`` (coco_vqa_datasets.py:39). Its refer answers are the bare box (coco_dataset.py:73-92),
  so grounding answers do not tie the phrase.
"""

from __future__ import annotations

import json
import math
import re
from typing import Mapping, Sequence

from rcforge.core.registry import Registry

Box = Sequence[float]
NormBox = tuple[float, float, float, float]


def _clamp(v: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if v < lo else hi if v > hi else v


def _area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _relative(box: Box, w: int, h: int) -> NormBox:
    return (_clamp(box[0] / w), _clamp(box[1] / h), _clamp(box[2] / w), _clamp(box[3] / h))


#: a bracketed list of numbers: a Pink or Shikra box or point, which annotation text must not look like
NUMBER_BRACKETS = r"\[\s*-?\d*\.?\d+(?:\s*[,;]\s*-?\d*\.?\d+)+\s*\]"
#: the special tokens of the Llama tokenizer under Pink's and Shikra's LLaVA-style models
LLAMA_TOKENS = r"|</?s>|<unk>"
#: any angle bracket: in a format whose mentions are tags, a phrase holding one breaks the family's reading of
#: ``<ref>phrase</ref>`` (``[^<]*``), so a lone ``<`` or ``>`` of annotation text is escaped too
ANGLES = r"|[<>]"
#: Qwen's special tokens (chat roles, vision, object and box markers): ``<|im_end|>``, ``<|box_start|>``, ...
QWEN_TOKENS = r"<\|[a-z_]+\|>"


class Formatter:
    """A family's text form of coordinates. Subclasses implement `box_numbers`/`write_boxes` and `parse`; the
    class attributes say how phrases, answers and questions look."""

    name = ""
    #: a phrase is printed with the boxes of an answer's mention (False: the template's text names the object)
    ties = False
    #: task kinds (`rcforge.rc_tasks.KINDS`: a task declares its kind, so a new task never edits a format)
    #: whose answers never tie (MiniGPT-v2's refer answers are the bare box)
    untied_kinds: frozenset = frozenset()
    #: task kinds whose answer is the family's JSON list of boxes instead of an answer template
    json_kinds: frozenset = frozenset()
    #: task kind -> the identifier written before each of its questions
    task_ids: Mapping[str, str] = {}
    #: a phrase that stands right before its box in the text is wrapped there, not printed again
    wraps_in_place = True
    #: several boxes of one mention are printed smallest first
    sort_by_area = False
    #: the size of one printed unit on the normalized axis; tolerance is half of it for rounding formats
    unit = 0.001
    truncates = False
    #: a regular expression matching one printed mention (the preview colours each)
    pattern = ""
    #: the markup around a whole answer that the format writes (Qwen's JSON code fence), for
    #: `rcforge.render.markup.stray`
    frame = ""
    #: markup and special tokens of the format and its family that annotation text must not carry (besides
    #: `rcforge.render.markup.COMMON`): its mention syntax, its chat template's and tokenizer's added tokens
    reserved = ""

    #: the text holds placeholders and the numbers travel in a side table (`ShikraJsonl`)
    placeholders = False

    #: the settings of a frame that depends on the trainer (``render.frame``): none for most formats
    FRAME: Mapping[str, int] = {}

    def framed(self, frame: Mapping) -> "Formatter":
        """This format set to ``frame``'s settings (only those in `FRAME` count; a format without one ignores it)."""
        return self

    def frame_size(self, w: int, h: int) -> list[int] | None:
        """[W', H'] of the processed image its numbers are pixels of (a dialogue's ``frame``); None when they are
        relative to the image."""
        return None

    @property
    def params(self) -> dict:
        """What a trainer must know to read the numbers back: recorded in the build's manifest."""
        return {"unit": self.unit, "rounding": "floor" if self.truncates else "round"}

    # -- normalizing -------------------------------------------------------------------------------------------
    def normalize(self, box: Box, w: int, h: int) -> NormBox:
        """A pixel box as floats on [0, 1] in this format's frame (the records' ``boxes`` column)."""
        return _relative(box, w, h)

    def normalize_point(self, p: Sequence[float], w: int, h: int) -> tuple[float, float]:
        return (_clamp(p[0] / w), _clamp(p[1] / h))

    def to_pixels(self, values: Sequence[float], w: int, h: int) -> list[float]:
        """Normalized values (a box or a point) in this format's frame back to pixels of the image."""
        return [v * (w if i % 2 == 0 else h) for i, v in enumerate(values)]

    def padded_square(self, w: int, h: int) -> tuple[int, int, int] | None:
        """(x offset, y offset, side) when the format's frame is the image padded to a square, else None."""
        return None

    def tolerance(self, w: int, h: int) -> float:
        """How far a parsed value may be from the ``boxes`` column (quantization, not error)."""
        return (self.unit if self.truncates else self.unit / 2) + 1e-9

    def ordered(self, boxes: list[Box]) -> list[Box]:
        """The boxes of one mention in the order this format prints them."""
        return sorted(boxes, key=_area) if self.sort_by_area else list(boxes)

    # -- writing ----------------------------------------------------------------------------------------------
    def boxes_text(self, boxes: list[Box], w: int, h: int, phrase: str | None = None) -> str:
        """Several boxes of one mention (already `ordered`), tied to ``phrase`` when the format ties and one is
        given."""
        raise NotImplementedError

    def box(self, box: Box, w: int, h: int) -> str:
        return self.boxes_text([box], w, h)

    def refer_text(self, boxes: list[Box], w: int, h: int) -> str:
        """Boxes shown in a question (a region the model is asked about): most families print them as they print
        any box; Groma marks them apart (``<refer_box>``)."""
        return self.boxes_text(boxes, w, h)

    def point_text(self, p: Sequence[float], w: int, h: int) -> str:
        raise NotImplementedError

    def task_id(self, kind: str | None) -> str | None:
        """The identifier written before a question of a task of ``kind`` (None: the family has none)."""
        return None

    #: between a task identifier and the question (MiniGPT-v2 "[refer] where...", Florence-2 "<OD>" glued)
    task_id_joiner = " "
    #: the answer id recorded for an answer in the family's own form (`own_answer`)
    own_answer_id = "json"

    def answers_itself(self, kind: str | None, answer_mentions: Sequence) -> bool:
        """Whether the answer (of a task of ``kind``) is written in the family's own form (`own_answer`) instead of
        its template: the ``json_kinds`` of Qwen's JSON formats; Florence-2's every answer that holds boxes."""
        return kind in self.json_kinds

    def own_answer(self, items: list[tuple[str | None, list[Box]]], w: int, h: int) -> str:
        """The answer in the family's own form: every (phrase, boxes) of the answer's mentions."""
        return self.json_answer(items, w, h)

    def json_answer(self, items: list[tuple[str | None, list[Box]]], w: int, h: int) -> str:
        """The answer of a ``json_kinds`` task: every (phrase, boxes) of the answer as one list."""
        raise NotImplementedError

    # -- reading ----------------------------------------------------------------------------------------------
    def parse(self, text: str, w: int, h: int) -> list[NormBox]:
        """Every box the text holds, in order, normalized in this format's frame."""
        raise NotImplementedError

    #: one printed point; its two groups are the printed x and y
    point_pattern = ""

    def point_value(self, x: str, y: str, w: int, h: int) -> tuple[float, float]:
        return float(x), float(y)

    def parse_points(self, text: str, w: int, h: int) -> list[tuple[float, float]]:
        """Every point the text holds, in order, normalized in this format's frame."""
        return [self.point_value(x, y, w, h) for x, y in re.findall(self.point_pattern, text)]


# -- pink and shikra ------------------------------------------------------------------------------------------
def _three(values) -> str:
    return "[" + ",".join(f"{v:.3f}" for v in values) + "]"


_BRACKET = re.compile(r"\[([^\[\]]*)\]")


def _parse_brackets(text: str) -> list[NormBox]:
    out = []
    for group in _BRACKET.findall(text):
        for part in group.split(";"):
            nums = [float(x) for x in part.split(",") if x.strip()]
            if len(nums) == 4:
                out.append(tuple(nums))
    return out


class Pink(Formatter):
    name, sort_by_area, pattern = "pink", True, r"\[[^\[\]]*\]"
    reserved = NUMBER_BRACKETS + LLAMA_TOKENS
    point_pattern = r"\[(\d+\.\d+),(\d+\.\d+)\]"

    @property
    def params(self) -> dict:
        return {**super().params, "frame": "image", "decimals": 3}

    def boxes_text(self, boxes, w, h, phrase=None) -> str:
        return " ".join(_three(self.normalize(b, w, h)) for b in self.ordered(boxes))

    def point_text(self, p, w, h) -> str:
        return _three(self.normalize_point(p, w, h))

    def parse(self, text, w, h):
        return _parse_brackets(text)


def square_frame(w: int, h: int) -> tuple[int, int, int]:
    """(x offset, y offset, side) of the image padded to a square, as Shikra's expand2square does."""
    side = max(w, h)
    off = (side - min(w, h)) // 2
    return (off, 0, side) if w < h else (0, off, side)


class Shikra(Formatter):
    name, pattern = "shikra", r"\[[^\[\]]*\]"
    reserved = NUMBER_BRACKETS + LLAMA_TOKENS
    point_pattern = r"\[(\d+\.\d+),(\d+\.\d+)\]"

    @property
    def params(self) -> dict:
        return {**super().params, "frame": "padded_square", "decimals": 3}

    def normalize(self, box, w, h):
        ox, oy, side = square_frame(w, h)
        return (_clamp((box[0] + ox) / side), _clamp((box[1] + oy) / side), _clamp((box[2] + ox) / side),
                _clamp((box[3] + oy) / side))

    def normalize_point(self, p, w, h):
        ox, oy, side = square_frame(w, h)
        return (_clamp((p[0] + ox) / side), _clamp((p[1] + oy) / side))

    def padded_square(self, w, h):
        return square_frame(w, h)

    def to_pixels(self, values, w, h):
        ox, oy, side = square_frame(w, h)
        return [v * side - (ox if i % 2 == 0 else oy) for i, v in enumerate(values)]

    def boxes_text(self, boxes, w, h, phrase=None) -> str:
        return "[" + ";".join(",".join(f"{v:.3f}" for v in self.normalize(b, w, h)) for b in boxes) + "]"

    def point_text(self, p, w, h) -> str:
        return _three(self.normalize_point(p, w, h))

    def parse(self, text, w, h):
        return _parse_brackets(text)


# -- integer grids ----------------------------------------------------------------------------------------------
class Grid(Formatter):
    """Integers ``bins`` per axis: round(v * bins) (capped at ``top``) or, when ``truncates``, int(v * bins).

    A family's text is its templates: ``box_format`` (one box, its four integers), ``joiner`` (between the boxes of
    one mention), ``group_format`` (around them), ``phrase_format`` (the tie), ``point_format``; ``_BOX`` reads
    one box back."""

    bins = 1000
    top = 1000
    box_format = ""
    joiner = ""
    group_format = "{}"
    phrase_format = "{phrase}{boxes}"
    point_format = ""
    _BOX: re.Pattern

    @property
    def unit(self) -> float:  # type: ignore[override]
        return 1.0 / self.bins

    @property
    def params(self) -> dict:
        return {**super().params, "frame": "image", "bins": self.bins, "max": self.top}

    def quantize(self, v: float) -> int:
        q = int(v * self.bins) if self.truncates else round(v * self.bins)
        return min(self.top, max(0, q))

    def ints(self, box: Box, w: int, h: int) -> list[int]:
        return [self.quantize(v) for v in self.normalize(box, w, h)]

    def point_ints(self, p, w: int, h: int) -> list[int]:
        return [self.quantize(v) for v in self.normalize_point(p, w, h)]

    def tolerance(self, w, h) -> float:
        # the top edge: a format capped below its bins writes 1.0 as top / bins
        return max(super().tolerance(w, h), (self.bins - self.top) / self.bins + 1e-9)

    def values(self, numbers) -> NormBox:
        return tuple(int(n) / self.bins for n in numbers)

    def point_value(self, x, y, w, h):
        return self.values((x, y))

    def boxes_text(self, boxes, w, h, phrase=None) -> str:
        text = self.group_format.format(self.joiner.join(self.box_format.format(*self.ints(b, w, h)) for b in boxes))
        return self.phrase_format.format(phrase=phrase, boxes=text) if phrase else text

    def point_text(self, p, w, h) -> str:
        return self.point_format.format(*self.point_ints(p, w, h))

    def parse(self, text, w, h):
        return [self.values(m) for m in self._BOX.findall(text)]


class QwenVL(Grid):
    name, ties, top = "qwen_vl", True, 999
    reserved = QWEN_TOKENS + r"|</?(?:ref|box|quad|img|imgpad)>|\(\d+,\d+\)" + ANGLES
    point_pattern = r"(?<!>)(?<!\),)\((\d+),(\d+)\)(?!,\()"  # not a corner of a <box>
    pattern = r"(?:<ref>[^<]*</ref>)?(?:<box>\(\d+,\d+\),\(\d+,\d+\)</box>)+"
    _BOX = re.compile(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>")
    box_format, phrase_format, point_format = "<box>({},{}),({},{})</box>", "<ref>{phrase}</ref>{boxes}", "({},{})"


class Qwen2VL(QwenVL):
    name, top = "qwen2_vl", 1000
    pattern = (r"(?:<\|object_ref_start\|>.*?<\|object_ref_end\|>)?"
               r"(?:<\|box_start\|>\(\d+,\d+\),\(\d+,\d+\)<\|box_end\|>)+")
    _BOX = re.compile(r"<\|box_start\|>\((\d+),(\d+)\),\((\d+),(\d+)\)<\|box_end\|>")
    box_format = "<|box_start|>({},{}),({},{})<|box_end|>"
    phrase_format = "<|object_ref_start|>{phrase}<|object_ref_end|>{boxes}"


class InternVL(Grid):
    name, ties, truncates = "internvl", True, True
    reserved = QWEN_TOKENS + r"|</?(?:ref|box|quad|img)>|<IMG_CONTEXT>|\[\[?\d+(?:, ?\d+)+\]\]?" + ANGLES
    point_pattern = r"\[(\d+), (\d+)\]"  # two numbers: never part of a box's four
    pattern = r"(?:<ref>[^<]*</ref>)?<box>\[\[[\d, \[\]]*\]\]</box>"
    _BOXES = re.compile(r"<box>(\[\[[\d, \[\]]*\]\])</box>")

    box_format, joiner, group_format = "[{}, {}, {}, {}]", ", ", "<box>[{}]</box>"
    phrase_format, point_format = "<ref>{phrase}</ref>{boxes}", "[{}, {}]"

    def parse(self, text, w, h):
        return [self.values(b) for group in self._BOXES.findall(text) for b in json.loads(group)]


class Florence2(Grid):
    """Bins are floor(v * 1000) clamped to 999 and read back as their centres, as the processor does.

    Answers follow Florence-2's grammar, which has no prose around boxes: an answer holding boxes is
    ``phrase<loc..>`` for each of its mentions, one after the other (``<CAPTION_TO_PHRASE_GROUNDING>``'s and
    ``<OD>``'s output, which transformers' ``Florence2PostProcessor`` reads back phrase by phrase: all the text
    before a box is its phrase). The questions of the tasks Florence-2 has start with its task token
    (``<CAPTION_TO_PHRASE_GROUNDING>``, ``<OPEN_VOCABULARY_DETECTION>``, ``<REGION_TO_DESCRIPTION>``; the
    processor's ``_construct_prompts`` turns the rest of the question into the task's input); the other tasks
    keep their questions, as Florence-2 fine-tunes do."""

    name, ties, truncates, top = "florence2", True, True, 999
    task_ids = {"refer": "<CAPTION_TO_PHRASE_GROUNDING>", "detect": "<OPEN_VOCABULARY_DETECTION>",
                "identify": "<REGION_TO_DESCRIPTION>"}
    task_id_joiner = ""
    own_answer_id = "grammar"

    def task_id(self, kind: str | None) -> str | None:
        return self.task_ids.get(kind)

    def answers_itself(self, kind, answer_mentions) -> bool:
        return any(m.boxes for m in answer_mentions) and not any(m.points for m in answer_mentions)

    def own_answer(self, items, w, h) -> str:
        return "".join((phrase or "") + self.boxes_text(boxes, w, h) for phrase, boxes in items if boxes)
    reserved = r"<loc_\d+>|<[A-Z][A-Z_]+>|</?s>|<pad>|<unk>|<mask>" + ANGLES
    pattern = r"(?:<loc_\d+>){4}"
    _BOX = re.compile(r"<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>")

    def tolerance(self, w, h) -> float:
        return self.unit / 2 + 1e-9  # a bin's centre is within half a bin of every value in it

    box_format, point_format = "<loc_{}><loc_{}><loc_{}><loc_{}>", "<loc_{}><loc_{}>"
    point_pattern = r"(?<!\d>)<loc_(\d+)><loc_(\d+)>(?!<loc_)"  # a run of exactly two tokens

    def parse_points(self, text, w, h):
        """Runs of exactly two location tokens (a box is four)."""
        runs = (re.findall(r"<loc_(\d+)>", run) for run in re.findall(r"(?:<loc_\d+>)+", text))
        return [self.values(run) for run in runs if len(run) == 2]

    def values(self, numbers) -> NormBox:
        return tuple((int(n) + 0.5) / self.bins for n in numbers)


class MiniGPTv2(Grid):
    name, ties, truncates, bins, top = "minigpt_v2", True, True, 100, 100
    reserved = (r"</?p>|\{(?:<\d+>)+\}|<delim>|\[(?:grounding|refer|identify|detection|vqa|caption)\]|\[/?INST\]"
                r"|</?s>|</?Img>|<ImageHere>" + ANGLES)
    point_pattern = r"\{<(\d+)><(\d+)>\}"
    untied_kinds = frozenset({"refer"})
    task_ids = {"refer": "[refer]", "identify": "[identify]", "detect": "[detection]", "ground_caption": "[grounding]",
                "vqa": "[vqa]"}
    #: every other task asks a question about the image: MiniGPT-v2's [vqa]
    default_task_id = "[vqa]"
    pattern = r"(?:<p>[^<]*</p> )?\{<\d+><\d+><\d+><\d+>\}(?:<delim>\{<\d+><\d+><\d+><\d+>\})*"
    _BOX = re.compile(r"\{<(\d+)><(\d+)><(\d+)><(\d+)>\}")

    def task_id(self, kind: str | None) -> str | None:
        return self.task_ids.get(kind, self.default_task_id)

    box_format, joiner, point_format = "{{<{}><{}><{}><{}>}}", "<delim>", "{{<{}><{}>}}"
    phrase_format = "<p>{phrase}</p> {boxes}"


# -- Kosmos-2's patch grid --------------------------------------------------------------------------------------
PATCHES = 32


def patch_indices(box: Box, width: int, height: int) -> tuple[int, int]:
    """The upper-left and lower-right patch indices of a pixel box, as transformers' Kosmos-2
    ``coordinate_to_patch_index`` computes them, each axis kept on the grid and the lower-right patch never before
    the upper-left one (the processor's formula gives -1 for a box narrower than float precision at the edge)."""
    x1, y1, x2, y2 = box[0] / width, box[1] / height, box[2] / width, box[3] / height
    last = PATCHES - 1
    ul_x, ul_y = (min(last, max(0, math.floor(v * PATCHES))) for v in (x1, y1))
    lr_x = min(last, max(ul_x, math.ceil(x2 * PATCHES - 1)))
    lr_y = min(last, max(ul_y, math.ceil(y2 * PATCHES - 1)))
    return ul_y * PATCHES + ul_x, lr_y * PATCHES + lr_x


def patch_box(ul: int, lr: int) -> NormBox:
    """Normalized (x1, y1, x2, y2) of two patch indices, as Kosmos-2's ``patch_index_to_coordinate``."""
    cell = 1.0 / PATCHES
    ul_x, ul_y, lr_x, lr_y = ul % PATCHES, ul // PATCHES, lr % PATCHES, lr // PATCHES
    if ul == lr or ul_x == lr_x or ul_y == lr_y:
        return ul_x * cell, ul_y * cell, lr_x * cell + cell, lr_y * cell + cell
    return ul_x * cell + cell / 2, ul_y * cell + cell / 2, lr_x * cell + cell / 2, lr_y * cell + cell / 2


class Kosmos2(Formatter):
    name, ties, unit = "kosmos2", True, 1.0 / PATCHES
    reserved = r"</?(?:phrase|object|grounding)>|<patch_index_\d+>|</delimiter_of_multi_objects/>|</?s>" + ANGLES
    pattern = r"(?:<phrase>[^<]*</phrase>)?<object>(?:<patch_index_\d{4}>|</delimiter_of_multi_objects/>)+</object>"
    _OBJECT = re.compile(r"<object>((?:<patch_index_\d{4}>|</delimiter_of_multi_objects/>)+)</object>")
    _PAIR = re.compile(r"<patch_index_(\d{4})><patch_index_(\d{4})>")

    @property
    def params(self) -> dict:
        return {"frame": "image", "grid": PATCHES, "unit": self.unit, "rounding": "patch"}

    def tolerance(self, w, h) -> float:
        return self.unit + 1e-9  # a patch's centre, or its edge for a box within one row or column of patches

    def _pairs(self, boxes, w, h) -> str:
        return "</delimiter_of_multi_objects/>".join(
            "<patch_index_{:04d}><patch_index_{:04d}>".format(*patch_indices(b, w, h)) for b in boxes)

    def boxes_text(self, boxes, w, h, phrase=None) -> str:
        text = f"<object>{self._pairs(boxes, w, h)}</object>"
        return f"<phrase>{phrase}</phrase>{text}" if phrase else text

    def point_text(self, p, w, h) -> str:
        """Kosmos-2 has no point form: rcforge writes the one patch that holds the point."""
        ul, _ = patch_indices((p[0], p[1], p[0], p[1]), w, h)
        return f"<object><patch_index_{ul:04d}></object>"

    def parse(self, text, w, h):
        return [patch_box(int(a), int(b)) for group in self._OBJECT.findall(text) for a, b in self._PAIR.findall(group)]

    point_pattern = r"<object><patch_index_(\d{4})></object>"  # one patch (parse_points reads it)

    def parse_points(self, text, w, h):
        """A point is the centre of the one patch its ``<object>`` names."""
        cell = 1.0 / PATCHES
        return [((int(i) % PATCHES + 0.5) * cell, (int(i) // PATCHES + 0.5) * cell)
                for i in re.findall(r"<object><patch_index_(\d{4})></object>", text)]


# -- Qwen2.5-VL and Qwen3-VL JSON ------------------------------------------------------------------------------
FACTOR, MIN_PIXELS, MAX_PIXELS, MAX_RATIO = 28, 4 * 28 * 28, 16384 * 28 * 28, 200


def smart_resize(height: int, width: int, factor: int = FACTOR, min_pixels: int = MIN_PIXELS,
                 max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(height, width) of the image as Qwen2.5-VL's processor resizes it (qwen_vl_utils.smart_resize): both
    multiples of ``factor``, the pixel count within the limits, the aspect ratio kept as closely as possible.
    Images more elongated than qwen_vl_utils's 200:1 are clamped to that ratio's frame instead of refused."""
    height, width = max(1, height), max(1, width)
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


_JSON_BLOCK = re.compile(r"```json\n(.*?)\n```", re.S)
_JSON_BOX = re.compile(r'"bbox_2d": \[(-?\d+), (-?\d+), (-?\d+), (-?\d+)\]')


class QwenJSON(Formatter):
    """Qwen3-VL: relative integers 0..1000 (round(v * 1000))."""

    name, ties, wraps_in_place = "qwen3_vl", True, False
    reserved = QWEN_TOKENS + r"|```|\{\s*\"(?:bbox_2d|point_2d)\""
    frame = r"```json\n\[|\]\n```"
    point_pattern = r'\{"point_2d": \[(\d+), (\d+)\]\}'
    json_kinds = frozenset({"refer", "detect", "segment"})  # a mask's box, as its grounding answer
    pattern = r'\{"bbox_2d": \[[\d, ]*\](?:, "label": "(?:[^"\\]|\\.)*")?\}|\{"point_2d": \[[\d, ]*\]\}'

    @property
    def params(self) -> dict:
        return {"frame": "image", "bins": 1000, "max": 1000, "unit": self.unit, "rounding": "round",
                "answer": "json"}

    def scale(self, w: int, h: int) -> tuple[int, int]:
        """The printed range of x and y."""
        return 1000, 1000

    def tolerance(self, w, h) -> float:
        sx, sy = self.scale(w, h)
        return 0.5 / min(sx, sy) + 1e-9

    def ints(self, box: Box, w: int, h: int) -> list[int]:
        sx, sy = self.scale(w, h)
        x1, y1, x2, y2 = self.normalize(box, w, h)
        return [min(sx, round(x1 * sx)), min(sy, round(y1 * sy)), min(sx, round(x2 * sx)), min(sy, round(y2 * sy))]

    def _object(self, box, w, h, phrase) -> dict:
        item = {"bbox_2d": self.ints(box, w, h)}
        if phrase:
            item["label"] = phrase
        return item

    def boxes_text(self, boxes, w, h, phrase=None) -> str:
        objects = [self._object(b, w, h, phrase) for b in boxes]
        return json.dumps(objects[0] if len(objects) == 1 else objects, ensure_ascii=False)

    def point_text(self, p, w, h) -> str:
        sx, sy = self.scale(w, h)
        x, y = self.normalize_point(p, w, h)
        return json.dumps({"point_2d": [min(sx, round(x * sx)), min(sy, round(y * sy))]})

    def json_answer(self, items, w, h) -> str:
        objects = [self._object(b, w, h, phrase) for phrase, boxes in items for b in boxes]
        if not objects:  # nothing there (a negative question): the empty list
            return "```json\n[]\n```"
        lines = ",\n".join("\t" + json.dumps(o, ensure_ascii=False) for o in objects)
        return f"```json\n[\n{lines}\n]\n```"  # one object a line, as the model answers

    def point_value(self, x, y, w, h):
        sx, sy = self.scale(w, h)
        return int(x) / sx, int(y) / sy

    def parse(self, text, w, h):
        sx, sy = self.scale(w, h)
        return [(int(a) / sx, int(b) / sy, int(c) / sx, int(d) / sy) for a, b, c, d in _JSON_BOX.findall(text)]


def llamafactory_regularize(width: int, height: int, image_max_pixels: int, image_min_pixels: int) -> tuple[int, int]:
    """(width, height) of an image as LLaMA-Factory hands it to a Qwen2-VL-family processor: shrunk below
    ``image_max_pixels`` and grown above ``image_min_pixels`` (int-truncated), at least 28 a side, no more
    elongated than 200:1 (hiyouga/LLaMA-Factory src/llamafactory/data/mm_plugin.py, BasePlugin._preprocess_image
    :218-235 and Qwen2VLPlugin._preprocess_image :2261-2275 [ff6d4d1])."""
    if width * height > image_max_pixels:
        factor = math.sqrt(image_max_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    if width * height < image_min_pixels:
        factor = math.sqrt(image_min_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    if min(width, height) < 28:
        width, height = max(width, 28), max(height, 28)
    if width / height > 200:
        width, height = height * 180, height
    if height / width > 200:
        width, height = width, width * 180
    return width, height


class Qwen25VL(QwenJSON):
    """Qwen2.5-VL: absolute pixels of the resized image (`smart_resize` with this format's frame limits), the
    right and bottom edge written W' - 1 and H' - 1 as Qwen's converter clamps them. With ``image_max_pixels``
    (LLaMA-Factory's setting) the image is first shrunk as LLaMA-Factory does (`llamafactory_regularize`)."""

    name = "qwen2_5_vl"
    #: the frame settings a recipe may give (``render.frame``), with the processor's defaults; image_max_pixels
    #: and image_min_pixels are LLaMA-Factory's (0: not trained through LLaMA-Factory)
    FRAME = {"factor": FACTOR, "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, "image_max_pixels": 0,
             "image_min_pixels": 0}

    def __init__(self, factor: int = FACTOR, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS,
                 image_max_pixels: int = 0, image_min_pixels: int = 0):
        self.factor, self.min_pixels, self.max_pixels = factor, min_pixels, max_pixels
        self.image_max_pixels, self.image_min_pixels = image_max_pixels, image_min_pixels

    def framed(self, frame: Mapping) -> "Qwen25VL":
        return Qwen25VL(**{k: int(frame.get(k, v)) for k, v in self.FRAME.items()})

    @property
    def frame_settings(self) -> dict:
        return {k: getattr(self, k) for k in self.FRAME}

    @property
    def params(self) -> dict:
        return {"frame": "smart_resize", **self.frame_settings, "unit": "1 resized pixel", "rounding": "round",
                "max": "W' - 1", "answer": "json"}

    def frame_size(self, w: int, h: int) -> list[int]:
        return list(self.scale(w, h))

    def scale(self, w: int, h: int) -> tuple[int, int]:
        if self.image_max_pixels or self.image_min_pixels:
            w, h = llamafactory_regularize(w, h, self.image_max_pixels or 2**62, self.image_min_pixels)
        rh, rw = smart_resize(h, w, self.factor, self.min_pixels, self.max_pixels)
        return rw, rh

    def tolerance(self, w, h) -> float:
        sx, sy = self.scale(w, h)
        return 1.0 / min(sx, sy) + 1e-9  # half a resized pixel, and the edge written one pixel in

    def _pixels(self, values: Sequence[float], w: int, h: int) -> list[int]:
        """The converter's arithmetic on pixel x, y values: round(x * (W' / W)), clamped to [0, W' - 1]."""
        sx, sy = self.scale(w, h)
        fx, fy = sx / w, sy / h
        return [max(0, min(round(_clamp(v, 0.0, float(w if i % 2 == 0 else h)) * (fx if i % 2 == 0 else fy)),
                           (sx if i % 2 == 0 else sy) - 1)) for i, v in enumerate(values)]

    def ints(self, box: Box, w: int, h: int) -> list[int]:
        return self._pixels(box, w, h)

    def point_text(self, p, w, h) -> str:
        return json.dumps({"point_2d": self._pixels(p, w, h)})


#: the placeholders of Shikra's data (shikras/shikra@ff79a4c mllm/dataset/root.py), the Llama tokens of its model,
#: and braces: its BoxFormatter fills the text with str.format (``sentence.replace(token, '{}').format(...)``),
#: so a brace of annotation text would break the family's loader
SHIKRA_PLACEHOLDERS = r"<boxes>|<points>|<ph_st>|<ph_ed>|<expr>|<objs>|<question>|[{}]" + LLAMA_TOKENS


class ShikraJsonl(Formatter):
    """Shikra's data form: no numbers in the text. Each box mention is the placeholder ``<boxes>`` and each point
    ``<points>``; the item carries the boxes and points in pixels of the image and, per turn, ``boxes_seq`` /
    ``points_seq`` (one list of indices per placeholder), which its ``BoxFormatProcess`` turns into text
    (shikras/shikra@ff79a4c mllm/dataset/process_function/box_process_function.py: map_obj, BoxFormatter).
    `rcforge export shikra_jsonl` writes that item from the dialogue's ``boxes``, ``points`` and ``groups``."""

    name, pattern, point_pattern = "shikra_jsonl", r"<boxes>", r"<points>"
    # and a bracketed list of numbers: its PlainBoxFormatter prints the boxes so, and its extract reads them back
    reserved = SHIKRA_PLACEHOLDERS + "|" + NUMBER_BRACKETS
    #: the text holds placeholders, the numbers are in the item's side table
    placeholders = True
    placeholder = "<boxes>"
    #: one placeholder per box (False: one per mention, for all its boxes)
    placeholder_per_box = False

    @property
    def params(self) -> dict:
        return {"frame": "image", "placeholders": True, "boxes": "pixels xyxy in the item", "unit": 0.0,
                "rounding": "none"}

    def tolerance(self, w, h) -> float:
        return 1e-9

    def boxes_text(self, boxes, w, h, phrase=None) -> str:
        return self.placeholder

    def point_text(self, p, w, h) -> str:
        return "<points>"

    def parse(self, text, w, h):
        return []  # the boxes are in the side table, not the text

    def parse_points(self, text, w, h):
        return []


class NextChat(ShikraJsonl):
    """NExT-Chat's form of Shikra's: the box placeholder is ``<at> <boxes>`` (NExT-ChatV/NExT-Chat@1e6c20f
    mllm/dataset/root.py: BOXES_PLACEHOLDER), the ``<at>`` token where its model emits a box embedding."""

    name, pattern = "nextchat", r"<at> <boxes>"
    reserved = SHIKRA_PLACEHOLDERS + "|<at>"
    placeholder = "<at> <boxes>"


class Ferret(ShikraJsonl):
    """Ferret's data form (apple/ml-ferret@3c9e5c9 ferret/train/train.py, LazySupervisedDataset.__getitem__, lines
    986-1077): one ``<bbox_location{i}>`` per box, numbered from 0 in each turn, the boxes in pixels in
    ``box_x1y1x2y2`` (one list per turn) and the masks as RLE in ``masks`` (the same shape); its loader writes
    ``[x1, y1, x2, y2]`` on a 1000 grid in their place (or a point, its choice, in a question). The shards hold
    ``<bbox_location>``, which `rcforge export ferret` numbers per turn."""

    name, pattern = "ferret", r"<bbox_location>"
    reserved = r"<bbox_location\d*>|<region_fea>|<points>" + LLAMA_TOKENS + "|" + NUMBER_BRACKETS
    placeholder = "<bbox_location>"
    #: one placeholder per box (Shikra's stands for a whole mention)
    placeholder_per_box = True

    def boxes_text(self, boxes, w, h, phrase=None) -> str:
        return ", ".join([self.placeholder] * len(boxes))


#: Groma's special tokens (FoundationVision/Groma@d3a95b6 groma/constants.py, DEFAULT_TOKENS, REGION_IDX_TOKENS)
GROMA_TOKENS = (r"</?p>|</?roi>|<ground_box>|<refer_box>|<refer_feat>|<region>|<sep>|</?img>|<r\d+>|"
                r"\[grounding\]|<image>")


class Groma(ShikraJsonl):
    """Groma Instruct's form (FoundationVision/Groma@d3a95b6 groma/data/datasets/groma.py, GromaInstruct): an
    answer's phrase is ``<p>phrase</p>`` followed by ``<roi>``, one ``<ground_box>`` per box and ``</roi>``; a
    region asked about is ``<roi><refer_box></roi><refer_feat>``; the boxes travel beside the text (``boxes`` in
    pixels [x, y, w, h], ``box_inds`` per answer), and its loader puts ``[grounding]`` before each question."""

    name, ties = "groma", True
    pattern = r"(?:<p>[^<]*</p>)?<roi>(?:<ground_box>)+</roi>|<roi>(?:<refer_box>)+</roi><refer_feat>"
    # and any angle bracket: a phrase is read up to the next "<" ([^<]*), as Qwen's <ref> is
    reserved = GROMA_TOKENS + "|<points>" + LLAMA_TOKENS + ANGLES
    placeholder = "<roi>"

    def boxes_text(self, boxes, w, h, phrase=None) -> str:
        return (f"<p>{phrase}</p>" if phrase else "") + "<roi>" + "<ground_box>" * len(boxes) + "</roi>"

    def refer_text(self, boxes, w, h) -> str:
        return "<roi>" + "<refer_box>" * len(boxes) + "</roi><refer_feat>"


class SwiftObjects(ShikraJsonl):
    """ms-swift's grounding side table (modelscope/ms-swift@3602360 swift/template/base.py: special_tokens,
    _pre_tokenize_images lines 1086-1095, normalize_bbox lines 299-320): each ``<bbox>`` in the text takes the next
    box of ``objects.bbox`` and each ``<ref-object>`` the next phrase of ``objects.ref``, which the model's template
    then writes its own way (Qwen's ``<|box_start|>``, InternVL's ``<box>``, ...). The shards keep the phrase in
    place, ``<ref-object>the cat</ref-object>``; `rcforge export swift_objects` moves it to ``objects.ref``."""

    name, ties = "swift_objects", True
    pattern = r"(?:<ref-object>[^<]*</ref-object>)?(?:<bbox>)+"
    # and any angle bracket: the phrase is read up to the next "<"
    reserved = r"</?ref-object>|<bbox>|<cot-process>|<start-image>|<video>|<audio>|<points>" + ANGLES
    placeholder = "<bbox>"
    placeholder_per_box = True

    def boxes_text(self, boxes, w, h, phrase=None) -> str:
        return (f"<ref-object>{phrase}</ref-object>" if phrase else "") + "<bbox>" * len(boxes)


REGISTRY: Registry[Formatter] = Registry("coordinate format")
for _formatter in (Pink(), Shikra(), QwenVL(), Qwen2VL(), Qwen25VL(), QwenJSON(), InternVL(), Florence2(),
                   Kosmos2(), MiniGPTv2(), ShikraJsonl(), NextChat(), Ferret(), Groma(), SwiftObjects()):
    REGISTRY.add(_formatter.name, _formatter)
#: other names a recipe may use for a format
ALIASES = {"qwen": "qwen_vl"}
#: every format by name (the registry's entries)
FORMATTERS: dict[str, Formatter] = dict(REGISTRY.items())


def get(name: str, frame: Mapping | None = None) -> Formatter:
    """The format ``name`` (or an alias), set to ``frame`` (``render.frame``, or a manifest's coordinate params)
    where the format has a frame of its own."""
    fmt = REGISTRY.get(ALIASES.get(name, name))
    return fmt.framed(frame) if frame else fmt


def canonical(name: str) -> str:
    """The registered name of a format or alias (an unknown name raises, listing the formats)."""
    return get(name).name
