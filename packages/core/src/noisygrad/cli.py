"""The ``noisygrad`` command: ``plugins``, ``list``, ``run`` and ``tour``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from . import plugins as _plugins
from .tour import TourEntry, experiments, run_experiments

app = typer.Typer(help="noisygrad: noisy-gradient optimisation across fields.", no_args_is_help=True)
console = Console()


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
def list_command() -> None:
    """List the experiments that `noisygrad run` and `noisygrad tour` can run."""
    for name, exp in experiments(include_unusable=True).items():
        note = ""
        if exp.plugin is not None and exp.plugin.missing():
            note = f"  (needs {exp.plugin.extra})"
        console.print(f"{name}{note}")


def _report(entries: list[TourEntry], as_json: bool, out: Path | None) -> int:
    payload = [
        {
            "experiment": e.experiment,
            "seconds": round(e.seconds, 3),
            "error": e.error,
            "findings": [f.as_dict() for f in e.findings],
        }
        for e in entries
    ]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    if as_json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        table = Table(title="noisygrad findings")
        for col in ("experiment", "claim", "predicted", "measured", "+/- (1 s.e.)", "result"):
            table.add_column(col)
        for e in entries:
            if e.error is not None:
                table.add_row(e.experiment, e.error, "", "", "", "[red]ERROR")
            for f in e.findings:
                verdict = "[green]pass" if f.passed else "[red]FAIL"
                table.add_row(
                    e.experiment, f.claim, f"{f.predicted:.5g}", f"{f.measured:.5g}", f"{f.uncertainty:.2g}", verdict
                )
        console.print(table)
        passed = sum(e.passed for e in entries)
        console.print(f"{passed}/{len(entries)} experiments passed in {sum(e.seconds for e in entries):.1f} s")
    return 0 if all(e.passed for e in entries) else 1


@app.command("run")
def run_command(
    name: str = typer.Argument(..., help="experiment name, see `noisygrad list`"),
    seed: int = typer.Option(0, help="seed of every random choice"),
    full: bool = typer.Option(False, "--full", help="publication-size run instead of the quick one"),
    as_json: bool = typer.Option(False, "--json", help="print machine-readable results"),
) -> None:
    """Run one experiment and print its findings."""
    available = experiments(include_unusable=True)
    if name not in available:
        console.print(f"[red]no experiment named {name!r}; `noisygrad list` shows them")
        raise typer.Exit(2)
    try:
        entries = run_experiments([available[name]], seed=seed, quick=not full)
    except _plugins.MissingDependencyError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from exc
    raise typer.Exit(_report(entries, as_json, None))


@app.command("tour")
def tour_command(
    seed: int = typer.Option(0, help="seed of every random choice"),
    full: bool = typer.Option(False, "--full", help="publication-size runs"),
    as_json: bool = typer.Option(False, "--json", help="print machine-readable results"),
    out: Path | None = typer.Option(None, help="folder for results.json"),
) -> None:
    """Run every installed headline experiment; exit non-zero if a claim fails."""
    selected = list(experiments().values())
    stderr = Console(stderr=True)
    entries = run_experiments(
        selected, seed=seed, quick=not full, on_start=lambda e: stderr.print(f"running {e.name} ...")
    )
    raise typer.Exit(_report(entries, as_json, out))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
