"""The ``chat`` backend's handlers: any transformers image-text-to-text chat model (`AutoModelForImageTextToText`
with its `AutoProcessor`), e.g. LLaVA-1.5, Qwen2-VL, Qwen2.5-VL.

Each request becomes a chat (an optional system message, then the image and the prompt set's describe or ground
prompt), rendered by the processor's own chat template; batches are padded on the left and generated greedily
(extra samples per box are sampled, see `ImageHandler`); only the new tokens are decoded, without special tokens. The prompt set (`rcforge.bootstrap.chat`) says how boxes
are written and read back. The coordinate frame of each request (the resized image's size for the ``resized``
scale) is attached to the request as ``frame``, so the pipeline's parse step reads a reply without the model.

The image is not encoded once for all of its boxes here: in these decoder-only models the image tokens sit inside
each prompt's sequence, so sharing them would need a shared prompt prefix and its cache; each box's prompt carries
its own copy, and batching across boxes is what this backend relies on.
"""

from __future__ import annotations

from rcforge.bootstrap import chat
from rcforge.bootstrap.handlers import ImageHandler, LoadedModel
from rcforge.bootstrap.options import Backend


class _Chat(ImageHandler):
    backend = "chat"
    model_class = "AutoModelForImageTextToText"
    cuda_dtype = "bfloat16"  # chat models are trained in bf16; fp16 overflows in some

    def __init__(self, model_id: str, *, prompts: chat.ChatPrompts | str = "pink", **kwargs):
        self.prompts = chat.load_prompts(prompts) if isinstance(prompts, str) else prompts
        template_id = self.prompts.describe_id if self.stage == "describe" else self.prompts.ground_id
        super().__init__(model_id, template_id=template_id, **kwargs)

    def configure(self, model, processor) -> None:
        processor.tokenizer.padding_side = "left"  # batched decoder-only prompts

    def frame(self, request: dict, image_processor) -> tuple[int, int]:
        if self.prompts.box_scale != "resized":
            return request["width"], request["height"]
        return chat.resized_frame(image_processor, request["width"], request["height"])

    def text(self, request: dict) -> str:
        raise NotImplementedError

    def prepare(self, model: LoadedModel, batch, images, index):
        """Each request's frame (kept on the request for the parse step) and its chat, rendered by the processor's
        own chat template."""
        for i, r in enumerate(batch):  # new dicts in the batch's own list: Beam's elements stay untouched
            batch[i] = {**r, "frame": list(self.frame(r, model.processor.image_processor))}
        return [model.processor.apply_chat_template(chat.messages(self.prompts, self.text(r)),
                                                    add_generation_prompt=True, tokenize=False) for r in batch]

    def generate_rows(self, model: LoadedModel, batch, images, index, prepared, rows, sample):
        inputs = model.processor(text=[prepared[i] for i in rows], images=[images[index[i]] for i in rows],
                                 return_tensors="pt", padding=True).to(model.device)
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(model.model.dtype)
        out = model.model.generate(**inputs, **self.generation_kwargs(sample))
        return model.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def _frame(request: dict) -> tuple[int, int]:
    return tuple(request.get("frame") or (request["width"], request["height"]))


class ChatDescribe(_Chat):
    stage = "describe"

    def text(self, request: dict) -> str:
        return chat.describe_prompt(self.prompts, request, _frame(request))

    def parse(self, raw: str, request: dict):
        return chat.parse_description(self.prompts, raw)


class ChatGround(_Chat):
    stage = "ground"

    def text(self, request: dict) -> str:
        return chat.ground_prompt(self.prompts, request, _frame(request))

    def parse(self, raw: str, request: dict):
        return chat.parse_box(self.prompts, raw, request["width"], request["height"], _frame(request))


def _make(options, common: dict) -> tuple:
    prompts = chat.load_prompts(options.chat_prompts)
    return ChatDescribe(options.model, prompts=prompts, **common), ChatGround(options.model, prompts=prompts, **common)


BACKEND = Backend("chat", _make)
