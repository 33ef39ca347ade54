"""Tests that close the mutation-testing gaps of ``noise/escape.py`` (issue 18).

Covered: the censored estimator on a hand-worked example (its tail window at its boundary, its defaults, its
standard error), the first-passage loop's bookkeeping (the last chain's crossing, NaN chains, the checks on
``x0``, ``step`` and ``crossed``), the argument checks of every theory function at their boundaries (with the
argument named in the error), the documented defaults (``points``), the default grid of the discrete chain, the
trapezoid quadrature of the diffusion formula against an independent plain-space reference, Kramers' law where
its quadrature and curvatures are exact, Langer's determinant ratio and the Hessian checks, and overflow to
``inf`` without a warning. Every check is exact or to rounding (float64, relative 1e-12 unless a quadrature error
is stated at the check); nothing here is statistical, so there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import scipy.interpolate
import scipy.sparse
import scipy.sparse.linalg
import torch

from noisygrad.noise import escape as escape_module
from noisygrad.noise.escape import (
    EscapeEstimate,
    EscapeTimes,
    chain_mean_first_passage_time,
    diffusion_mean_first_passage_time,
    first_passage_times,
    kramers_escape_time,
    langer_escape_time,
    langevin_mean_first_passage_time_2d,
)

F64 = torch.float64


def constant(value: float):  # type: ignore[no-untyped-def]
    return lambda x: np.full_like(np.asarray(x, dtype=np.float64), value)


# ---------------------------------------------------------------- EscapeTimes and EscapeEstimate


def _worked() -> EscapeTimes:
    """Five chains, budget 10: crossings at 5, 6 and 8, two censored (worked out by hand below)."""
    return EscapeTimes(np.array([5, 6, 8, 10, 10]), np.array([False, False, False, True, True]), 10)


def test_estimate_of_a_censored_sample_worked_by_hand() -> None:
    # tail_from 0.5 (the default): t0 = 5; crossings with steps > 5 (not the one at exactly 5): 6 and 8, so 2
    # events; exposure sum(max(steps - 5, 0)) = 0 + 1 + 3 + 5 + 5 = 14, residual 7; per-chain 5, 6, 8, 17, 17
    # with mean 53 / 5 and sample variance (sum of squares - 5 mean^2) / 4; plus (0.4 * 7)^2 / 2
    est = _worked().estimate()
    per_chain = np.array([5.0, 6.0, 8.0, 17.0, 17.0])
    var = float(np.sum((per_chain - per_chain.mean()) ** 2)) / 4 / 5 + (0.4 * 7) ** 2 / 2
    assert est == EscapeEstimate(pytest.approx(53 / 5, rel=1e-12), pytest.approx(math.sqrt(var), rel=1e-12), 0.4, 5, 2)
    assert est.tail_events == 2
    assert est.chains == 5
    assert est.censored_fraction == 0.4
    # time_per_step scales the mean and its error, nothing else
    scaled = _worked().estimate(time_per_step=2.5, tail_from=0.5)
    assert scaled.mean == pytest.approx(2.5 * 53 / 5, rel=1e-12)
    assert scaled.standard_error == pytest.approx(2.5 * math.sqrt(var), rel=1e-12)
    assert (scaled.censored_fraction, scaled.chains, scaled.tail_events) == (0.4, 5, 2)
    # tail_from = 0 (allowed: [0, 1)): every crossing counts, exposure 5 + 6 + 8 + 10 + 10 = 39, residual 13
    whole = _worked().estimate(tail_from=0.0)
    per_chain = np.array([5.0, 6.0, 8.0, 23.0, 23.0])
    var = float(np.sum((per_chain - per_chain.mean()) ** 2)) / 4 / 5 + (0.4 * 13) ** 2 / 3
    assert whole.mean == pytest.approx(per_chain.mean(), rel=1e-12)
    assert whole.standard_error == pytest.approx(math.sqrt(var), rel=1e-12)
    assert whole.tail_events == 3


def test_estimate_without_censoring_uses_the_sample_standard_deviation() -> None:
    est = EscapeTimes(np.array([1, 2, 6]), np.array([False, False, False]), 10).estimate(time_per_step=0.5)
    # mean 3, sample variance (4 + 1 + 9) / 2 = 7: s.e. sqrt(7 / 3), both times 0.5
    assert est == EscapeEstimate(
        pytest.approx(1.5, rel=1e-12), pytest.approx(0.5 * math.sqrt(7 / 3), rel=1e-12), 0.0, 3, 0
    )
    assert est.censored_fraction == 0.0
    assert est.tail_events == 0
    assert est.chains == 3


def test_estimate_with_no_tail_crossing_is_infinite_with_its_counts() -> None:
    est = EscapeTimes(np.array([3, 10, 10]), np.array([False, True, True]), 10).estimate()
    assert est.mean == math.inf
    assert est.standard_error == math.inf
    assert (est.censored_fraction, est.chains, est.tail_events) == (pytest.approx(2 / 3), 3, 0)


def test_estimate_needs_two_chains_and_a_tail_from_in_zero_one() -> None:
    with pytest.raises(ValueError, match="at least 2 chains"):
        EscapeTimes(np.array([3]), np.array([False]), 10).estimate()
    two = EscapeTimes(np.array([3, 5]), np.array([False, False]), 10).estimate()
    assert two.mean == 4.0
    assert two.chains == 2
    with pytest.raises(ValueError, match="tail_from"):
        _worked().estimate(tail_from=1.0)
    with pytest.raises(ValueError, match="tail_from"):
        _worked().estimate(tail_from=-0.1)


def test_escape_times_and_estimates_are_frozen_and_empty_has_no_censoring() -> None:
    times = _worked()
    with pytest.raises(dataclasses.FrozenInstanceError):
        times.max_steps = 3  # type: ignore[misc]
    est = times.estimate()
    with pytest.raises(dataclasses.FrozenInstanceError):
        est.mean = 0.0  # type: ignore[misc]
    empty = EscapeTimes(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), 4)
    assert empty.censored_fraction == 0.0
    assert times.select(slice(1, 3)).steps.tolist() == [6, 8]


# ---------------------------------------------------------------- first_passage_times


def test_the_last_chain_to_cross_is_counted_and_the_loop_stops_when_all_have() -> None:
    calls = []

    def step(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        calls.append(rows.tolist())
        return x + torch.tensor([1.0, 5.0], dtype=F64)[rows]

    times = first_passage_times(step, torch.zeros(2, dtype=F64), lambda x, _: x >= 3, max_steps=10)
    assert times.steps.tolist() == [3, 1]
    assert times.censored.tolist() == [False, False]
    assert calls == [[0, 1], [0], [0]]  # the finished chain is dropped; no step after the last crossing
    assert times.steps.dtype == np.int64
    assert times.censored.dtype == np.bool_
    assert times.max_steps == 10
    # a crossing at the very last step of the budget counts, and is not censored
    exact = first_passage_times(lambda x, r: x + 1.0, torch.zeros(1, dtype=F64), lambda x, _: x >= 4, max_steps=4)
    assert exact.steps.tolist() == [4]
    assert exact.censored.tolist() == [False]


def test_crossed_gets_the_rows_and_nan_chains_end_censored() -> None:
    bounds = torch.tensor([2.0, 4.0, 1.0], dtype=F64)

    def step(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return torch.where(rows == 2, torch.full_like(x, math.nan), x + 1.0)

    times = first_passage_times(step, torch.zeros(3, dtype=F64), lambda x, rows: x >= bounds[rows], max_steps=6)
    assert times.steps.tolist() == [2, 4, 6]
    assert times.censored.tolist() == [False, False, True]
    # crossed may return a non-boolean tensor: it is read as booleans
    ints = first_passage_times(
        lambda x, r: x + 1.0, torch.zeros(2, dtype=F64), lambda x, _: (x >= 2).long(), max_steps=5
    )
    assert ints.steps.tolist() == [2, 2]


def test_rows_live_on_the_device_of_x0_whatever_the_default_device() -> None:
    # "rows is on x0's device": under another default device (meta here) the chains on the CPU still get CPU rows
    seen = []

    def step(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        seen.append(rows.device)
        return x + 1.0

    with torch.device("meta"):
        times = first_passage_times(step, torch.zeros(2, dtype=F64, device="cpu"), lambda x, _: x >= 2, max_steps=5)
    assert times.steps.tolist() == [2, 2]
    assert seen == [torch.device("cpu")] * 2


def test_first_passage_times_checks_x0_step_and_crossed() -> None:
    ok = first_passage_times(lambda x, r: x + 1.0, torch.zeros(1, dtype=F64), lambda x, _: x >= 2, max_steps=5)
    assert ok.steps.tolist() == [2]  # one chain is enough
    for bad in ([0.0, 0.0], torch.tensor(0.0, dtype=F64), torch.zeros(0, dtype=F64)):
        with pytest.raises(ValueError, match="x0 must be a tensor"):
            first_passage_times(lambda x, r: x, bad, lambda x, _: x >= 1, max_steps=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step must return"):
        first_passage_times(lambda x, r: x.numpy() + 1.0, torch.zeros(3, dtype=F64), lambda x, _: x >= 5, max_steps=5)
    with pytest.raises(ValueError, match="crossed must return"):
        first_passage_times(lambda x, r: x, torch.zeros(3, dtype=F64), lambda x, _: (x >= 1).tolist(), max_steps=5)
    with pytest.raises(ValueError, match="crossed must return"):
        first_passage_times(lambda x, r: x, torch.zeros(3, dtype=F64), lambda x, _: (x >= 1)[None], max_steps=5)


# ---------------------------------------------------------------- diffusion_mean_first_passage_time


def _reference_mfpt(grad, diffusion, start: float, end: float, lower: float, n: int) -> float:  # type: ignore[no-untyped-def]
    """The documented double integral by plain trapezoid sums on the same nodes (``points`` of them, ``start`` one)."""
    left = max(2, round(n * (start - lower) / (end - lower)))
    x = np.concatenate([np.linspace(lower, start, left), np.linspace(start, end, n - left + 1)[1:]])
    assert x.size == n
    d = diffusion(x)
    drift = grad(x) / d
    phi = np.concatenate([[0.0], np.cumsum(np.diff(x) * (drift[:-1] + drift[1:]) / 2)])
    f = np.exp(-phi) / d
    inner = np.concatenate([[0.0], np.cumsum(np.diff(x) * (f[:-1] + f[1:]) / 2)])
    g = (np.exp(phi) * inner)[left - 1 :]
    xs = x[left - 1 :]
    return float(np.sum(np.diff(xs) * (g[:-1] + g[1:]) / 2))


@pytest.mark.parametrize(("start", "points"), [(0.2, 101), (-1.99, 101), (0.95, 151), (-0.5, 333)])
def test_diffusion_mfpt_is_the_trapezoid_double_integral_on_points_nodes(start: float, points: int) -> None:
    # a tilted well with D(x) = 0.3 (1 + x^2 / 4): the log-space sums equal the plain ones to rounding
    def grad(x):  # type: ignore[no-untyped-def]
        return np.asarray(x) ** 3 - np.asarray(x) + 0.2

    def diffusion(x):  # type: ignore[no-untyped-def]
        return 0.3 * (1 + np.asarray(x) ** 2 / 4)

    got = diffusion_mean_first_passage_time(grad, diffusion, start, 1.0, lower=-2.0, points=points)
    assert got == pytest.approx(_reference_mfpt(grad, diffusion, start, 1.0, -2.0, points), rel=1e-11)


def test_diffusion_mfpt_defaults_points_and_checks_its_arguments() -> None:
    grad, d = (lambda x: np.asarray(x) - 0.5), constant(0.4)
    assert diffusion_mean_first_passage_time(grad, d, 0.0, 1.0, lower=-1.0) == diffusion_mean_first_passage_time(
        grad, d, 0.0, 1.0, lower=-1.0, points=20001
    )
    assert math.isfinite(diffusion_mean_first_passage_time(grad, d, 0.0, 1.0, lower=-1.0, points=101))
    with pytest.raises(ValueError, match="points must be >= 101"):
        diffusion_mean_first_passage_time(grad, d, 0.0, 1.0, lower=-1.0, points=100)
    for start, end, lower in ((-1.0, 1.0, -1.0), (1.0, 1.0, -1.0), (0.5, 0.2, -1.0)):
        with pytest.raises(ValueError, match="lower < start < end"):
            diffusion_mean_first_passage_time(grad, d, start, end, lower=lower)
    with pytest.raises(TypeError, match=r"^diffusion must be callable"):
        diffusion_mean_first_passage_time(grad, 0.4, 0.0, 1.0, lower=-1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^grad must be finite"):
        diffusion_mean_first_passage_time(
            lambda x: np.where(np.asarray(x) < -0.5, np.nan, 1.0), d, 0.0, 1.0, lower=-1.0
        )
    with pytest.raises(ValueError, match=r"^diffusion must be finite"):
        diffusion_mean_first_passage_time(
            grad, lambda x: np.where(np.asarray(x) > 0.9, np.inf, 1.0), 0.5, 1.0, lower=0.0
        )
    # a diffusion that touches 0 at one node is not > 0 on the whole interval
    with pytest.raises(ValueError, match=r"^diffusion must be > 0"):
        diffusion_mean_first_passage_time(grad, lambda x: np.abs(np.asarray(x)), 0.5, 1.0, lower=-1.0, points=201)


def test_callables_that_take_arrays_only_or_return_scalars_both_work() -> None:
    # an array-only callable is called on the whole grid; one that returns a scalar is called point by point
    def array_only(x):  # type: ignore[no-untyped-def]
        return x.copy() * 0.0 + 0.4

    grad = lambda x: np.asarray(x) - 0.5  # noqa: E731
    vector = diffusion_mean_first_passage_time(grad, constant(0.4), 0.0, 1.0, lower=-1.0, points=501)
    assert diffusion_mean_first_passage_time(grad, array_only, 0.0, 1.0, lower=-1.0, points=501) == vector
    assert diffusion_mean_first_passage_time(grad, lambda x: 0.4, 0.0, 1.0, lower=-1.0, points=501) == vector


def test_diffusion_mfpt_past_the_float_range_is_inf_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tau = diffusion_mean_first_passage_time(lambda x: np.asarray(x) + 1.0, constant(1e-3), 0.0, 1.0, lower=-3.0)
    assert tau == math.inf


# ---------------------------------------------------------------- chain_mean_first_passage_time


def _grid_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the solver by a recorder of its grid sizes (returning ``n``): the checks and the grid choice only."""
    sizes: list[int] = []

    def record(step_mean, step_std, start, end, lower, n):  # type: ignore[no-untyped-def]
        sizes.append(n)
        return float(n)

    monkeypatch.setattr(escape_module, "_chain_steps", record)
    return sizes


def test_chain_grid_sizes_and_the_richardson_combination(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = _grid_sizes(monkeypatch)
    mean = lambda x: x  # noqa: E731
    for points in (201, 4001, 1001):
        sizes.clear()
        got = chain_mean_first_passage_time(mean, constant(0.1), 0.0, 1.0, lower=-1.0, points=points)
        coarse = (points + 1) // 2
        assert sizes == [points, coarse]
        assert got == (4.0 * points - coarse) / 3.0
    for points in (199, 200, 4002, 4003, 1000):
        with pytest.raises(ValueError, match="points must be odd"):
            chain_mean_first_passage_time(mean, constant(0.1), 0.0, 1.0, lower=-1.0, points=points)
    # the default: the smallest odd count >= 401 whose spacing is at most the smallest s(x)
    sizes.clear()
    chain_mean_first_passage_time(mean, constant(0.1), 0.0, 1.0, lower=-1.0)
    assert sizes == [401, 201]
    sizes.clear()
    chain_mean_first_passage_time(mean, constant(0.002), 0.0, 1.0, lower=-1.0)  # 2 / 0.002 = 1000 cells
    assert sizes == [1001, 501]
    sizes.clear()
    chain_mean_first_passage_time(mean, constant(0.0021), 0.0, 1.0, lower=-1.0)  # ceil(952.4 / 2) = 477
    assert sizes == [955, 478]
    # 1.953125 / 2^-11 = 4000 cells exactly: 4001 points is the most allowed
    sizes.clear()
    chain_mean_first_passage_time(mean, constant(2.0**-11), 0.0, 0.953125, lower=-1.0)
    assert sizes == [4001, 2001]
    with pytest.raises(ValueError, match="use diffusion_mean_first_passage_time"):
        chain_mean_first_passage_time(mean, constant(2.0**-11 * 0.999), 0.0, 0.953125, lower=-1.0)
    # the smallest s(x) is read on 401 probe nodes of [lower, end]: a dip between two of them is not seen
    sizes.clear()
    dip = np.linspace(-1.0, 1.0, 402)[200]  # 0.0025 from the nearest probe node
    seen = 0.0005 + float(np.abs(np.linspace(-1.0, 1.0, 401) - dip).min())
    chain_mean_first_passage_time(mean, lambda x: 0.0005 + np.abs(np.asarray(x) - dip), 0.0, 1.0, lower=-1.0)
    assert sizes[0] == 2 * math.ceil(2.0 / seen / 2) + 1 == 671  # not 4001, the count for the dip's 0.0005
    with pytest.raises(ValueError, match=r"^step_std must be > 0"):
        chain_mean_first_passage_time(mean, lambda x: np.asarray(x), 0.5, 1.0, lower=-1.0)


def test_chain_checks_name_the_argument_on_the_grid() -> None:
    # s(x) is read on the probe (default points) and on the grid (points given): both name it
    inf_std = lambda x: np.where(np.asarray(x) > 0.9, np.inf, 0.5)  # noqa: E731
    with pytest.raises(ValueError, match=r"^step_std must be finite"):
        chain_mean_first_passage_time(lambda x: x, inf_std, 0.5, 1.0, lower=-1.0)
    with pytest.raises(ValueError, match=r"^step_std must be finite"):
        chain_mean_first_passage_time(lambda x: x, inf_std, 0.5, 1.0, lower=-1.0, points=201)
    with pytest.raises(ValueError, match=r"^step_std must be > 0"):
        chain_mean_first_passage_time(lambda x: x, lambda x: np.asarray(x), 0.5, 1.0, lower=-1.0, points=201)
    with pytest.raises(ValueError, match=r"^step_mean must be finite"):
        chain_mean_first_passage_time(
            lambda x: np.where(np.asarray(x) < 0, np.nan, x), constant(0.5), 0.5, 1.0, lower=-1.0, points=201
        )
    with pytest.raises(TypeError, match=r"^step_mean must be callable"):
        chain_mean_first_passage_time(0.0, constant(0.5), 0.5, 1.0, lower=-1.0, points=201)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lower < start < end"):
        chain_mean_first_passage_time(lambda x: x, constant(0.5), 1.0, 1.0, lower=-1.0, points=201)


# ---------------------------------------------------------------- Kramers and Langer


def test_kramers_where_quadrature_and_curvatures_are_exact() -> None:
    # U' = x - x^2: minimum 0 (U'' = 1), barrier top 1 (U'' = -1), D = T (1 + x): exponent
    # int_0^1 (x - x^2) / (T (1 + x)) = (3/2 - 2 ln 2) / T, prefactor 2 pi sqrt(D(1) / D(0)) = 2 pi sqrt(2);
    # the trapezoid error of the exponent is ~1e-10 at 20001 nodes, the central differences are exact to rounding
    t = 0.05

    def grad(x):  # type: ignore[no-untyped-def]
        return np.asarray(x) - np.asarray(x) ** 2

    expected = 2 * math.pi * math.sqrt(2.0) * math.exp((1.5 - 2 * math.log(2)) / t)
    got = kramers_escape_time(grad, lambda x: t * (1 + np.asarray(x)), 0.0, 1.0)
    assert got == pytest.approx(expected, rel=1e-8)
    assert got == kramers_escape_time(grad, lambda x: t * (1 + np.asarray(x)), 0.0, 1.0, points=20001)
    # with D = T the exponent's integrand is quadratic: its trapezoid sum on 101 nodes is exactly the integral
    # plus (h^2 / 12) (f'(1) - f'(0)) = -(1/100)^2 / (6 T)
    assert kramers_escape_time(grad, constant(t), 0.0, 1.0, points=101) == pytest.approx(
        2 * math.pi * math.exp((1 / 6 - 1e-4 / 6) / t), rel=1e-11
    )
    # curvatures of 0.5 and -0.5 are a minimum and a barrier top
    half = kramers_escape_time(lambda x: 0.5 * (np.asarray(x) - np.asarray(x) ** 2), constant(t), 0.0, 1.0)
    assert half == pytest.approx(2 * math.pi / 0.5 * math.exp(1 / (12 * t)), rel=1e-8)


def test_kramers_uses_central_differences_with_a_small_step() -> None:
    # U' = x - x^2 + a sin(w x) / w: U''(0) = 1 + a, U''(1) = -1 + a cos(w). A central difference of step h is
    # exact on the quadratic part and scales the sine's slope by sin(w h) / (w h); with h = 1e-4 max(1, |x|) at
    # x = 0 and 1 that factor is 1 - 1.7e-5 (w h = 0.01), which the expected value includes; what is left is the
    # exponent's trapezoid error, about (5e-5)^2 / 12 * 2 / T = 1e-8 relative
    a, w, t, h = 0.3, 100.0, 0.05, 1e-4

    def grad(x):  # type: ignore[no-untyped-def]
        return np.asarray(x) - np.asarray(x) ** 2 + a * np.sin(w * np.asarray(x)) / w

    sinc = math.sin(w * h) / (w * h)
    k_a, k_b = 1 + a * sinc, -1 + a * math.cos(w) * sinc
    exponent = (1 / 6 + a * (1 - math.cos(w)) / w**2) / t
    expected = 2 * math.pi / math.sqrt(k_a * -k_b) * math.exp(exponent)
    assert kramers_escape_time(grad, constant(t), 0.0, 1.0) == pytest.approx(expected, rel=5e-8)


def test_kramers_checks_its_arguments() -> None:
    grad = lambda x: np.asarray(x) - np.asarray(x) ** 2  # noqa: E731
    with pytest.raises(ValueError, match="must differ"):
        kramers_escape_time(grad, constant(0.1), 0.5, 0.5)
    with pytest.raises(ValueError, match="points must be >= 101"):
        kramers_escape_time(grad, constant(0.1), 0.0, 1.0, points=100)
    # U'' = 0 exactly at the minimum or the barrier top is neither
    flat_bottom = lambda x: np.where(np.asarray(x) < 0.5, 0.0, -(np.asarray(x) - 1.0))  # noqa: E731
    with pytest.raises(ValueError, match="minimum must be a minimum"):
        kramers_escape_time(flat_bottom, constant(0.1), 0.0, 1.0)
    flat_top = lambda x: np.where(np.asarray(x) < 0.5, np.asarray(x), 0.0)  # noqa: E731
    with pytest.raises(ValueError, match="saddle must be a barrier top"):
        kramers_escape_time(flat_top, constant(0.1), 0.0, 1.0)
    with pytest.raises(ValueError, match="saddle must be a barrier top"):
        kramers_escape_time(lambda x: np.asarray(x) * (1 + 0.5 * np.asarray(x)), constant(0.1), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^diffusion must be > 0"):
        kramers_escape_time(grad, lambda x: np.asarray(x) - 0.5, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^diffusion must be finite"):
        kramers_escape_time(grad, lambda x: np.where(np.asarray(x) > 0.5, np.inf, 0.1), 0.0, 1.0)
    # grad is checked finite on the path from the minimum to the barrier top ...
    nan_between = lambda x: np.where(np.abs(np.asarray(x) - 0.5) < 0.01, np.nan, grad(x))  # noqa: E731
    with pytest.raises(ValueError, match=r"^grad must be finite"):
        kramers_escape_time(nan_between, constant(0.1), 0.0, 1.0)
    # ... and where the curvature is taken, on either side of the point
    # (NaN only at the saddle's x + h, then only at the minimum's x - h: the grid [0, 1] itself stays finite)
    for nan_near in (
        lambda x: np.where(np.asarray(x) > 1 + 5e-5, np.nan, grad(x)),
        lambda x: np.where(np.asarray(x) < -5e-5, np.nan, grad(x)),
    ):
        with pytest.raises(ValueError, match=r"^grad must be finite"):
            kramers_escape_time(nan_near, constant(0.1), 0.0, 1.0)


def test_kramers_and_langer_overflow_to_inf_without_a_warning() -> None:
    grad = lambda x: np.asarray(x) - np.asarray(x) ** 2  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kramers_escape_time(grad, constant(1e-4), 0.0, 1.0) == math.inf
        assert langer_escape_time(1.0, -1.0, 1.0, 1e-3) == math.inf


def test_langer_determinant_ratio_in_two_dimensions() -> None:
    # tau = 2 pi / |lambda_-| sqrt(|det H_s| / det H_a) exp(barrier / T)
    h_a, h_s = np.diag([2.0, 8.0]), np.diag([-3.0, 0.5])
    expected = 2 * math.pi / 3.0 * math.sqrt(1.5 / 16.0) * math.exp(1.0 / 0.5)
    assert langer_escape_time(h_a, h_s, 1.0, 0.5) == pytest.approx(expected, rel=1e-12)
    assert langer_escape_time(torch.tensor(h_a), torch.tensor(h_s), 1.0, 0.5) == pytest.approx(expected, rel=1e-12)
    assert langer_escape_time([[2.0, 0.0], [0.0, 8.0]], h_s, 1.0, 0.5) == pytest.approx(expected, rel=1e-12)
    # 1-D with a soft minimum (U'' = 0.5)
    assert langer_escape_time(0.5, -2.0, 0.3, 0.1) == pytest.approx(2 * math.pi / 1.0 * math.exp(3.0), rel=1e-12)
    # a Hessian asymmetric to rounding is symmetrised: the mean of it and its transpose
    tilt = np.array([[2.0, 1.0 + 1e-11], [1.0, 8.0]])
    sym = np.array([[2.0, 1.0 + 5e-12], [1.0 + 5e-12, 8.0]])
    assert langer_escape_time(tilt, h_s, 1.0, 0.5) == langer_escape_time(sym, h_s, 1.0, 0.5)


def test_langer_checks_the_hessians() -> None:
    with pytest.raises(TypeError, match=r"^hessian_minimum must be a number or a square matrix"):
        langer_escape_time("two", -1.0, 1.0, 0.1)
    with pytest.raises(TypeError, match=r"^hessian_saddle must be a number or a square matrix"):
        langer_escape_time(1.0, object(), 1.0, 0.1)
    for bad in (np.ones(2), np.ones((2, 3)), np.zeros((0, 0)), np.ones((2, 2, 2))):
        with pytest.raises(ValueError, match=r"^hessian_minimum must be a number or a non-empty square matrix"):
            langer_escape_time(bad, -1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match=r"^hessian_saddle must hold finite numbers"):
        langer_escape_time(1.0, np.nan, 1.0, 0.1)
    # symmetric within rtol 1e-10 and atol 1e-12 max(1, max |h|), not beyond
    with pytest.raises(ValueError, match=r"^hessian_minimum must be symmetric"):
        langer_escape_time(np.array([[2.0, 1.0 + 1e-9], [1.0, 8.0]]), np.diag([-1.0, 1.0]), 1.0, 0.1)
    with pytest.raises(ValueError, match=r"^hessian_minimum must be symmetric"):
        langer_escape_time(np.array([[2.0, 1e-9], [0.0, 8.0]]), np.diag([-1.0, 1.0]), 1.0, 0.1)
    with pytest.raises(ValueError, match=r"^hessian_saddle must be symmetric"):
        langer_escape_time(np.eye(2), np.array([[-1.0, 1.5e-12], [0.0, 0.5]]), 1.0, 0.1)
    assert langer_escape_time(np.eye(2), np.array([[-1.0, 0.5e-12], [0.0, 0.5]]), 1.0, 0.1) > 0
    assert langer_escape_time(np.array([[4.0, 3e-12], [0.0, 1.0]]), np.diag([-1.0, 0.5]), 1.0, 0.1) > 0
    # a zero eigenvalue is neither a minimum nor a saddle of index 1
    with pytest.raises(ValueError, match=r"^hessian_minimum must be positive definite"):
        langer_escape_time(np.diag([0.0, 1.0]), np.diag([-1.0, 1.0]), 1.0, 0.1)
    with pytest.raises(ValueError, match="exactly one negative eigenvalue"):
        langer_escape_time(np.eye(2), np.diag([-1.0, 0.0]), 1.0, 0.1)
    with pytest.raises(ValueError, match="barrier"):
        langer_escape_time(1.0, -1.0, 0.0, 0.1)


# ---------------------------------------------------------------- the 2-D backward equation


def test_grid_mfpt_checks_its_arguments() -> None:
    u = lambda x, y: x * x + y * y  # noqa: E731
    with pytest.raises(TypeError, match="potential must be callable"):
        langevin_mean_first_passage_time_2d(1.0, 0.1, (0.0, 0.0), 1.0, lower=-1.0, y_range=(-1.0, 1.0))  # type: ignore[arg-type]
    for y0 in (-1.0, 1.0):
        with pytest.raises(ValueError, match="y_range"):
            langevin_mean_first_passage_time_2d(u, 0.1, (0.0, y0), 1.0, lower=-1.0, y_range=(-1.0, 1.0))
    with pytest.raises(ValueError, match="lower < start < end"):
        langevin_mean_first_passage_time_2d(u, 0.1, (-1.0, 0.0), 1.0, lower=-1.0, y_range=(-1.0, 1.0))
    with pytest.raises(ValueError, match="pairs of finite numbers"):
        langevin_mean_first_passage_time_2d(u, 0.1, (0.0, math.nan), 1.0, lower=-1.0, y_range=(-1.0, 1.0))
    for name, kwargs in (("spacing", {"spacing": 0.0}), ("cutoff", {"cutoff": -1.0})):
        with pytest.raises(ValueError, match=name):
            langevin_mean_first_passage_time_2d(u, 0.1, (0.0, 0.0), 1.0, lower=-1.0, y_range=(-1.0, 1.0), **kwargs)
    with pytest.raises(ValueError, match="temperature"):
        langevin_mean_first_passage_time_2d(u, 0.0, (0.0, 0.0), 1.0, lower=-1.0, y_range=(-1.0, 1.0))
    with pytest.raises(ValueError, match="cells"):
        langevin_mean_first_passage_time_2d(u, 0.1, (0.0, 0.0), 1.0, lower=-1.0, y_range=(-1.0, 1.0), spacing=5e-4)
    with pytest.raises(ValueError, match="potential must return finite values"):
        langevin_mean_first_passage_time_2d(
            lambda x, y: np.where(x < -0.5, np.nan, y), 0.1, (0.0, 0.0), 1.0, lower=-1.0, y_range=(-1.0, 1.0)
        )
    with pytest.raises(ValueError, match="potential must return finite values"):
        langevin_mean_first_passage_time_2d(lambda x, y: 1.0, 0.1, (0.0, 0.0), 1.0, lower=-1.0, y_range=(-1.0, 1.0))


def _channel_reference(k: float, t: float, x0: float, spacing: float) -> float:
    """The documented scheme, solved densely in 1-D, for ``U = T (k x + s(y))`` on ``[0, 1] x y_range``.

    With ``U`` separable and ``s`` constant on each row, every row's equations are the 1-D ones times
    ``exp(-s)``, so ``tau`` is the same on every live row: square cells of side ``h``, face weights
    ``exp(-(e_i + e_j) / 2)`` with ``e = k x``, the absorbing wall ``x = 1`` half a cell past the last centre with
    weight ``2 exp(-(e_last + e(1)) / 2)``, right-hand side ``exp(-e) h^2 / T``; then linear interpolation between
    the centres (clamped to them) and Richardson's ``(4 fine - coarse) / 3``.
    """

    def on_grid(h: float) -> float:
        n = round(1 / h)
        xc = (np.arange(n) + 0.5) * h
        e = k * xc
        w = np.exp(-0.5 * (e[:-1] + e[1:]))
        a = np.zeros((n, n))
        i = np.arange(n - 1)
        a[i, i] += w
        a[i + 1, i + 1] += w
        a[i, i + 1] -= w
        a[i + 1, i] -= w
        a[-1, -1] += 2 * np.exp(-0.5 * (e[-1] + k * 1.0))
        tau = np.linalg.solve(a, np.exp(-e) * h * h / t)
        return float(np.interp(x0, xc, tau))  # linear between the centres, the end values beyond them

    return (4 * on_grid(spacing / 2) - on_grid(spacing)) / 3


@pytest.mark.parametrize("x0", [0.01, 0.3, 0.73, 0.995])
def test_grid_mfpt_of_a_channel_is_the_documented_scheme(x0: float) -> None:
    # U = T (0.2 x + 0.2 [y > 0] + 0.6 [|y| >= 0.5]) with cutoff 0.5: the rows |y| >= 0.5 are left out (also at
    # the absorbing wall), the rows above and below y = 0 differ by a constant; start between the rows at y = 0,
    # near the reflecting wall (clamped to the first centres), inside, and past the last centres
    t, k = 0.7, 0.2

    def u(x, y):  # type: ignore[no-untyped-def]
        return t * (k * x + 0.2 * (y > 0) + 0.6 * (np.abs(y) >= 0.5))

    got = langevin_mean_first_passage_time_2d(u, t, (x0, 0.0), 1.0, lower=0.0, y_range=(-1.0, 1.0), cutoff=0.5)
    assert got == pytest.approx(_channel_reference(k, t, x0, 0.04), rel=1e-10)


def test_grid_mfpt_defaults_are_spacing_004_and_cutoff_40() -> None:
    # a well 60 T deep at the box's corners: cells between 40 T and 41 T change the result, so the default shows
    def u(x, y):  # type: ignore[no-untyped-def]
        return 3 * (x * x + y * y)

    args = (u, 0.1, (0.0, 0.0), 1.0)
    default = langevin_mean_first_passage_time_2d(*args, lower=-1.0, y_range=(-1.0, 1.0))
    assert default == langevin_mean_first_passage_time_2d(*args, lower=-1.0, y_range=(-1.0, 1.0), cutoff=40.0)
    assert default == langevin_mean_first_passage_time_2d(*args, lower=-1.0, y_range=(-1.0, 1.0), spacing=0.04)
    assert default != pytest.approx(
        langevin_mean_first_passage_time_2d(*args, lower=-1.0, y_range=(-1.0, 1.0), cutoff=41.0), rel=1e-6
    )


def _scheme_reference(u, t: float, start: tuple[float, float], y_range: tuple[float, float], cut: float) -> float:  # type: ignore[no-untyped-def]
    """The documented finite-volume scheme on ``[0, 1] x y_range`` (absorbing at ``x = 1``), cell by cell.

    Cells of the box at spacings 0.04 and 0.02 (``round(length / h)`` per side, at least 4), energies
    ``e = (U - min U) / T`` at the centres, cells with ``e >= cut`` left out; each face between two kept cells has
    weight ``(face length / centre distance) exp(-(e_i + e_j) / 2)``; a kept cell of the last column couples to
    ``tau = 0`` on the wall with ``2 (hy / hx) exp(-(e + e_wall) / 2)``; the right-hand side is
    ``exp(-e) hx hy / T``; ``tau`` at ``start`` is bilinear between the centres (clamped to them, left-out cells
    read as 0); the result is Richardson's ``(4 fine - coarse) / 3``.
    """

    def on_grid(h: float) -> float:
        nx, ny = max(4, round(1.0 / h)), max(4, round((y_range[1] - y_range[0]) / h))
        hx, hy = 1.0 / nx, (y_range[1] - y_range[0]) / ny
        xc = (np.arange(nx) + 0.5) * hx
        yc = y_range[0] + (np.arange(ny) + 0.5) * hy
        uu = np.array([[float(u(x, y)) for y in yc] for x in xc])
        ref = uu.min()
        e = (uu - ref) / t
        cells = {(i, j): n for n, (i, j) in enumerate((i, j) for i in range(nx) for j in range(ny) if e[i, j] < cut)}
        entries: dict[tuple[int, int], float] = {}
        rhs = np.zeros(len(cells))
        for (i, j), n in cells.items():
            rhs[n] = math.exp(-e[i, j]) * hx * hy / t
            for di, dj, coef in ((1, 0, hy / hx), (-1, 0, hy / hx), (0, 1, hx / hy), (0, -1, hx / hy)):
                m = cells.get((i + di, j + dj))
                if m is not None:
                    w = coef * math.exp(-0.5 * (e[i, j] + e[i + di, j + dj]))
                    entries[n, n] = entries.get((n, n), 0.0) + w
                    entries[n, m] = entries.get((n, m), 0.0) - w
            if i == nx - 1:
                wall = (float(u(1.0, yc[j])) - ref) / t
                entries[n, n] = entries.get((n, n), 0.0) + 2 * hy / hx * math.exp(-0.5 * (e[i, j] + wall))
        keys = list(entries)
        matrix = scipy.sparse.csc_matrix(
            ([entries[k] for k in keys], ([k[0] for k in keys], [k[1] for k in keys])), shape=(len(cells),) * 2
        )
        solution = scipy.sparse.linalg.spsolve(matrix, rhs)
        tau = np.zeros((nx, ny))
        for (i, j), n in cells.items():
            tau[i, j] = solution[n]
        # clamped to the outermost centres, then scipy's (bi)linear interpolation on the grid of centres
        point = (min(max(start[0], xc[0]), xc[-1]), min(max(start[1], yc[0]), yc[-1]))
        return float(scipy.interpolate.RegularGridInterpolator((xc, yc), tau)(point))

    return (4 * on_grid(0.02) - on_grid(0.04)) / 3


@pytest.mark.parametrize("start", [(0.5, 0.6), (0.3, -0.999), (0.9, 1.005), (0.99, 0.0)])
def test_grid_mfpt_where_tau_depends_on_both_coordinates_is_the_documented_scheme(start: tuple[float, float]) -> None:
    # the last column is left out above y = 0.3 (only there: the column before it is kept), so chains above must
    # move down to leave, and tau depends on y; cells are not square (hy = 2.006 / 50 and / 100, hx = 1 / 25, / 50)
    t, y_range = 0.5, (-1.0, 1.006)

    def u(x, y):  # type: ignore[no-untyped-def]
        return t * (0.2 * x + 0.1 * y + 0.6 * ((x > 0.965) & (y > 0.3)))

    got = langevin_mean_first_passage_time_2d(u, t, start, 1.0, lower=0.0, y_range=y_range, cutoff=0.5)
    assert got == pytest.approx(_scheme_reference(u, t, start, y_range, 0.5), rel=1e-9)


def test_grid_mfpt_allows_four_million_cells_at_half_the_spacing() -> None:
    # spacing 1e-3 on [0, 250] x [0, 0.004]: 250000 x 4 cells, then 500000 x 8 = 4e6 at half the spacing (allowed,
    # > 4e6 is not); the potential stops the fine solve once it is asked for the fine grid, to keep this fast
    class FineGridReached(Exception):
        pass

    calls = []

    def u(x, y):  # type: ignore[no-untyped-def]
        calls.append(np.shape(x))
        if np.size(x) == 4_000_000:
            raise FineGridReached
        return np.zeros(np.shape(x))

    with pytest.raises(FineGridReached):
        langevin_mean_first_passage_time_2d(u, 1.0, (1.0, 0.002), 250.0, lower=0.0, y_range=(0.0, 0.004), spacing=1e-3)
    assert calls[0] == (250_000, 4)


def test_float32_callables_are_read_in_float64() -> None:
    # a callable returning float32 gives the same result as one returning those values in float64 (exactly)
    def u32(x, y):  # type: ignore[no-untyped-def]
        return (x * x + y * y + 0.1 * x).astype(np.float32)

    def u64(x, y):  # type: ignore[no-untyped-def]
        return u32(x, y).astype(np.float64)

    args = ((0.0, 0.1), 1.0)
    assert langevin_mean_first_passage_time_2d(
        u32, 0.3, *args, lower=-1.0, y_range=(-1.0, 1.0)
    ) == langevin_mean_first_passage_time_2d(u64, 0.3, *args, lower=-1.0, y_range=(-1.0, 1.0))

    def d32(x):  # type: ignore[no-untyped-def]
        return (0.3 + 0.1 * np.asarray(x) ** 2).astype(np.float32)

    grad = lambda x: np.asarray(x) - 0.5  # noqa: E731
    assert diffusion_mean_first_passage_time(grad, d32, 0.0, 1.0, lower=-1.0, points=501) == (
        diffusion_mean_first_passage_time(grad, lambda x: d32(x).astype(np.float64), 0.0, 1.0, lower=-1.0, points=501)
    )


def test_chain_with_its_reflecting_wall_in_use_matches_a_simulation_and_a_finer_grid() -> None:
    """A driftless chain ``x <- x + 0.05 xi`` from 0.2, reflected at 0 (mass below put on 0) and absorbed at 1: the
    walk meets the wall often, so the wall's mass must sit on the wall node. (a) A simulation of the chain itself
    (20000 chains, clamped at 0): its mean passage time has a standard error of about 2.6 steps, and the solver
    must lie within 4 of them. (b) The default grid (401 nodes, Richardson-extrapolated) agrees with 1201 nodes to
    1e-5 relative (measured 6e-7; the docstring's claim), where mass put one node above the wall moves the value
    by 0.2% between the two grids."""
    step = 0.05
    mean, std = (lambda x: np.asarray(x, dtype=float)), (lambda x: np.full(np.shape(x), step))
    solved = chain_mean_first_passage_time(mean, std, 0.2, 1.0, lower=0.0)
    finer = chain_mean_first_passage_time(mean, std, 0.2, 1.0, lower=0.0, points=1201)
    assert solved == pytest.approx(finer, rel=1e-5)
    rng = np.random.default_rng(7)
    x, times, alive, k = np.full(20000, 0.2), np.zeros(20000), np.ones(20000, dtype=bool), 0
    while alive.any():
        k += 1
        x[alive] = np.maximum(x[alive] + step * rng.standard_normal(int(alive.sum())), 0.0)
        crossed = alive & (x >= 1.0)
        times[crossed] = k
        alive &= ~crossed
    standard_error = times.std(ddof=1) / math.sqrt(times.size)
    assert abs(solved - times.mean()) < 4 * standard_error
