"""The contract between the bootstrap pipeline and a model backend.

A backend is two Beam `ModelHandler`s, one per stage: ``describe`` (image + box -> a referring expression) and
``ground`` (image + expression -> a box). Each receives request dicts (see `bootstrap.selection.select`; ground
requests carry the ``description``) and yields ``PredictionResult(request, raw_text)``; its pure ``parse`` turns
the raw text into a description or a pixel box, or None when the reply does not parse (a format error, kept and
counted, never a crash). An image handler reads each request's image in a preprocess step (`ImageLoader`, one of
its ``get_preprocess_fns``): a request whose image does not read fails there, and RunInference's exception
handling sends it to the dead-letter output, which the pipeline turns into a candidate with ``error_stage``
"image". Prompt building and parsing are pure functions next to each backend's handlers.
``load_model`` must return a weak-referenceable object (Beam shares one model across threads): a small class,
not a tuple or a dict.
"""

from __future__ import annotations

import io
import threading
import zlib
from typing import Any

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from rcforge import fsio

_SAMPLING = threading.Lock()


class ImageLoader:
    """The preprocess step of an image handler: a request -> (request, its RGB image). The last few images are
    kept, so the boxes of one image (adjacent in the stream) share one decoded image and the model encodes it
    once per batch. A missing or broken image raises: RunInference's dead-letter output takes the request."""

    def __init__(self, image_roots: dict[str, str], keep: int = 8):
        self.image_roots, self.keep = image_roots, keep
        self._recent: dict = {}

    def __getstate__(self):
        return {"image_roots": self.image_roots, "keep": self.keep}

    def __setstate__(self, state):
        self.__init__(**state)

    def __call__(self, request: dict):
        from PIL import Image

        key = (request["source"], request["image"])
        image = self._recent.get(key)
        if image is None:
            data = fsio.read_bytes(fsio.join(self.image_roots[request["source"]], request["image"]), "image")
            image = Image.open(io.BytesIO(data)).convert("RGB")
            self._recent[key] = image
            while len(self._recent) > self.keep:
                self._recent.pop(next(iter(self._recent)))
        return request, image


class BootstrapHandler(ModelHandler):
    """Base of the backends' handlers: identifies the model and template, and parses its own replies."""

    backend = "base"
    stage = "describe"  # or "ground"

    def __init__(self, model_id: str, *, revision: str | None = None, template_id: str = ""):
        super().__init__()
        self.model_id, self.revision = model_id, revision
        self.template_id = template_id or f"{self.backend}.{self.stage}"

    def parse(self, raw: str, request: dict) -> Any:
        """A description (describe) or a pixel box [x1, y1, x2, y2] (ground); None when the reply does not parse."""
        raise NotImplementedError


class LoadedModel:
    """The model and its processor (Beam needs a weak-referenceable object)."""

    def __init__(self, model, processor, device):
        self.model, self.processor, self.device = model, processor, device

    def call(self, fn, *args):
        """``fn(self, *args)``. When Beam shares the model across processes, the handler holds a proxy of this
        object and this one method runs where the model is: the handler sends its inference function and
        inputs, and gets back (request, reply) pairs."""
        return fn(self, *args)


class ImageHandler(BootstrapHandler):
    """A handler of a transformers model that reads the requests' images (from the sources' image roots) and
    generates at most ``max_new_tokens`` (at least ``min_new_tokens``) per reply, in batches of up to
    ``batch_size`` requests.

    Decoding is greedy, except for the describe stage's extra samples (``sample`` > 0 when the selection draws
    several descriptions per box): those are sampled (``temperature``, ``top_p``), each in its own generate
    call under its own seed, a hash of (run seed, image key, object id, sample). So a box's descriptions are the
    same whatever batch it lands in, on any runner, and greedy rows keep their batch.

    Backends implement ``prepare`` (work shared by the whole batch, e.g. encoding each image once) and
    ``generate_rows`` (the raw replies of some rows of the batch).
    """

    def __init__(self, model_id: str, *, image_roots: dict[str, str], revision: str | None = None,
                 device: str = "cpu", max_new_tokens: int = 32, min_new_tokens: int = 0, batch_size: int = 16,
                 template_id: str = "", temperature: float = 0.7, top_p: float = 0.9,
                 share_model_across_processes: bool | None = None):
        super().__init__(model_id, revision=revision, template_id=template_id)
        self.image_roots, self.device = image_roots, device
        self.max_new_tokens, self.min_new_tokens, self.batch_size = max_new_tokens, min_new_tokens, batch_size
        self.temperature, self.top_p = temperature, top_p
        # one model in memory for all of a machine's worker processes: the default on a GPU
        self.shared = device.startswith("cuda") if share_model_across_processes is None \
            else share_model_across_processes

    #: the transformers class that loads the model, and its dtype on CUDA (float32 on the CPU)
    model_class = "AutoModelForImageTextToText"
    cuda_dtype = "float16"

    def load_model(self) -> LoadedModel:
        """The model (eval mode, no gradients: its outputs must pickle across Beam workers) and its processor,
        from a local folder or a hub id."""
        import torch
        import transformers

        dtype = getattr(torch, self.cuda_dtype) if self.device.startswith("cuda") else torch.float32
        model = getattr(transformers, self.model_class).from_pretrained(self.model_id, revision=self.revision,
                                                                       dtype=dtype)
        model = model.to(self.device).eval().requires_grad_(False)
        processor = transformers.AutoProcessor.from_pretrained(self.model_id, revision=self.revision)
        self.configure(model, processor)
        return LoadedModel(model, processor, self.device)

    def configure(self, model, processor) -> None:
        """Backend-specific processor settings."""

    def batch_elements_kwargs(self):
        """Full batches of ``batch_size`` (the last of a bundle may be smaller): Beam's adaptive batching would
        start at one request and grow, and small batches waste an accelerator."""
        return {"min_batch_size": self.batch_size, "max_batch_size": self.batch_size}

    def share_model_across_processes(self) -> bool:
        return self.shared

    def sample_seed(self, request: dict) -> int | None:
        """None for a greedy row; the row's own seed for an extra sampled description."""
        if self.stage != "describe" or not request.get("sample"):
            return None
        text = f"{request.get('seed', 0)}/{request['key']}/{request['object_id']}/{request['sample']}"
        return zlib.crc32(text.encode())

    def generation_kwargs(self, sample: bool) -> dict:
        common = {"max_new_tokens": self.max_new_tokens, "min_new_tokens": self.min_new_tokens, "num_beams": 1}
        if sample:
            return {**common, "do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
        return {**common, "do_sample": False}

    def prepare(self, model, batch: list[dict], images: list, index: list[int]):
        return None

    def generate_rows(self, model, batch: list[dict], images: list, index: list[int], prepared, rows: list[int],
                      sample: bool) -> list[str]:
        raise NotImplementedError

    def get_preprocess_fns(self):
        """Images are read before batching (`ImageLoader`), so a request whose image does not read goes to the
        dead-letter output instead of the batch."""
        return [ImageLoader(self.image_roots)] + super().get_preprocess_fns()

    def run_inference(self, batch, model, inference_args: dict[str, Any] | None = None):
        """``batch``: (request, image) pairs from `ImageLoader`. The PredictionResults carry the requests."""
        batch, images, index = _grouped(batch)
        return [PredictionResult(r, raw) for r, raw in model.call(self.infer, batch, images, index)]

    def infer(self, model, batch: list[dict], images: list, index: list[int]) -> list[tuple[dict, str]]:
        """(request, raw reply) for a batch of readable requests (runs where the model is). ``prepare`` may put
        new request dicts in the batch list (the chat backend adds each request's coordinate frame)."""
        import torch

        raws: list = [None] * len(batch)
        seeds = [self.sample_seed(r) for r in batch]
        groups = [([i for i, s in enumerate(seeds) if s is None], None)]
        groups += [([i], s) for i, s in enumerate(seeds) if s is not None]
        with torch.inference_mode():
            prepared = self.prepare(model, batch, images, index)
            for rows, seed in groups:
                if not rows:
                    continue
                if seed is None:
                    replies = self.generate_rows(model, batch, images, index, prepared, rows, sample=False)
                else:  # the global RNG: one seeded draw at a time (a shared model serves several threads)
                    with _SAMPLING:
                        torch.manual_seed(seed)
                        replies = self.generate_rows(model, batch, images, index, prepared, rows, sample=True)
                for i, raw in zip(rows, replies):
                    raws[i] = raw
        return list(zip(batch, raws))


def _grouped(pairs) -> tuple[list[dict], list, list[int]]:
    """(requests, their distinct images, each request's index into them): requests of one image adjacent."""
    pairs = sorted(pairs, key=lambda p: (p[0]["source"], p[0]["image"]))
    requests, images, index = [], [], []
    for request, image in pairs:
        if not images or images[-1] is not image:
            images.append(image)
        index.append(len(images) - 1)
        requests.append(request)
    return requests, images, index


class DescribeStage:
    """Mixin: the describe stage of a backend whose region formats module is ``formats``."""

    stage = "describe"
    formats: Any  # set by the backend base class

    def prompt(self, request: dict) -> str:
        return self.formats.describe_prompt(request["box"], request["width"], request["height"])

    def parse(self, raw: str, request: dict):
        return self.formats.parse_description(raw)


class GroundStage:
    """Mixin: the ground stage of a backend whose region formats module is ``formats``."""

    stage = "ground"
    formats: Any  # set by the backend base class

    def prompt(self, request: dict) -> str:
        return self.formats.ground_prompt(request["description"])

    def parse(self, raw: str, request: dict):
        return self.formats.parse_grounding(raw, request["width"], request["height"])
