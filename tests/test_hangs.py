"""Inputs that used to hang a command: a FIFO where a file is expected, a YAML alias bomb. Each case runs the real
command in a subprocess with a timeout, so a regression fails the test instead of stalling the suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import SAMPLE, SAMPLE_RECIPE

TIMEOUT = 120


def _run(*argv, cwd=None):
    try:
        return subprocess.run([sys.executable, "-m", "rcforge.cli", *map(str, argv)], capture_output=True,
                              text=True, timeout=TIMEOUT, cwd=cwd, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    except subprocess.TimeoutExpired:
        pytest.fail(f"rcforge {' '.join(map(str, argv))} hung for {TIMEOUT} s")


def _sample_copy(tmp_path):
    shutil.copytree(SAMPLE, tmp_path / "sample_data")
    (tmp_path / "recipes").mkdir()
    shutil.copy(SAMPLE_RECIPE, tmp_path / "recipes" / "sample.yaml")
    return tmp_path / "recipes" / "sample.yaml"


@pytest.mark.parametrize("target", ["visual_genome/objects.json", "vqav2/questions.json",
                                    "flickr30k_entities/Sentences/4945942737.txt"])
def test_a_fifo_for_an_annotation_file_is_refused_not_waited_on(target, tmp_path):
    recipe = _sample_copy(tmp_path)
    path = tmp_path / "sample_data" / target
    path.unlink()
    os.mkfifo(path)
    run = _run("build", recipe, "--out", tmp_path / "out", "--no-progress")
    assert run.returncode == 1 and "is a FIFO (named pipe); rcforge reads only regular files" in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_a_fifo_for_an_image_is_a_rejected_record_not_a_hang(tmp_path):
    recipe = _sample_copy(tmp_path)
    image = tmp_path / "sample_data" / "vqav2" / "images" / "COCO_train2014_000000458752.jpg"
    image.unlink()
    os.mkfifo(image)
    out = tmp_path / "out"
    run = _run("ingest", recipe, "--out", out, "--no-progress")
    assert "Traceback" not in run.stderr
    import pyarrow.parquet as pq

    folder = out / ("errors" if run.returncode == 0 else "last-failed-run/errors")
    # the image is VQAv2's and the LVIS excerpt's: whichever source reads it first rejects its record with the
    # reason (VQAv2 takes the size from the header; LVIS checks the header against its size); nothing waits
    errors = [e for source in folder.iterdir() for e in pq.read_table(source).to_pylist()]
    assert any(e["reason"] in ("image_unreadable", "image_size_unavailable") and "FIFO" in e["message"]
               for e in errors), errors


def test_a_fifo_for_the_recipe_is_refused(tmp_path):
    os.mkfifo(tmp_path / "recipe.yaml")
    run = _run("build", tmp_path / "recipe.yaml", "--out", tmp_path / "out")
    assert run.returncode == 1 and "is a FIFO" in run.stderr and "Traceback" not in run.stderr


BOMB = """seed: 0
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
sources: {visual_genome: {root: x, images: x, extra: *i}}
"""


@pytest.mark.parametrize("text, says", [
    (BOMB, "with its aliases expanded it holds more than 100,000 values"),
    ("seed: 0\nsources: &s {visual_genome: *s}\n", "refers to a value that contains it"),
    ("seed: " + "9" * 5000 + "\nsources: {}\n", "a value does not convert"),
    ("# " + "x" * 1_100_000 + "\nseed: 0\n", "a recipe is at most 1,000,000"),
])
def test_a_hostile_recipe_is_refused_quickly(text, says, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    run = _run("build", recipe, "--out", tmp_path / "out")
    assert run.returncode == 1 and says in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
