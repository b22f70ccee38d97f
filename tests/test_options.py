"""Every numeric option, in the recipe and on the command line, is checked against one declared range before a
command writes anything: ``nan``, ``inf``, ``-1``, out-of-range values, booleans and non-numbers are refused with
one line naming the option and the values it allows."""

from __future__ import annotations

import copy
import dataclasses
import math
import typing

import pytest
import yaml

from rcforge import cli, rc_tasks, readers
from rcforge.bootstrap.options import BootstrapOptions
from rcforge.core.config import ANY_NUMBER, Range, build_config, field_range
from rcforge.core.errors import RecipeError
from rcforge.core.images import ImageChecks
from rcforge.recipe.tree import Recipe, recipe_from_mapping
from rcforge.render.renderer import RenderSettings, TaskChoice

from conftest import SAMPLE_RECIPE


def _config_classes() -> dict[str, type]:
    """Every config class a recipe builds, by where its keys sit in the recipe."""
    classes = {"(top level)": Recipe, "render": RenderSettings, "render.tasks.NAME": TaskChoice,
               "bootstrap": BootstrapOptions, "(image checks)": ImageChecks}
    classes.update({f"render.tasks.{n}": rc_tasks.get(n).config_class for n in rc_tasks.names()})
    classes.update({f"sources.{n}": readers.get(n).config_class for n in readers.names()})
    return classes


def _numeric_fields(cls) -> list[str]:
    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls) if f.init and hints.get(f.name) in (int, float)]


def _bad_values(kind: type, allowed: Range) -> list:
    bad = [math.nan, math.inf, -math.inf, "x", "1", True, None, [1]]
    if kind is int:
        bad += [1.5, 2.0]
    if allowed.low is not None:
        bad.append(allowed.low if allowed.low_open else allowed.low - 1)
    if allowed.high is not None:
        bad.append(allowed.high if allowed.high_open else allowed.high + 1)
    return bad


def _good_values(kind: type, allowed: Range) -> list:
    good = []
    if allowed.low is not None:
        good.append(allowed.low + (1 if allowed.low_open else 0) if kind is int else
                    (allowed.low + 1e-6 if allowed.low_open else allowed.low))
    if allowed.high is not None:
        good.append(allowed.high - (1 if allowed.high_open else 0) if kind is int else allowed.high)
    return [kind(v) for v in good]


def test_every_numeric_option_declares_its_range():
    undeclared = [f"{where}.{name}" for where, cls in _config_classes().items() for name in _numeric_fields(cls)
                  if field_range(cls, name) is ANY_NUMBER]
    assert not undeclared, f"numeric options without a declared range: {undeclared}"


CASES = [(where, cls, name) for where, cls in _config_classes().items()
         if where.startswith(("render.tasks.", "sources.")) and "NAME" not in where for name in _numeric_fields(cls)]


@pytest.mark.parametrize("where, cls, name", CASES, ids=[f"{w}.{n}" for w, _, n in CASES])
def test_a_bad_number_in_a_task_or_source_section_names_the_key_and_the_range(tmp_path, where, cls, name):
    hints = typing.get_type_hints(cls)
    allowed = field_range(cls, name)
    # the section's required paths exist, so only the number can be wrong
    base = {f.name: str(tmp_path) for f in dataclasses.fields(cls) if f.metadata.get("path")}
    for bad in _bad_values(hints[name], allowed):
        with pytest.raises(RecipeError) as err:
            build_config(cls, {**base, name: bad}, where)
        message = str(err.value)
        assert message.startswith(f"{where}.{name}: expected ") and allowed.describe(hints[name]) in message, message
        assert "\n" not in message
    for good in _good_values(hints[name], allowed):
        assert getattr(build_config(cls, {**base, name: good}, where), name) == good


def _sample_recipe() -> dict:
    return yaml.safe_load(SAMPLE_RECIPE.read_text())


def _with(raw: dict, path: tuple, value) -> dict:
    """A copy of the recipe mapping ``raw`` with the key at ``path`` set to ``value``."""
    raw = copy.deepcopy(raw)
    node = raw
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return raw


RECIPE_KEYS = [
    (("seed",), Recipe, "seed"), (("max_bad_fraction",), Recipe, "max_bad_fraction"),
    (("rows_per_part",), Recipe, "rows_per_part"), (("max_image_pixels",), ImageChecks, "max_pixels"),
    (("render", "per_image"), RenderSettings, "per_image"),
    (("render", "turns_per_dialogue"), RenderSettings, "turns_per_dialogue"),
    (("render", "rows_per_shard"), RenderSettings, "rows_per_shard"),
    (("render", "tasks", "counting", "weight"), TaskChoice, "weight"),
    (("render", "source_weights", "objects365"), TaskChoice, "weight"),  # the same range: a factor >= 0
] + [(("bootstrap", "lambda" if n == "lam" else n), BootstrapOptions, n) for n in _numeric_fields(BootstrapOptions)]


@pytest.mark.parametrize("path, cls, name", RECIPE_KEYS, ids=[".".join(p) for p, _, _ in RECIPE_KEYS])
def test_a_bad_number_anywhere_in_the_recipe_names_the_key_and_the_range(tmp_path, path, cls, name):
    """The same checks through the whole recipe loader, on the keys it reads itself (top level, render,
    source weights, task weights, image checks, bootstrap)."""
    kind = typing.get_type_hints(cls)[name]
    allowed = field_range(cls, name)
    base = _sample_recipe()
    if path[0] == "render" and path[1] == "tasks":
        base["render"]["tasks"] = {"counting": {}}
    for bad in _bad_values(kind, allowed):
        with pytest.raises(RecipeError) as err:
            recipe_from_mapping(_with(base, path, bad), base_dir=str(SAMPLE_RECIPE.parent))
        message = str(err.value)
        assert ".".join(path) + ": expected " + allowed.describe(kind) in message, message
    for good in _good_values(kind, allowed):
        recipe_from_mapping(_with(base, path, good), base_dir=str(SAMPLE_RECIPE.parent))


# -- the command line ----------------------------------------------------------------------------------------

BOOTSTRAP_FLAGS = [("--lambda", "lam"), ("--batch-size", "batch_size"), ("--max-new-tokens", "max_new_tokens"),
                   ("--samples", "samples"), ("--temperature", "temperature"), ("--top-p", "top_p"),
                   ("--max-annotations", "max_annotations"), ("--min-area", "min_area")]
BAD_TEXT = ["nan", "inf", "-inf", "-1", "x", "", "1e999"]


def _refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("flag, name", BOOTSTRAP_FLAGS)
def test_bootstrap_flags_are_checked_against_the_options_range_before_anything_runs(tmp_path, capsys, flag, name):
    out = tmp_path / "out"
    kind = typing.get_type_hints(BootstrapOptions)[name]
    allowed = field_range(BootstrapOptions, name)
    bad = BAD_TEXT + [str(v) for v in _bad_values(kind, allowed)[8:]]  # and just outside the range
    for text in bad:
        # --flag=TEXT: argparse reads a lone "-inf" as another flag (refused too, but without the range)
        err = _refused(["bootstrap", str(SAMPLE_RECIPE), "--out", str(out), f"{flag}={text}"], capsys)
        assert f"argument {flag}: expected {allowed.describe(kind)}, got {text!r}" in err, (text, err)
    assert not out.exists()


@pytest.mark.parametrize("text", BAD_TEXT + ["1.5", "1.0000001"])
def test_refilter_refuses_a_bad_lambda_before_it_writes(tmp_path, capsys, text):
    out = tmp_path / "out"
    (out / "bootstrap" / "candidates").mkdir(parents=True)
    err = _refused(["refilter", str(out), f"--lambda={text}"], capsys)
    assert f"argument --lambda: expected a number within [0, 1], got {text!r}" in err
    assert sorted(p.name for p in (out / "bootstrap").iterdir()) == ["candidates"]


@pytest.mark.parametrize("lam", [1.5, -0.1, math.nan, math.inf])
def test_refilter_called_as_a_function_checks_lambda_before_it_writes(tmp_path, lam):
    from rcforge.pipelines.refilter import refilter

    out = tmp_path / "out"
    (out / "bootstrap" / "candidates").mkdir(parents=True)
    with pytest.raises(RecipeError, match=r"--lambda: expected a number within \[0, 1\]"):
        refilter(str(out), lam, target=str(tmp_path / "other"))
    assert not (out / "bootstrap" / "pairs").exists() and not (tmp_path / "other").exists()


@pytest.mark.parametrize("argv, flag, allowed", [
    (["preview", "OUT", "--html", "p.html", "--n"], "--n", "an integer >= 1"),
    (["preview", "OUT", "--html", "p.html", "--seed"], "--seed", "an integer within [0, 2**63 - 1]"),
    (["build", str(SAMPLE_RECIPE), "--out", "OUT", "--workers"], "--workers", "an integer >= 0"),
    (["ingest", str(SAMPLE_RECIPE), "--out", "OUT", "--workers"], "--workers", "an integer >= 0"),
])
def test_other_numeric_flags_are_checked(tmp_path, capsys, argv, flag, allowed):
    argv = [a.replace("OUT", str(tmp_path / "out")).replace("p.html", str(tmp_path / "p.html")) for a in argv]
    for text in ["-1", "nan", "1.5", "x", "1e999"]:
        err = _refused(argv[:-1] + [f"{argv[-1]}={text}"], capsys)
        assert f"argument {flag}: expected {allowed}, got {text!r}" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "p.html").exists()
