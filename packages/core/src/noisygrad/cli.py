"""The ``noisygrad`` command: ``plugins``, ``list``, ``run`` and ``tour``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

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


Seed = Annotated[int, typer.Option(help="seed of every random choice")]
Full = Annotated[bool, typer.Option("--full", help="publication-size runs instead of the quick ones")]
AsJson = Annotated[bool, typer.Option("--json", help="print machine-readable results")]


@app.command("run")
def run_command(
    name: Annotated[str, typer.Argument(help="experiment name, see `noisygrad list`")],
    seed: Seed = 0,
    full: Full = False,
    as_json: AsJson = False,
) -> None:
    """Run one experiment and print its findings."""
    available = experiments(include_unusable=True)
    if name not in available:
        console.print(f"[red]no experiment named {name!r}; `noisygrad list` shows them")
        raise typer.Exit(2)
    plugin = available[name].plugin
    if plugin is not None and plugin.missing():
        console.print(f"[red]{name} needs {', '.join(plugin.missing())}: {plugin.extra}")
        raise typer.Exit(2)
    entries = run_experiments([available[name]], seed=seed, quick=not full)
    raise typer.Exit(_report(entries, as_json, None))


@app.command("tour")
def tour_command(
    seed: Seed = 0,
    full: Full = False,
    as_json: AsJson = False,
    out: Annotated[Path | None, typer.Option(help="folder for results.json")] = None,
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
    main()
