"""The ``noisygrad`` command: ``plugins``, ``list``, ``run`` and ``tour`` (and ``--version``).

``noisygrad tour`` runs every installed headline experiment with a progress display, prints a short table,
writes the report folder (:mod:`noisygrad.tour.report`) and exits with status 1 if any claim fails.
``noisygrad run`` runs chosen experiments, optionally with their own parameters (``-p NAME=VALUE``, declared by
each experiment: :mod:`noisygrad.tour.parameters`).

Conventions: results go to stdout, errors and progress to stderr; with ``--json`` stdout holds JSON only, and an
error is a JSON object ``{"error": ..., "exit_code": ...}`` there too. Text that comes from experiments, plugins or
the user is printed as plain text (never read as terminal markup), and every table keeps names and numbers whole
at 80 columns (long text wraps). ``list``, ``plugins`` and ``--version`` read installed metadata only: they
import neither torch nor scipy (``benchmarks/cli_startup.py`` times them).

Faults: ``--out`` is checked before any experiment runs (a file, a folder holding other things, a place that
cannot be written: a one-line error, exit 2); the report folder is written whole or not at all (a hidden folder
renamed at the end, :mod:`noisygrad.tour.report`); Ctrl-C during the experiments keeps the finished ones (printed,
and written to ``--out`` with a note naming the others) and exits 130; Ctrl-C while the report is written leaves
the earlier report as it was. No error prints a traceback: an unexpected one is a single line (exit 3;
``NOISYGRAD_TRACEBACK=1`` shows the traceback).

Exit status: 0 every claim passed, 1 a claim failed (or an experiment raised), 2 a usage error, 3 an unexpected
error, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console, Group
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from noisygrad import __version__
from noisygrad import plugins as _plugins
from noisygrad.tour.figures import numbered, tolerance_used
from noisygrad.tour.parameters import Parameter, ParameterError
from noisygrad.tour.registry import Experiment, TourEntry, TourInterrupted, experiments, run_experiments, select
from noisygrad.tour.report import (
    ReportFolderError,
    check_report_folder,
    comparison_text,
    jsonable,
    predicted_text,
    results,
    tolerance_text,
)

app = typer.Typer(help="noisygrad: noisy-gradient optimisation across fields.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

_PASS, _FAIL, _ERROR = ("pass", "green"), ("FAIL", "red"), ("ERROR", "red")
INTERRUPTED = 130  # the shell's status for a process stopped by SIGINT (128 + 2)
UNEXPECTED = 3
_TYPE_NAMES = {int: "INT", float: "FLOAT", bool: "BOOL", str: "TEXT"}


def _fail(message: str, *, as_json: bool = False, code: int = 2) -> NoReturn:
    """Print ``message`` on stderr (and, with ``--json``, a JSON error object on stdout) and exit with ``code``."""
    errors.print(Text(f"error: {message}", style="red"), soft_wrap=True)  # whole, for the terminal to wrap
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}))
    raise typer.Exit(code)


def _installed(include_unusable: bool, as_json: bool = False) -> dict[str, Experiment]:
    """The installed experiments; a broken installation (two distributions claiming one plugin) is a clear error."""
    try:
        return experiments(include_unusable=include_unusable)
    except RuntimeError as exc:
        _fail(str(exc), as_json=as_json)


def _version(value: bool) -> None:
    if value:
        print(f"noisygrad {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """noisygrad: noisy-gradient optimisation across fields."""


#: every plugin at once, as ``docs/install.rst`` documents it (``.ci/install-check`` runs this very command)
ALL_PLUGINS_INSTALL = (
    "pip install ./packages/core ./packages/pinn ./packages/quantum ./packages/dsp ./packages/bio './[all]'"
)


@app.command("plugins")
def plugins_command() -> None:
    """List installed plugins, their versions, and what each still needs."""
    try:
        statuses = _plugins.available()
    except RuntimeError as exc:  # two distributions claim one plugin name
        _fail(str(exc))
    if not statuses:  # the documented install from the clone (nothing named noisygrad is on the package index)
        console.print(Text(f"no plugins installed; from the clone's root: {ALL_PLUGINS_INSTALL}"), soft_wrap=True)
        return
    table = Table(title=f"noisygrad {__version__} plugins", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("plugin", overflow="fold")  # long names fold onto more lines, never cut
    table.add_column("distribution", overflow="fold")
    table.add_column("version", no_wrap=True)
    table.add_column("status", overflow="fold")
    table.add_column("summary", overflow="fold")
    for s in statuses:
        state = Text("ready", style="green") if s.usable else Text(f"needs {', '.join(s.missing)}", style="red")
        table.add_row(Text(s.plugin.name), Text(s.distribution), Text(s.version), state, Text(s.plugin.summary))
    console.print(table)
    for s in statuses:
        if not s.usable:  # the install command on a line of its own, so no column width cuts it
            console.print(Text(f"{s.plugin.name}: {s.plugin.extra}"), soft_wrap=True)


def _status(exp: Experiment) -> tuple[Text, bool]:
    """``(status text, usable)`` of an experiment, from metadata only."""
    missing = exp.plugin.missing() if exp.plugin is not None else []
    if exp.plugin is not None and missing:
        return Text(f"needs {', '.join(missing)}: {exp.plugin.extra}", style="red"), False
    return Text("ready", style="green"), True


def _parameter_lines(p: Parameter) -> Group:
    usage = f"-p {p.name}={_TYPE_NAMES[p.type]}"
    head = Text.assemble((usage, "bold"), f"  default {p.defaults_text()}; {p.allowed()}")
    return Group(head, Padding(Text(p.help), (0, 0, 0, 4))) if p.help else Group(head)


def _describe(exp: Experiment) -> Group:
    """One experiment's block for ``list --describe``: name and status, summary, then each parameter."""
    status, usable = _status(exp)
    parts: list[Any] = [Text.assemble((exp.name, "bold"), "  ", status)]
    if usable:
        try:
            summary, params = exp.describe(), exp.parameters()
        except Exception as exc:  # a plugin that does not import: said here, the other experiments still listed
            parts.append(Padding(Text(f"cannot be loaded: {type(exc).__name__}: {exc}", style="red"), (0, 0, 0, 2)))
            return Group(*parts, Text(""))
        if summary:
            parts.append(Padding(Text(summary), (0, 0, 0, 2)))
        if not params:
            parts.append(Padding(Text("no parameters besides --seed and --full", style="dim"), (0, 0, 0, 2)))
        parts += [Padding(_parameter_lines(p), (0, 0, 0, 2)) for p in params]
    return Group(*parts, Text(""))


@app.command("list")
def list_command(
    describe: Annotated[
        bool, typer.Option("--describe", help="also show each experiment's summary and parameters (imports it)")
    ] = False,
) -> None:
    """List the experiments that `noisygrad run` and `noisygrad tour` can run."""
    found = _installed(include_unusable=True)
    if describe:
        for exp in found.values():
            console.print(_describe(exp))
        console.print(Text("run one with: noisygrad run NAME [-p NAME=VALUE ...]"))
        return
    table = Table(
        title="noisygrad experiments", caption="run one with `noisygrad run NAME`", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("experiment", overflow="fold")  # a long name folds onto more lines, never cut
    table.add_column("status", overflow="fold")
    for name, exp in found.items():
        table.add_row(Text(name), _status(exp)[0])
    console.print(table)


def _verdict(passed: bool) -> Text:
    return Text(*(_PASS if passed else _FAIL))


def _claims_table() -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("claim (unit)", ratio=1, overflow="fold", min_width=16)
    table.add_column("predicted", justify="right", no_wrap=True)
    table.add_column("measured ± 1 s.e.", justify="right", no_wrap=True)
    table.add_column("tol.", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    return table


def _findings(entries: Sequence[TourEntry]) -> Group:
    """Every claim, numbered as in the report, in one table per experiment under its name: the name and the
    numbers are never cut (claims wrap), whatever the terminal's width down to 80 columns."""
    blocks: list[Any] = []
    tables: dict[str, Table] = {}
    for number, e, f in numbered(entries):
        if e.experiment not in tables:
            tables[e.experiment] = _claims_table()
            blocks += [Text(e.experiment, style="bold"), tables[e.experiment]]
        table = tables[e.experiment]
        if f is None:
            table.add_row(str(number), Text(e.error or ""), "", "", "", Text(*_ERROR))
            continue
        claim = Text(f.claim)
        if f.unit:
            claim.append(f" ({f.unit})", style="dim")
        measured = f"{f.measured:.4g} ± {f.uncertainty:.2g}"
        table.add_row(str(number), claim, predicted_text(f), measured, tolerance_text(f), _verdict(f.passed))
    return Group(*blocks)


def _summary_table(entries: Sequence[TourEntry]) -> Table:
    """One row per experiment: claims passed, the largest share of a tolerance used, and wall time. A name too long
    for the terminal folds onto more lines; the numbers are never cut, down to 60 columns."""
    table = Table(
        title="noisygrad tour",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="dev/tol: the largest share of a tolerance (or of the way to a bound) used; above 1 fails",
    )
    table.add_column("experiment", overflow="fold")  # the widest column: rich narrows it first
    table.add_column("claims", justify="right")
    table.add_column("dev/tol", justify="right")
    table.add_column("time s", justify="right")
    table.add_column("result")
    for e in entries:
        worst = max((tolerance_used(f) for f in e.findings), default=float("nan"))
        result = Text(*(_PASS if e.passed else (_ERROR if e.error else _FAIL)))
        passed = sum(f.passed for f in e.findings)
        table.add_row(Text(e.experiment), f"{passed}/{len(e.findings)}", f"{worst:.2f}", f"{e.seconds:.1f}", result)
    return table


def _print_failures(entries: Sequence[TourEntry], to: Console) -> None:
    for number, e, f in numbered(entries):
        if f is None:
            to.print(Text.assemble(("ERROR", "red"), f" #{number} {e.experiment}: {e.error}"))
        elif not f.passed:
            to.print(Text.assemble(("FAIL", "red"), f" #{number} {e.experiment}: {f.claim}\n     {comparison_text(f)}"))


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[tuple[Callable[[Experiment], None], Callable[[TourEntry], None]]]:
    """Callbacks for :func:`run_experiments` that drive a rich progress display on stderr."""
    if not enabled:
        yield (lambda exp: None), (lambda entry: None)
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}", markup=True),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=total)
        running: list[str] = []

        def describe() -> str:
            from rich.markup import escape

            return escape(", ".join(running)) or "writing the report"

        def on_start(exp: Experiment) -> None:
            running.append(exp.name)
            progress.update(task, description=describe())

        def on_done(entry: TourEntry) -> None:
            if entry.experiment in running:
                running.remove(entry.experiment)
            mark = _PASS if entry.passed else (_ERROR if entry.error else _FAIL)
            progress.console.print(Text.assemble(mark, f" {entry.experiment} ({entry.seconds:.1f} s)"))
            progress.update(task, advance=1, description=describe())

        yield on_start, on_done


def _param_texts(pairs: Sequence[str], as_json: bool) -> dict[str, str]:
    """``NAME=VALUE`` options as ``{NAME: VALUE}`` texts (parsed later by each experiment's declarations)."""
    texts: dict[str, str] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            _fail(f"--param/-p takes NAME=VALUE, got {pair!r}", as_json=as_json)
        texts[name] = raw
    return texts


def _typed_params(selected: Sequence[Experiment], texts: dict[str, str], as_json: bool) -> dict[str, Any]:
    """The values ``texts`` spell, checked against every selected experiment's declarations."""
    typed: dict[str, Any] | None = None
    for exp in selected:
        try:
            values = exp.parse(texts)
        except ParameterError as exc:
            _fail(f"{exc} (see `noisygrad list --describe`)", as_json=as_json)
        if typed is not None and values != typed:
            _fail(
                f"-p values mean different things to the selected experiments ({typed} vs {values} for {exp.name}); "
                "run them one at a time",
                as_json=as_json,
            )
        typed = values
    return typed or {}


def _check_out(out: Path | None, as_json: bool) -> None:
    """Refuse an ``--out`` the report cannot be written to, before any experiment runs (exit 2)."""
    if out is None:
        return
    try:
        check_report_folder(out, name="--out")
    except ReportFolderError as exc:
        _fail(str(exc), as_json=as_json)


def _write_report(
    entries: Sequence[TourEntry],
    out: Path,
    seed: int,
    quick: bool,
    quiet: bool,
    not_run: Sequence[str] = (),
    as_json: bool = False,
) -> None:
    """Write the report folder; a failure or Ctrl-C while writing is one line, and ``out`` is left as it was."""
    from noisygrad.tour.report import write_report  # matplotlib is imported only when a report is written

    try:
        index = write_report(entries, out, seed=seed, quick=quick, not_run=not_run)
    except KeyboardInterrupt:
        _fail(f"interrupted while the report was written: {out} is left as it was", as_json=as_json, code=INTERRUPTED)
    except (ReportFolderError, OSError) as exc:
        _fail(f"cannot write the report to {out}: {exc}", as_json=as_json)
    if not quiet:
        errors.print(Text(f"report: {index} (also {index.with_name('report.md').name}, results.json, figures/)"))


def _run_selected(
    selected: Sequence[Experiment], *, as_json: bool, progress: bool, **options: Any
) -> tuple[list[TourEntry], list[str]]:
    """``(entries, not run)``: every entry, or on Ctrl-C the finished ones and the names of the others."""
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    try:
        with quiet, _progress(len(selected), enabled=progress) as (on_start, on_done):
            return run_experiments(selected, on_start=on_start, on_done=on_done, **options), []
    except TourInterrupted as stop:
        return stop.entries, stop.not_run


def _say_interrupted(entries: Sequence[TourEntry], not_run: Sequence[str], out: Path | None) -> None:
    kept = f"; their results are in {out}" if out is not None and entries else ""
    errors.print(
        Text(
            f"interrupted: {len(entries)} of {len(entries) + len(not_run)} experiments finished{kept} "
            f"(not run: {', '.join(not_run)})",
            style="yellow",
        ),
        soft_wrap=True,
    )


Seed = Annotated[int, typer.Option(help="seed of every random choice; the same seed reproduces the same results")]
Full = Annotated[bool, typer.Option("--full", help="publication-size runs instead of the quick ones")]
AsJson = Annotated[bool, typer.Option("--json", help="print machine-readable results (or errors) on stdout")]
Jobs = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="experiments run at once, each in its own spawned process (1: all in this one); the findings are "
        "the same for every value",
    ),
]


@app.command("run")
def run_command(
    names: Annotated[
        list[str], typer.Argument(help="experiment names, plugin names (all of its experiments) or wildcards")
    ],
    seed: Seed = 0,
    full: Full = False,
    as_json: AsJson = False,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="NAME=VALUE for the experiment's own parameters (`list --describe`)"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="also write a report folder here")] = None,
    jobs: Jobs = 1,
) -> None:
    """Run experiments and print their findings; exit 1 if a claim fails, 2 on a usage error.

    A usage error is an unknown name, a parameter the experiment does not take or a value it does not allow
    (`noisygrad list --describe` shows each experiment's parameters).

    With --json, stdout holds a JSON list with one object per experiment, or a JSON error object.
    """
    available = _installed(include_unusable=True, as_json=as_json)
    try:
        selected = select(names, available)
    except KeyError as exc:
        _fail(str(exc.args[0]), as_json=as_json)
    for exp in selected:
        if exp.plugin is not None and exp.plugin.missing():
            _fail(f"{exp.name} needs {', '.join(exp.plugin.missing())}: {exp.plugin.extra}", as_json=as_json)
    texts = _param_texts(param or [], as_json)
    params = _typed_params(selected, texts, as_json) if texts else {}
    _check_out(out, as_json)
    entries, not_run = _run_selected(
        selected, as_json=as_json, progress=not as_json, seed=seed, quick=not full, params=params, jobs=jobs
    )
    if out is not None and entries:
        _write_report(entries, out, seed, not full, quiet=as_json, not_run=not_run, as_json=as_json)
    if as_json:
        print(json.dumps(jsonable([e.as_dict() for e in entries]), indent=2))
    elif entries:
        console.print(_findings(entries))
    if not_run:
        _say_interrupted(entries, not_run, out)
        raise typer.Exit(INTERRUPTED)
    raise typer.Exit(0 if all(e.passed for e in entries) else 1)


@app.command("tour")
def tour_command(
    seed: Seed = 0,
    full: Full = False,
    as_json: AsJson = False,
    out: Annotated[Path, typer.Option(help="folder for the report (index.html, report.md, results.json, PNGs)")] = Path(
        "report"
    ),
    only: Annotated[
        list[str] | None, typer.Option(help="run only these experiments (names, plugin names or wildcards)")
    ] = None,
    jobs: Jobs = 1,
) -> None:
    """Run every installed headline experiment, write the report; exit 1 if a claim fails.

    With --json, stdout holds the same JSON object as the report's results.json, or a JSON error object.
    """
    available = _installed(include_unusable=False, as_json=as_json)
    try:
        selected = select(only, available) if only else list(available.values())
    except KeyError as exc:
        _fail(str(exc.args[0]), as_json=as_json)
    _check_out(out, as_json)
    entries, not_run = _run_selected(selected, as_json=as_json, progress=True, seed=seed, quick=not full, jobs=jobs)
    if not_run:
        if entries:
            _write_report(entries, out, seed, not full, quiet=False, not_run=not_run, as_json=as_json)
        _say_interrupted(entries, not_run, out)
        if as_json:
            print(json.dumps(results(entries, seed=seed, quick=not full, not_run=not_run), indent=2))
        raise typer.Exit(INTERRUPTED)
    _write_report(entries, out, seed, not full, quiet=False, as_json=as_json)
    summary = errors if as_json else console
    summary.print(_summary_table(entries))
    _print_failures(entries, summary)
    passed = sum(e.passed for e in entries)
    summary.print(Text(f"{passed}/{len(entries)} experiments passed in {sum(e.seconds for e in entries):.1f} s"))
    if as_json:
        print(json.dumps(results(entries, seed=seed, quick=not full), indent=2))
    raise typer.Exit(0 if passed == len(entries) else 1)


def _usage_error(exc: Exception) -> tuple[str, int] | None:
    """``(message, exit code)`` of a command-line usage error (the click exceptions typer raises), else None."""
    message, code = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
    if callable(message) and isinstance(code, int):
        return str(message()), code
    return None


def _unexpected(exc: Exception, as_json: bool) -> NoReturn:
    """An error no command expected: one line (the traceback only with ``NOISYGRAD_TRACEBACK=1``), exit 3."""
    if os.environ.get("NOISYGRAD_TRACEBACK"):
        raise exc
    message = f"{type(exc).__name__}: {exc}"
    errors.print(
        Text(f"error: {message}\n(unexpected: set NOISYGRAD_TRACEBACK=1 to see where it came from)", style="red"),
        soft_wrap=True,
    )
    if as_json:
        print(json.dumps({"error": message, "exit_code": UNEXPECTED}))
    raise SystemExit(UNEXPECTED)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``noisygrad`` console script.

    With ``--json`` among the arguments, a usage error (an unknown option, a bad value) is also reported as a JSON
    error object on stdout, as the commands' own errors are. An error no command expected is printed as one line,
    without a traceback (exit 3).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    if not as_json:
        try:
            app(args=args, prog_name="noisygrad")
        except Exception as exc:
            _unexpected(exc, as_json=False)
        return
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="noisygrad", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except Exception as exc:
        usage = _usage_error(exc)
        if usage is None:
            _unexpected(exc, as_json=True)
        message, code = usage
        errors.print(Text(f"error: {message}\nTry 'noisygrad --help' for help.", style="red"))
        print(json.dumps({"error": message, "exit_code": code}))
    raise SystemExit(code or 0)


if __name__ == "__main__":
    main()
