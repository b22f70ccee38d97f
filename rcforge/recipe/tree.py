"""Recipes: a YAML file that says what to build.

```yaml
seed: 0
on_bad_records: skip        # or error: stop at the first bad record
max_bad_fraction: 0.05      # with skip: fail a source when more than this share of its records is bad
sources:
  visual_genome: {root: DIR, images: DIR}
  objects365:    {annotations: FILE, images: DIR}
  ...
exclude:                    # evaluation images that must not leak into training data (matched on COCO ids)
  refcoco: {root: DIR, dataset: refcoco, split_by: unc, splits: [val, testA, testB]}
  coco_ids: FILE            # optional: a JSON list (or one id a line) of COCO image ids
```

Relative paths are resolved against the recipe's folder. Unknown keys and missing files are `RecipeError`s that
name the key and, for paths, the path. Each source's options are its reader's frozen dataclass config.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import fsspec
import yaml

from rcforge import rc_tasks, readers
from rcforge.bootstrap.options import BootstrapOptions, options_from_mapping
from rcforge.bootstrap.pairs import PairsSource
from rcforge.core import fsio
from rcforge.core.config import (
    Range,
    build_config,
    check_field,
    check_number,
    check_ranges,
    check_type,
    number,
    path_field,
    resolve_path,
)
from rcforge.core.errors import RecipeError
from rcforge.core.images import ImageChecks
from rcforge.core.visual_prompts import VisualPromptSettings
from rcforge.render import coordinates
from rcforge.render.renderer import RenderSettings, TaskChoice

#: seeds are stored in every dialogue row as a signed 64-bit integer
SEED_MAX = 2**63 - 1
TOP_LEVEL_KEYS = ("seed", "on_bad_records", "max_bad_fraction", "rows_per_part", "verify_images",
                  "verify_images_mismatch", "max_image_pixels", "sources", "exclude", "render", "bootstrap")
#: image-check keys: at the top level (every source) and in a source's options (that source); `rcforge.core.images`
IMAGE_CHECK_KEYS = {"verify_images": "verify", "verify_images_mismatch": "mismatch", "max_image_pixels": "max_pixels"}
#: a source's factor on ``render.per_image``
SOURCE_WEIGHT = Range(0)
#: a frame setting's allowed values (pixels, or the patch factor)
FRAME_VALUE = Range(1, 2**40)


@dataclass(frozen=True)
class ExcludeRefConfig:
    """RefCOCO-family evaluation splits whose images are excluded from every source."""

    root: str = path_field()
    dataset: Literal["refcoco", "refcoco+", "refcocog"] = "refcoco"
    split_by: Literal["unc", "umd", "google"] = "unc"
    splits: tuple[str, ...] = ("val", "testA", "testB")


@dataclass(frozen=True)
class IngestPolicy:
    """The recipe's slice that steers ingest's handling of bad input (top-level recipe keys)."""

    on_bad_records: Literal["error", "skip"] = "skip"
    max_bad_fraction: float = 0.05
    rows_per_part: int = 20000


@dataclass(frozen=True)
class Recipe:
    seed: int = number(0, 0, SEED_MAX)
    on_bad_records: Literal["error", "skip"] = "skip"
    max_bad_fraction: float = number(0.05, 0, 1)
    rows_per_part: int = number(20000, 1)
    sources: Mapping[str, Any] = field(default_factory=dict)  # name -> reader config
    image_checks: Mapping[str, ImageChecks] = field(default_factory=dict)  # name -> how its image files are checked
    #: name -> a line about the source that `rcforge preview` shows on its cards (a source's ``note`` key), e.g.
    #: that its boxes are synthetic
    notes: Mapping[str, str] = field(default_factory=dict)
    exclude_refs: tuple[ExcludeRefConfig, ...] = ()
    exclude_coco_id_files: tuple[str, ...] = ()
    path: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: the ``render`` section: build's slice
    render: RenderSettings | None = None
    #: the ``bootstrap`` section: bootstrap's slice
    bootstrap: BootstrapOptions | None = None

    def __post_init__(self):
        check_ranges(self)

    @property
    def ingest_policy(self) -> IngestPolicy:
        return IngestPolicy(self.on_bad_records, self.max_bad_fraction, self.rows_per_part)

    def to_json(self) -> dict:
        def conv(value):
            if dataclasses.is_dataclass(value):
                return {k: conv(v) for k, v in dataclasses.asdict(value).items()}
            if isinstance(value, (list, tuple)):
                return [conv(v) for v in value]
            if isinstance(value, Mapping):
                return {k: conv(v) for k, v in value.items()}
            return value

        return {
            "seed": self.seed, "on_bad_records": self.on_bad_records, "max_bad_fraction": self.max_bad_fraction,
            "rows_per_part": self.rows_per_part,
            "sources": {name: conv(cfg) for name, cfg in self.sources.items()},
            "image_checks": {name: conv(c) for name, c in self.image_checks.items()},
            "notes": dict(self.notes),
            "exclude": {"refcoco": conv(list(self.exclude_refs)), "coco_ids": list(self.exclude_coco_id_files)},
            "render": conv(self.render) if self.render is not None else None,
            "bootstrap": conv(self.bootstrap) if self.bootstrap is not None else None,
        }

    def input_paths(self) -> list[str]:
        """The annotation files ingest reads (every path option of every source except image folders, and the
        exclusion files), files of a folder option included."""
        paths, image_roots = [], []
        for cfg in self.sources.values():
            for f in dataclasses.fields(cfg):
                value = getattr(cfg, f.name)
                if f.metadata.get("path") and value and f.name != "images":
                    paths.append(str(value))
            images = getattr(cfg, "images", None)
            if images:  # image folders are not inputs of ingest (they may sit inside an annotation folder)
                image_roots += [str(images).rstrip("/") + "/",
                                fsspec.core.url_to_fs(str(images))[1].rstrip("/") + "/"]
        paths += [c.root for c in self.exclude_refs] + list(self.exclude_coco_id_files)
        files = {f for p in paths for f in _input_files(p)}
        return sorted(f for f in files if not f.startswith(tuple(image_roots)))

    def input_fingerprints(self) -> dict:
        """path -> `input_fingerprint` of every input file; a change of any of them makes ingest run again."""
        return {p: input_fingerprint(p) for p in self.input_paths()}

    def ingest_fingerprint(self, inputs: dict | None = None) -> str:
        """A hash of what ingest depends on (not the render or bootstrap sections): equal fingerprints can reuse an
        ingest. ``inputs``: `input_fingerprints`, when the caller already has them (they read the files)."""
        import hashlib
        import json

        data = self.to_json()
        data.pop("render", None)
        data.pop("bootstrap", None)
        data.pop("seed", None)  # the seed only steers rendering
        data.pop("notes", None)  # for people reading the output
        data["inputs"] = self.input_fingerprints() if inputs is None else inputs
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def input_fingerprint(path: str) -> dict:
    """A fast fingerprint of one input file: path, size, mtime, and a BLAKE2b hash of its content, whole for files
    up to 4 MB, else of its size and three 1 MB samples (start, middle, end). A changed file changes its size,
    mtime or sampled bytes in practice; reading a few MB keeps the check fast on 0.7 GB files and on remote
    stores."""
    import hashlib

    fsio.check_regular(path, "input file")  # a FIFO would block the read below forever
    fs, p = fsspec.core.url_to_fs(path)
    info = fs.info(p)
    size = int(info.get("size") or 0)
    mtime = info.get("mtime") or info.get("LastModified") or info.get("updated")
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with fs.open(p, "rb") as f:
        if size <= 4 << 20:
            digest.update(f.read())
        else:
            for offset in (0, size // 2, size - (1 << 20)):
                f.seek(offset)
                digest.update(f.read(1 << 20))
    return {"size": size, "mtime": str(mtime), "blake2b_sampled": digest.hexdigest()}


def _input_files(value: str) -> list[str]:
    fs, p = fsspec.core.url_to_fs(value)
    remote = "://" in str(value)
    if fs.isdir(p):
        found = sorted(f for f in fs.find(p) if not f.rsplit("/", 1)[-1].startswith("."))
    else:
        found = [p] if fs.exists(p) else []
    return [fs.unstrip_protocol(f) if remote else f for f in found]


#: the longest recipe file, and the most values its anchors and aliases may expand to (a "billion laughs"
#: document is a few hundred bytes that expands to 10^9 values)
MAX_RECIPE_CHARS = 1_000_000
MAX_RECIPE_VALUES = 100_000


def _check_expanded_size(raw: Any, where: str) -> None:
    """A `RecipeError` when the document, with every alias expanded, holds more than `MAX_RECIPE_VALUES` values,
    or refers to itself. Counted over the loaded graph, each shared node once, so the check itself is cheap."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise RecipeError(f"{where}: an alias refers to a value that contains it (a recursive document)")
        active.add(key)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_RECIPE_VALUES:
                raise RecipeError(f"{where}: with its aliases expanded it holds more than {MAX_RECIPE_VALUES:,} "
                                  f"values; a recipe is a few hundred")
        active.discard(key)
        sizes[key] = total
        return total

    size(raw)


def load_recipe(path: str) -> Recipe:
    """Read and check a recipe file (local path or fsspec URL)."""
    try:
        text = fsio.read_text(path, "recipe")
    except Exception as err:  # InputError already names the path
        raise RecipeError(str(err)) from None
    if len(text) > MAX_RECIPE_CHARS:
        raise RecipeError(f"recipe {path}: {len(text):,} characters; a recipe is at most {MAX_RECIPE_CHARS:,}")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {path}: not valid YAML: {err}") from None
    except ValueError as err:  # e.g. an integer past Python's digit limit
        raise RecipeError(f"recipe {path}: a value does not convert: {str(err)[:200]}") from None
    _check_expanded_size(raw, f"recipe {path}")
    base = os.path.dirname(os.path.abspath(path)) if "://" not in str(path) else str(path).rsplit("/", 1)[0]
    return recipe_from_mapping(raw, base_dir=base, path=str(path))


def recipe_from_mapping(raw: Any, base_dir: str | None = None, path: str | None = None) -> Recipe:
    if not isinstance(raw, Mapping):
        raise RecipeError(f"recipe {path or ''}: expected a mapping at the top level".strip())
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise RecipeError(f"recipe: unknown key {unknown[0]!r}; allowed keys: {', '.join(TOP_LEVEL_KEYS)}")
    sources_raw = raw.get("sources") or {}
    if not isinstance(sources_raw, Mapping) or not sources_raw:
        raise RecipeError("recipe: 'sources' must map at least one source name to its options; registered "
                          f"sources: {', '.join(readers.names())}")
    default_checks = _image_checks(raw, "", ImageChecks())
    sources, image_checks, notes = {}, {}, {}
    for name, options in sources_raw.items():
        spec = readers.get(name)
        if isinstance(options, Mapping):
            image_checks[name] = _image_checks(options, f"sources.{name}.", default_checks)
            if "note" in options:
                notes[name] = check_type(options["note"], str, f"sources.{name}.note")
            options = {k: v for k, v in options.items() if k not in IMAGE_CHECK_KEYS and k != "note"}
        else:
            image_checks[name] = default_checks
        sources[name] = build_config(spec.config_class, options, f"sources.{name}", base_dir)

    exclude_raw = raw.get("exclude")
    exclude_raw = {} if exclude_raw is None else exclude_raw
    if not isinstance(exclude_raw, Mapping):
        raise RecipeError("recipe: 'exclude' must be a mapping (keys: refcoco, coco_ids)")
    unknown = sorted(set(exclude_raw) - {"refcoco", "coco_ids"})
    if unknown:
        raise RecipeError(f"exclude: unknown key {unknown[0]!r}; allowed keys: coco_ids, refcoco")
    refs = exclude_raw.get("refcoco") or []
    if isinstance(refs, Mapping):
        refs = [refs]
    exclude_refs = tuple(build_config(ExcludeRefConfig, r, f"exclude.refcoco[{i}]", base_dir)
                         for i, r in enumerate(refs))
    id_files = exclude_raw.get("coco_ids") or []
    if isinstance(id_files, str):
        id_files = [id_files]
    if not isinstance(id_files, list) or not all(isinstance(f, str) for f in id_files):
        raise RecipeError(f"exclude.coco_ids: expected a file or a list of files, got {id_files!r:.60}")
    resolved_files = []
    for i, f in enumerate(id_files):
        p = resolve_path(f, base_dir)
        if not fsio.exists(p):
            raise RecipeError(f"exclude.coco_ids[{i}]: {p} does not exist")
        resolved_files.append(p)

    top = {k: raw[k] for k in ("seed", "on_bad_records", "max_bad_fraction", "rows_per_part") if k in raw}
    checked = {k: check_field(Recipe, k, v, k) for k, v in top.items()}
    render = render_from_mapping(raw.get("render"), base_dir)
    bootstrap = options_from_mapping(raw.get("bootstrap"), base_dir)
    return Recipe(**checked, sources=sources, image_checks=image_checks, notes=notes, exclude_refs=exclude_refs,
                  exclude_coco_id_files=tuple(resolved_files), path=path, raw=raw, render=render,
                  bootstrap=bootstrap)


def _image_checks(raw: Mapping, where: str, inherited: ImageChecks) -> ImageChecks:
    """The image-check keys of a mapping (the recipe's top level, or a source's options) over ``inherited``."""
    given = {IMAGE_CHECK_KEYS[k]: raw[k] for k in IMAGE_CHECK_KEYS if k in raw}
    for key, attr in IMAGE_CHECK_KEYS.items():
        if attr in given:
            if given[attr] is False and attr == "verify":  # YAML reads a bare `off` as false
                given[attr] = "off"
            given[attr] = check_field(ImageChecks, attr, given[attr], where + key)
    return dataclasses.replace(inherited, **given)


def render_from_mapping(raw: Any, base_dir: str | None):
    """The ``render`` section, through the one validator (`build_config`): every registered task with weight 1
    and its defaults when ``tasks`` is absent. The keys that need more than their declared type and range are
    checked by the parsers below; the frame, which depends on the format, once the format is known."""
    settings = build_config(RenderSettings, raw, "render", base_dir, parse={
        "coordinates": _format_name, "tasks": _tasks, "source_weights": _source_weights, "templates": _templates,
        "visual_prompts": _visual_prompts, "frame": lambda value, key, folder: value,
        "bootstrap_pairs": lambda value, key, folder: pairs_from_mapping(value, folder)})
    given = raw or {}
    changes = {}
    if "tasks" not in given:
        changes["tasks"] = _tasks(None, "render.tasks", base_dir)
    if "frame" in given:
        changes["frame"] = frame_from_mapping(given["frame"], settings.coordinates)
    return dataclasses.replace(settings, **changes) if changes else settings


def _format_name(value, key: str, base_dir) -> str:
    """A registered coordinate format, an alias (qwen) recorded by the format's own name (qwen_vl)."""
    if not isinstance(value, str):
        raise RecipeError(f"{key}: expected a format name, got {value!r:.60}; registered: "
                          f"{', '.join(coordinates.REGISTRY.names())}")
    return coordinates.canonical(value)


def _tasks(value, key: str, base_dir) -> dict:
    """Task name -> `TaskChoice` (its weight and its config through `build_config`); every task when null."""
    if value is None:
        value = {name: {} for name in rc_tasks.names()}
    if not isinstance(value, Mapping) or not value:
        raise RecipeError(f"{key}: map task names to options; registered: {', '.join(rc_tasks.names())}")
    tasks = {}
    for name, options in value.items():
        spec = rc_tasks.get(name)
        if options is not None and not isinstance(options, Mapping):
            raise RecipeError(f"{key}.{name}: expected a mapping of options (or nothing), got {options!r:.60}")
        options = dict(options or {})
        weight = check_field(TaskChoice, "weight", options.pop("weight", 1.0), f"{key}.{name}.weight")
        tasks[name] = TaskChoice(name, weight, build_config(spec.config_class, options, f"{key}.{name}"))
    return tasks


def _source_weights(value, key: str, base_dir) -> dict:
    """Registered source -> a weight >= 0 on ``per_image``."""
    value = {} if value is None else value
    if not isinstance(value, Mapping):
        raise RecipeError(f"{key}: expected a mapping of source name to weight, got {value!r:.60}")
    registered = readers.names()
    for src in value:
        if src not in registered:
            raise RecipeError(f"{key}: unknown source {src!r}; registered: {', '.join(registered)}")
    return {src: check_number(w, float, SOURCE_WEIGHT, f"{key}.{src}") for src, w in value.items()}


def _templates(value, key: str, base_dir) -> str | None:
    """A folder of template files (relative to the recipe); None: the bundled set."""
    if value is None:
        return None
    folder = resolve_path(value, base_dir)
    if not fsio.exists(folder):
        raise RecipeError(f"{key}: {folder} does not exist")
    return folder


def _visual_prompts(value, key: str, base_dir):
    """`VisualPromptSettings` (true: the defaults); None when null or false."""
    if value is None or value is False:
        return None
    return build_config(VisualPromptSettings, {} if value is True else value, key)


def frame_from_mapping(raw: Any, fmt: str) -> dict:
    """``render.frame``: the trainer's image-frame settings, for a format that has a frame of its own."""
    allowed = coordinates.get(fmt).FRAME
    if not allowed:
        framed = [name for name, f in coordinates.FORMATTERS.items() if f.FRAME]
        raise RecipeError(f"render.frame: the {fmt} format prints no pixels of a processed image, so it has no frame "
                          f"settings (formats with a frame: {', '.join(framed)})")
    if not isinstance(raw, Mapping):
        raise RecipeError(f"render.frame: expected a mapping of {', '.join(allowed)}")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise RecipeError(f"render.frame: unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")
    frame = {k: check_number(v, int, FRAME_VALUE if not k.startswith("image_") else Range(0, 2**40),
                             f"render.frame.{k}") for k, v in raw.items()}
    merged = {**allowed, **frame}
    if merged["min_pixels"] > merged["max_pixels"]:
        raise RecipeError(f"render.frame: min_pixels {merged['min_pixels']} is more than max_pixels "
                          f"{merged['max_pixels']}")
    return frame


def pairs_from_mapping(raw: Any, base_dir: str | None):
    """``render.bootstrap_pairs``: a folder holding bootstrap/pairs/ (``from``), and the sources whose images
    render only when they have a pair (``only_paired_sources``)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"from": raw}
    if not isinstance(raw, Mapping):
        raise RecipeError("render.bootstrap_pairs: expected a folder or a mapping with 'from'")
    unknown = sorted(set(raw) - {"from", "only_paired_sources"})
    if unknown:
        raise RecipeError(f"render.bootstrap_pairs: unknown key {unknown[0]!r}; allowed keys: from, "
                          f"only_paired_sources")
    if not isinstance(raw.get("from"), str):
        raise RecipeError("render.bootstrap_pairs.from: expected the folder that holds bootstrap/pairs/")
    folder = resolve_path(raw["from"], base_dir)
    only = raw.get("only_paired_sources") or ()
    only = (only,) if isinstance(only, str) else only
    return PairsSource(folder, tuple(check_type(only, tuple[str, ...], "render.bootstrap_pairs.only_paired_sources")))
