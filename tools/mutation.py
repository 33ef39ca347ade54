"""A small, bounded mutation tester for this monorepo's ``packages/<name>/src/noisygrad/...`` layout.

Why not mutmut: mutmut 3 derives a mutant's module name from its path with one ``src/`` removed, so this
layout needs a staging copy per package, and it rewrites the sources it mutates. This runner never touches a
file: each mutant is an edited AST of one module, compiled in memory and served by an import hook to a forked
child that runs a chosen subset of the tests (``pytest -x``). The parent imports torch, numpy, numba and the
package once, so a mutant costs its tests, not the interpreter's start.

Operators (each one mutant per site):

* ``cmp``: a comparison flipped (``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``, ``is`` <-> ``is not``,
  ``in`` <-> ``not in``);
* ``binop`` / ``augop``: arithmetic swapped (``+`` <-> ``-``, ``*`` <-> ``/``, ``//`` -> ``/``, ``**`` -> ``*``,
  ``%`` -> ``*``), in expressions and augmented assignments;
* ``boolop``: ``and`` <-> ``or``; ``not``: ``not x`` -> ``x``; ``neg``: ``-x`` -> ``x``;
* ``const``: a number ``n`` -> ``n + 1``, ``True`` <-> ``False``, an identifier-like string ``s`` -> ``"XX" + s``;
* ``kwdrop``: one keyword argument of a call dropped;
* ``none``: the value of a plain assignment replaced by ``None``.

Left alone, because a change there is a message, not behaviour: docstrings, f-strings, strings with a space,
type annotations, the argument name given to a ``check_*``
/``as_array`` call, and everything inside ``raise`` statements and ``warnings.warn(...)`` calls.

Usage::

    python tools/mutation.py --config .ci/mutation.toml                         # every mutant of every target
    python tools/mutation.py --config .ci/mutation.toml --only schedules        # one target
    python tools/mutation.py --config .ci/mutation.toml --sample 10 --seed 18 --threshold 0.8   # the CI check
    python tools/mutation.py --config .ci/mutation.toml --list --show --only sgd   # the mutants and diffs, not run
    python tools/mutation.py --config .ci/mutation.toml --only adam --survivors-of adam.json  # rerun survivors

The config (TOML) lists targets: ``[[target]]`` with ``name``, ``module`` (a path to the source file) and
``tests`` (pytest node ids, files or options such as ``-k EXPR``, run with ``-m "not slow" -x``), ``jit = false``
for a module with numba kernels of its own (they then run uncompiled, see :func:`_child`), and ``preload``: modules
that the parent imports once, for a dependency that the module imports lazily (``["deepxde"]``); the config may name an
``equivalents`` file (next to it): equivalent and message-only mutants, each with a reason (:func:`read_listed`),
which the report's second score and ``--threshold`` leave out and ``--sample`` never draws. Mutants are named by
:attr:`Mutant.key`, an id that edits elsewhere in the module leave as it is.
"""

from __future__ import annotations

import argparse
import ast
import copy
import difflib
import hashlib
import io
import json
import os
import random
import signal
import sys
import time
import tokenize
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_CMP_SWAP: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_BIN_SWAP: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Pow: ast.Mult,
    ast.Mod: ast.Mult,
}


@dataclass(frozen=True)
class Mutant:
    """One mutation site: the index of its node in ``ast.walk`` order, the operator, and what it does.

    ``scope`` (the enclosing ``Class.function``), ``text`` (the site's source line, stripped) and ``occurrence``
    (how many earlier sites share scope, text, operator and detail) make :attr:`key`, an id that an unrelated edit
    elsewhere in the module (lines added above, another function changed) leaves as it is; ``index`` and ``line``
    locate the site in the current source only.
    """

    target: str
    index: int
    op: str
    detail: str
    line: int
    scope: str = ""
    text: str = ""
    occurrence: int = 0

    @property
    def key(self) -> str:
        """``target:scope:hash``: the stable id the equivalents file and ``--survivors-of`` use."""
        digest = hashlib.sha1(f"{self.scope}|{self.text}|{self.op}|{self.detail}|{self.occurrence}".encode())
        return f"{self.target}:{self.scope or '<module>'}:{digest.hexdigest()[:10]}"


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes no operator touches: docstrings, annotations, raise statements, warnings.warn calls."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                mark(first)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            mark(node.returns)
            for arg in [
                *node.args.args,
                *node.args.kwonlyargs,
                *node.args.posonlyargs,
                node.args.vararg,
                node.args.kwarg,
            ]:
                if arg is not None:
                    mark(arg.annotation)
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, ast.Raise | ast.JoinedStr | ast.Assert):
            mark(node)
        if isinstance(node, ast.Call) and ast.unparse(node.func) in {"warnings.warn", "warn"}:
            mark(node)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            mark(node)
        # the argument name a check_*() or as_array() call puts in its error message
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = ast.unparse(node.func).rsplit(".", 1)[-1]
            if func.startswith(("check_", "as_array", "require_kind")):
                mark(node.args[0])
    return skip


def _scopes(tree: ast.Module) -> dict[int, str]:
    """id of every node -> the dotted name of the class/function it sits in (``""`` at module level)."""
    out: dict[int, str] = {}

    def visit(node: ast.AST, scope: str) -> None:
        out[id(node)] = scope
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                inner = f"{scope}.{child.name}" if scope else child.name
            visit(child, inner)

    visit(tree, "")
    return out


def _sites(tree: ast.Module) -> list[tuple[int, str, str, int]]:
    """``(walk index, operator, detail, line)`` of every mutation of ``tree``."""
    skip = _skipped_nodes(tree)
    out: list[tuple[int, str, str, int]] = []
    for i, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare):
            for j, op in enumerate(node.ops):
                if type(op) in _CMP_SWAP:
                    out.append((i, "cmp", f"{j}:{type(op).__name__}->{_CMP_SWAP[type(op)].__name__}", line))
        elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _BIN_SWAP:
            kind = "binop" if isinstance(node, ast.BinOp) else "augop"
            out.append((i, kind, f"{type(node.op).__name__}->{_BIN_SWAP[type(node.op)].__name__}", line))
        elif isinstance(node, ast.BoolOp):
            out.append((i, "boolop", type(node.op).__name__, line))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append((i, "not", "drop not", line))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            out.append((i, "neg", "drop minus", line))
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                out.append((i, "const", f"{value}->{not value}", line))
            elif isinstance(value, int | float) and not isinstance(value, complex):
                out.append((i, "const", f"{value!r}->{value + 1!r}", line))
            elif isinstance(value, str) and value and " " not in value:
                out.append((i, "const", f"{value!r}->'XX{value}'", line))
        elif isinstance(node, ast.Call):
            for j, kw in enumerate(node.keywords):
                if kw.arg is not None:
                    out.append((i, "kwdrop", f"{j}:{kw.arg}", line))
        elif (
            isinstance(node, ast.Assign)
            and not (isinstance(node.value, ast.Constant) and node.value.value is None)
            and all(isinstance(t, ast.Name | ast.Attribute | ast.Subscript) for t in node.targets)
        ):
            out.append((i, "none", "value->None", line))
    return out


def _parents(tree: ast.AST) -> dict[int, tuple[ast.AST, str, int | None]]:
    out: dict[int, tuple[ast.AST, str, int | None]] = {}
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if isinstance(value, list):
                for k, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        out[id(item)] = (parent, field, k)
            elif isinstance(value, ast.AST):
                out[id(value)] = (parent, field, None)
    return out


def mutate(tree: ast.Module, mutant: Mutant) -> ast.Module:
    """A copy of ``tree`` with ``mutant`` applied (``tree`` itself is left as it is)."""
    tree = copy.deepcopy(tree)
    node = list(ast.walk(tree))[mutant.index]
    if mutant.op == "cmp":
        j = int(mutant.detail.split(":")[0])
        assert isinstance(node, ast.Compare)
        node.ops[j] = _CMP_SWAP[type(node.ops[j])]()
    elif mutant.op in ("binop", "augop"):
        assert isinstance(node, ast.BinOp | ast.AugAssign)
        node.op = _BIN_SWAP[type(node.op)]()
    elif mutant.op == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif mutant.op in ("not", "neg"):
        assert isinstance(node, ast.UnaryOp)
        parent, field, k = _parents(tree)[id(node)]
        if k is None:
            setattr(parent, field, node.operand)
        else:
            getattr(parent, field)[k] = node.operand
    elif mutant.op == "const":
        assert isinstance(node, ast.Constant)
        value = node.value
        if isinstance(value, bool):
            node.value = not value
        elif isinstance(value, int | float):
            node.value = value + 1
        else:
            node.value = "XX" + str(value)
    elif mutant.op == "kwdrop":
        assert isinstance(node, ast.Call)
        del node.keywords[int(mutant.detail.split(":")[0])]
    elif mutant.op == "none":
        assert isinstance(node, ast.Assign)
        node.value = ast.Constant(None)
    else:  # pragma: no cover - the operators above are the only ones _sites emits
        raise ValueError(f"unknown operator {mutant.op!r}")
    return ast.fix_missing_locations(tree)


def module_name(path: Path) -> str:
    """``packages/core/src/noisygrad/optim/sgd.py`` -> ``noisygrad.optim.sgd``."""
    parts = path.resolve().with_suffix("").parts
    if "src" not in parts:
        raise ValueError(f"module must sit under a src/ folder, got {path}")
    return ".".join(parts[len(parts) - parts[::-1].index("src") :])


def mutants_of(name: str, path: Path) -> list[Mutant]:
    """Every mutant of the module at ``path``, in ``ast.walk`` order, each with its stable :attr:`Mutant.key`."""
    source = path.read_text()
    tree = ast.parse(source, str(path))
    lines = source.splitlines()
    nodes = list(ast.walk(tree))
    scopes = _scopes(tree)
    seen: dict[tuple[str, str, str, str], int] = {}
    out: list[Mutant] = []
    for i, op, detail, line in _sites(tree):
        scope = scopes.get(id(nodes[i]), "")
        text = _code_of(lines[line - 1]) if 0 < line <= len(lines) else ""
        slot = (scope, text, op, detail)
        out.append(Mutant(name, i, op, detail, line, scope, text, seen.get(slot, 0)))
        seen[slot] = seen.get(slot, 0) + 1
    return out


def _code_of(line: str) -> str:
    """``line`` without its comment, whitespace collapsed; a reworded comment leaves the ids of its line as they are."""
    cut = len(line)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            if tok.type == tokenize.COMMENT:
                cut = tok.start[1]
                break
    except (tokenize.TokenError, SyntaxError):  # a line of a multi-line string or bracket: keep it whole
        pass
    return " ".join(line[:cut].split())


KINDS = ("equivalent", "message")


def read_listed(path: Path, targets: set[str]) -> dict[str, dict[str, str]]:
    """The listed mutants of an equivalents file: ``key -> {kind, reason, ...}``.

    Each ``[[mutant]]`` entry has ``target``, ``id`` (the hash part of :attr:`Mutant.key`), ``kind``
    (``equivalent``: no test can tell it from the original; ``message``: it changes only an error or warning
    message, or which of two equally documented errors is raised), and a one-line ``reason``; ``where`` and
    ``change`` (the source line and the mutation) are for the reader.
    """
    data = tomllib.loads(path.read_text())
    out: dict[str, dict[str, str]] = {}
    for k, entry in enumerate(data.get("mutant", [])):
        missing = [f for f in ("target", "id", "kind", "reason") if not str(entry.get(f, "")).strip()]
        if missing:
            raise ValueError(f"{path}: entry {k} lacks {missing}")
        if entry["kind"] not in KINDS:
            raise ValueError(f"{path}: entry {k} has kind {entry['kind']!r}; allowed: {KINDS}")
        if entry["target"] not in targets:
            raise ValueError(f"{path}: entry {k} names target {entry['target']!r}, not one of {sorted(targets)}")
        key = f"{entry['target']}:{entry['id']}"
        if key in out:
            raise ValueError(f"{path}: entry {k} lists {key} twice")
        out[key] = {name: str(value) for name, value in entry.items()}
    return out


def _listed_key(m: Mutant) -> str:
    """The key of ``m`` in :func:`read_listed`'s dict (``target:hash``, without the scope)."""
    return f"{m.target}:{m.key.rsplit(':', 1)[1]}"


def _child(modname: str, path: Path, code: Any, tests: list[str], log: Path | None, *, jit: bool = True) -> None:
    """In a forked child: serve ``code`` as ``modname``, drop every cached noisygrad module, run the tests.

    ``jit=False`` turns numba's compiler off before the module is imported: its ``@compiled`` kernels then run as
    the mutated Python. With it on, numba's disk cache, which knows a kernel by its file and name, would hand the
    mutant the unmutated kernel compiled earlier.
    """
    import importlib.abc
    import importlib.util

    if not jit:
        import numba

        numba.config.DISABLE_JIT = True

    fd = os.open(str(log) if log else os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)

    class _Loader(importlib.abc.Loader):
        def create_module(self, spec):  # type: ignore[no-untyped-def]
            return None

        def exec_module(self, module):  # type: ignore[no-untyped-def]
            exec(code, module.__dict__)

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, target_path=None, target=None):  # type: ignore[no-untyped-def]
            if fullname != modname:
                return None
            return importlib.util.spec_from_file_location(fullname, str(path), loader=_Loader())

    for name in list(sys.modules):
        # compiled numba kernels stay (reloading them only costs time), unless the mutant is one of them
        if (name == "noisygrad" or name.startswith("noisygrad.")) and ("kernels" not in name or name == modname):
            del sys.modules[name]
    sys.meta_path.insert(0, _Finder())
    import pytest

    code_rc = pytest.main([*tests, "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", "--no-header"])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code_rc))


def _warm(modnames: list[str]) -> None:
    """Import the heavy dependencies, each target's ``preload`` and the packages (for theirs) once, in the parent."""
    import importlib

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.dont_write_bytecode = True
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import torch

    torch.set_num_threads(1)
    # torch imports parts of itself on first use (the optimizer machinery, torch.testing's comparison): seconds
    # that every forked child would pay again; paid once here
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    torch.testing.assert_close(torch.zeros(1), torch.zeros(1))
    for name in modnames:
        importlib.import_module(name)


@dataclass
class Result:
    key: str
    target: str
    line: int
    op: str
    detail: str
    status: str  # killed, survived, timeout, error
    seconds: float
    text: str = ""
    listed: str = ""  # the kind under which the equivalents file lists it, or ""


def _result(m: Mutant, status: str, seconds: float) -> Result:
    return Result(m.key, m.target, m.line, m.op, m.detail, status, seconds, m.text)


_UNJITTED: set[str] = set()  # the targets whose config says ``jit = false`` (see :func:`_child`)


def _run_all(
    jobs: list[tuple[Mutant, Any]],
    modnames: dict[str, tuple[str, Path, list[str]]],
    timeouts: dict[str, float],
    workers: int,
    log_dir: Path | None,
) -> list[Result]:
    """Fork one child per mutant, ``workers`` at a time; a child past its target's timeout counts as killed."""
    pending = list(jobs)
    running: dict[int, tuple[Mutant, float]] = {}
    results: list[Result] = []
    while pending or running:
        while pending and len(running) < workers:
            mutant, code = pending.pop(0)
            modname, path, tests = modnames[mutant.target]
            log = log_dir / f"{mutant.target}-{mutant.index}-{mutant.op}.log" if log_dir else None
            pid = os.fork()
            if pid == 0:
                try:
                    _child(modname, path, code, tests, log, jit=mutant.target not in _UNJITTED)
                finally:
                    os._exit(99)
            running[pid] = (mutant, time.monotonic())
        time.sleep(0.05)
        for pid, (mutant, started) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            elapsed = time.monotonic() - started
            if done == 0:
                if elapsed > timeouts[mutant.target]:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    results.append(_result(mutant, "timeout", elapsed))
                    del running[pid]
                    print("T", end="", flush=True)
                continue
            rc = os.waitstatus_to_exitcode(status)
            # 4: a selected test id was not found. The unmutated run found every one, so the mutant changed what the
            # tests see (its module no longer imports, a test module skips itself, or a public list that parametrizes
            # a test changed). Other statuses are errors; summarize() counts every status but "survived" as killed
            outcome = {0: "survived", 1: "killed"}.get(rc, "killed" if rc in (2, 3, 4) else f"error(rc={rc})")
            results.append(_result(mutant, outcome, elapsed))
            del running[pid]
            mark = {"survived": "S", "killed": "."}.get(outcome, "T" if outcome == "timeout" else "E")
            print(mark, end="", flush=True)
    print()
    return results


def summarize(results: list[Result], full: dict[str, bool]) -> dict[str, dict[str, Any]]:
    """Per target (and ``overall``): mutants, killed, listed, the score, and the score excluding listed mutants.

    The score excluding listed mutants is ``killed / mutants`` over the mutants the equivalents file does not
    list; a listed mutant that a test kills is reported (``listed_killed``) so that its entry can be removed.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in [*full, "overall"]:
        mine = [r for r in results if name == "overall" or r.target == name]
        killed = sum(r.status != "survived" for r in mine)
        unlisted = [r for r in mine if not r.listed]
        unlisted_killed = sum(r.status != "survived" for r in unlisted)
        out[name] = {
            "mutants": len(mine),
            "killed": killed,
            "equivalent": sum(r.listed == "equivalent" for r in mine),
            "message": sum(r.listed == "message" for r in mine),
            "listed_killed": sum(bool(r.listed) and r.status != "survived" for r in mine),
            "survived_unlisted": len(unlisted) - unlisted_killed,
            "score": killed / len(mine) if mine else None,
            "score_excluding_listed": unlisted_killed / len(unlisted) if unlisted else None,
            "full": all(full.values()) if name == "overall" else full[name],
        }
    return out


def _pct(x: float | None) -> str:
    return "  n/a" if x is None else f"{100.0 * x:5.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="TOML with [[target]] name, module, tests")
    parser.add_argument("--only", action="append", default=[], help="target name(s) to run (default: all)")
    parser.add_argument("--sample", type=int, default=0, help="unlisted mutants drawn per target (0: every mutant)")
    parser.add_argument("--seed", type=int, default=18, help="seed of the sample")
    parser.add_argument("--jobs", type=int, default=1, help="children run at once")
    parser.add_argument(
        "--threshold", type=float, default=0.0, help="fail (exit 1) below this kill rate, excluding listed mutants"
    )
    parser.add_argument("--json", type=Path, help="write every result and the scores here")
    parser.add_argument("--log-dir", type=Path, help="keep each mutant's pytest output here")
    parser.add_argument("--list", action="store_true", help="list the mutants (id, line, change, source) and exit")
    parser.add_argument("--show", action="store_true", help="with --list: each mutant's changed lines, as a diff")
    parser.add_argument(
        "--equivalents",
        type=Path,
        help="TOML of equivalent and message-only mutants (default: the config's `equivalents`, next to it)",
    )
    parser.add_argument(
        "--survivors-of",
        type=Path,
        action="append",
        default=[],
        help="a --json file of an earlier run: run only its survivors (the others stay killed)",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.threshold <= 1.0:
        parser.error(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.sample < 0 or args.jobs < 1:
        parser.error("--sample must be >= 0 and --jobs >= 1")

    config = tomllib.loads(args.config.read_text())
    targets = [t for t in config["target"] if not args.only or t["name"] in args.only]
    if not targets:
        parser.error(f"no target named {args.only}; the config has {[t['name'] for t in config['target']]}")
    listed_path = args.equivalents or (args.config.parent / config["equivalents"] if "equivalents" in config else None)
    listed = read_listed(listed_path, {t["name"] for t in config["target"]}) if listed_path else {}
    info: dict[str, tuple[str, Path, list[str]]] = {}
    preload: set[str] = set()  # modules the parent imports first (each target's ``preload``)
    chosen: list[Mutant] = []
    full: dict[str, bool] = {}
    for t in targets:
        path = Path(t["module"])
        info[t["name"]] = (module_name(path), path, list(t["tests"]))
        if not t.get("jit", True):
            _UNJITTED.add(t["name"])
        preload.update(t.get("preload", []))
        every = mutants_of(t["name"], path)
        known = {_listed_key(m) for m in every}
        stale = sorted(k for k in listed if k.startswith(f"{t['name']}:") and k not in known)
        for key in stale:
            print(f"    listed but no longer a mutant (source edited?): {key}  {listed[key].get('where', '')}")
        candidates = [m for m in every if _listed_key(m) not in listed] if args.sample else every
        picked = (
            candidates
            if not args.sample or args.sample >= len(candidates)
            # one generator per target, so that another target's edits or listings leave this sample as it is
            else sorted(
                random.Random(f"{args.seed}:{t['name']}").sample(candidates, args.sample), key=lambda m: m.index
            )
        )
        full[t["name"]] = len(picked) == len(every)
        chosen.extend(picked)
        n_listed = sum(_listed_key(m) in listed for m in every)
        print(f"{t['name']}: {len(picked)} of {len(every)} mutants ({n_listed} listed as equivalent or message-only)")
    earlier: list[dict[str, Any]] = []
    for f in args.survivors_of:
        data = json.loads(f.read_text())
        earlier.extend(data["results"] if isinstance(data, dict) else data)
    if earlier:
        wanted = {r["key"] for r in earlier if r["status"] == "survived"}
        found = {m.key for m in chosen}
        gone = sorted(wanted - found)
        if gone:
            print(f"{len(gone)} earlier survivors are no longer mutants of the current sources (edited since?):")
            for key in gone:
                print(f"    {key}")
        chosen = [m for m in chosen if m.key in wanted]
        full = dict.fromkeys(full, False)
        print(f"rerunning {len(chosen)} earlier survivors")
    if args.list:
        for m in chosen:
            tag = listed.get(_listed_key(m), {}).get("kind", "")
            print(f"{m.key}  line {m.line:>4}  {m.op:<6} {m.detail:<24} {tag and f'[{tag}] '}{m.text}")
            if args.show:
                tree = ast.parse(info[m.target][1].read_text())
                before = ast.unparse(tree).splitlines()
                after = ast.unparse(mutate(tree, m)).splitlines()
                for row in difflib.unified_diff(before, after, lineterm="", n=0):
                    if row.startswith(("-", "+")) and not row.startswith(("---", "+++")):
                        print(f"        {row.strip()}")
        return 0

    _warm(sorted(preload) + sorted({v[0] for v in info.values()}))
    if args.log_dir:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # the unmutated module first: its tests must pass, and their time sets the timeout
    trees = {name: ast.parse(p.read_text(), str(p)) for name, (_, p, _) in info.items()}
    broken: list[str] = []
    # every target's baseline, ``--jobs`` at a time (a serial pass over a hundred targets costs minutes)
    timeouts = dict.fromkeys(info, 600.0)
    baselines = {
        name: (Mutant(name, -1, "none", "baseline", 0), compile(trees[name], str(path), "exec"))
        for name, (_, path, _) in info.items()
    }
    bases = {r.target: r for r in _run_all(list(baselines.values()), info, timeouts, args.jobs, args.log_dir)}
    print()
    for name in info:
        base = bases[name]
        if base.status != "survived":  # once more, alone: a test may have met a file being edited, or a loaded machine
            base = _run_all([baselines[name]], info, timeouts, 1, args.log_dir)[0]
        if base.status != "survived":
            print(f"{name}: the tests fail on the unmutated module ({base.status}); its mutants are not run")
            broken.append(name)
            continue
        timeouts[name] = 3.0 * base.seconds + 10.0
        print(f"{name}: baseline {base.seconds:.1f} s, timeout {timeouts[name]:.0f} s")
    chosen = [m for m in chosen if m.target not in broken]
    jobs = [(m, compile(mutate(trees[m.target], m), str(info[m.target][1]), "exec")) for m in chosen]
    results = _run_all(jobs, info, timeouts, args.jobs, args.log_dir)
    by_key = {m.key: m for m in chosen}
    for r in results:
        r.listed = listed.get(_listed_key(by_key[r.key]), {}).get("kind", "")
    summary = summarize(results, {t["name"]: full[t["name"]] for t in targets if t["name"] not in broken})
    header = f"{'target':<14} {'mutants':>7} {'killed':>6} {'equiv':>5} {'msg':>4}  {'score':>6}  {'excl. listed':>12}"
    print(f"{header}  run")
    for name, stats in summary.items():
        print(
            f"{name:<14} {stats['mutants']:>7} {stats['killed']:>6} {stats['equivalent']:>5} {stats['message']:>4}  "
            f"{_pct(stats['score'])}  {_pct(stats['score_excluding_listed']):>12}  "
            f"{'full' if stats['full'] else 'sample'}"
        )
        if name == "overall":
            continue
        for r in sorted((r for r in results if r.target == name), key=lambda r: r.line):
            if r.status == "survived" and not r.listed:
                print(f"    survived  {r.key}  line {r.line:>4}  {r.op:<6} {r.detail:<24} {r.text}")
            elif r.listed and r.status != "survived":
                print(f"    listed as {r.listed} but killed (remove its entry): {r.key}  line {r.line}  {r.text}")
    rate = summary["overall"]["score_excluding_listed"]
    rate = 1.0 if rate is None else rate
    print(f"overall: {100.0 * rate:.1f}% excluding listed mutants, in {time.monotonic() - started:.0f} s")
    if args.json:
        payload = {"targets": summary, "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=1))
    if broken:
        print(f"FAIL: the tests of {broken} fail without any mutation")
        return 2
    if rate < args.threshold:
        floor = 100.0 * args.threshold
        print(f"FAIL: kill rate {100.0 * rate:.1f}% (excluding listed mutants) is below the threshold {floor:.1f}%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
