"""Rendering: image record -> dialogues, through the tasks, the coordinate format and the Jinja templates.

Pure and deterministic: every random choice comes from an rng seeded by (recipe seed, source, image key, k), so
the same recipe and seed give the same dialogues on any runner with any number of workers.

Per image:
- tasks that enumerate annotations (RefCOCO refs, VQAv2 questions, Flickr30K captions, PointQA items) give one
  dialogue per annotation, id ``<image key>/<task>/<annotation>``;
- tasks that sample give ``per_image`` dialogues (times the source's weight; a fractional part is a coin flip),
  id ``<image key>/<k>``. Each draws its task from the mixture weights among the tasks that apply to the source;
  a task with nothing to ask about this image passes to the next draw. ``turns_per_dialogue`` packs that many
  question-answer pairs of one image into one multi-turn dialogue.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Mapping

from rcforge import rc_tasks, readers
from rcforge.core import fsio, images, visual_prompts
from rcforge.core.config import number
from rcforge.core.errors import InputError, RecipeError
from rcforge.rc_tasks import Mention, TaskInstance, hard_negatives, negatives
from rcforge.render import coordinates, markup, templating


def seeded_rng(seed: int, source: str, key: str, k) -> random.Random:
    digest = hashlib.blake2b(f"{seed}\x1f{source}\x1f{key}\x1f{k}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


@dataclass(frozen=True)
class TaskChoice:
    name: str
    weight: float = number(1.0, 0)
    config: Any = None


@dataclass(frozen=True)
class RenderSettings:
    """The recipe's ``render`` section.

    coordinates: the coordinate format (a name of `rcforge.render.coordinates.REGISTRY`, or an alias such as qwen).
    per_image: sampled dialogues per image (before source weights).
    turns_per_dialogue: question-answer pairs packed into one sampled dialogue.
    templates: a folder of template YAML files (the bundled set when absent).
    tasks: task name -> TaskChoice (weight and the task's config).
    source_weights: source -> factor on per_image (Objects365 down-weighted, as Pink did).
    rows_per_shard: target dialogues per output shard.
    bootstrap_pairs: kept bootstrap pairs to render as referring expressions (rcforge.bootstrap.pairs.PairsSource).
    on_markup: annotation text holding the format's reserved markup (`rcforge.render.markup`) is escaped (its brackets
      made look-alikes) or, with "reject", its image is not rendered (counted with its reason).
    frame: the trainer's image frame, for a format that prints pixels of the processed image (qwen2_5_vl:
      ``min_pixels``, ``max_pixels``, ``factor``, as the trainer's processor is set).
    visual_prompts: ask region questions with marks drawn on the image (`rcforge.core.visual_prompts`); off when null.
    """

    coordinates: str = "pink"
    per_image: int = number(2, 0)
    turns_per_dialogue: int = number(1, 1)
    templates: str | None = None
    tasks: Mapping[str, TaskChoice] = field(default_factory=dict)
    source_weights: Mapping[str, float] = field(default_factory=dict)
    rows_per_shard: int = number(50000, 1)
    bootstrap_pairs: Any = None
    on_markup: Literal["escape", "reject"] = "escape"
    frame: Mapping[str, int] = field(default_factory=dict)
    visual_prompts: visual_prompts.VisualPromptSettings | None = None


class Renderer:
    def __init__(self, settings: RenderSettings, seed: int, image_roots: Mapping[str, str] | None = None):
        self.settings = settings
        self.seed = seed
        #: source -> its images root (the manifest's), where visual prompts read the images they mark
        self.image_roots = dict(image_roots or {})
        self.formatter = coordinates.get(settings.coordinates, settings.frame)
        self.specs = {name: rc_tasks.get(name) for name in settings.tasks}
        # a task's negative variant is needed only when the recipe asks for negatives (rc_tasks.negatives)
        required = {(name, v): vars_ for name, spec in self.specs.items() for v, vars_ in spec.variables.items()
                    if negatives.needed(v, settings.tasks[name].config) and spec.needs(v, settings.tasks[name].config)}
        self.templates = templating.load(settings.templates, required=required)
        #: annotation texts whose reserved markup was escaped so far (the build's ledger counts them)
        self.escaped = 0
        #: hard negatives written, and those tried and filtered by reason, so far (the build's ledger counts them)
        self.hard_negatives: dict[str, int] = {}
        #: dialogues asked with marks, and those that could not be and why, so far (the build's ledger counts them)
        self.visual_prompts: dict[str, int] = {}
        self._image_cache: tuple[str, Any] = ("", None)  # the image last opened for marks (one record at a time)
        self._reserved = markup.pattern(self.formatter.reserved)  # searched in every annotation text
        missing = sorted(f"{t}.{v}" for t, v in required if (t, v) not in self.templates.variants)
        if missing:
            raise RecipeError(f"templates in {self.templates.root} lack variants the tasks need: {', '.join(missing)}")

    def _provided(self, source: str) -> tuple[str, ...]:
        """The annotation kinds a source's records hold (looked up once per source, not per record)."""
        cache = self.__dict__.setdefault("_provides", {})
        if source not in cache:
            cache[source] = readers.get(source).provides
        return cache[source]

    def __getstate__(self):  # compiled templates do not pickle: rebuild them where the renderer lands
        return {"settings": self.settings, "seed": self.seed, "image_roots": self.image_roots}

    def __setstate__(self, state):
        self.__init__(state["settings"], state["seed"], state.get("image_roots"))

    # -- dialogues -----------------------------------------------------------------------------------------------
    def dialogues(self, record: dict) -> Iterator[dict]:
        source, key = record["source"], record["key"]
        provided = self._provided(source)
        for name, choice in self.settings.tasks.items():
            spec = self.specs[name]
            if not spec.enumerates(provided) or choice.weight <= 0:
                continue

            def rng_for(k, name=name):
                return seeded_rng(self.seed, source, key, f"{name}/{k}")

            for inst in spec.enumerate(record, rng_for, choice.config):
                dialogue_id = f"{key}/{name}/{inst.key}"
                yield from self._versions(record, dialogue_id, [inst], rng_for(f"{inst.key}/render"))
        sampled = [(name, c) for name, c in self.settings.tasks.items()
                   if self.specs[name].samples(provided) and c.weight > 0]
        if not sampled:
            return
        expected = self.settings.per_image * self.settings.source_weights.get(source, 1.0)
        count = int(expected)
        if expected > count and seeded_rng(self.seed, source, key, "count").random() < expected - count:
            count += 1
        for k in range(count):
            rng = seeded_rng(self.seed, source, key, k)
            turns = []
            for _ in range(self.settings.turns_per_dialogue):
                inst = self._draw(record, rng, sampled)
                if inst is not None:
                    turns.append(inst)
            if turns:
                yield from self._versions(record, f"{key}/{k}", turns, rng)

    def _draw(self, record: dict, rng: random.Random, sampled) -> TaskInstance | None:
        """A weighted draw among the tasks, without replacement, until one has something to ask."""
        pool = list(sampled)
        while pool:
            weights = [c.weight for _, c in pool]
            index = rng.choices(range(len(pool)), weights=weights)[0]
            name, choice = pool.pop(index)
            inst = self.specs[name].sample(record, rng, choice.config)
            if inst is not None:
                return inst
        return None

    # -- visual prompts ------------------------------------------------------------------------------------------
    def _versions(self, record: dict, dialogue_id: str, instances: list[TaskInstance],
                  rng: random.Random) -> Iterator[dict]:
        """The dialogue with coordinates, or with marks (`rcforge.core.visual_prompts`) where the recipe asks for them
        and they can be drawn legibly, or both (``both``). Marks take their own rng, so the coordinate version is
        the same with visual prompts on or off."""
        vp = self.settings.visual_prompts
        marked = None
        if vp is not None and len(instances) == 1 and self._markable(instances[0]):
            vrng = seeded_rng(self.seed, record["source"], record["key"], f"{dialogue_id}/vp")
            if vrng.random() < vp.rate:
                marked = self._marked(record, instances[0], vrng)
                outcome = "written" if not isinstance(marked, str) else marked
                self.visual_prompts[outcome] = self.visual_prompts.get(outcome, 0) + 1
                if isinstance(marked, str):
                    marked = None
        if marked is None or vp.both:
            yield self._dialogue(record, dialogue_id, instances, rng)
        if marked is not None:
            yield self._dialogue(record, f"{dialogue_id}/vp" if vp.both else dialogue_id, instances, vrng, marked)

    def _markable(self, inst: TaskInstance) -> bool:
        """Whether the instance's task has a marked template of its variant and its question names an object."""
        return (inst.task, f"{inst.variant}_marked") in self.templates.variants and bool(_marked_objects(inst))

    def _marked(self, record: dict, inst: TaskInstance, rng: random.Random):
        """The instance's marks drawn on the record's image (`visual_prompts.Marked`), or why they cannot be."""
        image = self._image(record)
        if isinstance(image, str):
            return image
        objects = _marked_objects(inst)
        masks = {o["id"]: o.get("mask") for o in record["objects"]}
        return visual_prompts.place(image, [{**o, "mask": masks.get(o["id"]) if o["kind"] == "object" else None}
                                            for o in objects], self.settings.visual_prompts, rng)

    def _image(self, record: dict):
        """The record's image (PIL, RGB, at the record's size), or why it cannot be read."""
        key, cached = self._image_cache
        if key == record["key"]:
            return cached
        from PIL import Image

        path, refused = images.confine(self.image_roots.get(record["source"], ""), record["image"])
        try:
            if refused:
                raise OSError(refused)
            image = Image.open(io.BytesIO(fsio.read_bytes(path, "image"))).convert("RGB")
            if image.size != (record["width"], record["height"]):
                image = image.resize((record["width"], record["height"]))
        except (InputError, OSError, ValueError, Image.DecompressionBombError):
            image = "image_unavailable"
        self._image_cache = (record["key"], image)
        return image

    def _dialogue(self, record: dict, dialogue_id: str, instances: list[TaskInstance], rng: random.Random,
                  marked: visual_prompts.Marked | None = None) -> dict:
        w, h = record["width"], record["height"]
        boxes: list = []
        points: list = []
        masks: list = []  # parallel to boxes
        groups: list[int] = []  # boxes per printed mention
        provenance: list[str] = []
        conversations, turns = [], []
        for i, inst in enumerate(instances):
            variant = self.templates.variant(inst.task, f"{inst.variant}_marked" if marked else inst.variant)
            qid = rng.choice(sorted(variant.questions))
            aid = rng.choice(sorted(variant.answers))
            mentions: list[Mention] = []
            question_vars = self._placeholders(inst.question, mentions, provenance)
            asked = len(mentions)
            answer_vars = self._placeholders(inst.answer, mentions, provenance)
            # answer templates may mention question variables (a03 of coarse_spatial.empty names the reference)
            where = f"{inst.task}.{inst.variant}"
            question = templating.render(variant.questions[qid], question_vars, f"{where}.{qid}")
            # Coordinates are written where the text shows them, and only those boxes enter the boxes column, in
            # the order they are printed: a template that names objects without their boxes adds no box.
            question = self._write_mentions(question, mentions, w, h, boxes, points, masks, groups, tie=False,
                                            asking=True, names=marked.names if marked else None)
            kind = self.specs[inst.task].kind
            if self.formatter.answers_itself(kind, mentions[asked:]):  # the family's own answer form
                aid = self.formatter.own_answer_id
                answer = self._own_answer(mentions[asked:], w, h, boxes, masks, groups)
            else:
                answer = templating.render(variant.answers[aid], {**question_vars, **answer_vars}, f"{where}.{aid}")
                tie = self.formatter.ties and kind not in self.formatter.untied_kinds
                answer = self._write_mentions(answer, mentions, w, h, boxes, points, masks, groups, tie=tie)
            task_id = self.formatter.task_id(kind)
            if task_id:
                question = f"{task_id}{self.formatter.task_id_joiner}{question}"
            conversations.append({"from": "human", "value": ("<image>\n" if i == 0 else "") + question})
            conversations.append({"from": "gpt", "value": answer})
            turns.append({"task": inst.task, "variant": inst.variant,
                          "template_id": f"{inst.task}.{inst.variant}.{qid}+{aid}", "count_proven": inst.count_proven,
                          "negative_basis": inst.negative_basis, "complete_basis": inst.complete_basis})
            self._count_hard(inst)
            for p in inst.provenance:
                if p not in provenance:
                    provenance.append(p)
        first = turns[0]
        return {
            "id": dialogue_id, "key": record["key"], "source": record["source"], "image": record["image"],
            "image_id": record["image_id"],
            "width": w, "height": h, "task": first["task"], "variant": first["variant"],
            "template_id": first["template_id"], "turns": turns, "conversations": conversations,
            "boxes": boxes, "points": points, "groups": groups,
            "masks": masks if any(m is not None for m in masks) else [],
            "provenance": provenance,
            "coordinates": self.formatter.name, "seed": self.seed, "frame": self.formatter.frame_size(w, h),
            "image_vp": marked.path if marked else None, "image_vp_sha256": marked.sha256 if marked else None,
            "marks": marked.rows() if marked else [],
            **({visual_prompts.PNG_KEY: marked.png} if marked else {}),
        }

    def _count_hard(self, inst: TaskInstance) -> None:
        tally = self.hard_negatives
        if inst.variant == hard_negatives.VARIANT:
            tally["written"] = tally.get("written", 0) + 1
        for reason in inst.declined:
            tally[reason] = tally.get(reason, 0) + 1

    def _text(self, value: str) -> str:
        """Annotation text as the format may print it: without the placeholder characters, and with the format's
        reserved markup escaped (or, under ``on_markup: reject``, refused: `markup.ReservedMarkup`)."""
        if _OPEN in value or _CLOSE in value:
            value = value.replace(_OPEN, "").replace(_CLOSE, "")
        found = self._reserved.search(value)
        if found is None:
            return value
        if self.settings.on_markup == "reject":
            raise markup.ReservedMarkup(found.group(), value, self.formatter.name)
        self.escaped += 1
        return markup.escape(value, self.formatter.reserved)

    def _placeholders(self, variables: dict, mentions: list, provenance: list) -> dict:
        """Mentions (anywhere in the values) become placeholders ``\\ue000N\\ue001``; the text of annotations has
        those two private-use characters removed, so only a placeholder can look like one, and its reserved
        markup escaped (`_text`), a mention's phrase included."""

        def conv(value):
            if isinstance(value, Mention):
                for ident in value.ids:
                    if ident not in provenance:
                        provenance.append(ident)
                if value.phrase:
                    value = dataclasses.replace(value, phrase=self._text(value.phrase))
                mentions.append(value)
                return f"{_OPEN}{len(mentions) - 1}{_CLOSE}"
            if isinstance(value, str):
                return self._text(value)
            if isinstance(value, dict):
                return {k: conv(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [conv(v) for v in value]
            return value

        return {k: conv(v) for k, v in variables.items()}

    def _write_mentions(self, text: str, mentions: list, w: int, h: int, boxes: list, points: list, masks: list,
                        groups: list, *, tie: bool, asking: bool = False, names: dict | None = None) -> str:
        """Placeholders replaced by coordinate text, left to right; each printed box and point is collected. With
        ``tie``, a mention's phrase is printed with its boxes, wrapped in place when the text before the
        placeholder ends with it. ``names``: the marks that stand for mentions (annotation id -> what the
        question calls it), written instead of their coordinates."""
        fmt = self.formatter
        out: list[str] = []
        pos = 0
        for match in _PLACEHOLDER.finditer(text):
            before = text[pos:match.start()]
            pos = match.end()
            value = mentions[int(match.group(1))]
            if names and len(value.ids) == 1 and value.ids[0] in names:
                out.extend((before, names[value.ids[0]]))
                continue
            phrase = value.phrase if tie and value.boxes else None
            if phrase and fmt.wraps_in_place:
                stripped = before.rstrip()
                if stripped.endswith(phrase):
                    before = stripped[: len(stripped) - len(phrase)]
            out.append(before)
            parts = []
            if value.points:
                for p in value.points:
                    points.append(list(fmt.normalize_point(p, w, h)))
                parts.append(" ".join(fmt.point_text(p, w, h) for p in value.points))
            if value.boxes:
                ordered = fmt.ordered(list(value.boxes))
                for b in ordered:
                    boxes.append(list(fmt.normalize(b, w, h)))
                masks.extend(_masks_in_order(value, ordered))
                groups.append(len(ordered))
                parts.append(fmt.refer_text(ordered, w, h) if asking else fmt.boxes_text(ordered, w, h, phrase))
            out.append(" ".join(parts))
        out.append(text[pos:])
        return "".join(out)

    def _own_answer(self, answer_mentions: list, w: int, h: int, boxes: list, masks: list, groups: list) -> str:
        """The answer in the format's own form (Qwen's JSON list, Florence-2's grammar): every box of the answer's
        mentions with its phrase."""
        items = []
        for value in answer_mentions:
            ordered = self.formatter.ordered(list(value.boxes))
            boxes.extend(list(self.formatter.normalize(b, w, h)) for b in ordered)
            masks.extend(_masks_in_order(value, ordered))
            groups.append(len(ordered))
            items.append((value.phrase, ordered))
        return self.formatter.own_answer(items, w, h)


def _marked_objects(inst: TaskInstance) -> list[dict]:
    """The annotations the question mentions by one box each (objects, regions, and areas: counting's
    "area:x1,y1,x2,y2", id 0), in order, once each: what visual prompts mark (``{"id", "kind", "ref", "box"}``)."""
    found, seen = [], set()
    for value in inst.question.values():
        if isinstance(value, Mention) and len(value.boxes) == 1 and len(value.ids) == 1 and not value.points:
            kind, _, number = value.ids[0].partition(":")
            if value.ids[0] in seen or not (kind in ("object", "region") and number.isdigit() or kind == "area"):
                continue
            seen.add(value.ids[0])
            found.append({"id": int(number) if kind != "area" else 0, "kind": kind, "ref": value.ids[0],
                          "box": value.boxes[0]})
    return found


def _masks_in_order(mention: Mention, ordered: list) -> list:
    """The mention's masks in the order its boxes are printed (a format may sort them), None where none."""
    if not mention.masks:
        return [None] * len(ordered)
    pending = list(zip(mention.boxes, mention.masks))
    out = []
    for box in ordered:
        index = next(i for i, (b, _) in enumerate(pending) if b == box)
        out.append(pending.pop(index)[1])
    return out


_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
