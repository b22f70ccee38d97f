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
Annotation text only ever reaches a template as a variable's value, never as template source. The template id
of a sample is ``<task>.<variant>.<question id>+<answer id>``; the manifest records a content hash per file.
"""

from __future__ import annotations

import hashlib
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


def environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                         keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True)


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


def render(template: jinja2.Template, variables: dict[str, Any]) -> str:
    """Render and tidy whitespace (templates may use blocks for lists)."""
    return " ".join(template.render(**variables).split())
