"""PointQA (LocalQA / LookTwiceQA): a question about what a point or a box shows (one instance per item).

The input is drawn per item among ``inputs``: the point (variant ``point``), the object's box (``box``) or both
(``point_box``). LookTwiceQA items are asked with their pointing question ("How many of these are there?").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal

from rcforge.rc_tasks import Mention, TaskInstance, register


@dataclass(frozen=True)
class PointQAConfig:
    """inputs: "point", "box" and/or "point_box", drawn uniformly per item."""

    inputs: tuple[Literal["point", "box", "point_box"], ...] = ("point", "box", "point_box")


def enumerate_items(record: dict, rng_for, cfg: PointQAConfig) -> Iterator[TaskInstance]:
    """One question per PointQA item."""
    for qa in record["qas"]:
        if qa["kind"] not in ("localqa", "looktwiceqa") or qa["answer"] is None:
            continue
        key = f"qa:{qa['id']}"
        how = rng_for(key).choice(cfg.inputs)
        ids = tuple(f"object:{i}" for i in qa["object_ids"])
        question = {"question": qa["point_question"] or qa["question"]}
        if how in ("point", "point_box"):
            question["point"] = Mention(points=(tuple(qa["point"]),), ids=ids)
        if how in ("box", "point_box"):
            question["box"] = Mention(boxes=(tuple(qa["box"]),), ids=ids)
        yield TaskInstance("pointqa", how, question=question, answer={"answer": qa["answer"]},
                           provenance=[key], key=key)


SPEC = register("pointqa", PointQAConfig, enumerate=enumerate_items, enumerate_needs=("pointqa",),
                variables={"point": ({"question", "point"}, {"answer"}), "box": ({"question", "box"}, {"answer"}),
                           "point_box": ({"question", "point", "box"}, {"answer"})})
