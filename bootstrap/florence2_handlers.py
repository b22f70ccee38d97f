"""Florence-2 handlers for the bootstrap stage (transformers' `Florence2ForConditionalGeneration`, no remote code).

``describe`` prompts ``<REGION_TO_DESCRIPTION>`` with the box as ``<loc_N>`` tokens; ``ground`` prompts
``<CAPTION_TO_PHRASE_GROUNDING>`` with the description; replies are decoded with special tokens kept and parsed by
`rcforge.bootstrap.florence2`. Batches are sorted by image, and each image is read, preprocessed and passed
through the vision tower once for all of its boxes in the batch (the text encoder and decoder still run per box:
their prompts differ). The model is put in eval mode without gradients (its outputs must pickle across Beam
workers) and in half precision on CUDA.
"""

from __future__ import annotations

from rcforge.bootstrap import florence2
from rcforge.bootstrap.handlers import (
    DescribeStage,
    GroundStage,
    ImageHandler,
    LoadedModel,
)
from rcforge.bootstrap.options import Backend


class _Florence2(ImageHandler):
    backend = "florence2"
    formats = florence2
    model_class = "Florence2ForConditionalGeneration"

    def text_inputs(self, model: LoadedModel, batch: list[dict]):
        """The processor's token inputs for the prompts, without preprocessing any real image.

        The processor insists on one image per prompt, and resizing and normalizing one costs tens of ms on a
        CPU (more than a GPU's whole generate step for it). Florence-2 and Kosmos-2 put a fixed number of image
        tokens in every prompt whatever the image, so 1x1 stand-ins, not resized, give the same token ids (a test
        compares them with the processor's on real images); the pixels come from `encode_images`.
        """
        from PIL import Image

        stand_in = Image.new("RGB", (1, 1))
        inputs = model.processor(text=[self.prompt(r) for r in batch], images=[stand_in] * len(batch),
                                 return_tensors="pt", padding=True, do_resize=False)
        inputs.pop("pixel_values", None)
        return inputs.to(model.device)

    def encode_images(self, model: LoadedModel, images: list, index: list[int]):
        """The vision tower's features, computed once per distinct image and repeated for each of its requests."""
        import torch

        pixels = model.processor.image_processor(images, return_tensors="pt")["pixel_values"]
        pixels = pixels.to(model.device, model.model.dtype)
        features = model.model.get_image_features(pixel_values=pixels)
        features = getattr(features, "pooler_output", features)  # an output object (transformers 5) or a tensor
        return features[torch.tensor(index, device=features.device)]

    def prepare(self, model: LoadedModel, batch, images, index):
        return self.encode_images(model, images, index)

    def generate(self, model: LoadedModel, inputs, features, sample: bool):
        """Florence-2: the image features take the places of the image tokens, the text encoder runs on the
        merged sequence (its prompt differs per box), and the decoder generates from the encoder's outputs."""
        embeds = model.model.get_input_embeddings()(inputs["input_ids"])
        mask = (inputs["input_ids"] == model.model.config.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(mask, features.to(embeds.dtype))
        encoded = model.model.get_encoder()(inputs_embeds=embeds, attention_mask=inputs["attention_mask"])
        return model.model.generate(encoder_outputs=encoded, attention_mask=inputs["attention_mask"],
                                    **self.generation_kwargs(sample))

    def decode(self, model: LoadedModel, inputs, out) -> list[str]:
        return model.processor.batch_decode(out, skip_special_tokens=False)

    def generate_rows(self, model: LoadedModel, batch, images, index, prepared, rows, sample):
        requests = [batch[i] for i in rows]
        inputs = self.text_inputs(model, requests)
        out = self.generate(model, inputs, prepared[rows], sample)
        return self.decode(model, inputs, out)


class Florence2Describe(DescribeStage, _Florence2):
    pass


class Florence2Ground(GroundStage, _Florence2):
    pass


BACKEND = Backend("florence2", lambda options, common: (Florence2Describe(options.model, **common),
                                                        Florence2Ground(options.model, **common)))
