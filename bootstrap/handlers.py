"""The contract between the bootstrap pipeline and a model backend: one Beam handler class, one adapter per backend.

A stage (``describe``: image + box -> a referring expression; ``ground``: image + expression -> a box) is one
`StageHandler`, a Beam `ModelHandler` with Beam's two methods, ``load_model`` and ``run_inference``, plus Beam's
hooks (the image-reading preprocess step, full batches, sharing the model across processes). Everything that
differs between model families sits in an *adapter* (`Adapter`), one small class per backend in its
``<name>_handlers.py``, made per stage: the transformers class that loads the model, the prompt, how a batch
generates, and the pure ``parse`` that turns a raw reply into a description or a pixel box (None when the reply
does not parse: a format error, kept and counted, never a crash).

Requests are dicts (see `bootstrap.selection.select`; ground requests carry the ``description``); results are
``PredictionResult(request, raw_text)``. Images are read in the preprocess step (`ImageLoader`): a request
whose image does not read fails there, and RunInference's exception handling sends it to the dead-letter output,
which the pipeline turns into a candidate with ``error_stage`` "image".
"""

from __future__ import annotations

import io
import threading
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from rcforge.core import fsio
from rcforge.core.errors import RecipeError

_SAMPLING = threading.Lock()

STAGES = ("describe", "ground")


class BootstrapStage(Protocol):
    """What the pipeline reads of a stage's handler besides Beam's `ModelHandler` methods (a test's fake handler
    provides these too)."""

    backend: str
    stage: str
    model_id: str
    revision: str | None
    template_id: str

    def parse(self, raw: str, request: dict) -> Any: ...


@dataclass(frozen=True)
class Decoding:
    """How replies are generated: at most ``max_new_tokens`` (at least ``min_new_tokens``), in batches of
    ``batch_size`` requests; greedy, except the describe stage's extra samples (``sample`` > 0), drawn with
    ``temperature`` and ``top_p``."""

    max_new_tokens: int = 32
    min_new_tokens: int = 0
    batch_size: int = 16
    temperature: float = 0.7
    top_p: float = 0.9

    def generate_kwargs(self, sample: bool) -> dict:
        common = {"max_new_tokens": self.max_new_tokens, "min_new_tokens": self.min_new_tokens, "num_beams": 1}
        if sample:
            return {**common, "do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
        return {**common, "do_sample": False}


class LoadedModel:
    """The model and its processor (Beam needs a weak-referenceable object: a small class, not a tuple)."""

    def __init__(self, model, processor, device):
        self.model, self.processor, self.device = model, processor, device

    def call(self, fn, *args):
        """``fn(self, *args)``. When Beam shares the model across processes, the handler holds a proxy of this
        object and this one method runs where the model is: the handler sends its inference function and
        inputs, and gets back (request, reply) pairs."""
        return fn(self, *args)


class Adapter:
    """One backend's model family, for one stage. Subclasses set ``name`` and ``model_class``, implement
    ``generate``, and either set ``formats`` (a module of pure region formats: ``describe_prompt``,
    ``ground_prompt``, ``parse_description``, ``parse_grounding``, as `rcforge.bootstrap.florence2`) or implement
    ``prompt`` and ``parse``; ``configure`` and ``prepare`` are optional."""

    name = "base"
    #: the transformers class that loads the model, and its dtype on CUDA (float32 on the CPU)
    model_class = "AutoModelForImageTextToText"
    cuda_dtype = "float16"
    formats: Any = None

    def __init__(self, stage: str):
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage = stage

    @property
    def template_id(self) -> str:
        """Recorded with every candidate: which prompt produced it."""
        return f"{self.name}.{self.stage}"

    def configure(self, model, processor) -> None:
        """Processor settings the family needs (padding side, number of image tokens)."""

    def prompt(self, request: dict) -> str:
        if self.stage == "describe":
            return self.formats.describe_prompt(request["box"], request["width"], request["height"])
        return self.formats.ground_prompt(request["description"])

    def parse(self, raw: str, request: dict) -> Any:
        """A description (describe) or a pixel box [x1, y1, x2, y2] (ground); None when the reply does not parse."""
        if self.stage == "describe":
            return self.formats.parse_description(raw)
        return self.formats.parse_grounding(raw, request["width"], request["height"])

    def prepare(self, loaded: LoadedModel, batch: list[dict], images: list, index: list[int]) -> Any:
        """Work shared by the whole batch (e.g. encoding each distinct image once); may replace request dicts in
        ``batch`` with new ones (the chat adapter attaches each request's coordinate frame)."""
        return None

    def generate(self, loaded: LoadedModel, batch: list[dict], images: list, index: list[int], prepared: Any,
                 rows: list[int], generate_kwargs: dict) -> list[str]:
        """The raw replies of the requests ``batch[i] for i in rows`` (``images[index[i]]`` is request i's image)."""
        raise NotImplementedError


class ImageLoader:
    """The preprocess step: a request -> (request, its RGB image). The last few images are kept, so the boxes of
    one image (adjacent in the stream) share one decoded image and the model encodes it once per batch. A
    missing or broken image raises: RunInference's dead-letter output takes the request."""

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


class StageHandler(ModelHandler):
    """One stage of one backend as a Beam `ModelHandler`: ``adapter`` says what differs per model family.

    ``share_model_across_processes`` (one model in memory for all of a machine's worker processes) defaults to
    True on a GPU. Extra sampled descriptions each run in their own generate call under their own seed, a hash
    of (run seed, image key, object id, sample), so a box's descriptions are the same whatever batch it lands in,
    on any runner."""

    def __init__(self, adapter: Adapter, model_id: str, *, image_roots: dict[str, str], revision: str | None = None,
                 device: str = "cpu", decoding: Decoding = Decoding(),
                 share_model_across_processes: bool | None = None):
        super().__init__()
        self.adapter, self.model_id, self.revision = adapter, model_id, revision
        self.image_roots, self.device, self.decoding = image_roots, device, decoding
        self.shared = device.startswith("cuda") if share_model_across_processes is None \
            else share_model_across_processes
        if self.shared:
            _check_sendable(adapter)

    @property
    def backend(self) -> str:
        return self.adapter.name

    @property
    def stage(self) -> str:
        return self.adapter.stage

    @property
    def template_id(self) -> str:
        return self.adapter.template_id

    def parse(self, raw: str, request: dict) -> Any:
        return self.adapter.parse(raw, request)

    def load_model(self) -> LoadedModel:
        """The model (eval mode, no gradients: its outputs must pickle across Beam workers) and its processor,
        from a local folder or a hub id."""
        import torch
        import transformers

        dtype = getattr(torch, self.adapter.cuda_dtype) if self.device.startswith("cuda") else torch.float32
        model = getattr(transformers, self.adapter.model_class).from_pretrained(self.model_id,
                                                                               revision=self.revision, dtype=dtype)
        model = model.to(self.device).eval().requires_grad_(False)
        processor = transformers.AutoProcessor.from_pretrained(self.model_id, revision=self.revision)
        self.adapter.configure(model, processor)
        return LoadedModel(model, processor, self.device)

    def run_inference(self, batch, model: LoadedModel, inference_args: dict[str, Any] | None = None):
        """``batch``: (request, image) pairs from `ImageLoader`. The PredictionResults carry the requests."""
        requests, images, index = _grouped(batch)
        pairs = model.call(infer, self.adapter, self.decoding, requests, images, index)
        return [PredictionResult(request, raw) for request, raw in pairs]

    # Beam's hooks

    def get_preprocess_fns(self):
        """Images are read before batching (`ImageLoader`), so a request whose image does not read goes to the
        dead-letter output instead of the batch."""
        return [ImageLoader(self.image_roots)] + super().get_preprocess_fns()

    def batch_elements_kwargs(self):
        """Full batches of ``batch_size`` (the last of a bundle may be smaller): Beam's adaptive batching would
        start at one request and grow, and small batches waste an accelerator."""
        return {"min_batch_size": self.decoding.batch_size, "max_batch_size": self.decoding.batch_size}

    def share_model_across_processes(self) -> bool:
        return self.shared

    def __repr__(self) -> str:
        return f"StageHandler({self.backend}.{self.stage}, {self.model_id!r}, {asdict(self.decoding)})"


def _check_sendable(adapter: Adapter) -> None:
    """A shared model runs in its own process, and each batch sends it the adapter: an adapter that does not
    pickle (a class defined inside a function, say) would fail every batch into the dead letters. Say so now."""
    import pickle

    try:
        pickle.dumps(adapter)
    except Exception as err:  # noqa: BLE001 (pickle raises several kinds)
        raise RecipeError(f"bootstrap: the {type(adapter).__qualname__} adapter cannot be sent to the process that "
                          f"holds the shared model ({type(err).__name__}: {err}); define its class at the top level "
                          f"of a module, or pass share_model_across_processes=False") from None


def stage_handlers(make_adapter, model_id: str, **kwargs) -> tuple[StageHandler, StageHandler]:
    """The describe and ground handlers of one backend: ``make_adapter(stage)`` gives each stage's adapter;
    ``kwargs`` go to both `StageHandler`s."""
    return tuple(StageHandler(make_adapter(stage), model_id, **kwargs) for stage in STAGES)


def sample_seed(stage: str, request: dict) -> int | None:
    """None for a greedy row; the row's own seed for an extra sampled description."""
    if stage != "describe" or not request.get("sample"):
        return None
    return zlib.crc32(f"{request.get('seed', 0)}/{request['key']}/{request['object_id']}/{request['sample']}".encode())


def infer(loaded: LoadedModel, adapter: Adapter, decoding: Decoding, batch: list[dict], images: list,
          index: list[int]) -> list[tuple[dict, str]]:
    """(request, raw reply) for a batch of readable requests; runs where the model is. Greedy rows generate
    together; each sampled row alone, under its seed."""
    import torch

    raws: list = [None] * len(batch)
    seeds = [sample_seed(adapter.stage, r) for r in batch]
    groups = [([i for i, s in enumerate(seeds) if s is None], None)]
    groups += [([i], s) for i, s in enumerate(seeds) if s is not None]
    with torch.inference_mode():
        prepared = adapter.prepare(loaded, batch, images, index)
        for rows, seed in groups:
            if not rows:
                continue
            if seed is None:
                replies = adapter.generate(loaded, batch, images, index, prepared, rows,
                                           decoding.generate_kwargs(sample=False))
            else:  # the global RNG: one seeded draw at a time (a shared model serves several threads)
                with _SAMPLING:
                    torch.manual_seed(seed)
                    replies = adapter.generate(loaded, batch, images, index, prepared, rows,
                                               decoding.generate_kwargs(sample=True))
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
