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
from rcforge.bootstrap.florence2_handlers import LoadedModel, _Florence2
from rcforge.bootstrap.handlers import DescribeStage, GroundStage


class _Kosmos2(_Florence2):
    backend = "kosmos2"
    formats = kosmos2

    def load_model(self) -> LoadedModel:
        import torch
        from transformers import AutoProcessor, Kosmos2ForConditionalGeneration

        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        model = Kosmos2ForConditionalGeneration.from_pretrained(self.model_id, revision=self.revision, dtype=dtype)
        model = model.to(self.device).eval().requires_grad_(False)
        processor = AutoProcessor.from_pretrained(self.model_id, revision=self.revision)
        processor.num_image_tokens = model.config.latent_query_num
        processor.tokenizer.padding_side = "left"  # batched decoder prompts
        return LoadedModel(model, processor, self.device)

    def run_inference(self, batch, model: LoadedModel, inference_args: dict[str, Any] | None = None):
        import torch

        batch, images, failed = self.readable(batch)
        if not batch:
            return failed
        inputs = model.processor(text=[self.prompt(r) for r in batch], images=images, return_tensors="pt",
                                 padding=True).to(model.device)
        pixels = inputs["pixel_values"].half() if model.device.startswith("cuda") else inputs["pixel_values"]
        with torch.inference_mode():
            out = model.model.generate(pixel_values=pixels, input_ids=inputs["input_ids"],
                                       attention_mask=inputs["attention_mask"],
                                       image_embeds_position_mask=inputs["image_embeds_position_mask"],
                                       max_new_tokens=self.max_new_tokens, min_new_tokens=self.min_new_tokens,
                                       do_sample=False, num_beams=1)
        prompt_length = inputs["input_ids"].shape[1]
        raws = model.processor.batch_decode(out[:, prompt_length:], skip_special_tokens=False)
        return [PredictionResult(r, self.prompt(r) + raw) for r, raw in zip(batch, raws)] + failed


class Kosmos2Describe(DescribeStage, _Kosmos2):
    pass


class Kosmos2Ground(GroundStage, _Kosmos2):
    """The reply holds the prompt, which has no ``<object>``: the first box is the model's."""
