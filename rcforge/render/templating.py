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
in length and in loop steps (`render`), so a careless or hostile template set cannot stall a build. The limits
count characters and steps, never seconds, so a loaded machine renders exactly what a quiet one does; a far
larger wall-clock backstop (`BACKSTOP_SECONDS`) fails the whole build loudly instead of dropping a record. The template
id of a sample is ``<task>.<variant>.<question id>+<answer id>``; the manifest records a content hash per file.
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
import jinja2.runtime
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rcforge.core import fsio
from rcforge.core.errors import RecipeError
from rcforge.render import english


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
#: the most loop steps in one turn, over ``range`` or the task's own lists, nested loops counting every inner step
MAX_LOOP_STEPS = 100_000
#: the wall-clock backstop for one turn (a turn takes about 10 µs): past it the build fails; it never fires
#: within the step and size limits, so it cannot make two runs differ
BACKSTOP_SECONDS = 60.0
#: the widest field a format string may ask for (``"%9999999d"``, ``"{:>9999999}"``)
MAX_FORMAT_WIDTH = 1_000

#: the filters a template may use: pure and deterministic, none that pads to a width (``center``, ``indent``,
#: ``wordwrap``, ``format``) or draws at random (``random``)
FILTERS = ("abs", "attr", "batch", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first",
           "float", "groupby", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
           "reject", "rejectattr", "replace", "reverse", "round", "select", "selectattr", "slice", "sort", "string",
           "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "wordcount")


class TemplateLimitError(RecipeError):
    """A template went past a resource limit while rendering (output size, loop steps, a huge value): the record
    is a counted render error."""


class TemplateStallError(RecipeError):
    """A turn ran past `BACKSTOP_SECONDS`: not a per-record error (that would depend on the machine's load) but
    the build's end, naming the template."""


#: the clock of the backstop (a test slows it down to stand for a loaded machine)
_clock = time.perf_counter


class _Budget(threading.local):
    deadline: float = float("inf")
    steps: int = 0
    where: str = "template"


_budget = _Budget()


def _over(what: str) -> TemplateLimitError:
    return TemplateLimitError(f"{_budget.where}: {what}")


def _stalled() -> TemplateStallError:
    return TemplateStallError(f"{_budget.where}: one turn took longer than {BACKSTOP_SECONDS:.0f} s to render; the "
                              f"build stops here rather than drop records depending on the machine's load")


def _counted(iterable):
    """Every step of a template's loop, or of ``range``, counts against the turn's step budget."""
    for value in iterable:
        _budget.steps += 1
        if _budget.steps > MAX_LOOP_STEPS:
            raise _over(f"loops ran more than {MAX_LOOP_STEPS:,} steps")
        if _budget.steps % 4096 == 0 and _clock() > _budget.deadline:
            raise _stalled()
        yield value


def _range(*args):
    """``range`` for templates, counted like every loop."""
    return _counted(range(*args))


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

    #: what a template's ``{% for %}`` iterates through (see `_parse`)
    counted = staticmethod(_counted)

    def _parse(self, source, name, filename):
        """Jinja's parse, with every ``{% for x in seq %}`` made ``for x in counted(seq)``: loop steps are counted
        whatever they iterate over, so nested loops over the data are bounded like ``range``."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(jinja2.nodes.For):
            loop.iter = jinja2.nodes.Call(jinja2.nodes.EnvironmentAttribute("counted"), [loop.iter], [], None, None,
                                          lineno=loop.lineno)
        return tree

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
    ``lipsum``: it writes random text) and filters (`FILTERS`, and ``plural``: `rcforge.render.english.plural`), and
    `render`'s limits."""
    env = LimitedSandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False,
                         trim_blocks=True, lstrip_blocks=True)
    env.globals = {"range": _range, "dict": dict, "namespace": env.globals["namespace"],
                   "joiner": env.globals["joiner"], "cycler": env.globals["cycler"]}
    env.filters = {name: env.filters[name] for name in FILTERS}
    env.filters["plural"] = english.plural  # "how many {{ name | plural }}": plugs, people, glasses
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
    contents = {file: fs.cat_file(file) for file in files}
    hashes = {file.rsplit("/", 1)[-1]: hashlib.sha256(data).hexdigest() for file, data in contents.items()}
    # compiling a set takes ~0.5 s and a pipeline unpickles its renderer once per stage and worker: compile each
    # content once per process (the key holds every file's hash, so an edited file compiles again)
    key = (root, tuple(sorted(hashes.items())),
           tuple(sorted((k, tuple(tuple(sorted(x)) for x in v)) for k, v in (required or {}).items())))
    if key not in _COMPILED:
        _COMPILED[key] = _compile(root, contents, hashes, required)
    return _COMPILED[key]


#: template sets compiled in this process, by root, file hashes and required variables (see `load`)
_COMPILED: dict[tuple, TemplateSet] = {}


def _compile(root: str, contents: dict[str, bytes], hashes: dict[str, str], required) -> TemplateSet:
    env = environment()
    variants: dict[tuple[str, str], Variant] = {}
    for file, data in contents.items():
        name = file.rsplit("/", 1)[-1]
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
    `MAX_TURN_CHARS` characters and `MAX_LOOP_STEPS` loop steps, else a `TemplateLimitError` naming the
    template (a `TemplateStallError` past the `BACKSTOP_SECONDS` backstop)."""
    _budget.deadline = _clock() + BACKSTOP_SECONDS
    _budget.steps = 0
    _budget.where = f"template {where or template.name or '(inline)'}"
    # Jinja's render copies the template's globals (a ChainMap, slow to iterate) into every new context; here
    # they are flattened once per template and the context is made over one fresh dict (same names, same result)
    flat = template.__dict__.get("_flat_globals")
    if flat is None:
        flat = template._flat_globals = dict(template.globals)
    context = jinja2.runtime.new_context(template.environment, template.name, template.blocks,
                                         {**flat, **variables}, shared=True)
    pieces, size = [], 0
    try:
        for piece in template.root_render_func(context):
            size += len(piece)
            if size > MAX_TURN_CHARS:
                raise _over(f"the rendered turn is longer than {MAX_TURN_CHARS:,} characters")
            pieces.append(piece)
        if _clock() > _budget.deadline:
            raise _stalled()
    finally:
        _budget.deadline = float("inf")
    return " ".join("".join(pieces).split())
