"""Which boxes the bootstrap stage describes (Pink's defaults), and the requests it makes of them.

Pink skips images with more than 15 annotations (dense scenes make descriptions ambiguous), crowd/ignored boxes
and boxes under 2000 px^2 (too small to describe). ``samples`` descriptions are drawn per box; the decision
keeps the one whose re-grounded box fits best.
"""

from __future__ import annotations

from dataclasses import dataclass

from rcforge.core.boxes import iou


@dataclass(frozen=True)
class SelectionConfig:
    """max_annotations: images with more objects are skipped. min_area: smaller boxes (px^2) are skipped.
    skip_ignored: leave out crowd / ignored boxes. samples: descriptions drawn per box."""

    max_annotations: int = 15
    min_area: float = 2000.0
    skip_ignored: bool = True
    samples: int = 1

    def __post_init__(self):
        if self.samples < 1:
            raise ValueError("samples must be at least 1")


def select(record: dict, cfg: SelectionConfig, seed: int = 0) -> list[dict]:
    """One request per selected box and sample, with the image's other boxes of the same category and the run's
    seed (extra samples are drawn under a seed derived from it)."""
    objects = record["objects"]
    if len(objects) > cfg.max_annotations:
        return []
    requests = []
    for obj in objects:
        x1, y1, x2, y2 = obj["box"]
        if (cfg.skip_ignored and obj["ignore"]) or (x2 - x1) * (y2 - y1) < cfg.min_area:
            continue
        category = obj["names"][0]
        others = [list(o["box"]) for o in objects if o["id"] != obj["id"] and o["names"][0] == category]
        for sample in range(cfg.samples):
            requests.append({"key": record["key"], "source": record["source"], "image": record["image"],
                             "width": record["width"], "height": record["height"], "object_id": obj["id"],
                             "category": category, "box": list(obj["box"]), "sample": sample, "others": others,
                             "seed": seed})
    return requests


def score(request: dict, predicted: list[float] | None) -> tuple[float, float]:
    """(IoU with the original box, best IoU with another box of the same category); zeros without a box."""
    if predicted is None:
        return 0.0, 0.0
    own = iou(request["box"], predicted)
    other = max((iou(b, predicted) for b in request["others"]), default=0.0)
    return own, other
