"""The report and the preview of the sample build, opened in headless Chromium (Debian's; .ci/run installs it):
the page loads without console errors, every image and plot is there, and a screenshot is taken."""

import os
import re
import shutil
import subprocess

import pytest

from rcforge.cli.main import main

from conftest import SAMPLE_RECIPE

pytestmark = pytest.mark.slow  # real models / a real browser: CI runs them, the inner loop does not

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


@pytest.fixture(scope="module")
def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("pages") / "out"
    assert main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0
    assert main(["report", str(out), "--html", str(out / "report.html")]) == 0
    assert main(["preview", str(out), "--html", str(out / "preview.html"), "--n", "50"]) == 0
    return out


def _open(chromium, page, tmp_path, what):
    profile = tmp_path / f"profile-{what}"
    shot = tmp_path / f"{what}.png"
    run = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", "--window-size=1300,1800",
                          f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    dom = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}-dom", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    console = [line for line in run.stderr.splitlines() + dom.stderr.splitlines() if "CONSOLE" in line]
    return shot, dom.stdout, console


def test_report_in_a_browser(chromium, pages, tmp_path):
    shot, dom, console = _open(chromium, pages / "report.html", tmp_path, "report")
    assert console == []
    assert shot.stat().st_size > 20000
    # 11 figures and the two of mask coverage (the sample's RefCOCO objects have masks)
    assert len(re.findall(r'<svg class="plot"', dom)) == 13
    assert "Dialogues per task" in dom and "flickr_grounded_caption" in dom


def test_preview_in_a_browser(chromium, pages, tmp_path):
    shot, dom, console = _open(chromium, pages / "preview.html", tmp_path, "preview")
    assert console == []
    assert shot.stat().st_size > 50000
    cards = re.findall(r'<div class="card"', dom)
    images = re.findall(r'<img src="data:image/jpeg;base64,', dom)
    missing = re.findall(r'class="missing"', dom)
    assert len(cards) == len(images) > len(missing) > 0  # a missing image is a blank canvas with its boxes
    # the sample bundles images for VG 1-2, Flickr30K, VQAv2; Objects365, RefCOCO and VG 3 are shown missing
    assert images and missing
