"""The tour's report folder: every claim, its prediction, its measurement, a plot, and the data behind it.

:func:`write_report` writes a self-contained folder that opens without noisygrad installed::

    report/
      index.html            the report, for a browser (images are relative links)
      report.md             the same report in Markdown
      results.json          every finding of every experiment, with the run's seed, size and versions
      overview.png          every claim's deviation from its prediction, in units of its tolerance
      overview.json         the data drawn in overview.png
      figures/<name>.png    one figure per experiment: prediction beside measurement
      figures/<name>.json   the data drawn in that figure

The folder is written whole or not at all: everything goes into a hidden sibling folder first, which replaces
``report/`` by two renames at the end, so an interruption (Ctrl-C, a full disk) leaves the earlier report as it
was, never one mixing two runs. Because the folder is replaced whole, :func:`check_report_folder` refuses a
folder that holds anything but a report (a user's other files would be lost), a path that is a file, and a
place that cannot be written; the command checks ``--out`` with it before running any experiment.
"""

from __future__ import annotations

import html
import json
import math
import os
import platform
import re
import secrets
import shutil
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from noisygrad.tour import figures as plotting
from noisygrad.tour.findings import Finding
from noisygrad.tour.registry import TourEntry

_DISTRIBUTIONS = ("noisygrad-core", "noisygrad-pinn", "noisygrad-quantum", "noisygrad-dsp", "noisygrad-bio")


def jsonable(value: Any) -> Any:
    """Plain JSON data: numpy and torch scalars become numbers, NaN and Inf become ``None``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError, RuntimeError):
            pass
    tolist = getattr(value, "tolist", None)  # small arrays and tensors
    if callable(tolist):
        return jsonable(tolist())
    return str(value)


def versions() -> dict[str, str]:
    """Python, torch and the installed noisygrad distributions, for the report's provenance."""
    found = {"python": platform.python_version()}
    for dist in ("torch", *_DISTRIBUTIONS):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


def results(entries: Sequence[TourEntry], *, seed: int, quick: bool, not_run: Sequence[str] = ()) -> dict[str, Any]:
    """The machine-readable results of a tour: what ``--json`` prints and ``results.json`` holds.

    ``not_run``: the experiments an interruption (Ctrl-C) kept from finishing; the results then say
    ``"interrupted": true`` and name them, and ``passed`` is false (the tour did not run whole).
    """
    data: dict[str, Any] = jsonable(
        {
            "seed": seed,
            "size": "quick" if quick else "full",
            "passed": all(e.passed for e in entries) and not not_run,
            **({"interrupted": True, "not_run": list(not_run)} if not_run else {}),
            "summary": {
                "experiments": len(entries),
                "experiments_passed": sum(e.passed for e in entries),
                "findings": sum(len(e.findings) for e in entries),
                "findings_passed": sum(f.passed for e in entries for f in e.findings),
                "seconds": round(sum(e.seconds for e in entries), 3),
            },
            "versions": versions(),
            "experiments": [e.as_dict() for e in entries],
        }
    )
    return data


def figure_name(experiment: str) -> str:
    """A file-name-safe stem for an experiment's figure (``core.noise-ball`` stays as it is)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", experiment)


def _fmt(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}" if math.isfinite(x) else str(x)


def _err(x: float) -> str:
    """Uncertainties and tolerances: two significant digits."""
    return _fmt(x, 2)


def _verdict(passed: bool) -> str:
    return "pass" if passed else "FAIL"


def _reproduce(seed: int, quick: bool) -> str:
    return f"noisygrad tour --seed {seed}" + ("" if quick else " --full")


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _details(finding: Finding) -> str:
    return ", ".join(f"{k} = {v}" for k, v in finding.details.items())


def predicted_text(finding: Finding, digits: int = 4) -> str:
    """The table's "predicted" cell: the predicted value, or ``≤ bound`` / ``≥ bound`` for a bound."""
    limit = finding.limit
    if limit is None:
        return _fmt(finding.predicted, digits)
    return f"{'≤' if finding.bound == 'upper' else '≥'} {_fmt(limit, digits)}"


def tolerance_text(finding: Finding) -> str:
    """The table's "tolerance" cell: two digits, or a dash for a bound (the bound is the whole claim)."""
    return "—" if finding.bound else _err(finding.tolerance)


def comparison_text(finding: Finding) -> str:
    """One line comparing the measurement with the claim, in the finding's unit."""
    unit = f" {finding.unit}" if finding.unit else ""
    measured = f"measured {_fmt(finding.measured)} ± {_err(finding.uncertainty)}{unit}"
    if finding.bound:
        return f"{measured}, {finding.bound} bound {predicted_text(finding)}{unit}"
    return (
        f"predicted {_fmt(finding.predicted)}{unit}, {measured}, |difference| "
        f"{_fmt(abs(finding.measured - finding.predicted))} vs tolerance {_err(finding.tolerance)}"
    )


def _markdown(entries: Sequence[TourEntry], data: dict[str, Any], figures: dict[str, str]) -> str:
    s = data["summary"]
    reproduce = _reproduce(data["seed"], data["size"] == "quick")
    lines = [
        "# noisygrad tour",
        "",
        f"**{s['experiments_passed']}/{s['experiments']} experiments passed** "
        f"({s['findings_passed']}/{s['findings']} claims) in {s['seconds']:.1f} s; "
        f"seed {data['seed']}, {data['size']} size. Reproduce with `{reproduce}`.",
        "",
        *([_interrupted_text(data), ""] if data.get("interrupted") else []),
        _INTRO,
        "",
        "![every claim: deviation from the prediction in tolerances](overview.png)",
        "",
        "| # | experiment | claim | predicted | measured ± 1 s.e. | tolerance | unit | result | time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = plotting.numbered(entries)
    for number, e, f in rows:
        if f is None:
            lines.append(f"| {number} | {e.experiment} | {cell(e.error)} |  |  |  |  | ERROR | {e.seconds:.1f} |")
            continue
        lines.append(
            f"| {number} | {e.experiment} | {cell(f.claim)} | {predicted_text(f)} | {_fmt(f.measured)} ± "
            f"{_err(f.uncertainty)} | {tolerance_text(f)} | {cell(f.unit)} | {_verdict(f.passed)} "
            f"| {e.seconds:.1f} |"
        )
    numbers = {id(f): number for number, _, f in rows if f is not None}
    for e in entries:
        lines += ["", f"## {e.experiment}: {'ERROR' if e.error else _verdict(e.passed)}", ""]
        if e.error is not None:
            lines += [f"The experiment raised `{cell(e.error)}`.", ""]
        for f in e.findings:
            lines += [f"- **#{numbers[id(f)]} {_verdict(f.passed)}**: {f.claim}  ", f"  {comparison_text(f)}"]
            if f.details:
                lines.append(f"  ({cell(_details(f))})")
        lines += ["", f"![{e.experiment}]({figures[e.experiment]})", ""]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()), ""]
    return "\n".join(lines)


def _interrupted_text(data: dict[str, Any]) -> str:
    return (
        "**Interrupted**: the run was stopped (Ctrl-C) before these experiments finished, so they are not in this "
        f"report: {', '.join(data['not_run'])}."
    )


_INTRO = (
    "Each claim of the theory is measured beside its prediction and numbered (#k, as in the overview and the "
    "figures). A predicted value passes when |measured - predicted| <= tolerance; a bound (≤ or ≥ in the "
    "predicted column) passes when the measurement is on its side. Tolerances are sized to the Monte-Carlo error "
    "(see each claim's details). Uncertainties are one standard error."
)

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.pass { color: #1b7f72; font-weight: bold; }
.fail { color: #c1121f; font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; }
.details { color: #555; font-size: 0.85em; }
"""


def _html(entries: Sequence[TourEntry], data: dict[str, Any], figures: dict[str, str]) -> str:
    esc = html.escape
    s = data["summary"]

    def verdict(passed: bool, text: str | None = None) -> str:
        return f'<span class="{"pass" if passed else "fail"}">{esc(text or _verdict(passed))}</span>'

    headline = f"{s['experiments_passed']}/{s['experiments']} experiments passed"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>noisygrad tour</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>noisygrad tour</h1>",
        f"<p>{verdict(data['passed'], headline)} "
        f"({s['findings_passed']}/{s['findings']} claims) in {s['seconds']:.1f} s; seed {data['seed']}, "
        f"{esc(data['size'])} size. Reproduce with <code>{esc(_reproduce(data['seed'], data['size'] == 'quick'))}"
        "</code>.</p>",
        *([f"<p>{esc(_interrupted_text(data))}</p>"] if data.get("interrupted") else []),
        f"<p>{esc(_INTRO)}</p>",
        '<img src="overview.png" alt="every claim: deviation from the prediction in tolerances">',
        "<table><tr><th>#</th><th>experiment</th><th>claim</th><th>predicted</th><th>measured ± 1 s.e.</th>"
        "<th>tolerance</th><th>unit</th><th>result</th><th>time (s)</th></tr>",
    ]
    rows = plotting.numbered(entries)
    for number, e, f in rows:
        link = f'<a href="#{esc(figure_name(e.experiment))}">{esc(e.experiment)}</a>'
        anchor = f"<td class='num' id='claim-{number}'>{number}</td>"
        if f is None:
            out.append(
                f"<tr>{anchor}<td>{link}</td><td>{esc(e.error or '')}</td><td></td><td></td><td></td><td></td>"
                f"<td>{verdict(False, 'ERROR')}</td><td class='num'>{e.seconds:.1f}</td></tr>"
            )
            continue
        out.append(
            f"<tr>{anchor}<td>{link}</td><td>{esc(f.claim)}</td><td class='num'>{esc(predicted_text(f))}</td>"
            f"<td class='num'>{_fmt(f.measured)} ± {_err(f.uncertainty)}</td><td class='num'>"
            f"{esc(tolerance_text(f))}</td><td>{esc(f.unit)}</td><td>{verdict(f.passed)}</td>"
            f"<td class='num'>{e.seconds:.1f}</td></tr>"
        )
    out.append("</table>")
    numbers = {id(f): number for number, _, f in rows if f is not None}
    for e in entries:
        out.append(
            f'<h2 id="{esc(figure_name(e.experiment))}">{esc(e.experiment)}: '
            f"{verdict(e.passed, 'ERROR' if e.error else None)}</h2><ul>"
        )
        if e.error is not None:
            out.append(f"<li>The experiment raised <code>{esc(e.error)}</code>.</li>")
        for f in e.findings:
            out.append(
                f"<li><a href='#claim-{numbers[id(f)]}'>#{numbers[id(f)]}</a> {verdict(f.passed)}: {esc(f.claim)}<br>"
                + esc(comparison_text(f))
                + (f'<br><span class="details">{esc(_details(f))}</span>' if f.details else "")
                + "</li>"
            )
        out.append(f'</ul><img src="{esc(figures[e.experiment])}" alt="{esc(e.experiment)}">')
    versions_text = ", ".join(f"{k} {v}" for k, v in data["versions"].items())
    out += [f'<p class="details">Versions: {esc(versions_text)}</p>', "</body></html>", ""]
    return "\n".join(out)


#: What a report folder holds; a folder with anything else is not replaced (see :func:`check_report_folder`).
REPORT_ENTRIES = frozenset({"index.html", "report.md", "results.json", "overview.png", "overview.json", "figures"})


class ReportFolderError(ValueError):
    """The report cannot go where it was asked to: a file, a folder of other things, or a place not writable."""


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the folder the report's parents would be created in)."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(path.anchor or ".")


def check_report_folder(out: str | Path, *, name: str = "out") -> Path:
    """``out`` as a :class:`~pathlib.Path` if a report can be written there; else :class:`ReportFolderError`.

    Allowed: a folder that does not exist yet (it and its parents are created), an empty folder, or an earlier
    report's folder (holding :data:`REPORT_ENTRIES` only, replaced whole). Refused: a path that is a file, a folder
    holding anything else, and a place where no folder can be created (tried with a probe folder, removed at
    once). ``name`` is how the caller's argument is called in the message (``--out`` for the command).
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ReportFolderError(
            f"{name} {str(path)!r} is a file, not a folder: pass a folder for the report (it is created if missing)"
        )
    if path.is_dir():
        foreign = sorted(entry.name for entry in path.iterdir() if entry.name not in REPORT_ENTRIES)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise ReportFolderError(
                f"{name} {str(path)!r} holds files that are not a noisygrad report ({shown}); the report replaces "
                "the folder whole, so pass a new or empty folder, or an earlier report's folder"
            )
    base = _nearest_existing(Path(os.path.abspath(path)).parent)
    if not base.is_dir():
        raise ReportFolderError(f"{name} {str(path)!r} cannot be created: {str(base)!r} is a file, not a folder")
    try:
        probe = _fresh_folder(base, ".noisygrad-probe")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ReportFolderError(
            f"{name} {str(path)!r} cannot be written: no folder can be created in {str(base)!r} ({reason})"
        ) from exc
    probe.rmdir()
    return path


def _fresh_folder(parent: Path, prefix: str) -> Path:
    """A new empty folder ``parent/<prefix>-<random>`` (created with the process's usual permissions)."""
    for _ in range(100):
        folder = parent / f"{prefix}-{secrets.token_hex(4)}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"no free name for a temporary folder in {parent}")


def _replace_folder(new: Path, out: Path) -> None:
    """Put the finished folder ``new`` at ``out`` (replacing an earlier report there) by renames."""
    if not (out.exists() or out.is_symlink()):
        os.replace(new, out)
        return
    target = Path(os.path.realpath(out)) if out.is_symlink() else out
    old = target.parent / f".{target.name}.replaced-{secrets.token_hex(4)}"
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)  # put the earlier report back
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_report(
    entries: Sequence[TourEntry], out: str | Path, *, seed: int, quick: bool, not_run: Sequence[str] = ()
) -> Path:
    """Write the report folder for a finished tour (see the module docstring for its layout).

    The folder is written into a hidden sibling folder, then renamed to ``out`` (an earlier report there is
    replaced whole): an interruption or an error while writing leaves ``out`` as it was and no temporary folder.

    Args:
        entries: the tour's results, from :func:`noisygrad.tour.registry.run_experiments`.
        out: the folder to write: new, empty, or an earlier report's (see :func:`check_report_folder`); its
            parents are created if needed.
        seed: the seed the tour ran with (recorded, and shown in the command that reproduces it).
        quick: whether the tour ran at its quick size.
        not_run: experiments an interruption kept from finishing (named in the report, which says it is partial).

    Returns:
        The path of ``index.html``.

    Raises:
        ReportFolderError: ``out`` is a file, a folder holding other things, or cannot be written.
    """
    out = check_report_folder(out)
    target = Path(os.path.abspath(out))  # "report", "./report/", "." all name one folder with a parent
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _fresh_folder(target.parent, f".{target.name}.writing")
    try:
        _write_into(staging, entries, seed=seed, quick=quick, not_run=not_run)
        _replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out / "index.html"


def _write_into(out: Path, entries: Sequence[TourEntry], *, seed: int, quick: bool, not_run: Sequence[str]) -> None:
    """Every file of the report, in the (new, empty) folder ``out``."""
    fig_dir = out / "figures"
    fig_dir.mkdir()
    data = results(entries, seed=seed, quick=quick, not_run=not_run)
    (out / "results.json").write_text(json.dumps(data, indent=2) + "\n")

    figures = {}
    first: dict[int, int] = {}  # each experiment's first claim number, for its panel titles
    for number, entry, finding in plotting.numbered(entries):
        if finding is not None:
            first.setdefault(id(entry), number)
    for entry in entries:
        stem = figure_name(entry.experiment)
        figure = plotting.experiment_figure(entry, first.get(id(entry)))
        (fig_dir / f"{stem}.json").write_text(json.dumps(jsonable(figure), indent=2) + "\n")
        plotting.draw(figure, fig_dir / f"{stem}.png")
        figures[entry.experiment] = f"figures/{stem}.png"
    overview = plotting.overview_figure(entries)
    (out / "overview.json").write_text(json.dumps(jsonable(overview), indent=2) + "\n")
    plotting.draw(overview, out / "overview.png")

    (out / "report.md").write_text(_markdown(entries, data, figures))
    (out / "index.html").write_text(_html(entries, data, figures))
