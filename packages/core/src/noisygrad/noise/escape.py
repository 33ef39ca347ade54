"""Escape from a metastable minimum under gradient noise: first-passage times of chains, and their theory.

A random kick from the gradient noise can carry an iterate over a barrier out of a local minimum. Constant-step
SGD ``x <- x - lr g_b(x)`` is, for small steps, the Ito diffusion ``dx = -U'(x) dt + sqrt(2 D(x)) dW`` in time
``t = lr * steps`` with ``D(x) = lr Var[g_b(x)] / 2``: a temperature ``lr C / (2 B)`` that depends on the
position wherever the mini-batch noise does (multiplicative noise, e.g. when per-example curvatures differ).
SGLD ``x <- x - h g + sqrt(2 h T) xi`` with exact gradients is the same diffusion with ``D = T``. This module
measures and predicts how long such a chain takes to leave a well:

* :func:`first_passage_times`: runs many chains (the rows of one tensor) until each first crosses a boundary,
  stopping the finished ones, with censoring at a step budget recorded; :class:`EscapeTimes` turns the times
  into a mean with its standard error, correcting for censoring by the exponential tail of a metastable escape.
* :func:`diffusion_mean_first_passage_time`: the exact mean first-passage time of the 1-D Ito diffusion with a
  position-dependent ``D(x)`` (Gardiner, *Handbook of Stochastic Methods*, sec. 5.2.7), the continuous-time
  prediction for SGD with state-dependent noise and for SGLD (``D = T``, where it equals
  :func:`noisygrad.noise.theory.mean_first_passage_time`).
* :func:`chain_mean_first_passage_time`: the exact mean number of *steps* of the discrete Gaussian chain
  ``x <- m(x) + s(x) xi`` (SGLD exactly, SGD with Gaussian batch noise approximately), from the discrete
  backward equation: the finite-step effect the continuous formula misses.
* :func:`langevin_mean_first_passage_time_2d`: the exact mean first-passage time of 2-D overdamped Langevin
  dynamics across a line, from the backward equation on a grid (finite volumes), to hold Langer's asymptotics
  and 2-D simulations against.
* :func:`kramers_escape_time` (1-D, with ``D(x)``) and :func:`langer_escape_time` (any dimension, Hessian
  determinants at the minimum and the saddle): the small-noise asymptotics, Kramers (1940), Langer (1969);
  see Haenggi, Talkner and Borkovec, Rev. Mod. Phys. 62, 251 (1990). Their relative error is of order
  ``T / Delta U``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import scipy.special
import torch

from noisygrad.checks import check_in_range, check_positive, check_positive_int, check_real

__all__ = [
    "EscapeEstimate",
    "EscapeTimes",
    "chain_mean_first_passage_time",
    "diffusion_mean_first_passage_time",
    "first_passage_times",
    "kramers_escape_time",
    "langer_escape_time",
    "langevin_mean_first_passage_time_2d",
]

Field = Callable[[np.ndarray], np.ndarray | float]


# ---------------------------------------------------------------- measuring: first-passage times of chains


@dataclass(frozen=True)
class EscapeEstimate:
    """The mean first-passage time of a set of chains.

    Attributes:
        mean: the estimated mean first-passage time (in the unit of ``time_per_step``).
        standard_error: one standard error of ``mean``.
        censored_fraction: the fraction of chains still inside at the step budget.
        chains: the number of chains.
        tail_events: the crossings in the tail window used to extrapolate past the budget (0 when nothing is
            censored and no extrapolation was needed).
    """

    mean: float
    standard_error: float
    censored_fraction: float
    chains: int
    tail_events: int


@dataclass(frozen=True)
class EscapeTimes:
    """First-passage times of independent chains, in steps, right-censored at a step budget.

    Attributes:
        steps: for each chain, the first step at which it had crossed, or ``max_steps`` if it never did.
        censored: for each chain, whether it was still inside after ``max_steps`` steps.
        max_steps: the step budget.
    """

    steps: np.ndarray
    censored: np.ndarray
    max_steps: int

    @property
    def censored_fraction(self) -> float:
        """The fraction of chains that had not crossed within the budget."""
        return float(self.censored.mean()) if self.censored.size else 0.0

    def select(self, rows: np.ndarray | torch.Tensor | slice) -> EscapeTimes:
        """The chains ``rows`` (an index array, a boolean mask or a slice) as an :class:`EscapeTimes` of their own."""
        index = rows.cpu().numpy() if isinstance(rows, torch.Tensor) else rows
        return EscapeTimes(self.steps[index], self.censored[index], self.max_steps)

    def estimate(self, *, time_per_step: float = 1.0, tail_from: float = 0.5) -> EscapeEstimate:
        """The mean first-passage time and its standard error, censoring accounted for.

        Without censoring it is the sample mean of the times and its standard error ``std / sqrt(n)``. With
        censored chains the plain mean would be biased low; the estimate is instead
        ``E[min(tau, L)] + P(tau > L) / h``, with ``L`` the budget and ``h`` the per-step crossing hazard
        measured on ``(tail_from L, L]`` (crossings divided by the steps the chains spent at risk there). It is
        exact when the tail beyond ``tail_from L`` is geometric (exponential), which holds for escape from a
        metastable well once the chains have relaxed into it (the quasi-stationary law; Le Bris, Lelievre,
        Luskin and Perez, Monte Carlo Methods Appl. 18, 2012). Its standard error adds the hazard's Poisson
        error, ``P(tau > L) / h / sqrt(crossings)``, to the spread of the per-chain terms. With censored chains
        and no crossing in the window the mean is ``inf``.

        Args:
            time_per_step: the time one step stands for (``lr`` to compare with a diffusion's time), > 0.
            tail_from: where the tail window starts, as a fraction of the budget, in [0, 1).
        """
        dt = check_positive("time_per_step", time_per_step)
        start = check_in_range("tail_from", tail_from, 0.0, 1.0)
        n = int(self.steps.size)
        if n < 2:
            raise ValueError(f"an estimate needs at least 2 chains, got {n}")
        steps = self.steps.astype(np.float64)
        censored = self.censored.astype(bool)
        fraction = float(censored.mean())
        if fraction == 0.0:
            return EscapeEstimate(float(steps.mean()) * dt, float(steps.std(ddof=1)) / math.sqrt(n) * dt, 0.0, n, 0)
        t0 = start * self.max_steps
        events = int(np.count_nonzero(~censored & (steps > t0)))
        exposure = float(np.clip(steps - t0, 0.0, None).sum())
        if events == 0:
            return EscapeEstimate(math.inf, math.inf, fraction, n, 0)
        residual = exposure / events  # 1 / hazard: the mean further steps of a chain still inside
        per_chain = steps + censored * residual
        variance = float(per_chain.var(ddof=1)) / n + (fraction * residual) ** 2 / events
        return EscapeEstimate(float(per_chain.mean()) * dt, math.sqrt(variance) * dt, fraction, n, events)


def first_passage_times(
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    crossed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    max_steps: int,
) -> EscapeTimes:
    """Run independent chains (the rows of ``x0``) until each first crosses a boundary, or the budget ends.

    Each call ``step(x, rows)`` advances the chains still running by one step: ``x`` holds their states (the
    rows of ``x0`` not yet crossed, in order) and ``rows`` their indices into ``x0``, to look up per-chain
    parameters (a step size, a temperature, a batch size). ``step`` draws its randomness from its own
    generator, so the run is reproducible from that generator's seed. After every step ``crossed(x, rows)``
    says which chains are past the boundary (a boolean per row); those stop, and their step count is recorded.
    Stopping the finished chains makes the cost proportional to the total time spent inside, not to
    ``chains x max_steps``. A chain whose state becomes NaN never counts as crossed: it ends censored. The
    chains may live on any device (``rows`` is on ``x0``'s); each step makes one host synchronisation.

    Args:
        step: one step of the running chains, ``(x, rows) -> x``, shapes kept.
        x0: the starting states, one row per chain (shape ``(chains,)`` or ``(chains, d)``).
        crossed: the absorbing boundary, ``(x, rows) -> bool tensor of shape (len(x),)``.
        max_steps: the step budget; chains inside after it are censored (see :meth:`EscapeTimes.estimate`).

    Returns:
        the :class:`EscapeTimes` of the chains, in steps.

    Raises:
        ValueError: if a chain starts past the boundary, or ``step`` or ``crossed`` returns a wrong shape.
    """
    budget = check_positive_int("max_steps", max_steps)
    if not isinstance(x0, torch.Tensor) or x0.ndim == 0 or x0.shape[0] == 0:
        raise ValueError("x0 must be a tensor with one row per chain (at least one)")
    n = int(x0.shape[0])
    rows = torch.arange(n, device=x0.device)
    start = _crossed(crossed, x0, rows)
    if bool(start.any()):
        raise ValueError(f"{int(start.sum())} of the chains in x0 start past the boundary (crossed is True at step 0)")
    times = np.full(n, budget, dtype=np.int64)
    x = x0
    for k in range(1, budget + 1):
        new = step(x, rows)
        if not isinstance(new, torch.Tensor) or new.shape != x.shape:
            raise ValueError(f"step must return a tensor of the shape it was given {tuple(x.shape)}")
        hit = _crossed(crossed, new, rows)
        if bool(hit.any()):
            times[rows[hit].cpu().numpy()] = k
            keep = ~hit
            new, rows = new[keep], rows[keep]
            if rows.numel() == 0:
                break
        x = new
    censored = np.zeros(n, dtype=bool)
    censored[rows.cpu().numpy()] = True
    return EscapeTimes(times, censored, budget)


def _crossed(
    crossed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    hit = crossed(x, rows)
    if not isinstance(hit, torch.Tensor) or hit.shape != (x.shape[0],):
        raise ValueError(f"crossed must return a boolean tensor of shape ({x.shape[0]},), one per chain")
    return hit.to(torch.bool)


# ---------------------------------------------------------------- predicting: exact and asymptotic theory


def _evaluate(name: str, fn: Field, x: np.ndarray) -> np.ndarray:
    """``fn`` on the grid ``x`` (vectorised if it can be, point by point otherwise), checked finite."""
    if not callable(fn):
        raise TypeError(f"{name} must be callable as {name}(x) -> float or array, got {type(fn).__name__}")
    try:
        out = np.asarray(fn(x), dtype=np.float64)
    except (TypeError, ValueError):
        out = np.empty(0)
    if out.shape != x.shape:
        out = np.array([float(fn(float(v))) for v in x])  # type: ignore[arg-type]
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be finite on [{x[0]:.4g}, {x[-1]:.4g}]")
    return out


def _positive(name: str, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    if np.any(values <= 0):
        where = float(x[int(np.argmin(values))])
        raise ValueError(f"{name} must be > 0 on the whole interval; it is {float(values.min()):.3g} at x={where:.4g}")
    return values


def _interval(start: float, end: float, lower: float) -> tuple[float, float, float]:
    start, end, lower = check_real("start", start), check_real("end", end), check_real("lower", lower)
    if not lower < start < end:
        raise ValueError(f"need lower < start < end, got lower={lower}, start={start}, end={end}")
    return start, end, lower


def _log_cumulative_trapezoid(log_f: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``log int_{x_0}^{x_k} exp(log_f)`` at every node (``-inf`` at the first), without overflow."""
    terms = np.log(np.diff(x) / 2) + np.logaddexp(log_f[:-1], log_f[1:])
    return np.concatenate([[-np.inf], np.logaddexp.accumulate(terms)])


def diffusion_mean_first_passage_time(
    grad: Field, diffusion: Field, start: float, end: float, *, lower: float, points: int = 20001
) -> float:
    """Mean time for the Ito diffusion ``dx = -U'(x) dt + sqrt(2 D(x)) dW`` to first reach ``end`` from ``start``.

    The exact one-dimensional formula (Gardiner, sec. 5.2.7), reflecting at ``lower``, absorbing at ``end``:
    with ``Phi(x) = int^x U'(s) / D(s) ds``,

    ``tau = int_start^end dy exp(Phi(y)) int_lower^y dz exp(-Phi(z)) / D(z)``.

    With ``D = T`` it is :func:`noisygrad.noise.theory.mean_first_passage_time` (``Phi = U / T``). With a
    position-dependent ``D(x)`` the Boltzmann exponent ``Delta U / T`` becomes ``int_a^b U' / D`` between the
    minimum ``a`` and the barrier top ``b``: noise that is weaker on the way out lengthens the escape
    exponentially, noise that is stronger shortens it. For constant-step SGD, ``D(x) = lr Var[g_b(x)] / 2``
    (``Var[g_b] = C(x) / B`` for i.i.d. batches) and one unit of time is ``1 / lr`` steps; the formula is the
    small-step limit (see :func:`chain_mean_first_passage_time` for the finite-step chain). Put ``lower`` far
    out on the well's outer wall, where ``exp(-Phi)`` is negligible, to stand for a wall that is never reached;
    for escape towards smaller ``x``, mirror the problem (``x -> -x``). The integrals are trapezoid sums on
    ``points`` nodes (relative error ``O(points^-2)``, about 1e-7 at the default on a unit-scale well), in log
    space so that deep wells do not overflow.

    Args:
        grad: ``U'(x)``, the mean gradient (callable on an array or on a float).
        diffusion: ``D(x)`` > 0, the diffusion coefficient (``T`` for Langevin noise at temperature ``T``).
        start: where the chains start, ``lower < start < end``.
        end: the absorbing boundary.
        lower: the reflecting boundary.
        points: the quadrature nodes, >= 101.

    Returns:
        the mean first-passage time, in the diffusion's time unit (``inf`` if it overflows a float).
    """
    start, end, lower = _interval(start, end, lower)
    n = check_positive_int("points", points)
    if n < 101:
        raise ValueError(f"points must be >= 101, got {n}")
    left = max(2, round(n * (start - lower) / (end - lower)))
    x = np.concatenate([np.linspace(lower, start, left), np.linspace(start, end, max(2, n - left + 1))[1:]])
    d = _positive("diffusion", _evaluate("diffusion", diffusion, x), x)
    drift = _evaluate("grad", grad, x) / d
    phi = np.concatenate([[0.0], np.cumsum(np.diff(x) * (drift[:-1] + drift[1:]) / 2)])
    log_inner = _log_cumulative_trapezoid(-phi - np.log(d), x)
    outer = slice(left - 1, None)
    log_integrand = phi[outer] + log_inner[outer]
    xs = x[outer]
    terms = np.log(np.diff(xs) / 2) + np.logaddexp(log_integrand[:-1], log_integrand[1:])
    with np.errstate(over="ignore"):
        return float(np.exp(scipy.special.logsumexp(terms)))


def chain_mean_first_passage_time(
    step_mean: Field,
    step_std: Field,
    start: float,
    end: float,
    *,
    lower: float,
    points: int | None = None,
) -> float:
    """Mean number of steps for the chain ``x <- m(x) + s(x) xi``, ``xi ~ N(0, 1)``, to first reach ``x >= end``.

    The discrete-time counterpart of :func:`diffusion_mean_first_passage_time`. SGLD on ``U`` is this chain
    exactly, with ``m(x) = x - h U'(x)`` and ``s = sqrt(2 h T)``; SGD with i.i.d. batches is it with
    ``m(x) = x - lr U'(x)`` and ``s(x) = lr sqrt(Var[g_b(x)])`` when the batch noise is Gaussian (for a batch
    mean of ``B`` draws, up to its non-Gaussian cumulants). At a finite step the escape time departs from the
    continuous prediction at first order in the step: this gives it at any stable step.

    The mean number of steps ``tau(x)`` solves the discrete backward equation
    ``tau(x) = 1 + E[tau(m(x) + s(x) xi); m(x) + s(x) xi < end]``, a Fredholm equation of the second kind. It is
    solved by collocation on a uniform grid on ``[lower, end]`` with ``tau`` piecewise linear, the Gaussian
    integrals of each piece in closed form (mass below ``lower`` is put on ``lower``: a reflecting wall, to be
    placed where the chain never goes; mass at or past ``end`` is absorbed, and the last node carries ``tau``
    just below ``end``, where it is at least one step), on ``points`` and ``(points + 1) / 2`` nodes,
    Richardson-extrapolated (the scheme's error is ``O(spacing^2 / s^2)``; the extrapolated value agreed with
    grids twice as fine to 1e-5 relative on a double well).

    Args:
        step_mean: ``m(x)``, the mean of the next state (vectorised or per float).
        step_std: ``s(x)`` > 0, the standard deviation of the next state.
        start: the starting state, ``lower < start < end``.
        end: the absorbing boundary (absorbed once ``x >= end``).
        lower: the reflecting boundary.
        points: grid nodes (odd, 201-4001); by default the smallest odd count >= 401 whose spacing is at most
            the smallest ``s(x)`` (a ``ValueError`` if that needs more than 4001: use the continuous formula).

    Returns:
        the mean number of steps to absorption.
    """
    start, end, lower = _interval(start, end, lower)
    if points is None:
        probe = np.linspace(lower, end, 401)
        s_min = float(_positive("step_std", _evaluate("step_std", step_std, probe), probe).min())
        n = max(401, 2 * math.ceil((end - lower) / s_min / 2) + 1)
        if n > 4001:
            raise ValueError(
                f"step_std is as small as {s_min:.3g}: resolving it needs {n} grid points (> 4001); at so small a "
                "step use diffusion_mean_first_passage_time (the continuous limit)"
            )
    else:
        n = check_positive_int("points", points)
        if n % 2 == 0 or not 201 <= n <= 4001:
            raise ValueError(f"points must be odd and in [201, 4001], got {n}")
    fine = _chain_steps(step_mean, step_std, start, end, lower, n)
    coarse = _chain_steps(step_mean, step_std, start, end, lower, (n + 1) // 2)
    return (4.0 * fine - coarse) / 3.0


def _chain_steps(step_mean: Field, step_std: Field, start: float, end: float, lower: float, n: int) -> float:
    y = np.linspace(lower, end, n)
    dy = y[1] - y[0]
    m = _evaluate("step_mean", step_mean, y)[:, None]
    s = _positive("step_std", _evaluate("step_std", step_std, y), y)[:, None]
    z = (y[None, :] - m) / s
    cdf = scipy.special.ndtr(z)
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    mass = np.diff(cdf, axis=1)  # P(next in cell k), cell k = [y_k, y_k+1]
    first = m * mass - s * np.diff(pdf, axis=1)  # E[next; next in cell k]
    rise = (first - y[None, :-1] * mass) / dy  # the weight of node k+1 from cell k (the hat's rising half)
    kernel = np.zeros((n, n))
    kernel[:, :-1] += mass - rise
    kernel[:, 1:] += rise
    kernel[:, 0] += cdf[:, 0]  # below lower: reflected onto the wall
    # past end: absorbed (dropped). The node at end stands for tau just below it (tau jumps to 0 at end itself)
    tau = np.linalg.solve(np.eye(n) - kernel, np.ones(n))
    return float(np.interp(start, y, tau))


def _curvature(grad: Field, x: float) -> float:
    h = 1e-4 * max(1.0, abs(x))
    return float(
        (_evaluate("grad", grad, np.array([x + h]))[0] - _evaluate("grad", grad, np.array([x - h]))[0]) / (2 * h)
    )


def kramers_escape_time(grad: Field, diffusion: Field, minimum: float, saddle: float, *, points: int = 20001) -> float:
    """Kramers' small-noise escape time from the minimum ``a`` over the barrier top ``b``, with ``D(x)`` allowed.

    Laplace's method on :func:`diffusion_mean_first_passage_time` gives

    ``tau ~ 2 pi / sqrt(U''(a) |U''(b)|) * sqrt(D(b) / D(a)) * exp(int_a^b U'(s) / D(s) ds)``,

    Kramers' ``2 pi / sqrt(U''(a) |U''(b)|) exp(Delta U / T)`` when ``D = T`` (Kramers 1940; Haenggi et al. 1990,
    eq. 4.56b). It is the mean time to go from ``a`` to well past ``b`` (the barrier top itself is reached in
    about half of it). Its relative error is of order ``D / Delta U``: Laplace's next term, e.g.
    ``T (5 U'''^2 / (24 U''^3) - U'''' / (8 U''^2))`` at the minimum plus the like term at the barrier top,
    about 10-15% at ``Delta U / T = 2-4`` on a quartic double well. Curvatures are central differences of
    ``grad``; the exponent is a trapezoid sum on ``points`` nodes. ``minimum`` may lie on either side of
    ``saddle``.

    Args:
        grad: ``U'(x)``.
        diffusion: ``D(x)`` > 0 (``T`` for Langevin noise).
        minimum: the bottom ``a`` of the well (``U'(a) = 0``, ``U''(a) > 0``).
        saddle: the barrier top ``b`` (``U'(b) = 0``, ``U''(b) < 0``).
        points: quadrature nodes for the exponent, >= 101.
    """
    a, b = check_real("minimum", minimum), check_real("saddle", saddle)
    if a == b:
        raise ValueError("minimum and saddle must differ")
    n = check_positive_int("points", points)
    if n < 101:
        raise ValueError(f"points must be >= 101, got {n}")
    k_a, k_b = _curvature(grad, a), _curvature(grad, b)
    if k_a <= 0:
        raise ValueError(f"minimum must be a minimum of U (U'' > 0 there), got U''({a}) = {k_a:.4g}")
    if k_b >= 0:
        raise ValueError(f"saddle must be a barrier top (U'' < 0 there), got U''({b}) = {k_b:.4g}")
    x = np.linspace(a, b, n)
    d = _positive("diffusion", _evaluate("diffusion", diffusion, x), x)
    f = _evaluate("grad", grad, x) / d
    exponent = float(np.sum(np.diff(x) * (f[:-1] + f[1:]) / 2))
    with np.errstate(over="ignore"):
        return float(2 * math.pi / math.sqrt(k_a * -k_b) * math.sqrt(d[-1] / d[0]) * np.exp(exponent))


def _hessian(name: str, value: object) -> np.ndarray:
    try:
        h = np.array(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a number or a square matrix, got {type(value).__name__}") from exc
    h = h.reshape(1, 1) if h.ndim == 0 else h
    if h.ndim != 2 or h.shape[0] != h.shape[1] or h.shape[0] == 0:
        raise ValueError(f"{name} must be a number or a non-empty square matrix, got shape {h.shape}")
    if not np.all(np.isfinite(h)):
        raise ValueError(f"{name} must hold finite numbers (no NaN or Inf)")
    if not np.allclose(h, h.T, rtol=1e-10, atol=1e-12 * max(1.0, float(np.abs(h).max()))):
        raise ValueError(f"{name} must be symmetric")
    return (h + h.T) / 2


def langer_escape_time(hessian_minimum: object, hessian_saddle: object, barrier: float, temperature: float) -> float:
    """Langer's (Eyring-Kramers) mean escape time of overdamped Langevin dynamics through a saddle.

    For ``dx = -grad U dt + sqrt(2 T) dW`` leaving the well of the minimum ``a`` through the saddle ``s``
    (``barrier = U(s) - U(a)``), the rate in the small-noise limit is (Langer 1969; Haenggi et al. 1990,
    eq. 7.4; Bovier, Eckhoff, Gayrard and Klein 2004 for the proof)

    ``k = |lambda_-| / (2 pi) * sqrt(det H_a / |det H_s|) * exp(-barrier / T)``,

    ``lambda_-`` the saddle Hessian's one negative eigenvalue, and the mean escape time is ``1 / k``. The
    determinant ratio counts how much room the well and the saddle's gateway leave in the stable directions:
    a wider gateway (softer transverse curvature at the saddle) escapes faster. In one dimension it is Kramers'
    ``2 pi / sqrt(U''(a) |U''(s)|) exp(barrier / T)``. Its relative error is of order ``T / barrier``. For SGD
    with isotropic noise ``Var[g_b] = sigma^2 I / B``, ``T = lr sigma^2 / (2 B)`` and the time is in units of
    ``1 / lr`` steps.

    Args:
        hessian_minimum: ``H_a``, positive definite (a number in 1-D).
        hessian_saddle: ``H_s``, with exactly one negative eigenvalue (a negative number in 1-D).
        barrier: ``U(s) - U(a)`` > 0.
        temperature: ``T`` > 0.
    """
    h_a, h_s = _hessian("hessian_minimum", hessian_minimum), _hessian("hessian_saddle", hessian_saddle)
    if h_a.shape != h_s.shape:
        raise ValueError(f"hessian_minimum has shape {h_a.shape} but hessian_saddle {h_s.shape}; they must match")
    barrier = check_positive("barrier", barrier)
    t = check_positive("temperature", temperature)
    lam_a, lam_s = np.linalg.eigvalsh(h_a), np.linalg.eigvalsh(h_s)
    if lam_a[0] <= 0:
        raise ValueError("hessian_minimum must be positive definite (the bottom of a well)")
    if np.count_nonzero(lam_s < 0) != 1 or np.any(lam_s == 0):
        raise ValueError("hessian_saddle must have exactly one negative eigenvalue (a saddle of index 1)")
    log_ratio = 0.5 * (float(np.sum(np.log(lam_a))) - float(np.sum(np.log(np.abs(lam_s)))))
    with np.errstate(over="ignore"):
        return float(2 * math.pi / -lam_s[0] * np.exp(barrier / t - log_ratio))


def langevin_mean_first_passage_time_2d(
    potential: Callable[[np.ndarray, np.ndarray], np.ndarray],
    temperature: float,
    start: tuple[float, float],
    end: float,
    *,
    lower: float,
    y_range: tuple[float, float],
    spacing: float = 0.04,
    cutoff: float = 40.0,
) -> float:
    """Mean time for ``d(x, y) = -grad U dt + sqrt(2 T) dW`` to first reach the line ``x = end``.

    The mean first-passage time ``tau`` solves the backward equation ``T lap tau - grad U . grad tau = -1``,
    i.e. ``div(e^{-U/T} grad tau) = -e^{-U/T} / T``, with ``tau = 0`` on ``x = end`` and no flux through the other
    walls of the box ``[lower, end] x y_range``. It is solved by finite volumes on square-ish cells with the
    face weights ``sqrt(rho_i rho_j)`` (the square-root approximation of Lie, Fackeldey and Weber, SIAM J.
    Matrix Anal. Appl. 34, 2013), a symmetric positive-definite sparse system that stays well conditioned
    however steep the walls; cells with ``U - min U > cutoff T`` (never visited) are left out. The result at
    ``start`` (bilinear between cell centres) is Richardson-extrapolated from ``spacing`` and ``spacing / 2``
    (the scheme is second order: on a separable well it matched the 1-D integral to 2e-5 relative at the
    default spacing, against 3e-3 and 8e-4 before extrapolation).

    Args:
        potential: ``U(x, y)`` on arrays (broadcast elementwise).
        temperature: ``T`` > 0.
        start: the starting point ``(x, y)``, inside the box.
        end: the absorbing line ``x = end``.
        lower: the box's reflecting left wall, ``< start[0]``.
        y_range: the box's reflecting bottom and top walls.
        spacing: the coarse cell size, > 0 (the solve uses it and half of it).
        cutoff: leave out cells more than ``cutoff T`` above the lowest one, > 0.

    Returns:
        the mean first-passage time, in the diffusion's time unit.
    """
    if not callable(potential):
        raise TypeError(f"potential must be callable as potential(x, y) -> array, got {type(potential).__name__}")
    t = check_positive("temperature", temperature)
    h = check_positive("spacing", spacing)
    cut = check_positive("cutoff", cutoff)
    try:
        x0, y0 = (check_real("start", v) for v in start)
        y_lo, y_hi = (check_real("y_range", v) for v in y_range)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"start and y_range must be pairs of finite numbers: {exc}") from None
    x0, end, lower = _interval(x0, end, lower)
    if not y_lo < y0 < y_hi:
        raise ValueError(f"need y_range[0] < start[1] < y_range[1], got {y_range} and start {start}")
    coarse = _grid_mfpt(potential, t, (x0, y0), end, lower, (y_lo, y_hi), h, cut)
    fine = _grid_mfpt(potential, t, (x0, y0), end, lower, (y_lo, y_hi), h / 2, cut)
    return (4.0 * fine - coarse) / 3.0


def _grid_mfpt(
    potential: Callable[[np.ndarray, np.ndarray], np.ndarray],
    t: float,
    start: tuple[float, float],
    end: float,
    lower: float,
    y_range: tuple[float, float],
    h: float,
    cut: float,
) -> float:
    nx, ny = max(4, round((end - lower) / h)), max(4, round((y_range[1] - y_range[0]) / h))
    if nx * ny > 4_000_000:
        raise ValueError(f"spacing {h / 1:.3g} makes {nx * ny} cells (> 4e6 at half the spacing); use a coarser one")
    hx, hy = (end - lower) / nx, (y_range[1] - y_range[0]) / ny
    xc = lower + (np.arange(nx) + 0.5) * hx
    yc = y_range[0] + (np.arange(ny) + 0.5) * hy
    u = np.asarray(potential(*np.meshgrid(xc, yc, indexing="ij")), dtype=np.float64)
    if u.shape != (nx, ny) or not np.all(np.isfinite(u)):
        raise ValueError("potential must return finite values of the grid's shape on the box")
    ref = float(u.min())
    e = (u - ref) / t  # -log rho, up to a constant
    live = e < cut
    index = np.full(u.shape, -1, dtype=np.int64)
    n = int(live.sum())
    index[live] = np.arange(n)
    diag = np.zeros(n)
    rows, cols, vals = [], [], []
    for e1, e2, i1, i2, l1, l2, coef in (
        (e[:-1], e[1:], index[:-1], index[1:], live[:-1], live[1:], hy / hx),
        (e[:, :-1], e[:, 1:], index[:, :-1], index[:, 1:], live[:, :-1], live[:, 1:], hx / hy),
    ):
        both = l1 & l2
        w = coef * np.exp(-0.5 * (e1[both] + e2[both]))  # sqrt(rho_i rho_j): the face's weight
        k1, k2 = i1[both], i2[both]
        rows += [k1, k2]
        cols += [k2, k1]
        vals += [-w, -w]
        np.add.at(diag, k1, w)
        np.add.at(diag, k2, w)
    # the absorbing wall x = end: tau = 0 half a cell beyond the last centres
    e_end = (np.asarray(potential(np.full(ny, end), yc), dtype=np.float64) - ref) / t
    last = live[-1]
    np.add.at(diag, index[-1][last], 2 * hy / hx * np.exp(-0.5 * (e[-1][last] + e_end[last])))
    matrix = scipy.sparse.csc_matrix(
        (np.concatenate([*vals, diag]), (np.concatenate([*rows, np.arange(n)]), np.concatenate([*cols, np.arange(n)]))),
        shape=(n, n),
    )
    tau = np.zeros(u.shape)
    tau[live] = scipy.sparse.linalg.spsolve(matrix, np.exp(-e[live]) * hx * hy / t)
    # bilinear interpolation between the cell centres around start (clamped to the outermost centres)
    fx = float(np.clip((start[0] - xc[0]) / hx, 0, nx - 1))
    fy = float(np.clip((start[1] - yc[0]) / hy, 0, ny - 1))
    i, j = min(int(fx), nx - 2), min(int(fy), ny - 2)
    a, b = fx - i, fy - j
    return float(
        (1 - a) * (1 - b) * tau[i, j]
        + a * (1 - b) * tau[i + 1, j]
        + (1 - a) * b * tau[i, j + 1]
        + a * b * tau[i + 1, j + 1]
    )
