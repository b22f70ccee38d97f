"""VQAv2: question -> answer (the most common annotator answer), one instance per question."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from rcforge.rc_tasks import TaskInstance, register


@dataclass(frozen=True)
class VQAConfig:
    """answer_types: keep only questions of these answer types (empty: all)."""

    answer_types: tuple[str, ...] = ()


def enumerate_questions(record: dict, rng_for, cfg: VQAConfig) -> Iterator[TaskInstance]:
    """One instance per VQAv2 question."""
    for qa in record["qas"]:
        if qa["kind"] != "vqav2" or not qa["answer"]:
            continue
        if cfg.answer_types and qa["answer_type"] not in cfg.answer_types:
            continue
        key = f"qa:{qa['id']}"
        yield TaskInstance("vqa", "answer", question={"question": qa["question"]}, answer={"answer": qa["answer"]},
                           provenance=[key], key=key)


SPEC = register("vqa", VQAConfig, enumerate=enumerate_questions, enumerate_needs=("vqa",),
                variables={"answer": ({"question"}, {"answer"})}, kind="vqa")
