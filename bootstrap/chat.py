"""The ``chat`` backend's prompts and reply parsers: any transformers image-text-to-text chat model.

Pure functions, no model: `rcforge.bootstrap.chat_handlers` calls them. A *prompt set* says how a box is written
in the describe prompt and read back from a ground reply, with the two prompts as Jinja templates (compiled in
the sandbox with strict variables, checked at load)::

    box_scale: unit            # unit: [0,1] of the image; unit_square: [0,1] of the image padded to a centred
                               # square (LLaVA-1.5, Shikra); bins1000: 0..1000 of the image; pixel: image pixels;
                               # resized: pixels of the image as the processor resized it (Qwen2.5-VL)
    box_decimals: 3            # digits printed for unit boxes (integers for the other scales)
    box_separator: ","         # between the four numbers of {{ box }}
    system: null               # an optional system message
    describe: "Please provide a short description for this region: {{ box }}"
    ground: "Please provide the bounding box coordinate of the region this sentence describes: {{ description }}"
    box_pattern: '...'         # a regex with 4 groups (x1, y1, x2, y2) for the ground reply's first box
    description_pattern: null  # a regex whose group 1 is the description (default: the reply's first line)

describe may use ``box``, ``x1``..``y2`` (in the scale), ``width``/``height`` (of the scale's frame) and
``category``; ground may use ``description``, ``width``, ``height`` and ``category``. The bundled sets are in
``chat_prompts.yaml`` (``pink``, ``llava``, ``qwen2-vl``, ``qwen2.5-vl``); a recipe or ``--chat-prompts`` names
one of them or a YAML file of the same shape. A template id is ``<set>.<stage>#<sha256[:8] of its source>``, so
candidates made with different wordings stay apart.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass
from importlib import resources

import jinja2
import yaml

from rcforge.core import fsio
from rcforge.core.errors import RecipeError
from rcforge.render import coordinates, templating

SCALES = ("unit", "unit_square", "bins1000", "pixel", "resized")
NUMBER = r"(-?\d+(?:\.\d+)?)"
#: the first bracketed list of four numbers: ``[0.1, 0.2, 0.3, 0.4]``, ``"bbox_2d": [12, 30, 140, 210]``
DEFAULT_BOX_PATTERN = r"\[\s*" + r"\s*,\s*".join([NUMBER] * 4) + r"\s*\]"
DESCRIBE_VARS = {"box", "x1", "y1", "x2", "y2", "width", "height", "category"}
GROUND_VARS = {"description", "width", "height", "category"}
_KEYS = {"box_scale", "box_decimals", "box_separator", "system", "describe", "ground", "box_pattern",
         "description_pattern"}


@dataclass(frozen=True)
class ChatPrompts:
    """A checked prompt set. It keeps its templates' sources (compiled once per process by `_template`), so it
    pickles into Beam workers with the handlers."""

    name: str
    describe: str
    ground: str
    describe_id: str
    ground_id: str
    box_scale: str = "unit"
    box_decimals: int = 3
    box_separator: str = ","
    system: str | None = None
    box_pattern: re.Pattern = re.compile(DEFAULT_BOX_PATTERN)
    description_pattern: re.Pattern | None = None


def bundled() -> dict:
    return yaml.safe_load(resources.files("rcforge.bootstrap").joinpath("chat_prompts.yaml").read_text())["sets"]


def load_prompts(name_or_path: str) -> ChatPrompts:
    """A bundled prompt set by name, or a YAML file of one set (its stem names it)."""
    sets = bundled()
    if name_or_path in sets:
        return prompts_from_mapping(name_or_path, sets[name_or_path], f"chat prompt set {name_or_path!r}")
    if not fsio.exists(name_or_path):
        raise RecipeError(f"chat prompts: {name_or_path!r} is neither a bundled set ({', '.join(sorted(sets))}) "
                          f"nor an existing file")
    try:
        raw = yaml.safe_load(fsio.read_bytes(name_or_path, "chat prompts"))
    except yaml.YAMLError as err:
        raise RecipeError(f"chat prompts {name_or_path}: not valid YAML: {err}") from None
    stem = name_or_path.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return prompts_from_mapping(stem, raw, f"chat prompts {name_or_path}")


def prompts_from_mapping(name: str, raw, where: str) -> ChatPrompts:
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: expected a mapping")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(_KEYS))}")
    scale = raw.get("box_scale", "unit")
    if scale not in SCALES:
        raise RecipeError(f"{where}.box_scale: {scale!r} is not one of {', '.join(SCALES)}")
    decimals = raw.get("box_decimals", 3)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 6:
        raise RecipeError(f"{where}.box_decimals: expected an integer from 0 to 6, got {decimals!r}")
    env = templating.environment()
    ids = {}
    for stage, allowed, must in (("describe", DESCRIBE_VARS, ()), ("ground", GROUND_VARS, ("description",))):
        source = raw.get(stage)
        if not isinstance(source, str) or not source.strip():
            raise RecipeError(f"{where}.{stage}: a prompt template is required")
        _, used = templating.compile_checked(env, source, f"{where}.{stage}", must=must, allowed=allowed)
        if stage == "describe" and "box" not in used and not {"x1", "y1", "x2", "y2"} <= used:
            raise RecipeError(f"{where}.describe: must show the box: use box, or all of x1, y1, x2, y2")
        ids[stage] = f"{name}.{stage}#{hashlib.sha256(source.encode()).hexdigest()[:8]}"
    box_pattern = _regex(raw.get("box_pattern") or DEFAULT_BOX_PATTERN, 4, f"{where}.box_pattern")
    description = raw.get("description_pattern")
    return ChatPrompts(
        name=name, describe=raw["describe"], ground=raw["ground"], describe_id=ids["describe"],
        ground_id=ids["ground"], box_scale=scale, box_decimals=decimals,
        box_separator=str(raw.get("box_separator", ",")), system=raw.get("system"), box_pattern=box_pattern,
        description_pattern=_regex(description, 1, f"{where}.description_pattern") if description else None)


@functools.lru_cache(maxsize=64)
def _template(source: str) -> jinja2.Template:
    return templating.environment().from_string(source)


def _regex(source: str, groups: int, where: str) -> re.Pattern:
    try:
        pattern = re.compile(source, re.DOTALL)
    except re.error as err:
        raise RecipeError(f"{where}: not a valid regular expression: {err}") from None
    if pattern.groups < groups:
        raise RecipeError(f"{where}: needs {groups} group(s), has {pattern.groups}")
    return pattern


def _axes(scale: str, width: int, height: int, frame: tuple[int, int]):
    """Per axis (factor, offset, limit): a pixel coordinate v is written as (v + offset) * factor, clamped to
    [0, limit]."""
    if scale == "unit":
        return (1 / width, 0, 1.0), (1 / height, 0, 1.0)
    if scale == "unit_square":  # the image padded to a centred square, as LLaVA-1.5 and Shikra do
        ox, oy, side = coordinates.square_frame(width, height)
        return (1 / side, ox, 1.0), (1 / side, oy, 1.0)
    if scale == "bins1000":
        return (1000 / width, 0, 1000.0), (1000 / height, 0, 1000.0)
    fw, fh = (width, height) if scale == "pixel" else frame
    return (fw / width, 0, float(fw)), (fh / height, 0, float(fh))


def _frame_size(prompts: ChatPrompts, request: dict, frame: tuple[int, int]) -> tuple:
    (_, _, lx), (_, _, ly) = _axes(prompts.box_scale, request["width"], request["height"], frame)
    return (lx, ly) if prompts.box_scale.startswith("unit") else (int(lx), int(ly))


def describe_prompt(prompts: ChatPrompts, request: dict, frame: tuple[int, int]) -> str:
    """The describe prompt for the request's box; ``frame`` is (width, height) of the resized image for the
    ``resized`` scale (the image's own size otherwise)."""
    ax, ay = _axes(prompts.box_scale, request["width"], request["height"], frame)
    values = [min(lim, max(0.0, (v + off) * f)) for v, (f, off, lim) in zip(request["box"], (ax, ay, ax, ay))]
    if prompts.box_scale.startswith("unit"):
        shown = [f"{v:.{prompts.box_decimals}f}" for v in values]
    else:
        values = [int(round(v)) for v in values]
        shown = [str(v) for v in values]
    width, height = _frame_size(prompts, request, frame)
    return templating.render(_template(prompts.describe), {
        "box": "[" + prompts.box_separator.join(shown) + "]", "x1": values[0], "y1": values[1], "x2": values[2],
        "y2": values[3], "width": width, "height": height, "category": request["category"]})


def ground_prompt(prompts: ChatPrompts, request: dict, frame: tuple[int, int]) -> str:
    width, height = _frame_size(prompts, request, frame)
    return templating.render(_template(prompts.ground), {"description": request["description"], "width": width,
                                              "height": height, "category": request["category"]})


def messages(prompts: ChatPrompts, text: str) -> list[dict]:
    """The chat: an optional system message, then the user's image and prompt (the processor's chat template
    turns the image entry into the model's image placeholder)."""
    chat = [{"role": "system", "content": [{"type": "text", "text": prompts.system}]}] if prompts.system else []
    return chat + [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


_QUOTES = "\"'`“”‘’"


def parse_description(prompts: ChatPrompts, raw: str) -> str | None:
    """The description in a describe reply (the pattern's group 1, or the first non-empty line, without
    surrounding quotes and a final full stop); None when nothing is left."""
    if prompts.description_pattern is not None:
        found = prompts.description_pattern.search(raw)
        text = found.group(1) if found else ""
    else:
        text = next((line for line in raw.splitlines() if line.strip()), "")
    text = " ".join(text.split()).strip(_QUOTES + " ")
    text = text[:-1] if text.endswith(".") else text
    return text.strip(_QUOTES + " ") or None


def parse_box(prompts: ChatPrompts, raw: str, width: int, height: int, frame: tuple[int, int]) -> list | None:
    """The first box of a ground reply in image pixels, clipped to the image; None when there is none or it
    is empty once clipped."""
    found = prompts.box_pattern.search(raw)
    if not found:
        return None
    values = [float(found.group(i)) for i in range(1, 5)]
    if not all(math.isfinite(v) for v in values):
        return None
    ax, ay = _axes(prompts.box_scale, width, height, frame)
    x1, y1, x2, y2 = (v / f - off for v, (f, off, _) in zip(values, (ax, ay, ax, ay)))
    x1, x2 = max(0.0, min(x1, width)), max(0.0, min(x2, width))
    y1, y2 = max(0.0, min(y1, height)), max(0.0, min(y2, height))
    if x2 <= x1 or y2 <= y1:
        return None
    return [x1, y1, x2, y2]


def resized_frame(image_processor, width: int, height: int) -> tuple[int, int]:
    """(width, height) of the image as a Qwen2-VL-family processor resizes it (``smart_resize``: sides rounded to
    multiples of patch_size * merge_size, pixels kept between its min and max). Other processors: the image's
    own size."""
    patch = getattr(image_processor, "patch_size", None)
    merge = getattr(image_processor, "merge_size", None)
    if not patch or not merge:
        return width, height
    try:  # transformers 5 keeps a torchvision-free copy in the PIL image processor's module
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            smart_resize,
        )
    except ImportError:
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    size = getattr(image_processor, "size", None) or {}
    low = size.get("shortest_edge") or getattr(image_processor, "min_pixels", None) or 56 * 56
    high = size.get("longest_edge") or getattr(image_processor, "max_pixels", None) or 28 * 28 * 1280
    h, w = smart_resize(height, width, factor=patch * merge, min_pixels=low, max_pixels=high)
    return int(w), int(h)
