"""Sphinx configuration: API reference from the docstrings, and a gallery that runs examples/*.py.

``make docs`` builds with ``-W`` (every warning is an error). The API pages are generated here at build time
from the installed ``noisygrad`` namespace (the core and every installed plugin), so a new module appears
without editing the docs; modules listed in ``EXCLUDED_MODULES`` are left out.

Which examples the gallery executes is the regular expression in the environment variable
``NOISYGRAD_DOCS_EXECUTE`` (matched against each example's path; default: every example except those in
``NOT_EXECUTED``). The others are rendered as code without their output.
"""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

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
]
exclude_patterns = ["_build", "_gallery_src", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]
html_theme = "alabaster"
html_title = f"noisygrad {release}"
html_static_path: list[str] = []

# Google-style docstrings ("Args:", "Returns:", "Raises:", "Attributes:"). ``Attributes`` of dataclasses
# render as instance-variable fields, so they are not described twice next to autodoc's own members.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
autodoc_default_options = {"members": True, "member-order": "bysource", "show-inheritance": True}
autodoc_typehints = "description"
autodoc_typehints_format = "short"

# Modules left out of the API reference (their docstrings do not yet build without warnings).
EXCLUDED_MODULES: set[str] = set()


def _public_modules() -> list[str]:
    """Every public module of the ``noisygrad`` namespace: the core's and the installed plugins'."""
    names = ["noisygrad"]
    for info in pkgutil.walk_packages(noisygrad.__path__, "noisygrad."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        names.append(info.name)
    return sorted(n for n in set(names) if n not in EXCLUDED_MODULES)


def _write_api_pages() -> None:
    """Write ``api/<module>.rst`` for every public module and ``api/index.rst`` listing them."""
    api = HERE / "api"
    api.mkdir(exist_ok=True)
    for old in api.glob("*.rst"):
        old.unlink()
    modules = _public_modules()
    for name in modules:
        importlib.import_module(name)  # fail here, with the module's name, if it cannot be imported
        title = f"``{name}``"
        body = [title, "=" * len(title), "", f".. automodule:: {name}"]
        if hasattr(importlib.import_module(name), "__path__"):
            # a package re-exports names documented in their own modules: link to them instead
            body += ["   :no-members:", "", _public_names_table(name)]
        (api / f"{name}.rst").write_text("\n".join(body) + "\n")
    core = [m for m in modules if m.count(".") <= 1 and m.split(".")[-1] not in _plugin_names()]
    plugins = [m for m in modules if m not in core]
    lines = ["API reference", "=============", ""]
    lines += ["The public names of the core are importable from ``noisygrad`` itself; each plugin curates its own"]
    lines += ["``noisygrad.<plugin>``. Modules whose name starts with ``_`` are private and not listed.", ""]
    for caption, group in (("Core", core), ("Plugins", plugins)):
        lines += [".. toctree::", f"   :caption: {caption}", "   :maxdepth: 1", ""]
        lines += [f"   {name}" for name in group] + [""]
    (api / "index.rst").write_text("\n".join(lines))


def _plugin_names() -> set[str]:
    from noisygrad import plugins

    return {status.plugin.name for status in plugins.available()}


def _public_names_table(package: str) -> str:
    """A table of a package's ``__all__``, each name linked to the module that defines it."""
    module = importlib.import_module(package)
    rows = []
    for name in sorted(getattr(module, "__all__", [])):
        obj = getattr(module, name)
        home = getattr(obj, "__module__", None) or package
        if any(part.startswith("_") for part in home.split(".")) or home in EXCLUDED_MODULES:
            rows.append(f"   * - ``{package}.{name}``\n     - ``{home}``")
        else:
            rows.append(f"   * - :obj:`{package}.{name} <{home}.{name}>`\n     - :mod:`{home}`")
    if not rows:
        return ""
    head = f".. list-table:: Public names of ``{package}``\n   :header-rows: 1\n\n   * - name\n     - defined in"
    return head + "\n" + "\n".join(rows)


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
