"""Sphinx configuration: the guides, a curated API reference of the public names, and a gallery that runs
examples/*.py.

``make docs`` builds with ``-W`` (every warning is an error). Pages are reStructuredText or Markdown (MyST:
``architecture.md``). The API reference is written here at build time from the public names only:
``noisygrad.__all__`` (grouped by what the names are for) and each installed plugin's ``__all__``, each name
documented where a user imports it (``noisygrad.Adam``, ``noisygrad.quantum.SPSA``), never the private modules.

Which examples the gallery executes is the regular expression in the environment variable
``NOISYGRAD_DOCS_EXECUTE`` (matched against each example's path; default: every example except those in
``NOT_EXECUTED``). The others are rendered as code without their output.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import matplotlib

matplotlib.use("Agg")

from sphinx.pycode import ModuleAnalyzer

import noisygrad

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

project = "noisygrad"
author = "the noisygrad developers"
copyright = "the noisygrad developers"
release = noisygrad.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_gallery_src", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]
html_theme = "alabaster"
html_title = f"noisygrad {release}"
html_static_path: list[str] = []
html_theme_options = {"description": "optimisation on noisy gradient estimates", "page_width": "1320px"}
# ``docs/architecture.md`` links to files of the repository (``../README.md``): MyST leaves those as plain links.
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing"]

# Google-style docstrings ("Args:", "Returns:", "Raises:", "Attributes:"). ``Attributes`` of dataclasses
# render as instance-variable fields, so they are not described twice next to autodoc's own members.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
autodoc_default_options = {"members": True, "member-order": "bysource", "show-inheritance": True}
autodoc_typehints = "description"
autodoc_typehints_format = "short"

#: The core's public names, grouped by the module they come from (first matching prefix): (page, title, prefixes).
CORE_SECTIONS: list[tuple[str, str, tuple[str, ...]]] = [
    ("objectives", "Objectives", ("noisygrad.objectives", "noisygrad.glm")),
    ("estimators", "Gradient estimators", ("noisygrad.estimators",)),
    ("optimizers", "Optimizers and schedules", ("noisygrad.optim", "noisygrad.schedules")),
    ("loop", "The loop: minimize and its parts", ("noisygrad.loop", "noisygrad.loop_parts")),
    ("adapters", "torch.optim and scipy.optimize adapters", ("noisygrad.adapters",)),
    ("noise", "Gradient noise: statistics and theory", ("noisygrad.noise",)),
    ("distributed", "Data-parallel training", ("noisygrad.distributed",)),
    ("molecules", "Molecules", ("noisygrad.molecules",)),
    (
        "runs",
        "Sweeps, seeds, checks and findings",
        ("noisygrad.sweeps", "noisygrad.rng", "noisygrad.checks", "noisygrad.tour"),
    ),
]
#: The plugins documented, in this order, when installed: (package, title).
PLUGINS = [
    ("noisygrad.quantum", "noisygrad.quantum: VQE with shot noise"),
    ("noisygrad.pinn", "noisygrad.pinn: PINNs on DeepXDE"),
    ("noisygrad.dsp", "noisygrad.dsp: adaptive and Kalman filters"),
    ("noisygrad.bio", "noisygrad.bio: pruning, morphogens, evolution"),
]


def _home(package: ModuleType, name: str, obj: object) -> str:
    """The module that defines ``package.name``: its ``__module__``, or for a constant the submodule that holds
    the same object (the core's ``_EXPORTS`` says it directly)."""
    exports = getattr(package, "_EXPORTS", {})
    if name in exports:
        return f"{package.__name__}.{exports[name]}"
    module = getattr(obj, "__module__", None)
    if isinstance(module, str) and not inspect.ismodule(obj) and module.startswith(package.__name__):
        return module
    for loaded in sorted(sys.modules):
        if loaded.startswith(package.__name__ + ".") and vars(sys.modules[loaded]).get(name) is obj:
            return loaded
    return package.__name__


def _entry(package: ModuleType, name: str) -> list[str]:
    """The autodoc directive that documents ``package.name`` under that public name."""
    obj = getattr(package, name)
    full = f"{package.__name__}.{name}"
    if inspect.ismodule(obj):
        return [f".. automodule:: {obj.__name__}", "   :no-index:" if obj.__name__ != full else "", ""]
    if inspect.isclass(obj):
        kind = "autoexception" if issubclass(obj, BaseException) else "autoclass"
        return [f".. {kind}:: {full}", ""]
    if callable(obj):
        return [f".. autofunction:: {full}", ""]
    # a constant: its value, and the ``#:`` comment where it is defined
    home = _home(package, name, obj)
    doc = ModuleAnalyzer.for_module(home).find_attr_docs().get(("", name), [])
    lines = [f".. py:data:: {full}", f"   :value: {obj!r}", ""]
    return lines + [f"   {line}" for line in doc] + [""]


def _page(path: Path, title: str, intro: list[str], entries: list[str]) -> None:
    path.write_text("\n".join([title, "=" * len(title), "", *intro, "", *entries]).rstrip() + "\n")


def _write_api_pages() -> None:
    """Write ``api/*.rst``: the core's public names by section, then each installed plugin's ``__all__``."""
    api = HERE / "api"
    api.mkdir(exist_ok=True)
    for old in api.glob("*.rst"):
        old.unlink()
    names = sorted(noisygrad.__all__, key=str.lower)
    placed: dict[str, list[str]] = {page: [] for page, _, _ in CORE_SECTIONS}
    for name in names:
        home = _home(noisygrad, name, getattr(noisygrad, name))
        page = next((p for p, _, prefixes in CORE_SECTIONS if home.startswith(prefixes)), None)
        if page is None:
            raise RuntimeError(f"noisygrad.{name} (from {home}) falls in no section of CORE_SECTIONS in docs/conf.py")
        placed[page].append(name)
    core_pages = []
    for page, title, _ in CORE_SECTIONS:
        if not placed[page]:
            continue
        entries = [line for name in placed[page] for line in _entry(noisygrad, name)]
        intro = [
            ".. currentmodule:: noisygrad",
            "",
            "Imported from ``noisygrad`` itself: " + ", ".join(f"``{n}``" for n in placed[page]) + ".",
        ]
        _page(api / f"core-{page}.rst", title, intro, entries)
        core_pages.append(f"core-{page}")
    plugin_pages = []
    for package_name, title in PLUGINS:
        try:
            package = importlib.import_module(package_name)
        except ImportError:
            continue  # not installed here: the reference documents what is installed
        public = sorted(package.__all__, key=str.lower)
        summary = (package.__doc__ or "").strip().split("\n\n")[0]
        intro = [
            f".. currentmodule:: {package_name}",
            "",
            summary,
            "",
            f"Imported from ``{package_name}``: " + ", ".join(f"``{n}``" for n in public) + ".",
        ]
        entries = [line for name in public for line in _entry(package, name)]
        _page(api / f"{package_name}.rst", title, intro, entries)
        plugin_pages.append(package_name)
    lines = ["API reference", "=============", ""]
    lines += ["The public names only: the core's are importable from ``noisygrad`` itself (its ``__all__``), each "]
    lines += ["plugin's from ``noisygrad.<plugin>`` (its ``__all__``). Everything else is internal and may change.", ""]
    for caption, group in (("The core (noisygrad)", core_pages), ("The plugins", plugin_pages)):
        lines += [".. toctree::", f"   :caption: {caption}", "   :maxdepth: 1", ""]
        lines += [f"   {name}" for name in group] + [""]
    (api / "index.rst").write_text("\n".join(lines))


_write_api_pages()

# Examples the gallery shows without running them (a regular expression on the file name), and why; each
# still runs in tests/test_examples.py.
NOT_EXECUTED: dict[str, str] = {}


def _execute_pattern() -> str:
    """Match every example path except those matched by ``NOT_EXECUTED``."""
    skipped = "|".join(NOT_EXECUTED)
    return rf"^(?!.*/({skipped})$).*" if skipped else r".*"


GALLERY_HEADER = """Examples
========

Short scripts, one idea each, named ``<package>_<topic>.py``. Each runs in the test suite
(``tests/test_examples.py``) and, when the docs are built, here with its output and figures.
"""
_TITLE_RULE = re.compile(r"^\s*([=\-~^\"'`#*+]{3,})\s*$")


def _stage_examples() -> Path:
    """Copy ``examples/*.py`` to ``_gallery_src/``, underlining each docstring's first line as a title.

    sphinx-gallery takes an example's title from a reStructuredText heading at the top of its docstring;
    the examples only promise that the docstring's first line is the title, so the heading is made here.
    """
    staged = HERE / "_gallery_src"
    staged.mkdir(exist_ok=True)
    for old in staged.iterdir():
        old.unlink()
    (staged / "GALLERY_HEADER.rst").write_text(GALLERY_HEADER)
    for script in sorted((ROOT / "examples").glob("*.py")):
        source = script.read_text()
        doc = ast.get_docstring(ast.parse(source), clean=False)
        if doc is not None:
            lines = doc.strip("\n").splitlines()
            if len(lines) < 2 or not _TITLE_RULE.match(lines[1]):
                title = lines[0].strip()
                heading = f"{title}\n{'=' * len(title)}\n"
                source = source.replace(doc, "\n" + heading + "\n".join(lines[1:]) + "\n", 1)
        (staged / script.name).write_text(source)
    return staged


sphinx_gallery_conf = {
    "examples_dirs": str(_stage_examples()),
    "gallery_dirs": "auto_examples",
    "filename_pattern": os.environ.get("NOISYGRAD_DOCS_EXECUTE", _execute_pattern()),
    "ignore_pattern": r"(^|/)_",
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "min_reported_time": 1,
}


_SHARED_FIELD = re.compile(r"^(\s*):(ivar|param|var) ([\w, ]+,[\w ]+):(.*)$")


def _split_shared_fields(app: object, what: str, name: str, obj: object, options: object, lines: list[str]) -> None:
    """``Attributes: a, b: text`` becomes one ``:ivar a, b:`` field in napoleon, whose name Sphinx then looks up as
    one cross-reference (``a, b`` fails, or matches another class's ``a``): give each name its own field."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _SHARED_FIELD.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent, kind, names, text = match.groups()
        j = i + 1  # the field's continuation lines are indented deeper than the field
        while j < len(lines) and lines[j].strip() and len(lines[j]) - len(lines[j].lstrip()) > len(indent):
            j += 1
        for field in (n.strip() for n in names.split(",")):
            if field:
                out += [f"{indent}:{kind} {field}:{text}", *lines[i + 1 : j]]
        i = j
    lines[:] = out


def setup(app: object) -> None:
    app.connect("autodoc-process-docstring", _split_shared_fields, priority=600)  # type: ignore[attr-defined]
