"""The manifest (``OUT/manifest.json``), typed: what an output generation holds and how it was made.

`ingest` writes the ingest part (the recipe, the input fingerprints, one `SourceEntry` per source with its parts
and ledger); `build` adds a `BuildSection` (render settings, template hashes, shards, the build ledger). Every
command that reads OUT takes a `Manifest` (`Manifest.load`), never a bare dict, so a key is spelled in one place.
The ledgers stay plain mappings (`rcforge.core.ledger.SourceLedger.to_json`): `rcforge validate` recomputes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rcforge.core import fsio, generations
from rcforge.core.errors import InputError


@dataclass(frozen=True)
class SourceEntry:
    """One source of an ingest: its image-record and error parts (relative to OUT), counts and ledger."""

    source: str
    image_root: str | None = None
    parts: tuple[str, ...] = ()
    error_parts: tuple[str, ...] = ()
    records: int = 0
    errors: int = 0
    seconds: float = 0.0
    ledger: dict = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return bool(self.ledger.get("balanced"))


#: the build ledger's image records that got no dialogue, by why; every other one is ``images_with_dialogues``,
#: so ``images`` = ``images_with_dialogues`` + these (the build computes it so, `rcforge validate` checks it)
IMAGES_WITHOUT_DIALOGUES = ("images_without_dialogues", "render_errors", "images_skipped_unpaired",
                            "images_rejected_markup")


@dataclass(frozen=True)
class BuildSection:
    """What `rcforge build` rendered: settings, template hashes, shard names, counts and the build ledger."""

    reused_ingest: bool = False
    coordinates: str = "pink"
    #: the format's frame, bins or grid, rounding and pixel limits (`rcforge.render.coordinates.Formatter.params`)
    coordinate_params: dict = field(default_factory=dict)
    seed: int = 0
    templates: dict = field(default_factory=dict)
    bootstrap_pairs: dict | None = None
    shards: tuple[str, ...] = ()
    dialogues: int = 0
    ledger: dict = field(default_factory=dict)
    by_task: dict = field(default_factory=dict)
    by_source: dict = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class Manifest:
    rcforge_version: str = ""
    stage: str = "ingest"
    schema: dict = field(default_factory=dict)
    recipe_path: str | None = None
    recipe: dict = field(default_factory=dict)
    ingest_fingerprint: str | None = None
    inputs: dict = field(default_factory=dict)
    seed: int = 0
    exclusion: dict = field(default_factory=dict)
    sources: dict[str, SourceEntry] = field(default_factory=dict)
    totals: dict = field(default_factory=dict)
    seconds: float = 0.0
    build: BuildSection | None = None
    #: how many times OUT was switched to a new output (`rcforge.core.generations`)
    generation: int = 0

    # -- what the tools ask ------------------------------------------------------------------------------------
    def image_roots(self) -> dict[str, str]:
        """source -> its images root ('' when the recipe gave none)."""
        return {name: entry.image_root or "" for name, entry in self.sources.items()}

    def part_paths(self, root: str, sources=None) -> list[str]:
        """The image-record parts of ``sources`` (every source when None), as paths under ``root``."""
        names = self.sources if sources is None else sources
        return [fsio.join(root, p) for name in names for p in self.sources[name].parts]

    def records(self) -> int:
        return sum(entry.records for entry in self.sources.values())

    # -- JSON --------------------------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, data: Any, where: str = "manifest.json") -> "Manifest":
        """A manifest from its JSON form; a key of the wrong type is an `InputError` naming it."""
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        sources = values.get("sources", {})
        if not isinstance(sources, dict):
            raise InputError(f"{where}: 'sources' must be an object")
        values["sources"] = {name: _entry(SourceEntry, {"source": name, **entry}, f"{where}: sources.{name}")
                             for name, entry in sources.items()}
        if values.get("build") is not None:
            values["build"] = _entry(BuildSection, values["build"], f"{where}: build")
        return cls(**values)

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("build", "generation")}
        out["sources"] = {name: _plain(entry) for name, entry in self.sources.items()}
        if self.build is not None:
            out["build"] = _plain(self.build)
        if self.generation:
            out["generation"] = self.generation
        return out

    def with_build(self, build: BuildSection, **changes) -> "Manifest":
        return dataclasses.replace(self, build=build, **changes)

    @classmethod
    def load(cls, out: str, command: str, needs: str = "rcforge ingest or rcforge build") -> "Manifest":
        """OUT's manifest, typed (`rcforge.core.generations.load_manifest` finishes a half-done publish first)."""
        return cls.from_json(generations.load_manifest(out, command, needs), f"{out}/manifest.json")


def _entry(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected an object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in fields:
            continue
        if key in ("parts", "error_parts", "shards"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InputError(f"{where}.{key}: expected a list of file names")
            value = tuple(value)
        values[key] = value
    return cls(**values)


def _plain(entry) -> dict:
    return {f.name: (list(v) if isinstance(v := getattr(entry, f.name), tuple) else v)
            for f in dataclasses.fields(entry)}
