"""Kosmos-2 handlers for the bootstrap stage (transformers' `Kosmos2ForConditionalGeneration`, no remote code).

``describe`` continues ``<grounding><phrase> It</phrase><object>..</object> is`` (referring expression
generation); ``ground`` continues ``<grounding><phrase> description</phrase>`` with an ``<object>`` box. The
replies are parsed by `rcforge.bootstrap.kosmos2`. The processor's number of image tokens is set from the model's
``latent_query_num`` (a checkpoint's processor config may not carry it).
"""

from __future__ import annotations

from typing import Any

from apache_beam.ml.inference.base import PredictionResult
from rcforge.bootstrap import kosmos2
from rcforge.bootstrap.florence2_handlers import _Florence2
from rcforge.bootstrap.handlers import (
    DescribeStage,
    GroundStage,
    LoadedModel,
)
from rcforge.bootstrap.options import Backend


class _Kosmos2(_Florence2):
    backend = "kosmos2"
    formats = kosmos2
    model_class = "Kosmos2ForConditionalGeneration"

    def configure(self, model, processor) -> None:
        processor.num_image_tokens = model.config.latent_query_num
        processor.tokenizer.padding_side = "left"  # batched decoder prompts

    def generate(self, model: LoadedModel, inputs, features, sample: bool):
        """Kosmos-2 takes the image embeddings directly; they fill the positions its position mask marks."""
        return model.model.generate(image_embeds=features, input_ids=inputs["input_ids"],
                                    attention_mask=inputs["attention_mask"],
                                    image_embeds_position_mask=inputs["image_embeds_position_mask"],
                                    **self.generation_kwargs(sample))

    def decode(self, model: LoadedModel, inputs, out) -> list[str]:
        """The new tokens only (the decoded prompt would carry the image tokens)."""
        prompt_length = inputs["input_ids"].shape[1]
        return model.processor.batch_decode(out[:, prompt_length:], skip_special_tokens=False)

    def run_inference(self, batch, model: LoadedModel, inference_args: dict[str, Any] | None = None):
        """The replies with their prompt in front: the parsers read the prompt's phrase and the model's object."""
        results = super().run_inference(batch, model, inference_args)
        return [PredictionResult(r.example, self.prompt(r.example) + r.inference) for r in results]


class Kosmos2Describe(DescribeStage, _Kosmos2):
    pass


class Kosmos2Ground(GroundStage, _Kosmos2):
    """The reply holds the prompt, which has no ``<object>``: the first box is the model's."""


BACKEND = Backend("kosmos2", lambda options, common: (Kosmos2Describe(options.model, **common),
                                                    Kosmos2Ground(options.model, **common)))
