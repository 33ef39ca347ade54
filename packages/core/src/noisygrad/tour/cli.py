"""The ``noisygrad`` command: ``plugins``, ``list``, ``run`` and ``tour``.

``noisygrad tour`` runs every installed headline experiment with a progress display, prints a short table,
writes the report folder (:mod:`noisygrad.tour.report`) and exits with status 1 if any claim fails.
``noisygrad run`` runs chosen experiments, optionally with their own parameters (``-p name=value``).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from noisygrad import __version__
from noisygrad import plugins as _plugins
from noisygrad.tour.figures import normalised_deviation
from noisygrad.tour.registry import Experiment, TourEntry, experiments, run_experiments, select

app = typer.Typer(help="noisygrad: noisy-gradient optimisation across fields.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


@app.command("plugins")
def plugins_command() -> None:
    """List installed plugins, their versions, and what each still needs."""
    table = Table(title=f"noisygrad {__version__} plugins")
    for col in ("plugin", "distribution", "version", "status", "summary"):
        table.add_column(col)
    statuses = _plugins.available()
    for s in statuses:
        state = "ready" if s.usable else f"missing {', '.join(s.missing)}: {s.plugin.extra}"
        table.add_row(s.plugin.name, s.distribution, s.version, state, s.plugin.summary)
    if not statuses:
        console.print("no plugins installed; try: pip install 'noisygrad[all]'")
        return
    console.print(table)


@app.command("list")
def list_command(
    describe: Annotated[
        bool, typer.Option("--describe", help="also show each experiment's summary and parameters (imports it)")
    ] = False,
) -> None:
    """List the experiments that `noisygrad run` and `noisygrad tour` can run."""
    table = Table(title="noisygrad experiments", caption="run one with `noisygrad run NAME`")
    table.add_column("experiment", no_wrap=True)
    table.add_column("status")
    if describe:
        table.add_column("summary")
        table.add_column("parameters")
    for name, exp in experiments(include_unusable=True).items():
        missing = exp.plugin.missing() if exp.plugin is not None else []
        status = f"needs {exp.plugin.extra}" if exp.plugin is not None and missing else "ready"
        row = [name, status]
        if describe:
            if missing:
                row += ["", ""]
            else:
                params = ", ".join(f"{k}={v!r}" for k, v in exp.parameters().items())
                row += [exp.describe(), params]
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)


def _findings_table(entries: Sequence[TourEntry]) -> Table:
    table = Table(title="noisygrad findings")
    for col in ("experiment", "claim", "predicted", "measured", "+/- (1 s.e.)", "tolerance", "result"):
        table.add_column(col)
    for e in entries:
        if e.error is not None:
            table.add_row(e.experiment, escape(e.error), "", "", "", "", "[red]ERROR")
        for f in e.findings:
            verdict = "[green]pass" if f.passed else "[red]FAIL"
            unit = f" {f.unit}" if f.unit else ""
            table.add_row(
                e.experiment,
                escape(f.claim),
                f"{f.predicted:.5g}{unit}",
                f"{f.measured:.5g}{unit}",
                f"{f.uncertainty:.2g}",
                f"{f.tolerance:.2g}",
                verdict,
            )
    return table


def _summary_table(entries: Sequence[TourEntry]) -> Table:
    """One row per experiment: claims passed, the worst deviation in tolerances, and wall time."""
    table = Table(title="noisygrad tour")
    table.add_column("experiment", no_wrap=True)
    table.add_column("claims", justify="right")
    table.add_column("worst |dev|/tol", justify="right")
    table.add_column("time (s)", justify="right")
    table.add_column("result")
    for e in entries:
        worst = max((abs(normalised_deviation(f)[0]) for f in e.findings), default=float("nan"))
        result = "[green]pass" if e.passed else ("[red]ERROR" if e.error else "[red]FAIL")
        passed = sum(f.passed for f in e.findings)
        table.add_row(e.experiment, f"{passed}/{len(e.findings)}", f"{worst:.2f}", f"{e.seconds:.1f}", result)
    return table


def _print_failures(entries: Sequence[TourEntry], to: Console) -> None:
    for e in entries:
        if e.error is not None:
            to.print(f"[red]ERROR[/red] {e.experiment}: {escape(e.error)}")
        for f in e.findings:
            if not f.passed:
                to.print(
                    f"[red]FAIL[/red] {e.experiment}: {escape(f.claim)}\n"
                    f"     predicted {f.predicted:.5g}, measured {f.measured:.5g} +/- {f.uncertainty:.2g}, "
                    f"tolerance {f.tolerance:.2g}"
                )


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[tuple[Callable[[Experiment], None], Callable[[TourEntry], None]]]:
    """Callbacks for :func:`run_experiments` that drive a rich progress display on stderr."""
    if not enabled:
        yield (lambda exp: None), (lambda entry: None)
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=total)
        running: list[str] = []

        def on_start(exp: Experiment) -> None:
            running.append(exp.name)
            progress.update(task, description=", ".join(running))

        def on_done(entry: TourEntry) -> None:
            if entry.experiment in running:
                running.remove(entry.experiment)
            mark = "[green]pass" if entry.passed else ("[red]ERROR" if entry.error else "[red]FAIL")
            progress.console.print(f"{mark}[/] {entry.experiment} ({entry.seconds:.1f} s)")
            progress.update(task, advance=1, description=", ".join(running) or "writing the report")

        yield on_start, on_done


def _parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.isidentifier():
            raise typer.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--param")
        try:
            params[name] = json.loads(raw)  # numbers, true/false, lists; anything else stays a string
        except json.JSONDecodeError:
            params[name] = raw
    return params


def _write_report(entries: Sequence[TourEntry], out: Path, seed: int, quick: bool, quiet: bool) -> None:
    from noisygrad.tour.report import write_report  # matplotlib is imported only when a report is written

    index = write_report(entries, out, seed=seed, quick=quick)
    if not quiet:
        errors.print(f"report: {index} (also {index.with_name('report.md').name}, results.json, figures/)")


Seed = Annotated[int, typer.Option(help="seed of every random choice; the same seed reproduces the same results")]
Full = Annotated[bool, typer.Option("--full", help="publication-size runs instead of the quick ones")]
AsJson = Annotated[bool, typer.Option("--json", help="print machine-readable results on stdout")]
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
    """Run experiments and print their findings; exit 1 if a claim fails, 2 if a name is unknown.

    With --json, stdout holds a JSON list with one object per experiment.
    """
    available = experiments(include_unusable=True)
    try:
        selected = select(names, available)
    except KeyError as exc:
        console.print(f"[red]{escape(str(exc.args[0]))}")
        raise typer.Exit(2) from None
    for exp in selected:
        if exp.plugin is not None and exp.plugin.missing():
            console.print(f"[red]{exp.name} needs {', '.join(exp.plugin.missing())}: {escape(exp.plugin.extra)}")
            raise typer.Exit(2)
    params = _parse_params(param or [])
    for exp in selected if params else []:
        unknown = sorted(set(params) - set(exp.parameters()))
        if unknown:
            allowed = ", ".join(exp.parameters()) or "none besides --seed and --full"
            console.print(f"[red]{exp.name} takes no parameter {', '.join(unknown)}; it takes: {allowed}")
            raise typer.Exit(2)
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    with quiet, _progress(len(selected), enabled=not as_json) as (on_start, on_done):
        entries = run_experiments(
            selected, seed=seed, quick=not full, params=params, jobs=jobs, on_start=on_start, on_done=on_done
        )
    if out is not None:
        _write_report(entries, out, seed, not full, quiet=as_json)
    if as_json:
        from noisygrad.tour.report import jsonable

        print(json.dumps(jsonable([e.as_dict() for e in entries]), indent=2))
    else:
        console.print(_findings_table(entries))
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

    With --json, stdout holds the same JSON object as the report's results.json.
    """
    available = experiments()
    try:
        selected = select(only, available) if only else list(available.values())
    except KeyError as exc:
        errors.print(f"[red]{escape(str(exc.args[0]))}")
        raise typer.Exit(2) from None
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    with quiet, _progress(len(selected), enabled=True) as (on_start, on_done):
        entries = run_experiments(selected, seed=seed, quick=not full, jobs=jobs, on_start=on_start, on_done=on_done)
    _write_report(entries, out, seed, not full, quiet=False)
    summary = errors if as_json else console
    summary.print(_summary_table(entries))
    _print_failures(entries, summary)
    passed = sum(e.passed for e in entries)
    summary.print(f"{passed}/{len(entries)} experiments passed in {sum(e.seconds for e in entries):.1f} s")
    if as_json:
        from noisygrad.tour.report import results

        print(json.dumps(results(entries, seed=seed, quick=not full), indent=2))
    raise typer.Exit(0 if passed == len(entries) else 1)


def main() -> None:
    """Entry point of the ``noisygrad`` console script."""
    app()


if __name__ == "__main__":
    main()
