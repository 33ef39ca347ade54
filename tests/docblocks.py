"""The code blocks of the READMEs and the docs pages, found and run as a reader would run them.

Used by ``tests/test_docs_blocks.py`` (every page, in the development venv) and by ``.ci/install-check`` (each
package's README, in the fresh venv of its extra): ``python tests/docblocks.py run FILE`` runs FILE's python
blocks; the module needs nothing but the standard library, so it runs in a venv without pytest.

A block is a fenced block (```` ```lang ````) of a Markdown file or a ``.. code-block:: lang`` of a
reStructuredText file. What happens to it depends on its language:

* ``python``: the blocks of one file run in order, in one namespace, in a fresh process whose working folder is
  a new temporary one (a page's later block may use an earlier block's names, as its reader would). A warning
  that noisygrad raises, or that is attributed to the page's own lines, fails the run: a page must not show
  code that warns.
* ``bash`` / ``console`` / ``shell``: each command is checked by what it is. ``pip install`` lines must be the
  very commands that ``.ci/install-check`` runs (it installs them in fresh venvs); ``make T`` needs a target
  ``T`` in the Makefile; ``python FILE`` and ``bash FILE`` need FILE; ``noisygrad ...`` commands run (exit
  status 0), except in a synopsis block, where each subcommand and each ``--option`` must appear in that
  subcommand's ``--help``.
* ``toml``: parses.
* anything else (``text``, output listings): not code, not run.

A marker right before a block (``<!-- docs-test: ... -->`` in Markdown, ``.. docs-test: ...`` in
reStructuredText; neither is rendered) changes that: ``gpu`` (needs CUDA: skipped where torch sees no GPU),
``synopsis`` (a command summary with placeholders, checked as above), ``skip: REASON`` (not run; a reason is
required).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ("python", "py", "python3")
SHELL = ("bash", "console", "shell", "sh")
MARKERS = ("gpu", "synopsis", "skip")
#: generated or external pages: their blocks are not the reader's, or another test runs them
GENERATED = ("docs/_build", "docs/api", "docs/auto_examples", "docs/_gallery_src", "docs/sg_execution_times.rst")


@dataclass(frozen=True)
class Block:
    """One code block: where it is, its language, its marker (``""`` for none) and its code."""

    path: Path
    line: int
    language: str
    marker: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path}:{self.line}"


_FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
_MD_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
_RST_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+(?:code-block|code|sourcecode)::\s*(\S*)\s*$")
_RST_MARKER = re.compile(r"^\s*\.\.\s+docs-test:\s*(.*?)\s*$")


def _check_marker(marker: str, where: str) -> str:
    kind = marker.split(":", 1)[0].strip()
    if kind not in MARKERS:
        raise ValueError(f"{where}: unknown docs-test marker {marker!r} (allowed: {', '.join(MARKERS)})")
    if kind == "skip" and not marker.partition(":")[2].strip():
        raise ValueError(f"{where}: 'docs-test: skip' needs a reason ('docs-test: skip: why')")
    return marker


def _previous_marker(lines: list[str], index: int, pattern: re.Pattern[str], path: Path) -> str:
    """The marker on the nearest non-blank line above ``lines[index]``, or ``""``."""
    j = index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    match = pattern.match(lines[j]) if j >= 0 else None
    return _check_marker(match.group(1), f"{path}:{j + 1}") if match else ""


def markdown_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, language = match.group(1), match.group(2).lower()
        end = i + 1
        while end < len(lines) and not re.match(rf"^{indent}```\s*$", lines[end]):
            end += 1
        if end == len(lines):
            raise ValueError(f"{path}:{i + 1}: a code fence is never closed")
        body = "\n".join(line[len(indent) :] for line in lines[i + 1 : end])
        marker = _previous_marker(lines, i, _MD_MARKER, path)
        blocks.append(Block(path, i + 1, language, marker, body + "\n"))
        i = end + 1
    return blocks


def rst_blocks(path: Path) -> list[Block]:
    """The ``code-block`` directives of a reStructuredText file (their options skipped)."""
    lines = path.read_text().splitlines()
    blocks = []
    for i, line in enumerate(lines):
        match = _RST_DIRECTIVE.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        j = i + 1
        while j < len(lines) and re.match(rf"^\s{{{indent + 1},}}:[\w-]+:", lines[j]):
            j += 1  # directive options (:caption:, :linenos:)
        body: list[str] = []
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            body.append(lines[j])
            j += 1
        while body and not body[-1].strip():
            body.pop()
        text = "\n".join(body)
        depth = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
        code = "\n".join(b[depth:] for b in text.splitlines())
        marker = _previous_marker(lines, i, _RST_MARKER, path)
        blocks.append(Block(path, i + 1, match.group(2).lower() or "python", marker, code.strip("\n") + "\n"))
    return blocks


def blocks_of(path: Path) -> list[Block]:
    """Every code block of a Markdown or reStructuredText file."""
    return markdown_blocks(path) if path.suffix == ".md" else rst_blocks(path)


def pages(root: Path = ROOT) -> list[Path]:
    """Every README and every docs page a reader sees (generated pages left out)."""
    found = [root / "README.md", *sorted(root.glob("packages/*/README.md"))]
    for path in sorted((root / "docs").rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.suffix in (".md", ".rst") and not any(rel == g or rel.startswith(g + "/") for g in GENERATED):
            found.append(path)
    return [p for p in found if p.is_file()]


def cuda_available() -> bool:
    """Whether torch sees a GPU (False where torch is not installed)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# ----------------------------------------------------------------------------------------------------- python


class DocWarning(AssertionError):
    """A page's code warned: noisygrad's own warning, or one attributed to the page's lines."""


def run_python(path: Path, *, gpu: bool | None = None) -> int:
    """Run ``path``'s python blocks in order in one namespace, here and now; returns how many ran.

    Blocks marked ``gpu`` run only where ``gpu`` (default: :func:`cuda_available`); ``skip`` blocks never.
    """
    gpu = cuda_available() if gpu is None else gpu
    namespace: dict[str, object] = {"__name__": "__main__"}
    ran = 0
    for block in blocks_of(path):
        if block.language not in PYTHON or block.marker.startswith("skip") or (block.marker == "gpu" and not gpu):
            continue
        # line numbers of tracebacks point into the page itself
        source = "\n" * block.line + block.code
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(compile(source, str(path), "exec"), namespace)
        for w in caught:
            own = getattr(w.category, "__module__", "").startswith("noisygrad") or w.filename == str(path)
            text = f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}"
            if own:
                raise DocWarning(f"{block.where}: the page's code warned: {text}")
            print(f"(a warning from a dependency, not failed on) {text}", file=sys.stderr)
        ran += 1
    return ran


def run_python_in_subprocess(
    path: Path, *, timeout: float, gpu: bool | None = None
) -> subprocess.CompletedProcess[str]:
    """:func:`run_python` in a fresh interpreter (this one) whose working folder is a new temporary folder."""
    args = [sys.executable, str(Path(__file__).resolve()), "run", str(path.resolve())]
    if gpu is not None:
        args += ["--gpu", "yes" if gpu else "no"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "MPLBACKEND": "Agg"}
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------------------------------------------------- shell


def shell_commands(code: str) -> list[str]:
    """The commands of a shell block: comments stripped, continuation lines joined, a ``$ `` prompt removed."""
    joined = re.sub(r"\s*\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        command = _strip_comment(line).strip()
        if command:
            commands.append(command)
    return commands


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` inside quotes is kept)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def normalise(command: str) -> str:
    """A command with its whitespace collapsed, for comparing documented and scripted commands."""
    return " ".join(command.split())


def makefile_targets(root: Path = ROOT) -> set[str]:
    return set(re.findall(r"^([\w.-]+)\s*:(?!=)", (root / "Makefile").read_text(), flags=re.M))


def documented_installs(script: Path) -> set[str]:
    """The ``pip install`` commands that an install script runs as documented.

    The script runs each one as ``install VENV "pip install ARGS"`` (the documented text itself, with CI's pins
    added), or marks a command it runs another way (a dry run) with a ``# documented: pip install ARGS`` comment.
    """
    text = script.read_text()
    found = re.findall(r'^\s*install \S+ "(pip install [^"]*)"', text, flags=re.M)
    found += re.findall(r"^\s*# documented: (pip install .*)$", text, flags=re.M)
    return {normalise(m) for m in found}


def check_shell_block(block: Block, *, install_script: Path, run_cli: bool = True, timeout: float = 120) -> None:
    """Check (or run) each command of a shell block, as the module docstring says; raise AssertionError."""
    installs = documented_installs(install_script)
    targets = makefile_targets()
    for command in shell_commands(block.code):
        words = shlex.split(command)
        head = words[0]
        if words[:2] == ["pip", "install"]:
            assert normalise(command) in installs, (
                f"{block.where}: `{command}` is not one of the commands {install_script.name} installs "
                "in a fresh venv (mark it there with '# documented: ...')"
            )
        elif head == "make":
            missing = [t for t in words[1:] if not t.startswith("-") and "=" not in t and t not in targets]
            assert not missing, f"{block.where}: `{command}`: no Makefile target {missing}"
        elif head in ("python", "python3", "bash") and len(words) > 1:
            target = next((w for w in words[1:] if not w.startswith("-")), "")
            if words[1] == "-m":
                continue
            assert (ROOT / target).is_file(), f"{block.where}: `{command}`: no file {target}"
        elif head == "noisygrad":
            if block.marker == "synopsis":
                _check_synopsis(block, words)
            elif run_cli:
                _run_cli(block, command, timeout)
        else:
            raise AssertionError(
                f"{block.where}: `{command}` is no command this test knows how to check; "
                "mark the block ('docs-test: skip: why') or make it one of pip install, make, python, bash, noisygrad"
            )


def _noisygrad() -> list[str]:
    exe = Path(sys.executable).with_name("noisygrad")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "noisygrad.tour"]


@functools.cache
def _help(subcommand: str | None) -> tuple[int, str, str]:
    """``noisygrad [SUBCOMMAND] --help``: exit status, output, errors (once per subcommand)."""
    args = [*_noisygrad(), *([subcommand] if subcommand else []), "--help"]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    return done.returncode, done.stdout, done.stderr


def _check_synopsis(block: Block, words: list[str]) -> None:
    subcommand = words[1] if len(words) > 1 and not words[1].startswith(("-", "[")) else None
    code, out, err = _help(subcommand)
    assert code == 0, f"{block.where}: `noisygrad {subcommand or ''} --help` failed:\n{err}"
    for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*|-[a-zA-Z])\b", " ".join(words[1:])):
        assert option in out, f"{block.where}: `noisygrad {subcommand}` has no option {option}"


def _run_cli(block: Block, command: str, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as cwd:
        args = _noisygrad() + shlex.split(command)[1:]
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{block.where}: `{command}` exited {done.returncode}:\n{done.stderr[-2000:]}"


def check_toml_block(block: Block) -> None:
    try:
        tomllib.loads(block.code)
    except tomllib.TOMLDecodeError as exc:
        raise AssertionError(f"{block.where}: the TOML does not parse: {exc}") from exc


# ----------------------------------------------------------------------------------------------------- command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a page's python blocks here, in order, in one namespace")
    run.add_argument("path", type=Path)
    run.add_argument("--gpu", choices=("auto", "yes", "no"), default="auto", help="run blocks marked gpu")
    sub.add_parser("list", help="every page and its blocks")
    args = parser.parse_args(argv)
    if args.command == "list":
        for page in pages():
            for block in blocks_of(page):
                print(f"{block.where}\t{block.language or '-'}\t{block.marker or '-'}")
        return 0
    gpu = None if args.gpu == "auto" else args.gpu == "yes"
    ran = run_python(args.path, gpu=gpu)
    print(f"{args.path}: {ran} python block(s) ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
