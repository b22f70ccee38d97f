"""The Kosmos-2 backend (transformers' `Kosmos2ForConditionalGeneration`, no remote code).

``describe`` continues ``<grounding><phrase> It</phrase><object>..</object> is`` (referring expression
generation); ``ground`` continues ``<grounding><phrase> description</phrase>`` with an ``<object>`` box. A reply
is the prompt followed by the new tokens (the parsers of `rcforge.bootstrap.kosmos2` read the prompt's phrase and
the model's object; the ground prompt has no ``<object>``, so the first box is the model's). Each image is
encoded once per batch, as for Florence-2. The processor's number of image tokens is set from the model's
``latent_query_num`` (a checkpoint's processor config may not carry it).
"""

from __future__ import annotations

from rcforge.bootstrap import kosmos2
from rcforge.bootstrap.florence2_handlers import encode_images, text_inputs
from rcforge.bootstrap.handlers import Adapter, LoadedModel
from rcforge.bootstrap.options import Backend


class Kosmos2(Adapter):
    name = "kosmos2"
    model_class = "Kosmos2ForConditionalGeneration"
    formats = kosmos2

    def configure(self, model, processor) -> None:
        processor.num_image_tokens = model.config.latent_query_num
        processor.tokenizer.padding_side = "left"  # batched decoder prompts

    def prepare(self, loaded: LoadedModel, batch, images, index):
        return encode_images(loaded, images, index)

    def generate(self, loaded: LoadedModel, batch, images, index, prepared, rows, generate_kwargs):
        """Kosmos-2 takes the image embeddings directly; they fill the positions its position mask marks. Only
        the new tokens are decoded (the decoded prompt would carry the image tokens), after the prompt's text."""
        prompts = [self.prompt(batch[i]) for i in rows]
        inputs = text_inputs(loaded, prompts)
        out = loaded.model.generate(image_embeds=prepared[rows], input_ids=inputs["input_ids"],
                                    attention_mask=inputs["attention_mask"],
                                    image_embeds_position_mask=inputs["image_embeds_position_mask"],
                                    **generate_kwargs)
        replies = loaded.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=False)
        return [prompt + reply for prompt, reply in zip(prompts, replies)]


BACKEND = Backend("kosmos2", lambda stage, options: Kosmos2(stage))
