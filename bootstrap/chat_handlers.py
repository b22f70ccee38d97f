"""The ``chat`` backend: any transformers image-text-to-text chat model (`AutoModelForImageTextToText` with its
`AutoProcessor`), e.g. LLaVA-1.5, Qwen2-VL, Qwen2.5-VL.

Each request becomes a chat (an optional system message, then the image and the prompt set's describe or ground
prompt), rendered by the processor's own chat template; batches are padded on the left; only the new tokens are
decoded, without special tokens. The prompt set (`rcforge.bootstrap.chat`) says how boxes are written and read
back. The coordinate frame of each request (the resized image's size for the ``resized`` scale) is attached to
the request as ``frame``, so the pipeline's parse step reads a reply without the model.

The image is not encoded once for all of its boxes here: in these decoder-only models the image tokens sit inside
each prompt's sequence, so sharing them would need a shared prompt prefix and its cache; each box's prompt carries
its own copy, and batching across boxes is what this backend relies on.
"""

from __future__ import annotations

from rcforge.bootstrap import chat
from rcforge.bootstrap.handlers import Adapter, LoadedModel
from rcforge.bootstrap.options import Backend


class Chat(Adapter):
    name = "chat"
    cuda_dtype = "bfloat16"  # chat models are trained in bf16; fp16 overflows in some

    def __init__(self, stage: str, prompts: chat.ChatPrompts | str = "pink"):
        super().__init__(stage)
        self.prompts = chat.load_prompts(prompts) if isinstance(prompts, str) else prompts

    @property
    def template_id(self) -> str:
        return self.prompts.describe_id if self.stage == "describe" else self.prompts.ground_id

    def configure(self, model, processor) -> None:
        processor.tokenizer.padding_side = "left"  # batched decoder-only prompts

    def prompt(self, request: dict) -> str:
        """The user turn's text, in the request's coordinate frame."""
        if self.stage == "describe":
            return chat.describe_prompt(self.prompts, request, _frame(request))
        return chat.ground_prompt(self.prompts, request, _frame(request))

    def parse(self, raw: str, request: dict):
        if self.stage == "describe":
            return chat.parse_description(self.prompts, raw)
        return chat.parse_box(self.prompts, raw, request["width"], request["height"], _frame(request))

    def frame(self, request: dict, image_processor) -> tuple[int, int]:
        if self.prompts.box_scale != "resized":
            return request["width"], request["height"]
        return chat.resized_frame(image_processor, request["width"], request["height"])

    def prepare(self, loaded: LoadedModel, batch, images, index):
        """Each request's frame (kept on the request for the parse step) and its chat, rendered by the processor's
        own chat template."""
        for i, r in enumerate(batch):  # new dicts in the batch's own list: Beam's elements stay untouched
            batch[i] = {**r, "frame": list(self.frame(r, loaded.processor.image_processor))}
        return [loaded.processor.apply_chat_template(chat.messages(self.prompts, self.prompt(r)),
                                                     add_generation_prompt=True, tokenize=False) for r in batch]

    def generate(self, loaded: LoadedModel, batch, images, index, prepared, rows, generate_kwargs):
        inputs = loaded.processor(text=[prepared[i] for i in rows], images=[images[index[i]] for i in rows],
                                  return_tensors="pt", padding=True).to(loaded.device)
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(loaded.model.dtype)
        out = loaded.model.generate(**inputs, **generate_kwargs)
        return loaded.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def _frame(request: dict) -> tuple[int, int]:
    return tuple(request.get("frame") or (request["width"], request["height"]))


BACKEND = Backend("chat", lambda stage, options: Chat(stage, chat.load_prompts(options.chat_prompts)))
