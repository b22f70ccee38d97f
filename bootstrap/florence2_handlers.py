"""The Florence-2 backend (transformers' `Florence2ForConditionalGeneration`, no remote code).

``describe`` prompts ``<REGION_TO_DESCRIPTION>`` with the box as ``<loc_N>`` tokens; ``ground`` prompts
``<CAPTION_TO_PHRASE_GROUNDING>`` with the description; replies are decoded with special tokens kept and parsed by
`rcforge.bootstrap.florence2`. Batches are sorted by image, and each image is read, preprocessed and passed
through the vision tower once for all of its boxes in the batch (the text encoder and decoder still run per box:
their prompts differ). The model runs in half precision on CUDA.

`text_inputs` and `encode_images` are shared with the Kosmos-2 backend, whose prompts also hold a fixed number of
image tokens.
"""

from __future__ import annotations

from rcforge.bootstrap import florence2
from rcforge.bootstrap.handlers import Adapter, LoadedModel
from rcforge.bootstrap.options import Backend


def text_inputs(loaded: LoadedModel, prompts: list[str]):
    """The processor's token inputs for the prompts, without preprocessing any real image.

    The processor insists on one image per prompt, and resizing and normalizing one costs tens of ms on a CPU
    (more than a GPU's whole generate step for it). Florence-2 and Kosmos-2 put a fixed number of image tokens in
    every prompt whatever the image, so 1x1 stand-ins, not resized, give the same token ids (a test compares them
    with the processor's on real images); the pixels come from `encode_images`.
    """
    from PIL import Image

    stand_in = Image.new("RGB", (1, 1))
    inputs = loaded.processor(text=prompts, images=[stand_in] * len(prompts), return_tensors="pt", padding=True,
                              do_resize=False)
    inputs.pop("pixel_values", None)
    return inputs.to(loaded.device)


def encode_images(loaded: LoadedModel, images: list, index: list[int]):
    """The vision tower's features, computed once per distinct image and repeated for each of its requests."""
    import torch

    pixels = loaded.processor.image_processor(images, return_tensors="pt")["pixel_values"]
    pixels = pixels.to(loaded.device, loaded.model.dtype)
    features = loaded.model.get_image_features(pixel_values=pixels)
    features = getattr(features, "pooler_output", features)  # an output object (transformers 5) or a tensor
    return features[torch.tensor(index, device=features.device)]


class Florence2(Adapter):
    name = "florence2"
    model_class = "Florence2ForConditionalGeneration"
    formats = florence2

    def prepare(self, loaded: LoadedModel, batch, images, index):
        return encode_images(loaded, images, index)

    def generate(self, loaded: LoadedModel, batch, images, index, prepared, rows, generate_kwargs):
        """The image features take the places of the image tokens, the text encoder runs on the merged sequence
        (its prompt differs per box), and the decoder generates from the encoder's outputs."""
        inputs = text_inputs(loaded, [self.prompt(batch[i]) for i in rows])
        embeds = loaded.model.get_input_embeddings()(inputs["input_ids"])
        mask = (inputs["input_ids"] == loaded.model.config.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(mask, prepared[rows].to(embeds.dtype))
        encoded = loaded.model.get_encoder()(inputs_embeds=embeds, attention_mask=inputs["attention_mask"])
        out = loaded.model.generate(encoder_outputs=encoded, attention_mask=inputs["attention_mask"],
                                    **generate_kwargs)
        return loaded.processor.batch_decode(out, skip_special_tokens=False)


BACKEND = Backend("florence2", lambda stage, options: Florence2(stage))
