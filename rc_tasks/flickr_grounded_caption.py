"""Flickr30K grounded captions: a caption whose phrases carry their boxes (one instance per caption).

The answer is the caption as a list of segments; a phrase with boxes is followed by them (several boxes for one
phrase are one mention, written as the coordinate format writes several boxes). Phrases of entities without a
box (``nobndbox``, scenes) stay plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from rcforge.core.config import number
from rcforge.rc_tasks import Mention, TaskInstance, register


@dataclass(frozen=True)
class FlickrGroundedCaptionConfig:
    """min_boxed_phrases: captions with fewer phrases that have boxes are skipped."""

    min_boxed_phrases: int = number(1, 0)


def segments(caption: dict, objects: dict) -> list[dict]:
    """[{"text", "box": Mention | None}] covering the caption text in order."""
    out, pos = [], 0
    text = caption["text"]
    for phrase in sorted(caption["phrases"], key=lambda p: p["start"]):
        if phrase["start"] > pos:
            out.append({"text": text[pos:phrase["start"]], "box": None})
        boxes = [objects[i] for i in phrase["object_ids"] if i in objects]
        mention = Mention(boxes=tuple(tuple(o["box"]) for o in boxes), ids=tuple(f"object:{o['id']}" for o in boxes),
                          phrase=text[phrase["start"]:phrase["end"]]) \
            if boxes else None
        out.append({"text": text[phrase["start"]:phrase["end"]], "box": mention})
        pos = phrase["end"]
    if pos < len(text):
        out.append({"text": text[pos:], "box": None})
    return out


def enumerate_captions(record: dict, rng_for, cfg: FlickrGroundedCaptionConfig) -> Iterator[TaskInstance]:
    """One grounded caption per caption of the image."""
    objects = {o["id"]: o for o in record["objects"]}
    for caption in record["captions"]:
        segs = segments(caption, objects)
        if sum(1 for s in segs if s["box"] is not None) < cfg.min_boxed_phrases:
            continue
        yield TaskInstance("flickr_grounded_caption", "caption", question={}, answer={"caption": segs},
                           provenance=[f"caption:{caption['id']}"], key=f"caption:{caption['id']}")


SPEC = register("flickr_grounded_caption", FlickrGroundedCaptionConfig, enumerate=enumerate_captions,
                enumerate_needs=("captions",), variables={"caption": (set(), {"caption"})}, kind="ground_caption")
