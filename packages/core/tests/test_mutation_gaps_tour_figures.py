"""Tests that close the mutation-testing gaps of the core tour (issue 18): ``tour/figures.py``,
``tour/experiments/core.py`` and ``tour/experiments/escape.py``.

Figures: the plain-data panels and overview rows are compared whole, and what :func:`figures.draw` puts on the
Agg canvas is read back from the saved figure (line and error-bar data, spans, limits, scales, labels, legends,
titles, sizes), never from pixels. Experiments: each runs at its smallest size and its numbers are held to an
independent re-computation from the same seeded streams: the mini-batch gradients and SGD chains written out
here without the library's estimators and optimizers, the escape chains replayed step by step with the
documented updates (their first-passage steps then summarised by ``EscapeTimes.estimate``, held to closed forms
in test_escape_times.py), and every prediction recomputed from the theory functions of ``noisygrad.noise.escape``.
They agree exactly or to float64 rounding (relative 1e-12, 1e-10 for sums over many draws or quadratures); the
claims, details, parameters and curves are compared exactly, and the wall-clock details read a fake clock. No
statistical tolerance is used, so no check here can fail by chance.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from noisygrad.noise.escape import (
    EscapeTimes,
    chain_mean_first_passage_time,
    diffusion_mean_first_passage_time,
    kramers_escape_time,
    langer_escape_time,
    langevin_mean_first_passage_time_2d,
)
from noisygrad.tour import figures
from noisygrad.tour.experiments import core as exp_core
from noisygrad.tour.experiments import escape as exp_escape
from noisygrad.tour.findings import Curve, Finding
from noisygrad.tour.kit import torch_stream
from noisygrad.tour.registry import TourEntry

F64 = torch.float64
RTOL = 1e-12


def _close(a: float, b: float, rtol: float = RTOL) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-300)


# ------------------------------------------------------------------------------------------ figures: the data


def _curve() -> Curve:
    return Curve(
        "x (u)",
        "y (v)",
        [1.0, 2.0, 4.0],
        [1.0, math.nan, 3.0],
        [0.5, 1.5],
        uncertainty=[0.1, 0.2, 0.3],
        predicted_x=[1.0, 4.0],
        log_x=True,
        log_y=False,
    )


def _value(measured: float = 1.5, **kw: Any) -> Finding:
    return Finding("t.v", "a claim", 1.0, measured, 0.25, 1.0, **kw)


def test_num_and_unit_label() -> None:
    assert figures._num(2) == 2.0
    assert isinstance(figures._num(2), float)
    assert figures._num(math.nan) is None
    assert figures._num(-math.inf) is None
    assert figures._nums([1.0, math.inf]) == [1.0, None]
    assert figures._unit_label("m") == "value (m)"
    assert figures._unit_label("") == "value (dimensionless)"


def test_numbered_puts_an_error_row_before_the_findings_of_its_entry() -> None:
    f1, f2, f3 = _value(1.0), _value(2.0), _value(3.0)
    entries = [TourEntry("a", [f1], 0.1), TourEntry("b", [f2, f3], 0.1, error="E"), TourEntry("c", [], 0.1)]
    rows = figures.numbered(entries)
    assert [(k, e.experiment, f) for k, e, f in rows] == [(1, "a", f1), (2, "b", None), (3, "b", f2), (4, "b", f3)]


def test_finding_panels_whole() -> None:
    finding = _value(unit="s", curve=_curve())
    value, curve = figures.finding_panels(finding)
    assert value == {
        "kind": "value",
        "title": "a claim",
        "number": None,
        "passed": True,
        "x_label": "value (s)",
        "bound": "",
        "limit": None,
        "predicted": 1.0,
        "tolerance": 1.0,
        "measured": 1.5,
        "uncertainty": 0.25,
    }
    assert curve == {
        "kind": "curve",
        "title": "a claim",
        "passed": True,
        "x_label": "x (u)",
        "y_label": "y (v)",
        "x": [1.0, 2.0, 4.0],
        "measured": [1.0, None, 3.0],
        "uncertainty": [0.1, 0.2, 0.3],
        "predicted_x": [1.0, 4.0],
        "predicted": [0.5, 1.5],
        "log_x": True,
        "log_y": False,
    }
    (numbered,) = figures.finding_panels(_value(3.0), 7)
    assert (numbered["title"], numbered["number"], numbered["passed"]) == ("#7 a claim", 7, False)
    (upper,) = figures.finding_panels(Finding.at_most("t.b", "c", 0.5, 0.25))
    assert (upper["bound"], upper["limit"]) == ("upper", 0.5)


def test_experiment_figure_numbers_from_first() -> None:
    entry = TourEntry("t.e", [_value(1.0), _value(3.0)], 0.1)
    data = figures.experiment_figure(entry, 5)
    assert (data["experiment"], data["passed"], data["error"]) == ("t.e", False, None)
    assert [row[0]["number"] for row in data["rows"]] == [5, 6]
    assert [row[0]["number"] for row in figures.experiment_figure(entry)["rows"]] == [None, None]


def test_normalised_deviation_and_tolerance_used() -> None:
    dev = figures.normalised_deviation
    assert dev(Finding("t", "c", 1.0, 2.0, 0.5, 4.0)) == (0.25, 0.125)
    assert dev(Finding("t", "c", 1.0, 1.0, 0.5, 0.0)) == (0.0, 0.0)
    assert dev(Finding("t", "c", 1.0, 0.0, 0.5, 0.0)) == (-math.inf, 0.0)
    assert dev(Finding("t", "c", 1.0, 3.0, 0.5, 0.0)) == (math.inf, 0.0)
    nan = dev(Finding("t", "c", 1.0, math.nan, 0.5, 0.0))
    assert math.isnan(nan[0])
    assert nan[1] == 0.0
    used = figures.tolerance_used
    assert used(Finding("t", "c", 1.0, 0.0, 0.1, 2.0)) == 0.5
    upper_below = Finding("t", "c", 0.0, -1.0, 0.1, 2.0, bound="upper")
    upper_above = Finding("t", "c", 0.0, 3.0, 0.1, 2.0, bound="upper")
    lower_below = Finding("t", "c", 0.0, -3.0, 0.1, 2.0, bound="lower")
    lower_above = Finding("t", "c", 0.0, 1.0, 0.1, 2.0, bound="lower")
    assert [used(f) for f in (upper_below, upper_above, lower_below, lower_above)] == [0.0, 1.5, 1.5, 0.0]
    for bound in ("upper", "lower"):
        assert math.isnan(used(Finding("t", "c", 0.0, math.nan, 0.1, 2.0, bound=bound)))


def test_overview_rows_whole() -> None:
    entries = [
        TourEntry("t.a", [Finding("t.a", "c", 0.0, -1.0, 0.5, 0.0), Finding("t.a", "c", 0.0, 1.0, 0.5, 2.0)], 0.1),
        TourEntry("t.b", [Finding("t.b", "c", 0.0, math.nan, 0.5, 2.0, bound="upper")], 0.1, error="E"),
    ]
    data = figures.overview_figure(entries)
    assert data["kind"] == "overview"
    assert data["clip"] == 3.0 == figures._CLIP
    assert data["x_label"].startswith("(measured - predicted) / tolerance (dimensionless)\n")
    assert data["rows"] == [
        {"number": 1, "label": "#1 t.a", "deviation": -3.0, "error": 0.0, "passed": False, "bound": ""},
        {"number": 2, "label": "#2 t.a", "deviation": 0.5, "error": 0.25, "passed": True, "bound": ""},
        {"number": 3, "label": "#3 t.b", "deviation": None, "error": None, "passed": False, "bound": ""},
        {"number": 4, "label": "#4 t.b", "deviation": None, "error": 0.25, "passed": False, "bound": "upper"},
    ]


def test_wrap() -> None:
    assert figures._wrap("", 10) == " "
    assert figures._wrap("aaa bbb ccc", 7) == "aaa bbb\nccc"


# ------------------------------------------------------------------------------------------ figures: drawing


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Figure, dict[str, Any]]]:
    """Every figure :func:`figures.draw` saves, with savefig's keyword arguments (the PNG is still written)."""
    saved: list[tuple[Figure, dict[str, Any]]] = []
    original = Figure.savefig

    def savefig(self: Figure, fname: Any, **kwargs: Any) -> None:
        saved.append((self, kwargs))
        original(self, fname, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def _span(patch: Any) -> tuple[float, float]:
    xs = np.asarray(patch.get_path().vertices @ patch.get_patch_transform().get_matrix()[:2, :2].T)[:, 0]
    xs = xs + patch.get_patch_transform().get_matrix()[0, 2]
    return float(xs.min()), float(xs.max())


def _legend(ax: Any) -> tuple[list[str], Any]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()], legend


def test_draw_a_value_panel(drawn: list[Any], tmp_path: Any) -> None:
    entry = TourEntry("t.v", [Finding("t.v", "claim", 1.0, 1.5, 0.25, 1.0, unit="m")], 0.1)
    path = figures.draw(figures.experiment_figure(entry, 1), tmp_path / "v.png", dpi=50)
    assert path == tmp_path / "v.png"
    assert path.read_bytes().startswith(b"\x89PNG")
    ((fig, kwargs),) = drawn
    assert kwargs == {"dpi": 50}
    assert tuple(fig.get_size_inches()) == (8.0, 1.7 + 0.6)
    assert fig.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"
    sup = fig._suptitle
    assert (sup.get_text(), sup.get_fontsize(), sup.get_fontweight(), sup.get_color()) == (
        "t.v: PASS",
        12.0,
        "bold",
        figures.PASS_COLOR,
    )
    (ax,) = fig.axes
    assert ax.get_subplotspec().get_gridspec().get_geometry() == (1, 1)
    (band,) = ax.patches
    assert _span(band) == pytest.approx((0.0, 2.0))
    assert band.get_alpha() == 0.18
    assert band.get_facecolor()[:3] == pytest.approx(
        tuple(int(figures.PASS_COLOR[i : i + 2], 16) / 255 for i in (1, 3, 5))
    )
    line = ax.lines[0]
    assert list(line.get_xdata()) == [1.0, 1.0]
    assert line.get_linewidth() == 2.2
    assert line.get_color() == figures.PREDICTED_COLOR
    (container,) = ax.containers
    data_line, caps, (bars,) = container.lines
    assert (list(data_line.get_xdata()), list(data_line.get_ydata())) == ([1.5], [0.0])
    assert (data_line.get_marker(), data_line.get_markersize(), data_line.get_color()) == (
        "o",
        8.0,
        figures.MEASURED_COLOR,
    )
    assert caps[0].get_markersize() == 12.0  # capsize 6: a cap marker of 2 x 6 points
    assert np.asarray(bars.get_segments()[0])[:, 0].tolist() == [1.25, 1.75]
    assert bars.get_linewidth()[0] == 2.0
    # the span: predicted +/- tol = [0, 2] and measured +/- err = [1.25, 1.75]: padded by 15% of 2
    assert ax.get_xlim() == pytest.approx((-0.3, 2.3))
    assert ax.get_ylim() == (-1.0, 1.6)
    assert len(ax.get_yticks()) == 0
    assert ax.get_xlabel() == "value (m)"
    formatter = ax.xaxis.get_major_formatter()
    assert formatter._powerlimits == (-3, 4)
    assert formatter.get_useOffset() is False
    assert ax.xaxis.get_major_locator()._nbins == 7
    labels, legend = _legend(ax)
    assert labels == ["pass band: predicted ± tolerance", "predicted", "measured ± 1 s.e."]
    assert (legend._loc, legend._ncols, legend.get_frame_on(), legend.get_texts()[0].get_fontsize()) == (
        9,
        3,
        False,
        7.5,
    )
    title = ax._left_title
    assert (title.get_text(), title.get_fontsize(), title.get_color()) == ("[pass] #1 claim", 9.0, "black")


def test_draw_a_failing_value_panel_with_a_curve(drawn: list[Any], tmp_path: Any) -> None:
    finding = Finding("t.c", "claim " * 20, 2.0, 5.0, 0.5, 1.0, curve=_curve())
    figures.draw(figures.experiment_figure(TourEntry("t.c", [finding, _value(1.0)], 0.1), 1), tmp_path / "c.png")
    ((fig, kwargs),) = drawn
    assert kwargs == {"dpi": 110}
    assert tuple(fig.get_size_inches()) == (12.0, 3.4 + 1.7 + 0.6)
    assert fig._suptitle.get_text() == "t.c: FAIL"
    assert fig._suptitle.get_color() == figures.FAIL_COLOR
    value_ax, curve_ax, second_ax = fig.axes
    grid = value_ax.get_subplotspec().get_gridspec()
    assert grid.get_geometry() == (2, 2)
    assert grid.get_height_ratios() == [3.4, 1.7]
    assert grid.get_width_ratios() == [1.0, 1.3]
    spans = [(a.get_subplotspec().rowspan, a.get_subplotspec().colspan) for a in (value_ax, curve_ax, second_ax)]
    assert spans == [(range(0, 1), range(0, 1)), (range(0, 1), range(1, 2)), (range(1, 2), range(0, 2))]
    assert value_ax.xaxis.get_major_locator()._nbins == 4
    assert second_ax.xaxis.get_major_locator()._nbins == 7
    assert value_ax.patches[0].get_facecolor()[:3] == pytest.approx((214 / 255, 40 / 255, 40 / 255))
    title = value_ax._left_title
    assert title.get_color() == figures.FAIL_COLOR
    assert title.get_text() == figures._wrap("[FAIL] #1 " + "claim " * 20, 70)
    assert second_ax._left_title.get_text() == "[pass] #2 a claim"
    # the curve panel: theory line on predicted_x, measured points with the NaN kept (not drawn)
    (theory,) = curve_ax.lines[:1]
    assert (list(theory.get_xdata()), list(theory.get_ydata())) == ([1.0, 4.0], [0.5, 1.5])
    assert (theory.get_color(), theory.get_linewidth()) == (figures.PREDICTED_COLOR, 2.0)
    (container,) = curve_ax.containers
    points, caps, (bars,) = container.lines
    assert list(points.get_xdata()) == [1.0, 2.0, 4.0]
    assert points.get_ydata()[0] == 1.0
    assert math.isnan(points.get_ydata()[1])
    assert points.get_ydata()[2] == 3.0
    assert (points.get_marker(), points.get_markersize(), points.get_color()) == ("o", 5.0, figures.MEASURED_COLOR)
    assert caps[0].get_markersize() == 6.0
    assert np.asarray(bars.get_segments()[0])[:, 1].tolist() == pytest.approx([0.9, 1.1])
    assert (curve_ax.get_xscale(), curve_ax.get_yscale()) == ("log", "linear")
    assert (curve_ax.get_xlabel(), curve_ax.get_ylabel()) == ("x (u)", "y (v)")
    labels, legend = _legend(curve_ax)
    assert labels == ["predicted", "measured ± 1 s.e."]
    assert legend.get_texts()[0].get_fontsize() == 7.5
    assert curve_ax.xaxis._major_tick_kw.get("gridOn") is True
    # the failing value panel: measured 5 +/- 0.5, band [1, 3]: span [1, 5.5] padded by 0.675
    assert value_ax.get_xlim() == pytest.approx((1.0 - 0.675, 5.5 + 0.675))


def test_draw_curve_log_y_and_no_uncertainty(drawn: list[Any], tmp_path: Any) -> None:
    curve = Curve("x", "y", [1.0, 2.0], [1.0, 2.0], [1.0, 2.0], log_y=True)
    figures.draw(figures.experiment_figure(TourEntry("t", [_value(curve=curve)], 0.1)), tmp_path / "l.png")
    ((fig, _),) = drawn
    curve_ax = fig.axes[1]
    assert (curve_ax.get_xscale(), curve_ax.get_yscale()) == ("linear", "log")
    _, caps, bars = curve_ax.containers[0].lines
    assert caps == ()
    assert bars == ()


def test_draw_bounds_and_degenerate_values(drawn: list[Any], tmp_path: Any) -> None:
    upper = Finding.at_most("t.b", "u", 2.0, 1.0)  # measured 1 <= 2, uncertainty 0
    lower = Finding.at_least("t.b", "l", 2.0, 1.0, ideal=3.0)  # measured 1 < 2: fails
    nan = Finding("t.b", "n", 4.0, math.nan, 0.0, 0.0)  # a lone predicted point, nothing measured
    figures.draw(figures.experiment_figure(TourEntry("t.b", [upper, lower, nan], 0.1)), tmp_path / "b.png")
    ((fig, _),) = drawn
    ax_u, ax_l, ax_n = fig.axes
    # upper: span [0 (predicted), 1, 1, 2 (limit)] padded by 0.3; the pass region is left of the bound
    assert ax_u.get_xlim() == pytest.approx((-0.3, 2.3))
    (region,) = ax_u.patches
    assert _span(region) == pytest.approx((-0.3, 2.0))
    bound_line = ax_u.lines[-1]
    assert list(bound_line.get_xdata()) == [2.0, 2.0]
    assert (bound_line.get_color(), bound_line.get_linewidth()) == (figures.BOUND_COLOR, 2.4)
    assert _legend(ax_u)[0] == ["pass region: measured <= bound", "upper bound", "measured ± 1 s.e."]
    # lower: span [3 (the ideal, drawn as predicted), 1, 1, 2 (limit)] padded by 0.3; passes right of the bound
    assert ax_l.get_xlim() == pytest.approx((0.7, 3.3))
    assert _span(ax_l.patches[0]) == pytest.approx((2.0, 3.3))
    assert ax_l.patches[0].get_facecolor()[:3] == pytest.approx((214 / 255, 40 / 255, 40 / 255))
    assert _legend(ax_l)[0] == ["pass region: measured >= bound", "lower bound", "measured ± 1 s.e."]
    # nothing measured: a band of zero width at 4, padded by 5% of 4, and the text
    assert ax_n.get_xlim() == pytest.approx((3.8, 4.2))
    assert [t.get_text() for t in ax_n.texts] == ["measured: not finite"]
    assert ax_n.texts[0].get_color() == figures.FAIL_COLOR
    assert ax_n.texts[0].get_position() == (0.5, 0.5)
    assert ax_n.containers == []


def test_draw_value_zero_span_at_zero_and_empty_span() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    panel = {"predicted": 0.0, "tolerance": None, "measured": 0.0, "uncertainty": None, "passed": True, "x_label": "v"}
    figures._draw_value(ax, panel)
    assert ax.get_xlim() == (-1.0, 1.0)
    assert ax.xaxis.get_major_locator()._nbins == 7  # not narrow by default
    ax2 = fig.add_subplot(2, 1, 2)
    empty = {"predicted": None, "tolerance": 0.0, "measured": None, "uncertainty": 0.0, "passed": False, "x_label": "v"}
    with pytest.warns(UserWarning, match="No artists with labels"):
        figures._draw_value(ax2, empty)
    assert ax2.get_xlim() == (0.0, 1.0)  # matplotlib's default view: nothing set


def test_draw_an_error_figure(drawn: list[Any], tmp_path: Any) -> None:
    figures.draw(figures.experiment_figure(TourEntry("t.e", [], 0.1, error="boom " * 30)), tmp_path / "e.png")
    figures.draw(figures.experiment_figure(TourEntry("t.n", [], 0.1)), tmp_path / "n.png")
    (fig, _), (fig_n, _) = drawn
    assert tuple(fig.get_size_inches()) == (8.0, 1.5 + 0.6)
    assert fig._suptitle.get_text() == "t.e: ERROR"
    assert fig._suptitle.get_color() == figures.FAIL_COLOR
    (ax,) = fig.axes
    assert not ax.axison
    assert ax.get_subplotspec().get_geometry() == (1, 1, 0, 0)  # the whole figure: the message at its centre
    (text,) = ax.texts
    assert text.get_text() == figures._wrap("boom " * 30, 90)
    assert "\n" in text.get_text()
    assert (text.get_position(), text.get_ha(), text.get_va(), text.get_color()) == (
        (0.5, 0.5),
        "center",
        "center",
        figures.FAIL_COLOR,
    )
    assert fig_n.axes[0].texts[0].get_text() == "no findings"
    assert fig_n._suptitle.get_text() == "t.n: FAIL"  # no findings: not passed


def test_draw_the_overview(drawn: list[Any], tmp_path: Any) -> None:
    entries = [
        TourEntry("t.a", [Finding("t.a", "c", 0.0, 0.5, 0.25, 1.0), Finding("t.a", "c", 0.0, 10.0, 9.0, 1.0)], 0.1),
        TourEntry("t.b", [Finding("t.b", "c", 0.0, -10.0, 0.0, 1.0, bound="upper")], 0.1),
        TourEntry("t.c", [Finding("t.c", "c", 0.0, -2.0, 0.0, 1.0, bound="lower")], 0.1, error="E"),
    ]
    data = figures.overview_figure(entries)
    figures.draw(data, tmp_path / "o.png", dpi=40)
    ((fig, kwargs),) = drawn
    assert kwargs == {"dpi": 40}
    assert tuple(fig.get_size_inches()) == pytest.approx((9.0, 1.6 + 0.32 * 5))
    (ax,) = fig.axes
    n = 5  # rows: value, value off scale, upper bound, the error, lower bound; drawn top to bottom
    bands = [c.get_paths()[0].vertices for c in ax.collections if c.__class__.__name__ == "FillBetweenPolyCollection"]
    if not bands:  # older matplotlib
        bands = [c.get_paths()[0].vertices for c in ax.collections if c.__class__.__name__ == "PolyCollection"]
    extents = [(v[:, 0].min(), v[:, 0].max(), v[:, 1].min(), v[:, 1].max()) for v in bands]
    expected = [(-1, 1, 3.5, 4.5), (-1, 1, 2.5, 3.5), (-3.3, 1, 1.5, 2.5), (-1, 1, 0.5, 1.5), (-1, 3.3, -0.5, 0.5)]
    assert np.allclose(np.array(extents), np.array(expected), rtol=0, atol=1e-12)
    marks = [
        (list(line.get_xdata()), list(line.get_ydata()), line.get_color(), line.get_linewidth())
        for line in ax.lines[:5]
    ]
    assert marks == [
        ([0.0, 0.0], pytest.approx([3.58, 4.42]), figures.PREDICTED_COLOR, 2.0),
        ([0.0, 0.0], pytest.approx([2.58, 3.42]), figures.PREDICTED_COLOR, 2.0),
        ([1.0, 1.0], pytest.approx([1.58, 2.42]), figures.BOUND_COLOR, 2.4),
        ([0.0, 0.0], pytest.approx([0.58, 1.42]), figures.PREDICTED_COLOR, 2.0),
        ([-1.0, -1.0], pytest.approx([-0.42, 0.42]), figures.BOUND_COLOR, 2.4),
    ]
    assert all(line.get_solid_capstyle() == "butt" for line in ax.lines[:5])
    points = [c.lines[0] for c in ax.containers]
    assert [(list(p.get_xdata()), list(p.get_ydata()), p.get_marker()) for p in points] == [
        ([0.5], [4.0], "o"),
        ([3.0], [3.0], ">"),
        ([-3.0], [2.0], "<"),
        ([-2.0], [0.0], "o"),
    ]
    assert [p.get_color() for p in points] == [
        figures.PASS_COLOR,
        figures.FAIL_COLOR,
        figures.PASS_COLOR,
        figures.FAIL_COLOR,
    ]
    assert points[0].get_markersize() == 7.0
    assert ax.containers[0].lines[1][0].get_markersize() == 8.0
    assert np.asarray(ax.containers[0].lines[2][0].get_segments()[0])[:, 0].tolist() == [0.25, 0.75]
    assert np.asarray(ax.containers[1].lines[2][0].get_segments()[0])[:, 0].tolist() == [0.0, 6.0]  # err 9 -> 3
    assert np.asarray(ax.containers[3].lines[2][0].get_segments()[0])[:, 0].tolist() == [-2.0, -2.0]  # err 0
    (text,) = ax.texts
    assert (text.get_text(), text.get_position(), text.get_color(), text.get_fontsize()) == (
        "error / not finite",
        (0, 1),
        figures.FAIL_COLOR,
        8.0,
    )
    assert (text.get_ha(), text.get_va()) == ("center", "center")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["#5 t.c", "#4 t.c", "#3 t.b", "#2 t.a", "#1 t.a"]
    assert list(ax.get_yticks()) == [0, 1, 2, 3, 4]
    assert ax.get_yticklabels()[0].get_fontsize() == 8.0
    assert ax.get_xlim() == pytest.approx((-3.3, 3.3))
    assert ax.get_subplotspec().get_geometry() == (1, 1, 0, 0)
    assert ax.get_ylim() == pytest.approx((-0.7, n - 0.3))
    assert ax.get_xlabel() == data["x_label"]
    assert fig._suptitle.get_text().startswith("Every claim of the tour")
    labels, legend = _legend(ax)
    assert labels == [
        "passes here",
        "predicted value",
        "bound (upper at +1, lower at -1)",
        "measured ± 1 s.e. (red: failed; arrow: off scale)",
    ]
    assert (legend._loc, legend._ncols, legend.get_frame_on(), legend.get_texts()[0].get_fontsize()) == (
        8,
        2,
        False,
        8.0,
    )
    assert ax.xaxis._major_tick_kw.get("gridOn") is True
    assert ax.yaxis._major_tick_kw.get("gridOn") is not True


def test_draw_an_empty_overview(drawn: list[Any], tmp_path: Any) -> None:
    figures.draw(figures.overview_figure([]), tmp_path / "o.png")
    ((fig, _),) = drawn
    assert tuple(fig.get_size_inches()) == pytest.approx((9.0, 1.6 + 0.32))


def test_draw_styles_transforms_grids_and_legend_handles(drawn: list[Any], tmp_path: Any) -> None:
    nan = Finding("t.b", "n", 4.0, math.nan, 0.0, 0.0)
    curve = Curve("x", "y", [1.0, 2.0], [1.0, 2.0], [1.0, 2.0])
    figures.draw(
        figures.experiment_figure(TourEntry("t.b", [nan, Finding("t.b", "c", 1.0, 1.0, 0.1, 1.0, curve=curve)], 0.1)),
        tmp_path / "b.png",
    )
    entries = [TourEntry("t.a", [Finding("t.a", "c", 0.0, 0.5, 0.25, 1.0)], 0.1), TourEntry("t.c", [], 0.1, error="E")]
    figures.draw(figures.overview_figure(entries), tmp_path / "o.png")
    (fig, _), (over, _) = drawn
    ax_n = fig.axes[0]
    (text,) = ax_n.texts
    assert text.get_transform() == ax_n.transAxes
    assert text.get_ha() == "center"
    curve_ax = fig.axes[2]
    assert curve_ax.xaxis.get_gridlines()[0].get_alpha() == 0.3
    assert over.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"
    (ax,) = over.axes
    assert ax.xaxis.get_gridlines()[0].get_alpha() == 0.3
    (label,) = ax.texts
    assert label.get_bbox_patch().get_facecolor()[:3] == (1.0, 1.0, 1.0)
    bands = ax.collections[:2]
    assert [c.get_alpha() for c in bands] == [0.15, 0.15]
    assert [float(c.get_linewidth()[0]) for c in bands] == [0.0, 0.0]
    legend = ax.get_legend()
    handles = legend.legend_handles
    assert handles[0].get_alpha() == 0.15
    assert [h.get_linewidth() for h in handles[1:3]] == [2.0, 2.4]
    assert (handles[3].get_marker(), handles[3].get_linestyle()) == ("o", "None")
    assert over._suptitle.get_text() == "Every claim of the tour: measured deviation from the prediction, in tolerances"
    bbox = legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted())
    assert (bbox.x0, bbox.y0) == pytest.approx((0.5, 1.0))


# ------------------------------------------------------------------------------------------ experiments: core


def _data(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(200, 5, generator=gen, dtype=F64)
    y = x @ torch.randn(5, generator=gen, dtype=F64) + torch.randn(200, generator=gen, dtype=F64)
    return x, y


def test_minibatch_variance_recomputed() -> None:
    b, draws = 16, 100
    findings = exp_core.minibatch_variance(3, True, batch=b, draws=draws)
    gen = torch.Generator().manual_seed(3)
    x, y = _data(gen)
    full = -(x.T @ y) / 200  # the gradient of mean (x.w - y)^2 / 2 at w = 0
    trace_s = float((-(x * y[:, None])).var(0, unbiased=True).sum())
    assert len(findings) == 2
    for finding, replace, predicted, scheme, formula in zip(
        findings,
        (False, True),
        (trace_s / b * (1 - b / 200), trace_s * 199 / 200 / b),
        ("without", "with"),
        ("tr(S)/b (1 - b/N)", "tr(S)(N-1)/(N b)"),
        strict=True,
    ):
        errs = []
        for _ in range(draws):
            idx = torch.randint(200, (b,), generator=gen) if replace else torch.randperm(200, generator=gen)[:b]
            errs.append(float(((-(x[idx].T @ y[idx]) / b - full) ** 2).sum()))
        mean = sum(errs) / draws
        se = math.sqrt(sum((e - mean) ** 2 for e in errs) / (draws - 1)) / math.sqrt(draws)
        assert finding.experiment == "core.minibatch-variance"
        assert finding.claim == f"E|g_b - g|^2 of a batch drawn {scheme} replacement equals {formula}"
        assert _close(finding.predicted, predicted, 1e-10)
        assert _close(finding.measured, mean, 1e-10)
        assert _close(finding.uncertainty, se, 1e-8)
        assert _close(finding.tolerance, 4 * se, 1e-8)
        assert finding.details == {"N": 200, "d": 5, "b": b, "draws": draws, "tolerance": "4 standard errors"}
        assert (finding.unit, finding.bound, finding.curve) == ("", "", None)


def test_noise_ball_recomputed() -> None:
    chains, steps = 100, 100
    findings = exp_core.noise_ball(5, True, chains=chains, steps=steps)
    gen = torch.Generator().manual_seed(5)
    a, eta = 2.0, 0.1
    lrs = ([eta] * steps, [1 / (a * (1 + t)) for t in range(steps)])
    predicted = (eta / (a * (2 - eta * a)), 1 / (a * a * steps))
    claims = ("constant step: variance eta sigma^2/(a(2 - eta a))", "lr 1/(a(1+t)): variance sigma^2/(a^2 T)")
    assert len(findings) == 2
    for finding, lr, pred, claim in zip(findings, lrs, predicted, claims, strict=True):
        x = torch.ones(chains, dtype=F64)
        for t in range(steps):
            x = x.add(a * x + torch.randn(chains, generator=gen, dtype=F64), alpha=-lr[t])  # torch.optim.SGD's step
        assert finding.experiment == "core.noise-ball"
        assert finding.claim == f"SGD on a noisy quadratic, {claim}"
        assert _close(finding.predicted, pred)
        assert finding.measured == float(x.pow(2).mean())  # the same float64 operations: bit for bit
        assert _close(finding.uncertainty, pred * math.sqrt(2 / chains))
        assert _close(finding.tolerance, 4 * pred * math.sqrt(2 / chains))
        assert finding.details == {"a": a, "sigma": 1.0, "eta": eta, "steps": steps, "chains": chains}


def test_core_experiments_seed_defaults_to_0_and_reproduces() -> None:
    def numbers(findings: list[Finding]) -> list[tuple[float, float]]:
        return [(f.measured, f.uncertainty) for f in findings]

    mbv = exp_core.minibatch_variance
    assert numbers(mbv(batch=8, draws=100)) == numbers(mbv(0, batch=8, draws=100))
    assert numbers(mbv(0, batch=8, draws=100)) != numbers(mbv(1, batch=8, draws=100))
    nb = exp_core.noise_ball
    assert numbers(nb(chains=100, steps=100)) == numbers(nb(0, chains=100, steps=100))
    assert numbers(nb(0, chains=100, steps=100)) != numbers(nb(1, chains=100, steps=100))
    # the signature that help() and the docs show (the experiment's own, through functools.wraps)
    for fn in (mbv, nb, exp_escape.escape):
        params = inspect.signature(fn).parameters
        assert (params["seed"].default, params["quick"].default) == (0, True)


def test_core_experiments_parameters() -> None:
    def table(fn: Any) -> dict[str, tuple[Any, ...]]:
        return {p.name: (p.type, p.default, p.full, p.low, p.high) for p in fn.parameters}

    assert table(exp_core.minibatch_variance) == {
        "batch": (int, 16, None, 1, 199),
        "draws": (int, 2000, 20000, 100, 10**6),
    }
    assert table(exp_core.noise_ball) == {
        "chains": (int, 4000, 40000, 100, 10**7),
        "steps": (int, 400, None, 100, 100_000),
    }


# ------------------------------------------------------------------------------------------ experiments: escape

E = exp_escape


def test_escape_constants_and_landscape() -> None:
    for r in (E.WELL, E.SADDLE, E.DEEP):
        assert abs(r**3 - r - E.TILT) < 1e-12
    assert E.WELL < E.SADDLE < E.DEEP < 1.2
    assert E.WELL < -0.9
    assert (E.TILT, E.END, E.LOWER, E.BUDGET) == (0.15, 0.5, -2.5, 3.0)
    assert E.potential(2.0) == 4 - 2 - 0.3
    assert E.gradient(2.0) == 8 - 2 - 0.15
    assert _close(E.BARRIER, E.potential(E.SADDLE) - E.potential(E.WELL))
    assert _close(E.CURVATURE, 3 * E.WELL**2 - 1)
    assert np.array_equal(E._constant(2.5)([1, 2]), np.array([2.5, 2.5]))
    assert E._constant(2.5)(1.0).dtype == np.float64
    assert pytest.approx((2.0, 4.5), rel=1e-15) == (E.S0**2, E.S1**2)
    assert (E.GAMMA, E.K0, E.BETA, E.Y_RANGE) == (0.5, 0.4, -1.82, (-2.0, 1.5))


def test_escape_2d_landscape() -> None:
    assert E._stiffness(1.0) == 0.4 * math.exp(-1.82)
    assert float(E._stiffness(torch.tensor(1.0, dtype=F64))) == pytest.approx(0.4 * math.exp(-1.82), rel=1e-15)
    assert E.potential_2d(1.0, 2.0) == E.potential(1.0) + 0.4 * math.exp(-1.82) * 1.5**2 / 2
    xy = torch.tensor([[-1.1, 0.3], [0.4, -0.7]], dtype=F64, requires_grad=True)
    E.potential_2d(xy[:, 0], xy[:, 1]).sum().backward()
    assert torch.allclose(E.gradient_2d(xy.detach()), xy.grad, rtol=1e-13, atol=0)
    for x in (E.WELL, E.SADDLE):
        v = torch.tensor([x, E.GAMMA * x], dtype=F64)
        hess = torch.autograd.functional.hessian(lambda p: E.potential_2d(p[0], p[1]), v)
        assert np.allclose(E.hessian_2d(x), hess.numpy(), rtol=1e-13, atol=1e-15)


def test_escape_helpers() -> None:
    w = E._batch_weights((2, 3), 2)
    half, third = 1 / 2, 1 / 3
    expected = [[half, half, 0], [half, half, 0], [third, third, third], [third, third, third]]
    assert w.dtype == F64
    assert w.tolist() == expected
    white = E._whitened(50, 2, torch_stream(0, 9))
    assert white.shape == (50, 2)
    assert torch.allclose(white.mean(0), torch.zeros(2, dtype=F64), atol=1e-14)
    assert torch.allclose(white.T @ white / 50, torch.eye(2, dtype=F64), atol=1e-13)
    grid = np.array([0.0, 1.0, 2.0, 3.0])
    assert E._last_within(grid, np.array([0.0, 0.1, 0.2, 0.3]), 0.5) == 3.0
    assert E._last_within(grid, np.array([0.6, 0.7, 0.8, 0.9]), 0.5) == 0.0
    assert E._last_within(grid, np.array([0.0, 0.2, 0.6, 0.9]), 0.5) == pytest.approx(1.75, rel=1e-15)
    assert E._last_within(grid, np.array([0.0, 0.5, 0.6, 0.9]), 0.5) == 1.0
    # touching the tolerance is not exceeding it: the first crossing counts, after a dip back below
    assert E._last_within(grid, np.array([0.0, 0.5, 0.2, 0.9]), 0.5) == pytest.approx(2 + 0.3 / 0.7, rel=1e-15)
    lr, temp = 0.2, 0.1
    chain = chain_mean_first_passage_time(
        lambda x: x - lr * E.gradient(x), E._constant(math.sqrt(2 * lr * temp)), E.WELL, E.END, lower=E.LOWER
    )
    assert _close(E._sgld_discrete(lr, temp), lr * chain)


def _run_stats(finding: Finding) -> None:
    assert finding.experiment == "core.escape"
    assert finding.unit == "time (lr x steps)"


def _replay(step: Any, x0: torch.Tensor, crossed: Any, budget: int) -> EscapeTimes:
    """The first-passage steps of chains ``x0``, advanced by ``step(x, rows)`` on the running rows only."""
    n = x0.shape[0]
    x, rows = x0.clone(), torch.arange(n)
    steps = np.full(n, budget, dtype=np.int64)
    for k in range(1, budget + 1):
        if rows.numel() == 0:
            break
        x = step(x, rows)
        hit = crossed(x)
        steps[rows[hit].numpy()] = k
        x, rows = x[~hit], rows[~hit]
    censored = np.zeros(n, dtype=bool)
    censored[rows.numpy()] = True
    return EscapeTimes(steps, censored, budget)


def _same_estimates(findings: list[Finding], times: EscapeTimes, groups: int, lrs: Any) -> None:
    """Each finding's measurement is the censoring-aware estimate of its block of ``CHAINS`` replayed chains."""
    lrs = [lrs] * groups if isinstance(lrs, float) else lrs
    for i, f in enumerate(findings[:groups]):
        est = times.select(slice(i * CHAINS, (i + 1) * CHAINS)).estimate(time_per_step=lrs[i])
        assert (f.measured, f.uncertainty) == (est.mean, est.standard_error)
        assert (f.details["censored_fraction"], f.details["tail_events"]) == (est.censored_fraction, est.tail_events)
        assert f.details["chains"] == CHAINS
        assert f.details["step_budget"] == times.max_steps


CHAINS = 60


class _Clock:
    """A ``time`` stand-in whose ``perf_counter`` alternates 100.0 and 102.123456: every run lasts 2.123456 s."""

    def __init__(self) -> None:
        self.calls = 0

    def perf_counter(self) -> float:
        self.calls += 1
        return 100.0 if self.calls % 2 else 102.123456


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "time", _Clock())


def test_escape_langevin_temperatures_recomputed(clock: None) -> None:
    findings = E._langevin_temperatures(1, CHAINS)
    assert len(findings) == 8
    lr, ratios = 0.1, (2.0, 2.5, 3.0, 3.5)
    temps = [E.BARRIER / r for r in ratios]
    exact = [diffusion_mean_first_passage_time(E.gradient, E._constant(t), E.WELL, E.END, lower=-2.5) for t in temps]
    kramers = [kramers_escape_time(E.gradient, E._constant(t), E.WELL, E.SADDLE) for t in temps]
    discrete = [E._sgld_discrete(lr, t) for t in temps]
    budget = math.ceil(3.0 * max(exact) / lr)
    # the chains: x <- x - lr U'(x) + sqrt(2 lr T) z until x >= END, one stream for all rows
    gen = torch_stream(1, 0)
    scale = torch.tensor([math.sqrt(2 * lr * t) for t in temps], dtype=F64).repeat_interleave(CHAINS)

    def step(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return x - lr * E.gradient(x) + scale[rows] * torch.randn(x.shape, generator=gen, dtype=F64)

    times = _replay(step, torch.full((4 * CHAINS,), E.WELL, dtype=F64), lambda x: x >= 0.5, budget)
    _same_estimates(findings, times, 4, lr)
    for i in range(4):
        measured, exact_i = findings[i], findings[i + 4]
        _run_stats(measured)
        _run_stats(exact_i)
        allowance = abs(discrete[i] - exact[i])
        assert measured.claim == (
            f"SGLD escape time from the shallow well at Delta U / T = {ratios[i]}: the exact 1-D MFPT"
        )
        assert _close(measured.predicted, exact[i], 1e-12)
        assert _close(measured.tolerance, 4 * measured.uncertainty + allowance)
        assert _close(measured.details["z_score"], (measured.measured - exact[i]) / measured.uncertainty)
        for key, value in (("T", temps[i]), ("barrier", E.BARRIER), ("lr_U''(a)", lr * E.CURVATURE)):
            assert _close(measured.details[key], value)
        assert (measured.details["barrier_over_T"], measured.details["lr"]) == (ratios[i], lr)
        assert _close(measured.details["discrete_time_MFPT"], discrete[i])
        assert _close(measured.details["discretisation_allowance"], allowance)
        assert _close(measured.details["kramers"], kramers[i])
        assert measured.details.get("wall_seconds_all_four") == (2.12 if i == 0 else None)
        model = exact_i.measured * temps[i] / E.BARRIER
        assert exact_i.claim == (
            f"SGLD escape time at Delta U / T = {ratios[i]}: Kramers' law 2 pi / sqrt(U''(a) |U''(b)|) exp(Delta U / T)"
        )
        assert (exact_i.measured, exact_i.uncertainty) == (measured.measured, measured.uncertainty)
        assert _close(exact_i.predicted, kramers[i])
        assert _close(exact_i.tolerance, 4 * exact_i.uncertainty + model + allowance)
        d = exact_i.details
        assert (d["T"], d["barrier_over_T"]) == (temps[i], ratios[i])
        assert _close(d["model_allowance"], model)
        assert _close(d["exact_MFPT"], exact[i])
        assert _close(d["kramers_error_vs_exact"], kramers[i] / exact[i] - 1)
        assert _close(d["z_score"], (exact_i.measured - kramers[i]) / exact_i.uncertainty)
    curve = findings[0].curve
    grid = np.linspace(E.BARRIER / 3.6, E.BARRIER / 1.9, 24)
    assert curve.x_label == "temperature T (SGLD)"
    assert curve.y_label == "mean escape time (lr x steps)"
    assert list(curve.x) == temps
    assert list(curve.predicted_x) == grid.tolist()
    assert (curve.log_x, curve.log_y) == (False, True)
    assert list(curve.measured) == [f.measured for f in findings[:4]]
    assert list(curve.uncertainty) == [f.uncertainty for f in findings[:4]]
    smooth = diffusion_mean_first_passage_time(E.gradient, E._constant(float(grid[5])), E.WELL, E.END, lower=-2.5)
    assert _close(curve.predicted[5], smooth)
    kcurve = findings[4].curve
    assert kcurve.x_label == "Delta U / T (SGLD)"
    assert list(kcurve.x) == list(ratios)
    assert list(kcurve.predicted) == pytest.approx(kramers, rel=1e-12)
    assert kcurve.log_y
    assert all(f.curve is None for f in findings if f not in (findings[0], findings[4]))


def test_escape_sgd_multiplicative_recomputed(clock: None) -> None:
    findings = E._sgd_multiplicative(2, CHAINS)
    assert len(findings) == 4
    lr, batches = 0.1, (3, 4, 5, 6)
    data = E._whitened(1000, 2, torch_stream(2, 1))

    def diffusion(b: int) -> Any:
        return lambda x: lr * (2.0 + 4.5 * np.asarray(x, dtype=np.float64) ** 2) / (2 * b)

    exact = [diffusion_mean_first_passage_time(E.gradient, diffusion(b), E.WELL, E.END, lower=-2.5) for b in batches]
    budget = math.ceil(3.0 * max(exact) / lr)
    gen = torch_stream(2, 2)
    bsize = torch.tensor(batches).repeat_interleave(CHAINS)

    def step(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:  # i.i.d. batches: the first B_r of 6 draws
        picks = torch.randint(1000, (rows.numel(), 6), generator=gen)
        b = bsize[rows]
        mask = torch.arange(6)[None, :] < b[:, None]
        tilt = torch.where(mask, data[:, 0][picks], 0.0).sum(1) / b
        curv = torch.where(mask, data[:, 1][picks], 0.0).sum(1) / b
        return x - lr * (E.gradient(x) + E.S0 * tilt + E.S1 * curv * x)

    times = _replay(step, torch.full((4 * CHAINS,), E.WELL, dtype=F64), lambda x: x >= 0.5, budget)
    _same_estimates(findings, times, 4, lr)
    for i, (b, f) in enumerate(zip(batches, findings, strict=True)):
        _run_stats(f)
        d = f.details
        t_well, t_saddle = float(diffusion(b)(E.WELL)), float(diffusion(b)(E.SADDLE))
        iso = diffusion_mean_first_passage_time(E.gradient, E._constant(t_well), E.WELL, E.END, lower=-2.5)
        discrete = lr * chain_mean_first_passage_time(
            lambda x: x - lr * E.gradient(x),
            lambda x, b=b: lr * np.sqrt((2.0 + 4.5 * np.asarray(x, dtype=np.float64) ** 2) / b),
            E.WELL,
            E.END,
            lower=-2.5,
        )
        kramers = kramers_escape_time(E.gradient, diffusion(b), E.WELL, E.SADDLE)
        assert f.claim == (
            f"SGD (lr = {lr}, B = {b}) with state-dependent batch noise: the MFPT with "
            f"D(x) = lr Var[g_b(x)] / 2 (the isotropic one at T(minimum) is {iso / exact[i]:.2f}x it)"
        )
        assert _close(f.predicted, exact[i], 1e-10)
        assert (d["lr"], d["batch"], d["D(x)"]) == (lr, b, "lr (2 + 4.5 x^2) / (2 B)")
        for key, value in (
            ("T_at_minimum", t_well),
            ("T_at_barrier_top", t_saddle),
            ("barrier_over_T_at_minimum", E.BARRIER / t_well),
            ("isotropic_prediction_T_at_minimum", iso),
            ("measured_over_isotropic", f.measured / iso),
            ("isotropic_z_score", (f.measured - iso) / f.uncertainty),
            ("kramers_with_D(x)", kramers),
            ("discrete_time_MFPT_gaussian_batch_noise", discrete),
            ("discretisation_allowance", abs(discrete - exact[i])),
            ("discrete_z_score", (f.measured - discrete) / f.uncertainty),
            ("z_score", (f.measured - exact[i]) / f.uncertainty),
        ):
            assert _close(d[key], value, 1e-10), key
        assert _close(f.tolerance, 4 * f.uncertainty + abs(discrete - exact[i]), 1e-10)
        assert d["step_budget"] == budget
        assert d["chains"] == CHAINS
        assert d.get("wall_seconds_all_four") == (2.12 if i == 0 else None)
    curve = findings[0].curve
    assert curve.x_label == "batch size B (SGD, lr = 0.1)"
    assert list(curve.x) == list(batches)
    assert curve.log_y
    assert list(curve.predicted) == pytest.approx(exact, rel=1e-10)
    assert all(f.curve is None for f in findings[1:])


def test_escape_step_sizes_recomputed(clock: None) -> None:
    findings = E._step_sizes(3, CHAINS)
    steps = (0.1, 0.2, 0.3, 0.45, 0.6, 0.75)
    assert len(findings) == 6
    temp = E.BARRIER / 2.5
    continuous = diffusion_mean_first_passage_time(E.gradient, E._constant(temp), E.WELL, E.END, lower=-2.5)
    predicted = [E._sgld_discrete(lr, temp) for lr in steps]
    grid = np.linspace(0.05, 0.8, 16)
    on_grid = [E._sgld_discrete(float(lr), temp) for lr in grid]
    budget = math.ceil(3.0 * max(p / lr for p, lr in zip(predicted, steps, strict=True)))
    gaps = np.abs(np.array(on_grid) / continuous - 1)
    rel = 4 / math.sqrt(CHAINS)
    edges = {tol: E._last_within(grid, gaps, tol) for tol in (0.01, 0.05, rel)}
    gen = torch_stream(3, 3)
    lrs = torch.tensor(steps, dtype=F64).repeat_interleave(CHAINS)

    def step(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        noise = torch.sqrt(2 * lrs[rows] * temp) * torch.randn(x.shape, generator=gen, dtype=F64)
        return x - lrs[rows] * E.gradient(x) + noise

    times = _replay(step, torch.full((6 * CHAINS,), E.WELL, dtype=F64), lambda x: x >= 0.5, budget)
    _same_estimates(findings, times, 6, list(steps))
    for i, (lr, f) in enumerate(zip(steps, findings, strict=True)):
        _run_stats(f)
        d = f.details
        assert _close(f.predicted, predicted[i])
        assert _close(f.tolerance, 4 * f.uncertainty)
        assert (d["lr"], d["barrier_over_T"]) == (lr, 2.5)
        for key, value in (
            ("lr_U''(a)", lr * E.CURVATURE),
            ("T", temp),
            ("continuous_MFPT", continuous),
            ("discrete_over_continuous", predicted[i] / continuous),
            ("continuous_z_score", (f.measured - continuous) / f.uncertainty),
            ("z_score", (f.measured - predicted[i]) / f.uncertainty),
        ):
            assert _close(d[key], value), key
        assert d["step_budget"] == budget
        assert d["chains"] == CHAINS
        claim = (
            f"SGLD at lr = {lr} (lr U''(a) = {lr * E.CURVATURE:.2f}), Delta U / T = 2.5: the exact discrete-time "
            "MFPT of the chain"
        )
        if i == 0:
            assert d["continuous_holds_for_lr_U''(a)_up_to"] == {
                f"within {tol:.1%}": round(edge * E.CURVATURE, 3) for tol, edge in edges.items()
            }
            assert d["wall_seconds_all"] == 2.12
            claim += (
                f"; the continuous-time MFPT holds within 4 s.e. ({rel:.0%}) up to "
                f"lr U''(a) = {edges[rel] * E.CURVATURE:.2f}, within 1% up to {edges[0.01] * E.CURVATURE:.2f}"
            )
        else:
            assert "wall_seconds_all" not in d
            assert f.curve is None
        assert f.claim == claim
    curve = findings[0].curve
    assert curve.x_label == "step size lr (SGLD, T fixed)"
    assert list(curve.x) == list(steps)
    assert list(curve.predicted_x) == grid.tolist()
    assert list(curve.predicted) == pytest.approx(on_grid, rel=1e-12)
    assert (curve.log_x, curve.log_y) == (False, False)
    # the measured means are lr x (mean steps): each block's time per step is its own lr
    assert len(curve.measured) == 6


def test_escape_saddle_2d_recomputed(clock: None) -> None:
    findings = E._saddle_2d(4, CHAINS)
    lr, batches = 0.05, (4, 5, 6, 7)
    assert len(findings) == 4
    sigma2 = 4 * E.BARRIER / lr
    temps = [lr * sigma2 / (2 * b) for b in batches]
    h_well, h_saddle = E.hessian_2d(E.WELL), E.hessian_2d(E.SADDLE)
    langer = [langer_escape_time(h_well, h_saddle, E.BARRIER, t) for t in temps]
    start = (E.WELL, 0.5 * E.WELL)
    exact = [
        langevin_mean_first_passage_time_2d(E.potential_2d, t, start, 0.5, lower=-2.2, y_range=(-2.0, 1.5))
        for t in temps
    ]
    kx = [langer_escape_time(E.CURVATURE, 3 * E.SADDLE**2 - 1, E.BARRIER, t) for t in temps]
    budget = math.ceil(3.0 * max(exact) / lr)
    ratio = math.sqrt(np.linalg.det(h_well) / abs(np.linalg.det(h_saddle)))
    noise = math.sqrt(sigma2) * E._whitened(1000, 2, torch_stream(4, 4))
    gen = torch_stream(4, 5)
    bsize = torch.tensor(batches).repeat_interleave(CHAINS)

    def step(xy: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        picks = torch.randint(1000, (rows.numel(), 7), generator=gen)
        b = bsize[rows]
        mask = (torch.arange(7)[None, :] < b[:, None]).to(F64) / b[:, None]
        kick = torch.stack([(noise[:, 0][picks] * mask).sum(1), (noise[:, 1][picks] * mask).sum(1)], 1)
        return xy - lr * (E.gradient_2d(xy) + kick)

    x0 = torch.tensor(start, dtype=F64).repeat(4 * CHAINS, 1)
    times = _replay(step, x0, lambda xy: xy[:, 0] >= 0.5, budget)
    _same_estimates(findings, times, 4, lr)
    for i, (b, f) in enumerate(zip(batches, findings, strict=True)):
        _run_stats(f)
        d = f.details
        model = f.measured * temps[i] / E.BARRIER
        assert f.claim == (
            f"2-D SGD (lr = {lr}, B = {b}, isotropic batch noise, Delta U / T = {E.BARRIER / temps[i]:.1f}): "
            "Langer's escape time 2 pi / |lambda_-| sqrt(|det H_s| / det H_a) exp(Delta U / T)"
        )
        assert _close(f.predicted, langer[i])
        assert _close(f.tolerance, 4 * f.uncertainty + model)
        assert (d["lr"], d["batch"]) == (lr, b)
        assert d["hessian_minimum"] == h_well.round(6).tolist()
        assert d["hessian_saddle"] == h_saddle.round(6).tolist()
        for key, value in (
            ("T", temps[i]),
            ("barrier_over_T", b / 2),
            ("lambda_minus_saddle", float(np.linalg.eigvalsh(h_saddle)[0])),
            ("sqrt_det_ratio_minimum_over_saddle", ratio),
            ("lr_lambda_max_minimum", lr * float(np.linalg.eigvalsh(h_well)[-1])),
            ("model_allowance", model),
            ("exact_2d_MFPT_backward_equation", exact[i]),
            ("langer_error_vs_exact", langer[i] / exact[i] - 1),
            ("measured_over_exact", f.measured / exact[i]),
            ("exact_z_score", (f.measured - exact[i]) / f.uncertainty),
            ("kramers_along_x_only", kx[i]),
            ("measured_over_kramers_along_x", f.measured / kx[i]),
            ("z_score", (f.measured - langer[i]) / f.uncertainty),
        ):
            assert _close(d[key], value, 1e-10), key
        assert d["step_budget"] == budget
        assert d["chains"] == CHAINS
        assert d.get("wall_seconds_all_four") == (2.12 if i == 0 else None)
    curve = findings[0].curve
    assert curve.x_label == "Delta U / T (2-D SGD, T = lr sigma^2 / (2 B))"
    assert list(curve.x) == pytest.approx([2.0, 2.5, 3.0, 3.5], rel=1e-12)
    assert curve.log_y
    assert list(curve.predicted) == pytest.approx(langer, rel=1e-12)
    assert all(f.curve is None for f in findings[1:])


def test_escape_runs_every_part_with_the_quick_chain_count(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, int]] = []
    for name in ("_langevin_temperatures", "_sgd_multiplicative", "_step_sizes", "_saddle_2d"):
        monkeypatch.setattr(E, name, lambda seed, chains, name=name: [calls.append((name, seed, chains)) or name])
    threads = torch.get_num_threads()
    assert E.escape(7) == ["_langevin_temperatures", "_sgd_multiplicative", "_step_sizes", "_saddle_2d"]
    E.escape(7, quick=False)
    assert [c[2] for c in calls] == [1500] * 4 + [15000] * 4
    assert {c[1] for c in calls} == {7}
    assert torch.get_num_threads() == threads
    calls.clear()
    E.escape()
    assert calls == [
        (name, 0, 1500) for name in ("_langevin_temperatures", "_sgd_multiplicative", "_step_sizes", "_saddle_2d")
    ]


def test_an_error_figure_wraps_its_message_at_90_characters(drawn: list[Any], tmp_path: Any) -> None:
    message = "x" * 86 + " abcd"  # 91 characters: one too many for a line
    figures.draw(figures.experiment_figure(TourEntry("t.e", [], 0.1, error=message)), tmp_path / "e.png")
    ((fig, _),) = drawn
    assert fig.axes[0].texts[0].get_text() == "x" * 86 + "\nabcd"
