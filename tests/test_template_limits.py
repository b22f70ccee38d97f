"""Template resource limits: a careless or hostile template set cannot stall a build, fill memory, or write text
that differs between runs. Each bad template is rendered directly, then one goes through a whole build, where it
becomes counted render errors (the build stops at max_bad_fraction, naming the template)."""

from __future__ import annotations

import shutil
import time

import pytest

from rcforge import cli
from rcforge.render import templating
from rcforge.render.templating import TemplateLimitError

from conftest import SAMPLE_RECIPE

HOSTILE = {
    "repeat": "{{ 'a' * 10**9 }}",
    "repeat_list": "{{ ([1] * 10**8) | length }}",
    "power": "{{ (2 ** 64) ** 64 }}",
    "nested_range": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "long_output": "{% for i in range(5000) %}xxxxxxxxxx{% endfor %}",
    "percent_width": "{{ '%999999999d' % 1 }}",
    "percent_star": "{{ '%*d' % (99999999, 1) }}",
    "format_width": "{{ '{:>999999999}'.format(1) }}",
    "format_nested": "{{ '{0:{1}}'.format(1, 99999999) }}",
    "range_in_loop_vars": "{% for o in objects %}{% for i in range(5000) %}{{ o }}{% endfor %}{% endfor %}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_template_past_a_limit_stops_quickly_with_a_clear_error(name):
    template = templating.environment().from_string(HOSTILE[name])
    started = time.perf_counter()
    with pytest.raises(TemplateLimitError, match="template t.x.a01"):
        templating.render(template, {"objects": list(range(10))}, "t.x.a01")
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("source, error", [
    ("{{ lipsum() }}", "lipsum"),
    ("{{ objects | random }}", "random"),
    ("{{ 'x' | center(10**9) }}", "center"),
    ("{{ 'x' | indent(10**9) }}", "indent"),
    ("{{ 'x' | wordwrap(3) }}", "wordwrap"),
    ("{{ '%s' | format(1) }}", "format"),
])
def test_templates_get_curated_globals_and_filters(source, error):
    with pytest.raises(Exception, match=error):
        templating.render(templating.environment().from_string(source), {"objects": [1, 2]})


def test_what_the_bundled_templates_use_still_renders():
    env = templating.environment()
    text = ("{% for o in objects %}{{ o }}{% if not loop.last %}, {% endif %}{% endfor %} {{ n }} object"
            "{{ '' if n == 1 else 's' }} {{ names | join(', ') | upper }} {{ '%s=%d' % ('a', 3) }} {{ 2 ** 10 }}")
    assert templating.render(env.from_string(text), {"objects": [1, 2], "n": 2, "names": ["a", "b"]}) == \
        "1, 2 2 objects A, B a=3 1024"
    assert templating.render(env.from_string("{% for i in range(3) %}{{ i }}{% endfor %}"), {}) == "012"


def test_a_hostile_template_in_a_build_is_counted_and_named(tmp_path, capsys):
    templates = tmp_path / "templates"
    shutil.copytree(templating.default_root(), templates, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    counting = templates / "counting.yaml"
    text = counting.read_text()
    lines = []
    for line in text.splitlines():  # every answer of counting runs away, whichever the build draws
        stripped = line.lstrip()
        if stripped[:1] == "a" and stripped[1:3].isdigit() and stripped[3:4] == ":":
            line = line[: len(line) - len(stripped)] + stripped[:4] + \
                " \"{{ count }}{% for i in range(10**5) %}{{ i }}{% endfor %}\""
        lines.append(line)
    counting.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code = cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--templates", str(templates)])
    err = capsys.readouterr().err
    assert code == 1 and "failed to render" in err and "Traceback" not in err
    import pyarrow.parquet as pq

    errors = pq.read_table(out / "last-failed-run" / "errors" / "render").to_pylist()
    assert errors and all(e["reason"] == "TemplateLimitError" and "counting." in e["message"] for e in errors)


def test_nested_loops_over_the_data_are_counted_like_range():
    env = templating.environment()
    nested = env.from_string("{% for a in objects %}{% for b in objects %}{% for c in objects %}{% endfor %}"
                             "{% endfor %}{% endfor %}")
    with pytest.raises(TemplateLimitError, match="loops ran more than"):
        templating.render(nested, {"objects": list(range(100))}, "t.x.a01")
    assert templating.render(nested, {"objects": list(range(10))}) == ""  # 1,110 steps: fine


def _dialogues(out):
    import pyarrow.parquet as pq

    return pq.read_table(out / "dialogues").sort_by("id").to_pylist()


def test_a_loaded_machine_renders_the_same_records(sample_build, tmp_path, monkeypatch):
    """A clock 100,000 times slower than a quiet machine's (a 10 µs turn takes a second) changes nothing: the
    limits count steps and characters, not seconds."""
    ticks = iter(range(10**9))
    monkeypatch.setattr(templating, "_clock", lambda: next(ticks) * 0.5)
    out = tmp_path / "out"
    assert cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0
    assert _dialogues(out) == _dialogues(sample_build)
    assert not (out / "errors" / "render").exists() or not list((out / "errors" / "render").iterdir())


def test_a_turn_past_the_backstop_fails_the_build_loudly(tmp_path, monkeypatch, capsys):
    ticks = iter(range(10**9))
    monkeypatch.setattr(templating, "_clock", lambda: next(ticks) * 2 * templating.BACKSTOP_SECONDS)
    out = tmp_path / "out"
    code = cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "took longer than 60 s" in err and "Traceback" not in err, err
    assert not (out / "dialogues").exists()
