"""The layout's rules, held by tests: what may import what, one public list, no code copied between packages.

* The library (everything in the core outside ``noisygrad/tour`` and ``noisygrad/testing``) never imports the
  command's application (``noisygrad.tour``), so ``noisygrad-core`` without its ``tour`` extra stays a library.
* No plugin imports a private module of the core (a module or package whose name starts with ``_``): plugins
  use the core's public modules (``noisygrad.checks``, ``noisygrad.rng``, ``noisygrad.tour.kit``, ...).
* ``noisygrad.__all__`` is the one list of public names: each resolves to an object defined where the list says.
* No block of six or more lines of code stands in two packages (the core and a plugin, or two plugins).
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import noisygrad

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "core": ROOT / "packages/core/src/noisygrad",
    **{p: ROOT / f"packages/{p}/src/noisygrad/{p}" for p in ("pinn", "quantum", "dsp", "bio")},
}
APPLICATION = ("tour", "testing")  # the core's folders that are not the library
BLOCK = 6


def _sources(package: str) -> list[Path]:
    return sorted(PACKAGES[package].rglob("*.py"))


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import in ``path`` (``from a.b import c`` also yields ``a.b.c``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_the_library_never_imports_the_application():
    core = PACKAGES["core"]
    offenders = []
    for path in _sources("core"):
        part = path.relative_to(core).parts[0]
        if part in APPLICATION or (path.name == "__init__.py" and path.parent == core):
            continue  # noisygrad/__init__ re-exports Finding and Curve lazily, on first use
        for line, module in _imported_modules(path):
            if module == "noisygrad.tour" or module.startswith("noisygrad.tour."):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not offenders, "the library imports the application:\n" + "\n".join(offenders)


def test_no_plugin_imports_a_private_core_module():
    offenders = []
    for plugin in ("pinn", "quantum", "dsp", "bio"):
        for path in _sources(plugin):
            for line, module in _imported_modules(path):
                parts = module.split(".")
                if parts[0] != "noisygrad" or len(parts) < 2 or parts[1] in PACKAGES:
                    continue
                # the last part may be a name imported from a public module (``from noisygrad.x import _y``)
                private = [p for p in parts[1:-1] if p.startswith("_")]
                if private or (len(parts) == 2 and parts[1].startswith("_")):
                    offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not offenders, "plugins import private core modules:\n" + "\n".join(offenders)


def test_the_public_list_is_one_list_that_resolves():
    exports = noisygrad._EXPORTS
    assert noisygrad.__all__ == sorted(exports)
    for name, module_name in exports.items():
        module = importlib.import_module(f"noisygrad.{module_name}")
        obj = getattr(module, name)
        assert getattr(noisygrad, name) is obj
        if inspect.isclass(obj) or inspect.isfunction(obj):
            where = f"{name} is listed in {module.__name__}, defined in {obj.__module__}"
            assert obj.__module__ == module.__name__, where
        public = getattr(module, "__all__", None)
        if public is not None:
            assert name in public, f"{module.__name__}.__all__ does not list {name}"


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """The lines that count for copying: stripped, without blanks, comments, imports, docstrings and lines of
    punctuation alone."""
    text = path.read_text()
    docstring_lines: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstring_lines.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = " ".join(raw.split())
        if (
            not line
            or number in docstring_lines
            or line.startswith(("#", "import ", "from "))
            or not any(c.isalnum() for c in line)
        ):
            continue
        out.append((number, line))
    return out


def test_no_block_of_code_is_copied_between_packages():
    seen: dict[tuple[str, ...], tuple[str, Path, int]] = {}
    copies = []
    for package in PACKAGES:
        for path in _sources(package):
            lines = _code_lines(path)
            for i in range(len(lines) - BLOCK + 1):
                window = tuple(line for _, line in lines[i : i + BLOCK])
                first = seen.setdefault(window, (package, path, lines[i][0]))
                if first[0] != package:
                    copies.append(
                        f"{path.relative_to(ROOT)}:{lines[i][0]} repeats {first[1].relative_to(ROOT)}:{first[2]}"
                    )
    assert not copies, f"blocks of {BLOCK} lines copied between packages:\n" + "\n".join(copies[:20])
