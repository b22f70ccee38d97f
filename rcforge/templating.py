"""Jinja template sets: many paraphrases per task variant, loaded, checked and rendered safely.

A template set is a folder of YAML files, one per task (``relation.yaml``), each mapping variants to question and
answer templates with stable ids::

    variants:
      predicate:
        question_vars: [subject, object]          # every question template must use these
        answer_vars: [predicate]                  # every answer template must use these
        questions:
          q01: "What is the relationship between {{ subject }} and {{ object }}?"
        answers:
          a01: "{{ predicate }}"

Templates are compiled in Jinja's immutable sandbox with ``StrictUndefined``: a template that names a variable
the task does not provide, or omits one it must show, fails at load time with the file, variant and template id.
Annotation text only ever reaches a template as a variable's value, never as template source. Templates
get curated globals and filters (nothing random, nothing that pads to a width), and each rendered turn is capped
in length, render time and loop steps (`render`), so a careless or hostile template set cannot stall a build. The template id
of a sample is ``<task>.<variant>.<question id>+<answer id>``; the manifest records a content hash per file.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jinja2
import jinja2.meta
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rcforge import fsio
from rcforge.errors import RecipeError


@dataclass(frozen=True)
class Variant:
    task: str
    name: str
    question_vars: tuple[str, ...]
    answer_vars: tuple[str, ...]
    questions: dict[str, jinja2.Template]
    answers: dict[str, jinja2.Template]
    sources: dict[str, str] = field(default_factory=dict)  # template id -> source, for the golden files


@dataclass
class TemplateSet:
    root: str
    variants: dict[tuple[str, str], Variant]
    hashes: dict[str, str]

    def variant(self, task: str, name: str) -> Variant:
        try:
            return self.variants[(task, name)]
        except KeyError:
            have = sorted(v for t, v in self.variants if t == task)
            raise RecipeError(f"templates in {self.root}: no variant {name!r} for task {task!r}; "
                              f"found: {', '.join(have) or 'none'}") from None


#: the most characters one rendered turn (a question or an answer) may have; real turns stay under ~5,000
MAX_TURN_CHARS = 20_000
#: the most seconds one turn may take to render (a turn takes about 10 µs)
MAX_RENDER_SECONDS = 1.0
#: the most loop steps over ``range`` in one turn (loops over the task's own lists are bounded by the data)
MAX_RANGE_STEPS = 10_000
#: the widest field a format string may ask for (``"%9999999d"``, ``"{:>9999999}"``)
MAX_FORMAT_WIDTH = 1_000

#: the filters a template may use: pure and deterministic, none that pads to a width (``center``, ``indent``,
#: ``wordwrap``, ``format``) or draws at random (``random``)
FILTERS = ("abs", "attr", "batch", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first",
           "float", "groupby", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
           "reject", "rejectattr", "replace", "reverse", "round", "select", "selectattr", "slice", "sort", "string",
           "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "wordcount")


class TemplateLimitError(RecipeError):
    """A template went past a resource limit while rendering (output size, time, loop steps, a huge value)."""


class _Budget(threading.local):
    deadline: float = float("inf")
    steps: int = 0
    where: str = "template"


_budget = _Budget()


def _over(what: str) -> TemplateLimitError:
    return TemplateLimitError(f"{_budget.where}: {what}")


def _range(*args):
    """``range`` for templates: every step counts against the turn's step and time budget."""
    for i, value in enumerate(range(*args)):
        if i % 256 == 0 and time.perf_counter() > _budget.deadline:
            raise _over(f"took longer than {MAX_RENDER_SECONDS} s to render")
        _budget.steps += 1
        if _budget.steps > MAX_RANGE_STEPS:
            raise _over(f"loops over range() ran more than {MAX_RANGE_STEPS:,} steps")
        yield value


_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?|\{[^{}]*?[:]([^{}]*)\}")


def _check_format(fmt: str) -> None:
    if re.search(r"\{[^{}]*:[^{}]*\{", fmt):  # a width taken from an argument: "{0:{1}}"
        raise _over("a format string takes a field width from an argument")
    for match in _WIDTH.finditer(fmt):
        spec = " ".join(g for g in match.groups() if g)
        if "*" in spec or any(int(n) > MAX_FORMAT_WIDTH for n in re.findall(r"\d+", spec)):
            raise _over(f"a format string asks for a field wider than {MAX_FORMAT_WIDTH}")


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with operators that could build a huge value checked first."""

    intercepted_binops = frozenset(["*", "**", "%"])

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and (abs(right) > 64 or (
                isinstance(left, (int, float)) and abs(left) > 2**32)):
            raise _over("a power too large to compute")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_TURN_CHARS:
                    raise _over(f"a repeated value longer than {MAX_TURN_CHARS:,}")
        if operator == "%" and isinstance(left, str):
            _check_format(left)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value):
        """``"...".format`` and ``format_map``, with the format string's field widths checked first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = getattr(value, "__self__", "")

        def checked(*args, **kwargs):
            _check_format(str(fmt))
            return wrapped(*args, **kwargs)

        return checked


def environment() -> ImmutableSandboxedEnvironment:
    """The sandbox every template compiles in: strict about undefined variables, with curated globals (no
    ``lipsum``: it writes random text) and filters (`FILTERS`), and `render`'s limits."""
    env = LimitedSandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False,
                         trim_blocks=True, lstrip_blocks=True)
    env.globals = {"range": _range, "dict": dict, "namespace": env.globals["namespace"],
                   "joiner": env.globals["joiner"], "cycler": env.globals["cycler"]}
    env.filters = {name: env.filters[name] for name in FILTERS}
    env.tests = dict(env.tests)
    return env


def default_root() -> str:
    return str(resources.files("rcforge.templates"))


def load(root: str | None = None, *, required: dict[tuple[str, str], tuple[set, set]] | None = None) -> TemplateSet:
    """Load every ``*.yaml`` of ``root`` (the bundled set when None).

    ``required`` maps (task, variant) to the (question, answer) variables the task provides; a template using any
    other variable is an error, as is a variant the tasks need that the set lacks (checked by the caller).
    """
    root = root or default_root()
    fs_root = root
    import fsspec

    fs, path = fsspec.core.url_to_fs(fs_root)
    files = sorted(p for p in fs.glob(fsio.join(path, "*.yaml")))
    if not files:
        raise RecipeError(f"templates: no *.yaml template files in {root}")
    env = environment()
    variants: dict[tuple[str, str], Variant] = {}
    hashes = {}
    for file in files:
        data = fs.cat_file(file)
        name = file.rsplit("/", 1)[-1]
        hashes[name] = hashlib.sha256(data).hexdigest()
        task = name[: -len(".yaml")]
        try:
            doc = yaml.safe_load(data)
        except yaml.YAMLError as err:
            raise RecipeError(f"templates {file}: not valid YAML: {err}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("variants"), dict):
            raise RecipeError(f"templates {file}: expected a mapping with 'variants'")
        for vname, spec in doc["variants"].items():
            variants[(task, vname)] = _variant(env, file, task, vname, spec, (required or {}).get((task, vname)))
    return TemplateSet(root=root, variants=variants, hashes=hashes)


def _variant(env, file, task, vname, spec, provided) -> Variant:
    where = f"templates {file}, variant {vname!r}"
    if not isinstance(spec, dict):
        raise RecipeError(f"{where}: expected a mapping")
    qvars = tuple(spec.get("question_vars") or ())
    avars = tuple(spec.get("answer_vars") or ())
    compiled: dict[str, dict[str, jinja2.Template]] = {}
    sources = {}
    for kind, must in (("questions", qvars), ("answers", avars)):
        entries = spec.get(kind)
        if not isinstance(entries, dict) or not entries:
            raise RecipeError(f"{where}: '{kind}' must map template ids to templates")
        allowed = None
        if provided is not None:
            allowed = provided[0] if kind == "questions" else provided[1]
        compiled[kind] = {}
        for tid, source in entries.items():
            if not isinstance(source, str) or not source.strip():
                raise RecipeError(f"{where}, {kind[:-1]} {tid}: empty template")
            compiled[kind][str(tid)], _ = compile_checked(env, source, f"{where}, {kind[:-1]} {tid}", must=must,
                                                          allowed=allowed)
            sources[f"{kind[0]}:{tid}"] = source
    return Variant(task=task, name=vname, question_vars=qvars, answer_vars=avars, questions=compiled["questions"],
                   answers=compiled["answers"], sources=sources)


def compile_checked(env, source: str, where: str, *, must=(), allowed: set | None = None):
    """(compiled template, the variables it uses); a `RecipeError` naming ``where`` when it does not parse, omits
    one of ``must`` or uses a variable outside ``allowed``."""
    try:
        parsed = env.parse(source)
    except jinja2.TemplateSyntaxError as err:
        raise RecipeError(f"{where}: {err.message} (line {err.lineno})") from None
    used = jinja2.meta.find_undeclared_variables(parsed)
    missing = set(must) - used
    if missing:
        raise RecipeError(f"{where}: must use {', '.join(sorted(missing))}")
    if allowed is not None and not used <= allowed:
        extra = sorted(used - allowed)
        raise RecipeError(f"{where}: unknown variable(s) {', '.join(extra)}; the task provides: "
                          f"{', '.join(sorted(allowed))}")
    return env.from_string(source), used


def render(template: jinja2.Template, variables: dict[str, Any], where: str = "") -> str:
    """Render and tidy whitespace (templates may use blocks for lists), within the limits: at most
    `MAX_TURN_CHARS` characters, `MAX_RENDER_SECONDS` seconds and `MAX_RANGE_STEPS` range steps, else a
    `TemplateLimitError` naming the template."""
    _budget.deadline = time.perf_counter() + MAX_RENDER_SECONDS
    _budget.steps = 0
    _budget.where = f"template {where or template.name or '(inline)'}"
    pieces, size = [], 0
    try:
        for piece in template.generate(**variables):
            size += len(piece)
            if size > MAX_TURN_CHARS:
                raise _over(f"the rendered turn is longer than {MAX_TURN_CHARS:,} characters")
            if time.perf_counter() > _budget.deadline:
                raise _over(f"took longer than {MAX_RENDER_SECONDS} s to render")
            pieces.append(piece)
    finally:
        _budget.deadline = float("inf")
    return " ".join("".join(pieces).split())
