"""The committed lock (requirements/lock.txt, written by scripts/lock) is what README and CI install, and it
cannot drift from pyproject.toml: every requirement of every extra is pinned inside its range, the lock asks for
no CUDA build, and the environment the tests run in is the lock's."""

from __future__ import annotations

import importlib.metadata as md
import re

import pytest
import tomllib
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import REPO

LOCK = REPO / "requirements" / "lock.txt"


def _pins() -> dict[str, list[tuple[Version, Marker | None]]]:
    """name -> [(pinned version, marker)]: a universal lock pins some packages once per Python range."""
    pins: dict[str, list] = {}
    for line in LOCK.read_text().splitlines():
        if not line or line.startswith(("#", " ")):
            continue
        spec, _, marker = line.partition(";")
        name, _, version = spec.strip().partition("==")
        assert version, f"{LOCK.name}: not an exact pin: {line!r}"
        pins.setdefault(canonicalize_name(name), []).append((Version(version), Marker(marker) if marker else None))
    return pins


def _requirements() -> list[tuple[str, Requirement]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [("(main)", Requirement(r)) for r in project["dependencies"]]
    reqs += [(extra, Requirement(r)) for extra, rs in project["optional-dependencies"].items() for r in rs]
    return reqs


def test_every_requirement_of_every_extra_is_pinned_within_its_range():
    pins = _pins()
    for where, req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{where}: {req} is not in {LOCK.name}; run scripts/lock"
        for version, _ in pins[name]:
            assert req.specifier.contains(version, prereleases=True), \
                f"{where}: {req} but {LOCK.name} pins {name}=={version}; run scripts/lock"
        for extra in req.extras:  # apache-beam[dask]: the extra's own requirements are pinned too
            for dep in md.requires(req.name) or []:
                dep = Requirement(dep)
                if dep.marker and dep.marker.evaluate({"extra": extra}) and not dep.marker.evaluate({"extra": ""}):
                    assert canonicalize_name(dep.name) in pins, f"{req}: {dep.name} is not in {LOCK.name}"


def test_the_lock_asks_for_no_cuda_build():
    pins = _pins()
    cuda = sorted(n for n in pins if re.match(r"(nvidia-|cuda-|triton)", n))
    assert not cuda, f"{LOCK.name} pins CUDA packages {cuda}: it is the CPU lock (scripts/lock leaves them out)"
    constraints = (REPO / "requirements" / "lock-constraints.in").read_text()
    assert [str(v) for v, _ in pins["torch"]] == re.findall(r"^torch==(\S+)", constraints, re.M)


def test_the_environment_under_test_is_the_lock():
    """Every locked package that is installed here has the locked version (torch's CPU build, 2.13.0+cpu,
    is 2.13.0): the tests run against what a fresh install from the lock gets."""
    drift = []
    for name, pinned in _pins().items():
        try:
            installed = Version(md.version(name))
        except md.PackageNotFoundError:
            continue
        here = [v for v, marker in pinned if marker is None or marker.evaluate()]
        if here and Version(installed.public) != here[0]:
            drift.append(f"{name}: installed {installed}, locked {here[0]}")
    assert not drift, "the environment is not the lock:\n" + "\n".join(drift)


@pytest.mark.parametrize("file", ["README.md", ".ci/run"])
def test_every_documented_install_uses_the_lock(file):
    text = (REPO / file).read_text()
    if file.endswith(".md"):  # the commands: fenced code blocks and inline code spans
        text = "\n".join(re.findall(r"```bash\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text))
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    installs = [i for line in lines for i in re.findall(r"pip install[^&|'\n]*", line)]
    assert installs
    # the lock's own tool, and the GPU build of torch from its own index, are the two installs outside the lock
    unlocked = [i for i in installs if "-c requirements/lock.txt" not in i and i.strip() != "pip install uv"
                and "--index-url https://download.pytorch.org/whl/cu" not in i]
    assert not unlocked, f"{file}: installs not from the lock: {unlocked}"
