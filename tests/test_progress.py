"""Progress: a live line per stage on a terminal, one line per stage in a log, counts summed over workers."""

from __future__ import annotations

import io
import json
import re

from rcforge import cli
from rcforge.core.progress import Beacon, Progress, read_counts, watching

from conftest import SAMPLE_RECIPE


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_live_line_with_rate_and_eta(monkeypatch):
    clock = iter(range(0, 1000))
    monkeypatch.setattr("rcforge.core.progress.time.perf_counter", lambda: float(next(clock)))
    stream = Terminal()
    line = Progress("render", stream=stream, total=100, interval=0.5)
    for n in (10, 50):
        line.update(images=n, dialogues=4 * n)
    line.close()
    shown = [x for x in stream.getvalue().split("\r") if x.strip()]
    assert shown[0].startswith("[render] 10/100 images, 40 dialogues, ") and "ETA" in shown[0]
    assert shown[-1].rstrip().endswith("s") and "50/100 images, 200 dialogues" in shown[-1]
    assert stream.getvalue().endswith("\n")


def test_a_log_gets_one_line_per_stage():
    stream = io.StringIO()
    line = Progress("render", stream=stream, total=3)
    for n in range(1, 4):
        line.update(images=n)
    line.close()
    assert stream.getvalue().count("\n") == 1 and stream.getvalue().startswith("[render] 3/3 images")
    quiet = io.StringIO()
    off = Progress("render", stream=quiet, enabled=False)
    off.update(5)
    off.close()
    assert quiet.getvalue() == ""


def test_beacons_of_several_workers_are_summed(tmp_path):
    folder = str(tmp_path / "beacons")
    a, b = Beacon(folder), Beacon(folder)
    a.add("described", 3)
    b.add("described", 4)
    b.add("grounded", 2)
    a.flush()
    b.flush()
    (tmp_path / "beacons" / "torn.json").write_text('{"described": ')  # a half-written file is skipped
    assert read_counts(folder) == {"described": 7, "grounded": 2}
    stream = io.StringIO()
    with watching(Progress("bootstrap", stream=stream, unit="grounded"), lambda: read_counts(folder),
                  interval=0.01):
        pass
    assert stream.getvalue().startswith("[bootstrap] 2 grounded, 7 described")


def test_a_build_reports_its_render_stage(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    images, dialogues = manifest["build"]["ledger"]["images"], manifest["build"]["dialogues"]
    render = [x for x in err.splitlines() if x.startswith("[render]")]
    assert len(render) == 1 and render[0].startswith(f"[render] {images:,}/{images:,} images, {dialogues:,} dialogues")
    assert all(re.match(r"\[\w+\] [\d,]+", x) for x in err.splitlines() if x.startswith("["))
