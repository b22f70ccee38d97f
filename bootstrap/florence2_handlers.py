"""Florence-2 handlers for the bootstrap stage (transformers' `Florence2ForConditionalGeneration`, no remote code).

``describe`` prompts ``<REGION_TO_DESCRIPTION>`` with the box as ``<loc_N>`` tokens; ``ground`` prompts
``<CAPTION_TO_PHRASE_GROUNDING>`` with the description; replies are decoded with special tokens kept and parsed by
`rcforge.bootstrap.florence2`. Batches are sorted by image so an image is read once per batch; the model is put
in eval mode without gradients (its outputs must pickle across Beam workers) and in half precision on CUDA.
"""

from __future__ import annotations

import io
from typing import Any

from apache_beam.ml.inference.base import PredictionResult
from rcforge.bootstrap import florence2
from rcforge.bootstrap.handlers import (
    UNREADABLE,
    BootstrapHandler,
    DescribeStage,
    GroundStage,
)

from rcforge import fsio


class LoadedModel:
    """The model and its processor (Beam needs a weak-referenceable object)."""

    def __init__(self, model, processor, device):
        self.model, self.processor, self.device = model, processor, device


class _Florence2(BootstrapHandler):
    backend = "florence2"
    formats = florence2

    def __init__(self, model_id: str, *, image_roots: dict[str, str], revision: str | None = None,
                 device: str = "cpu", max_new_tokens: int = 32, min_new_tokens: int = 0, batch_size: int = 16):
        super().__init__(model_id, revision=revision)
        self.image_roots, self.device = image_roots, device
        self.max_new_tokens, self.min_new_tokens, self.batch_size = max_new_tokens, min_new_tokens, batch_size

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": self.batch_size}

    def load_model(self) -> LoadedModel:
        import torch
        from transformers import AutoProcessor, Florence2ForConditionalGeneration

        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        model = Florence2ForConditionalGeneration.from_pretrained(self.model_id, revision=self.revision, dtype=dtype)
        model = model.to(self.device).eval().requires_grad_(False)
        processor = AutoProcessor.from_pretrained(self.model_id, revision=self.revision)
        return LoadedModel(model, processor, self.device)

    def _image(self, request: dict, cache: dict):
        from PIL import Image

        key = (request["source"], request["image"])
        if key not in cache:
            data = fsio.read_bytes(fsio.join(self.image_roots[request["source"]], request["image"]), "image")
            cache[key] = Image.open(io.BytesIO(data)).convert("RGB")
        return cache[key]

    def prompt(self, request: dict) -> str:  # from the stage mixin
        raise NotImplementedError

    def readable(self, batch: list[dict]) -> tuple[list[dict], list, list[PredictionResult]]:
        """(requests whose image reads, their images, results for those whose image does not)."""
        batch = sorted(batch, key=lambda r: (r["source"], r["image"]))
        cache: dict = {}
        ok, images, failed = [], [], []
        for r in batch:
            try:
                images.append(self._image(r, cache))
                ok.append(r)
            except Exception as err:  # a missing or broken image is this request's error, not the run's
                failed.append(PredictionResult(r, f"{UNREADABLE}{type(err).__name__}: {err}"))
        return ok, images, failed

    def run_inference(self, batch, model: LoadedModel, inference_args: dict[str, Any] | None = None):
        import torch

        batch, images, failed = self.readable(batch)
        if not batch:
            return failed
        inputs = model.processor(text=[self.prompt(r) for r in batch], images=images, return_tensors="pt",
                                 padding=True).to(model.device)
        if "pixel_values" in inputs and model.device.startswith("cuda"):
            inputs["pixel_values"] = inputs["pixel_values"].half()
        with torch.inference_mode():
            out = model.model.generate(**inputs, max_new_tokens=self.max_new_tokens,
                                       min_new_tokens=self.min_new_tokens, do_sample=False, num_beams=1)
        raws = model.processor.batch_decode(out, skip_special_tokens=False)
        return [PredictionResult(r, raw) for r, raw in zip(batch, raws)] + failed


class Florence2Describe(DescribeStage, _Florence2):
    pass


class Florence2Ground(GroundStage, _Florence2):
    pass
