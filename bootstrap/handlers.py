"""The contract between the bootstrap pipeline and a model backend.

A backend is two Beam `ModelHandler`s, one per stage: ``describe`` (image + box -> a referring expression) and
``ground`` (image + expression -> a box). Each receives request dicts (see `bootstrap.selection.select`; ground
requests carry the ``description``) and yields ``PredictionResult(request, raw_text)``; its pure ``parse`` turns
the raw text into a description or a pixel box, or None when the reply does not parse (a format error, kept and
counted, never a crash). Prompt building and parsing are pure functions next to each backend's handlers.
``load_model`` must return a weak-referenceable object (Beam shares one model across threads): a small class,
not a tuple or a dict.
"""

from __future__ import annotations

from typing import Any

from apache_beam.ml.inference.base import ModelHandler

#: the raw reply recorded for a request whose image could not be read (its candidate has error_stage "image")
UNREADABLE = "<image unreadable> "


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
