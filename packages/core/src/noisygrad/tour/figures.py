"""Figures of the tour report: each prediction drawn beside its measurement.

A figure is first described as plain data (:func:`experiment_figure`, :func:`overview_figure`) and then
drawn from that data (:func:`draw`), so the JSON written beside each PNG holds exactly what the PNG shows.
Matplotlib is imported only when drawing, through its object API and the Agg canvas: no global backend is
switched and no window opens.

Every finding gets a *value panel*: the prediction as a vertical line inside its pass band
(prediction +/- tolerance), or for a bound (:meth:`~noisygrad.tour.findings.Finding.at_most`) the bound as a
line with the passing side shaded, and the measurement as a point with a one-standard-error bar, on an axis in
the finding's unit. A finding that carries a :class:`~noisygrad.tour.findings.Curve` also gets a *curve panel*:
the theory as a line and the measurements as points with error bars along the swept parameter.

Claims are numbered once for the whole tour (:func:`numbered`): the report's table, the overview's ``#k`` labels,
the figures' panel titles and the command's tables all use those numbers.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noisygrad.tour.findings import Finding

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from noisygrad.tour.registry import TourEntry

PASS_COLOR = "#2a9d8f"
FAIL_COLOR = "#d62828"
MEASURED_COLOR = "#1d3557"
PREDICTED_COLOR = "#e76f51"
BOUND_COLOR = "#6a4c93"
_CLIP = 3.0  # the overview clips normalised deviations to +/- this many tolerances


def _num(x: float) -> float | None:
    """A JSON-safe float: NaN and Inf become ``None`` (JSON has no literal for them)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _nums(xs: Sequence[float]) -> list[float | None]:
    return [_num(x) for x in xs]


def _unit_label(unit: str) -> str:
    return f"value ({unit})" if unit else "value (dimensionless)"


def numbered(entries: Sequence[TourEntry]) -> list[tuple[int, TourEntry, Finding | None]]:
    """Every row of a tour's results, numbered from 1 in order: one per finding, and one (with ``None`` for the
    finding) for an experiment that raised. The report's table, the overview and the command number claims so."""
    rows: list[tuple[int, TourEntry, Finding | None]] = []
    for entry in entries:
        if entry.error is not None:
            rows.append((len(rows) + 1, entry, None))
        rows.extend((len(rows) + 1, entry, finding) for finding in entry.findings)
    return rows


def finding_panels(finding: Finding, number: int | None = None) -> list[dict[str, Any]]:
    """The panels that show one finding: a value panel, and a curve panel if it carries a curve.

    ``number`` is the claim's number in the tour (:func:`numbered`), shown in the panel titles.
    """
    title = finding.claim if number is None else f"#{number} {finding.claim}"
    limit = finding.limit
    panels: list[dict[str, Any]] = [
        {
            "kind": "value",
            "title": title,
            "number": number,
            "passed": finding.passed,
            "x_label": _unit_label(finding.unit),
            "bound": finding.bound,
            "limit": None if limit is None else _num(limit),
            "predicted": _num(finding.predicted),
            "tolerance": _num(finding.tolerance),
            "measured": _num(finding.measured),
            "uncertainty": _num(finding.uncertainty),
        }
    ]
    curve = finding.curve
    if curve is not None:
        panels.append(
            {
                "kind": "curve",
                "title": title,
                "passed": finding.passed,
                "x_label": curve.x_label,
                "y_label": curve.y_label,
                "x": _nums(curve.x),
                "measured": _nums(curve.measured),
                "uncertainty": _nums(curve.uncertainty),
                "predicted_x": _nums(curve.prediction_grid),
                "predicted": _nums(curve.predicted),
                "log_x": curve.log_x,
                "log_y": curve.log_y,
            }
        )
    return panels


def experiment_figure(entry: TourEntry, first: int | None = None) -> dict[str, Any]:
    """The figure of one experiment as plain data: one row of panels per finding.

    ``first`` is the tour's number of the experiment's first finding (:func:`numbered`); ``None`` leaves the
    panels unnumbered.
    """
    return {
        "experiment": entry.experiment,
        "passed": entry.passed,
        "error": entry.error,
        "rows": [finding_panels(f, None if first is None else first + k) for k, f in enumerate(entry.findings)],
    }


def normalised_deviation(finding: Finding) -> tuple[float, float]:
    """``(measured - predicted) / tolerance`` and its standard error; ``|deviation| <= 1`` passes.

    A zero tolerance (an exact claim) gives 0 when measured equals predicted and +/-inf otherwise;
    a NaN measurement gives NaN.
    """
    diff = finding.measured - finding.predicted
    if finding.tolerance > 0:
        return diff / finding.tolerance, finding.uncertainty / finding.tolerance
    if diff == 0:
        return 0.0, 0.0
    return (math.copysign(math.inf, diff) if math.isfinite(diff) else math.nan), 0.0


def tolerance_used(finding: Finding) -> float:
    """How much of its allowance a finding used, in tolerances: ``|deviation|`` for a predicted value, the
    deviation towards the bound for a bound (0 when the measurement is on the ideal side); above 1 fails."""
    dev = normalised_deviation(finding)[0]
    if finding.bound == "upper":
        return max(dev, 0.0) if not math.isnan(dev) else dev
    if finding.bound == "lower":
        return max(-dev, 0.0) if not math.isnan(dev) else dev
    return abs(dev)


def overview_figure(entries: Sequence[TourEntry]) -> dict[str, Any]:
    """Every finding of the tour on one axis: its deviation from the prediction in units of its tolerance.

    A predicted value passes inside ``[-1, 1]``; an upper bound passes left of ``+1`` (``measured <= bound``),
    a lower bound right of ``-1``. Rows are labelled ``#k experiment`` with the numbers of :func:`numbered`.
    """
    rows: list[dict[str, Any]] = []
    for number, entry, finding in numbered(entries):
        label = f"#{number} {entry.experiment}"
        if finding is None:
            rows.append(
                {"number": number, "label": label, "deviation": None, "error": None, "passed": False, "bound": ""}
            )
            continue
        dev, err = normalised_deviation(finding)
        rows.append(
            {
                "number": number,
                "label": label,
                "deviation": _num(dev),
                "error": _num(err),
                "passed": finding.passed,
                "bound": finding.bound,
            }
        )
        if not math.isfinite(dev) and not math.isnan(dev):
            rows[-1]["deviation"] = math.copysign(_CLIP, dev)
    return {
        "kind": "overview",
        "x_label": "(measured - predicted) / tolerance (dimensionless)\n"
        "a value passes in [-1, 1], an upper bound at <= 1, a lower bound at >= -1",
        "clip": _CLIP,
        "rows": rows,
    }


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or " "


def _draw_value(ax: Axes, panel: dict[str, Any], *, narrow: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator

    predicted, tol = panel["predicted"], panel["tolerance"] or 0.0
    measured, err = panel["measured"], panel["uncertainty"] or 0.0
    bound, limit = panel.get("bound", ""), panel.get("limit")
    color = PASS_COLOR if panel["passed"] else FAIL_COLOR
    span = [v for v in (predicted, measured) if v is not None]
    if bound and limit is not None:
        span.append(limit)  # the passing side is shaded once the view is known (below)
    elif predicted is not None:
        ax.axvspan(predicted - tol, predicted + tol, color=color, alpha=0.18, label="pass band: predicted ± tolerance")
        ax.axvline(predicted, color=PREDICTED_COLOR, lw=2.2, label="predicted")
        span += [predicted - tol, predicted + tol]
    if measured is not None:
        ax.errorbar(
            [measured],
            [0.0],
            xerr=[err],
            fmt="o",
            color=MEASURED_COLOR,
            ms=8,
            capsize=6,
            lw=2,
            label="measured ± 1 s.e.",
        )
        span += [measured - err, measured + err]
    else:
        ax.text(0.5, 0.5, "measured: not finite", transform=ax.transAxes, ha="center", color=FAIL_COLOR)
    if span:
        lo, hi = min(span), max(span)
        pad = 0.15 * (hi - lo) if hi > lo else (0.05 * abs(hi) or 1.0)
        ax.set_xlim(lo - pad, hi + pad)
    if bound and limit is not None:
        left, right = ax.get_xlim()
        sign = "<=" if bound == "upper" else ">="
        side = (left, limit) if bound == "upper" else (limit, right)
        ax.axvspan(*side, color=color, alpha=0.18, label=f"pass region: measured {sign} bound")
        ax.axvline(limit, color=BOUND_COLOR, lw=2.4, label=f"{bound} bound")
        ax.set_xlim(left, right)
    ax.set_ylim(-1, 1.6)
    ax.set_yticks([])
    ax.set_xlabel(panel["x_label"])
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useOffset=False)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4 if narrow else 7))
    ax.legend(loc="upper center", ncol=3, fontsize=7.5, frameon=False)


def _draw_curve(ax: Axes, panel: dict[str, Any]) -> None:
    ax.plot(
        panel["predicted_x"],
        [math.nan if v is None else v for v in panel["predicted"]],
        color=PREDICTED_COLOR,
        lw=2,
        label="predicted",
    )
    xs = panel["x"]
    ys = [math.nan if v is None else v for v in panel["measured"]]
    errs = [0.0 if v is None else v for v in panel["uncertainty"]] or None
    ax.errorbar(xs, ys, yerr=errs, fmt="o", color=MEASURED_COLOR, ms=5, capsize=3, label="measured ± 1 s.e.")
    if panel["log_x"]:
        ax.set_xscale("log")
    if panel["log_y"]:
        ax.set_yscale("log")
    ax.set_xlabel(panel["x_label"])
    ax.set_ylabel(panel["y_label"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5)


def _draw_overview(fig: Figure, data: dict[str, Any]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = data["rows"]
    ax = fig.add_subplot(1, 1, 1)
    clip = data["clip"]
    edge = clip + 0.3
    for i, row in enumerate(rows):  # each row's passing region: a band for a value, one side of the line for a bound
        y = len(rows) - 1 - i
        bound = row.get("bound", "")
        lo, hi = {"upper": (-edge, 1.0), "lower": (-1.0, edge)}.get(bound, (-1.0, 1.0))
        ax.fill_betweenx([y - 0.5, y + 0.5], lo, hi, color=PASS_COLOR, alpha=0.15, lw=0)
        if bound:
            at = 1.0 if bound == "upper" else -1.0
            ax.plot([at, at], [y - 0.42, y + 0.42], color=BOUND_COLOR, lw=2.4, solid_capstyle="butt")
        else:
            ax.plot([0.0, 0.0], [y - 0.42, y + 0.42], color=PREDICTED_COLOR, lw=2, solid_capstyle="butt")
    for i, row in enumerate(rows):
        color = PASS_COLOR if row["passed"] else FAIL_COLOR
        y = len(rows) - 1 - i
        if row["deviation"] is None:
            ax.text(
                0,
                y,
                "error / not finite",
                color=FAIL_COLOR,
                ha="center",
                va="center",
                fontsize=8,
                backgroundcolor="white",
            )
            continue
        dev, err = row["deviation"], row["error"] or 0.0
        shown = max(-clip, min(clip, dev))
        marker = "o" if shown == dev else (">" if dev > 0 else "<")
        ax.errorbar([shown], [y], xerr=[min(err, clip)], fmt=marker, color=color, ms=7, capsize=4)
    handles = [
        Patch(color=PASS_COLOR, alpha=0.15, label="passes here"),
        Line2D([], [], color=PREDICTED_COLOR, lw=2, label="predicted value"),
        Line2D([], [], color=BOUND_COLOR, lw=2.4, label="bound (upper at +1, lower at -1)"),
        Line2D([], [], color=PASS_COLOR, marker="o", ls="", label="measured ± 1 s.e. (red: failed; arrow: off scale)"),
    ]
    ax.set_yticks(range(len(rows)), [r["label"] for r in reversed(rows)], fontsize=8)
    ax.set_xlim(-clip - 0.3, clip + 0.3)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(data["x_label"])
    fig.suptitle("Every claim of the tour: measured deviation from the prediction, in tolerances")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)


def draw(data: dict[str, Any], path: str | Path, *, dpi: int = 110) -> Path:
    """Draw a figure described by :func:`experiment_figure` or :func:`overview_figure` into a PNG.

    Args:
        data: the figure's plain-data description.
        path: where to write the PNG.
        dpi: resolution of the PNG.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if data.get("kind") == "overview":
        fig = Figure(figsize=(9.0, 1.6 + 0.32 * max(1, len(data["rows"]))), layout="constrained")
        FigureCanvasAgg(fig)
        _draw_overview(fig, data)
        fig.savefig(path, dpi=dpi)
        return path

    rows: list[list[dict[str, Any]]] = data["rows"]
    curves = any(len(r) > 1 for r in rows)
    heights = [3.4 if len(r) > 1 else 1.7 for r in rows] or [1.5]
    fig = Figure(figsize=(12.0 if curves else 8.0, sum(heights) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    verdict = "ERROR" if data["error"] else ("PASS" if data["passed"] else "FAIL")
    fig.suptitle(
        f"{data['experiment']}: {verdict}",
        fontsize=12,
        fontweight="bold",
        color=PASS_COLOR if data["passed"] else FAIL_COLOR,
    )
    if not rows:
        ax = fig.add_subplot(1, 1, 1)
        ax.axis("off")
        ax.text(0.5, 0.5, _wrap(data["error"] or "no findings", 90), ha="center", va="center", color=FAIL_COLOR)
        fig.savefig(path, dpi=dpi)
        return path
    grid = fig.add_gridspec(
        len(rows), 2 if curves else 1, height_ratios=heights, width_ratios=[1.0, 1.3] if curves else None
    )
    for i, panels in enumerate(rows):
        if len(panels) > 1:
            value_ax, curve_ax = fig.add_subplot(grid[i, 0]), fig.add_subplot(grid[i, 1])
            _draw_curve(curve_ax, panels[1])
        else:
            value_ax = fig.add_subplot(grid[i, :])
        _draw_value(value_ax, panels[0], narrow=len(panels) > 1)
        mark = "pass" if panels[0]["passed"] else "FAIL"
        value_ax.set_title(
            _wrap(f"[{mark}] {panels[0]['title']}", 70 if curves else 100),
            fontsize=9,
            loc="left",
            color="black" if panels[0]["passed"] else FAIL_COLOR,
        )
    fig.savefig(path, dpi=dpi)
    return path
