"""What ``.ci/install-check`` proves about the examples, checked cheaply here, and what it does not prove yet.

install-check installs ``noisygrad-core`` alone in a fresh venv and runs the core's and the root README's examples
there, then installs ``[tour]``, ``[bio]``, ``[dsp]`` and ``[pinn]`` one after another into that same venv (and
``[quantum]`` into a second one), each followed by its README's examples. Sharing the venv proves as much as a
venv per extra only if no README uses a package that an earlier install brought and its own does not: each
README's imports are held to its own extra here (the standard library, the core's requirements, the ``tour``
extra that the ``noisygrad`` meta package includes, and that plugin's own field packages).

Every newcomer's docs page (the quickstart and each field guide) runs in the fresh venv of its extra too: the last
test holds install-check to running each of them there (``tests/test_docs_blocks.py`` runs every page in the
development venv).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import docblocks  # tests/docblocks.py (pytest's pythonpath): also run as a script by .ci/install-check
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

INSTALL_CHECK = ROOT / ".ci/install-check"
CORE = {"noisygrad", "numpy", "scipy", "torch", "packaging"}  # noisygrad-core's own requirements
TOUR = {"typer", "rich", "matplotlib", "sklearn", "ase"}  # the tour extra, which `noisygrad` (the meta) includes
PLUGINS = ("bio", "dsp", "pinn", "quantum")
#: page -> the top-level modules (and noisygrad plugins) its examples may import, beyond the standard library
ALLOWED = {
    "README.md": CORE,  # run right after `pip install ./packages/core`
    "packages/core/README.md": CORE,
    "packages/bio/README.md": CORE | TOUR | {"noisygrad.bio"},
    "packages/dsp/README.md": CORE | TOUR | {"noisygrad.dsp", "numba"},
    "packages/pinn/README.md": CORE | TOUR | {"noisygrad.pinn", "deepxde"},
    "packages/quantum/README.md": CORE | TOUR | {"noisygrad.quantum", "qiskit", "qiskit_algorithms", "qiskit_aer"},
}


def _imports(page: Path) -> set[str]:
    """The modules a page's python blocks import: the top-level name, or ``noisygrad.<plugin>`` for a plugin."""
    found: set[str] = set()
    for block in docblocks.blocks_of(page):
        if block.language not in docblocks.PYTHON or block.marker.startswith("skip"):
            continue
        for node in ast.walk(ast.parse(block.code)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                plugin = parts[0] == "noisygrad" and len(parts) > 1 and parts[1] in PLUGINS
                found.add(".".join(parts[:2]) if plugin else parts[0])
    return found


@pytest.mark.parametrize("page", sorted(ALLOWED))
def test_each_readme_imports_only_what_its_own_install_brings(page: str) -> None:
    imported = _imports(ROOT / page) - set(sys.stdlib_module_names)
    assert imported, f"{page}: no example imports anything"
    assert imported <= ALLOWED[page], f"{page} imports {sorted(imported - ALLOWED[page])}, which its extra lacks"


def test_every_package_readme_is_held_to_its_extra() -> None:
    readmes = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("packages/*/README.md")}
    assert readmes | {"README.md"} == set(ALLOWED)


def test_the_import_reader_sees_plugins_and_top_level_names(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nimport numpy as np\nfrom noisygrad.pinn.optimizers import x\nimport noisygrad as ng\n"
        "from qiskit.circuit.library import y\nimport os.path\n```\n"
    )
    assert _imports(page) == {"numpy", "noisygrad.pinn", "noisygrad", "qiskit", "os"}


#: the newcomer's docs pages and the install after which install-check should run each (its venv and extra)
DOCS_IN_FRESH_VENVS = {
    "docs/quickstart.rst": "noisygrad-core alone (venv A)",
    "docs/guides/torch.rst": "noisygrad-core alone (venv A)",
    "docs/guides/bio.rst": "[bio] (venv A)",
    "docs/guides/dsp.rst": "[dsp] (venv A), with padasip and filterpy, which the guide asks for",
    "docs/guides/pinn.rst": "[pinn] (venv A)",
    "docs/guides/quantum.rst": "[quantum] (venv B)",
}


def test_the_newcomers_docs_pages_run_in_the_fresh_venv_of_their_extra() -> None:
    script = INSTALL_CHECK.read_text()
    examples = [line for line in script.splitlines() if line.strip().startswith("examples ")]
    missing = [page for page in DOCS_IN_FRESH_VENVS if not any(page in line for line in examples)]
    assert not missing, missing
