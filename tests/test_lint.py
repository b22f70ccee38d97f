"""The lint CI runs: ruff (pyflakes, pycodestyle, isort with rcforge first-party; `[tool.ruff]` in pyproject.toml)
over the whole tree, so an unused import, an undefined name or an import out of order fails the tests."""

import subprocess
import sys

from conftest import REPO


def test_ruff_finds_nothing():
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
