"""The distributions' declared packaging, read from their ``pyproject.toml``: one Aer build per extra, and what a
published wheel needs (its license file, a ``py.typed`` marker, its README as the long description).

``.ci/install-check`` proves the same by installing (and pip resolving ``[gpu]`` without installing); these are the
cheap checks that catch a wrong line in a ``pyproject.toml`` before that runs.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["core", "pinn", "quantum", "dsp", "bio"]
AER_BUILDS = {"qiskit-aer", "qiskit-aer-gpu"}


def _project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


def _requirements(lines: list[str]) -> list[Requirement]:
    return [Requirement(line) for line in lines]


PROJECTS = {
    canonicalize_name(_project(ROOT / "packages" / p)["name"]): _project(ROOT / "packages" / p) for p in PACKAGES
}
META = _project(ROOT)


def _closure(name: str, extras: set[str]) -> set[str]:
    """Every distribution that ``name[extras]`` pulls, following the monorepo's own distributions (and their extras)
    and stopping at outside ones; the meta distribution's self-references (``noisygrad[pinn,...]``) included."""
    seen: set[tuple[str, frozenset[str]]] = set()
    found: set[str] = set()
    todo = [(canonicalize_name(name), frozenset(extras))]
    while todo:
        dist, wanted = todo.pop()
        if (dist, wanted) in seen:
            continue
        seen.add((dist, wanted))
        found.add(dist)
        project = META if dist == "noisygrad" else PROJECTS.get(dist)
        if project is None:
            continue  # an outside distribution
        lines = list(project.get("dependencies", []))
        for extra in wanted:
            lines += project.get("optional-dependencies", {}).get(extra, [])
        for req in _requirements(lines):
            todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return found


def test_quantum_takes_aer_from_one_of_two_extras() -> None:
    quantum = PROJECTS["noisygrad-quantum"]
    base = {canonicalize_name(r.name) for r in _requirements(quantum["dependencies"])}
    assert not base & AER_BUILDS, "noisygrad-quantum must not require an Aer build unconditionally"
    extras = quantum["optional-dependencies"]
    assert {canonicalize_name(r.name) for r in _requirements(extras["aer"])} == {"qiskit-aer"}
    assert {canonicalize_name(r.name) for r in _requirements(extras["aer-gpu"])} == {"qiskit-aer-gpu"}


@pytest.mark.parametrize("extra", sorted(META["optional-dependencies"]))
def test_no_extra_of_noisygrad_installs_two_aer_builds(extra: str) -> None:
    pulled = _closure("noisygrad", {extra})
    assert len(pulled & AER_BUILDS) <= 1, f"noisygrad[{extra}] pulls {sorted(pulled & AER_BUILDS)}"


def test_quantum_has_the_cpu_build_and_gpu_the_cuda_build() -> None:
    assert _closure("noisygrad", {"quantum"}) & AER_BUILDS == {"qiskit-aer"}
    assert _closure("noisygrad", {"all"}) & AER_BUILDS == {"qiskit-aer"}
    gpu = _closure("noisygrad", {"gpu"})
    assert gpu & AER_BUILDS == {"qiskit-aer-gpu"}
    assert "noisygrad-quantum" in gpu


def test_the_core_alone_pulls_no_field_package() -> None:
    pulled = _closure("noisygrad-core", set())
    for field in ("deepxde", "qiskit", "qiskit-aer", "qiskit-aer-gpu", "qiskit-algorithms", "numba"):
        assert field not in pulled


@pytest.mark.parametrize("folder", [".", *(f"packages/{p}" for p in PACKAGES)])
def test_each_distribution_ships_its_license_and_readme(folder: str) -> None:
    path = ROOT / folder
    project = _project(path)
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (path / "LICENSE").read_text() == (ROOT / "LICENSE").read_text(), f"{folder}/LICENSE differs from the root's"
    assert project["readme"] == "README.md"
    assert (path / "README.md").is_file()
    build = tomllib.loads((path / "pyproject.toml").read_text())["build-system"]
    assert "hatchling>=1.27" in build["requires"], "license-files (PEP 639) needs hatchling 1.27"


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_is_marked_typed(name: str) -> None:
    package = ROOT / "packages" / name / "src" / "noisygrad" / ("" if name == "core" else name)
    assert (package / "py.typed").is_file(), f"{package} has no py.typed"
    assert "Typing :: Typed" in _project(ROOT / "packages" / name)["classifiers"]
