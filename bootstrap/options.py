"""The recipe's ``bootstrap`` section: which model describes and grounds which boxes, and how strictly pairs are
kept. Every key has a flag of the same name on `rcforge bootstrap` that overrides it for one run::

    bootstrap:
      model: microsoft/Florence-2-large   # a local folder or a hub id (required here or as --model)
      backend: florence2                  # florence2 | kosmos2 | chat
      revision: null                      # a hub revision, recorded with every candidate
      chat_prompts: pink                  # chat backend: a bundled prompt set or a YAML file
      device: cuda
      batch_size: 16
      max_new_tokens: 32
      sources: [objects365]
      lambda: 0.5                         # IoU threshold; `rcforge refilter` changes it without a model
      uniqueness: true                    # drop a pair whose description also fits another box of its category
      samples: 1                          # descriptions per box; the best re-grounded one is kept
      temperature: 0.7                    # sampling of the extra descriptions (samples > 1)
      top_p: 0.9
      max_annotations: 15                 # Pink's selection: skip denser images,
      min_area: 2000                      # boxes under 2000 px^2,
      skip_ignored: true                  # and crowd / ignored boxes
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass
from typing import Callable

from rcforge.bootstrap import chat
from rcforge.bootstrap.selection import SelectionConfig
from rcforge.core import fsio
from rcforge.core.config import build_config, check_ranges, number, resolve_path
from rcforge.core.errors import RecipeError


@dataclass(frozen=True)
class Backend:
    """A model backend: ``adapter(stage, options)`` makes its `rcforge.bootstrap.handlers.Adapter` for the stage
    ("describe" or "ground"), which a `rcforge.bootstrap.handlers.StageHandler` runs."""

    name: str
    adapter: Callable[[str, "BootstrapOptions"], object]


def backend_names() -> list[str]:
    """Every backend: each ``<name>_handlers.py`` of this package is one (listed without importing it: handler
    modules import Beam's inference code, which imports torch)."""
    import rcforge.bootstrap

    return sorted(m.name[: -len("_handlers")] for m in pkgutil.iter_modules(rcforge.bootstrap.__path__)
                  if m.name.endswith("_handlers"))


def backend(name: str) -> Backend:
    """The backend ``name`` (its module's ``BACKEND``); a `RecipeError` listing the backends when unknown."""
    if name not in backend_names():
        raise RecipeError(f"Unknown bootstrap backend {name!r}; registered: {', '.join(backend_names())}")
    return importlib.import_module(f"rcforge.bootstrap.{name}_handlers").BACKEND


@dataclass(frozen=True)
class BootstrapOptions:
    model: str | None = None
    backend: str = "florence2"  # one of backend_names()
    revision: str | None = None
    chat_prompts: str = "pink"
    device: str = "cpu"
    batch_size: int = number(16, 1)
    max_new_tokens: int = number(32, 1)
    sources: tuple[str, ...] = ("objects365",)
    lam: float = number(0.5, 0, 1, key="lambda")
    uniqueness: bool = True
    samples: int = number(1, 1)
    temperature: float = number(0.7, 0, low_open=True)
    top_p: float = number(0.9, 0, 1, low_open=True)
    max_annotations: int = number(15, 1)
    min_area: float = number(2000.0, 0)
    skip_ignored: bool = True

    @property
    def selection(self) -> SelectionConfig:
        """The box-selection slice of these options (the recipe keeps its keys flat under ``bootstrap``)."""
        return SelectionConfig(max_annotations=self.max_annotations, min_area=self.min_area,
                               skip_ignored=self.skip_ignored, samples=self.samples)

    @property
    def decoding(self):
        """The generation slice of these options (a `rcforge.bootstrap.handlers.Decoding`), for the stage
        handlers; imported here only when asked, since the handlers import Beam's inference code."""
        from rcforge.bootstrap.handlers import Decoding

        return Decoding(max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
                        temperature=self.temperature, top_p=self.top_p)

    def __post_init__(self):
        if self.backend not in backend_names():
            raise RecipeError(f"bootstrap.backend: unknown bootstrap backend {self.backend!r}; registered: "
                              f"{', '.join(backend_names())}")
        check_ranges(self)
        if not self.sources:
            raise ValueError("sources must name at least one source")


def options_from_mapping(raw, base_dir: str | None) -> BootstrapOptions:
    """The ``bootstrap`` section checked; defaults when absent."""
    if raw is None:
        return BootstrapOptions()
    if not isinstance(raw, dict):
        raise RecipeError("bootstrap: expected a mapping of options")
    mapping = dict(raw)
    if isinstance(mapping.get("sources"), str):
        mapping["sources"] = [mapping["sources"]]
    if isinstance(mapping.get("model"), str):
        mapping["model"] = model_location(mapping["model"], base_dir)
    prompts = mapping.get("chat_prompts")
    if isinstance(prompts, str) and prompts not in chat.bundled():
        mapping["chat_prompts"] = resolve_path(prompts, base_dir)
    options = build_config(BootstrapOptions, mapping, "bootstrap", base_dir)
    if options.backend == "chat":
        chat.load_prompts(options.chat_prompts)  # a bad prompt set fails with the recipe, not mid-run
    return options


def looks_like_path(model: str) -> bool:
    """Whether ``model`` names a folder rather than a hub id (``name`` or ``namespace/name``)."""
    return model.startswith((".", "/", "~")) or "://" in model or model.count("/") > 1 or "\\" in model


def model_location(model: str, base_dir: str | None) -> str:
    """The recipe's ``bootstrap.model``: a folder is relative to the recipe, like every other path in it; a value
    that names no folder there and looks like a hub id stays a hub id."""
    local = resolve_path(model, base_dir)
    if looks_like_path(model) or fsio.exists(local):
        return local
    return model


def check_model(options: BootstrapOptions) -> None:
    """Refuse, before any pipeline starts, a model that cannot load: a folder that is missing or holds no
    ``config.json``, or (with ``HF_HUB_OFFLINE`` set) a hub id that is not in the local hub cache; and a device
    that is not there."""
    model = options.model
    if not model:
        raise RecipeError("bootstrap: no model: give --model or the recipe's bootstrap.model")
    if fsio.exists(model) or looks_like_path(model):
        if not fsio.exists(model):
            raise RecipeError(f"bootstrap.model: no model folder at {model}")
        if not fsio.exists(fsio.join(model, "config.json")):
            raise RecipeError(f"bootstrap.model: {model} holds no config.json; expected a model saved with "
                              f"save_pretrained()")
    elif os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json", revision=options.revision), str):
            raise RecipeError(f"bootstrap.model: {model!r} is not a folder and not in the local hub cache, and "
                              f"HF_HUB_OFFLINE is set, so it cannot be downloaded")
    import torch

    try:
        device = torch.device(options.device)
    except RuntimeError:
        raise RecipeError(f"bootstrap.device: {options.device!r} is not a torch device (cpu, cuda, cuda:1, ...)") \
            from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RecipeError(f"bootstrap.device: {options.device} asked, but torch sees no CUDA GPU here; use "
                          f"--device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise RecipeError(f"bootstrap.device: {options.device} asked, but torch sees "
                          f"{torch.cuda.device_count()} GPU(s)")
