"""Sharpness, and why gradient noise prefers wide minima: the top Hessian eigenvalue and the stationary law of
a diffusion whose noise depends on the position.

**Sharpness.** The *sharpness* of a minimum is the largest eigenvalue ``lambda_max`` of the loss's Hessian there.
:func:`top_hessian_eigenvalue` finds it by power iteration on Hessian-vector products (Pearlmutter 1994: a
double backward pass costs about two gradients, and the Hessian is never formed), so it runs on a network's
full parameter vector. Keskar et al. (2017) and Jastrzebski et al. (2017) report that small-batch SGD ends in
flatter minima than large-batch SGD at the same step; Cohen et al. (2021) that full-batch GD's sharpness rises
to the stability bound ``2 / lr`` ("edge of stability").

**Wide over sharp minima.** In the small-step limit SGD ``x <- x - lr g`` with ``E g = U'(x)`` and
``Var g = C(x) / B`` is the Ito diffusion ``dx = -U'(x) dt + sqrt(2 D(x)) dW`` in time ``t = lr * steps`` with
``D(x) = lr C(x) / (2 B)``. In one dimension its stationary (zero-flux) density is

    ``p(x) = exp(-Phi(x)) / D(x) / Z``,  ``Phi(x) = int^x U'(y) / D(y) dy``

(:func:`stationary_density`; set the flux ``U' p + (D p)'`` of the Fokker-Planck equation to zero). With
isotropic noise (``D = T`` constant) this is Boltzmann's ``exp(-U / T)``: two minima of equal depth then hold
weights in the ratio of their Gaussian widths, ``w_i ~ 1 / sqrt(k_i)`` with ``k_i = U''(a_i)``. Mini-batch noise
is not isotropic: near a minimum of a least-squares-like loss the per-example gradient covariance is ``C ~ s^2 H``
(label noise of variance ``s^2`` times the Gauss-Newton matrix, which is the Hessian at a zero-residual minimum),
so ``D(a_i) = tau k_i`` with ``tau = lr s^2 / (2 B)``. Laplace's method on ``p`` gives (:func:`laplace_well_weights`)

    ``w_i ~ exp(-Phi(a_i)) sqrt(2 pi / (k_i D(a_i))) = exp(-Phi(a_i)) sqrt(2 pi / tau) / k_i``:

each well's Gaussian has the same width ``sqrt(tau)`` whatever its curvature, and the sharp well loses a whole
factor ``1 / k`` (not ``1 / sqrt(k)``): at equal depth ``w_wide / w_sharp = (k_sharp / k_wide) exp(Phi(a_sharp) -
Phi(a_wide))``, where ``Phi(a_sharp) - Phi(a_wide) = int U' / D`` between them need not vanish even though
``U(a_sharp) = U(a_wide)``. The exact weights (:func:`stationary_well_weights`) integrate ``p`` by quadrature. The
related escape-time picture: Zhu et al. (2019), Xie, Sato and Sugiyama (2021, "SGD exponentially favors flat
minima"). The law is the ``lr -> 0`` limit: SGD's weights differ from it by ``O(lr)`` (Talay and Tubaro 1990).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.integrate
import torch

from noisygrad.checks import check_positive_int, check_real

__all__ = [
    "HessianEigenpair",
    "hessian_vector_product",
    "laplace_well_weights",
    "stationary_density",
    "stationary_well_weights",
    "top_hessian_eigenvalue",
]

Params = torch.Tensor | Sequence[torch.Tensor]
LossFn = Callable[[Any], torch.Tensor]
ScalarField = Callable[[np.ndarray], np.ndarray]


# ------------------------------------------------------------------------------------------ Hessian eigenvalue


@dataclass(frozen=True)
class HessianEigenpair:
    """The result of :func:`top_hessian_eigenvalue`.

    Attributes:
        value: the eigenvalue estimate (the Rayleigh quotient ``v^T H v`` of the final unit vector).
        vector: the unit eigenvector estimate, shaped like ``params`` (a tensor, or a tuple of tensors).
        residual: ``|H v - value v|``: the symmetric ``H`` has an eigenvalue within ``residual`` of ``value``.
        iterations: the Hessian-vector products the power iteration used (both passes, when it shifted).
    """

    value: float
    vector: torch.Tensor | tuple[torch.Tensor, ...]
    residual: float
    iterations: int


def _as_tensors(params: object) -> tuple[list[torch.Tensor], bool]:
    """The parameters as a list of floating tensors, and whether they came as one tensor."""
    single = isinstance(params, torch.Tensor)
    if single:
        given: list[object] = [params]
    elif isinstance(params, Sequence) and not isinstance(params, (str, bytes)) and len(params) > 0:
        given = list(params)
    else:
        raise TypeError(f"params must be a tensor or a non-empty sequence of tensors, got {type(params).__name__}")
    tensors: list[torch.Tensor] = []
    for i, t in enumerate(given):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            what = type(t).__name__ if not isinstance(t, torch.Tensor) else f"a tensor of dtype {t.dtype}"
            raise TypeError(f"params[{i}] must be a floating-point tensor, got {what}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"params[{i}] holds NaN or Inf")
        tensors.append(t)
    return tensors, single


class _HessianOperator:
    """``v -> H v`` at fixed parameters: one gradient graph, reused by every product (double backward)."""

    def __init__(self, loss_fn: LossFn, params: object) -> None:
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable as loss_fn(params) -> scalar, got {type(loss_fn).__name__}")
        tensors, single = _as_tensors(params)
        self.single = single
        self.params = [t.detach().clone().requires_grad_(True) for t in tensors]
        with torch.enable_grad():
            loss = loss_fn(self.params[0] if single else tuple(self.params))
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError("loss_fn must return a scalar tensor (one element)")
            if not math.isfinite(float(loss.detach())):
                raise ValueError(f"loss_fn returned a non-finite loss ({float(loss.detach())}) at params")
            if not loss.requires_grad:  # a loss that does not depend on params: H = 0
                self.grads: list[torch.Tensor | None] = [None] * len(self.params)
            else:
                self.grads = list(torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True))

    def __call__(self, vector: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        pairs = [(g, v) for g, v in zip(self.grads, vector, strict=True) if g is not None and g.requires_grad]
        if not pairs:  # the gradient is constant in params (a linear loss): H = 0
            return [torch.zeros_like(p) for p in self.params]
        products = torch.autograd.grad(
            [g for g, _ in pairs], self.params, [v for _, v in pairs], retain_graph=True, allow_unused=True
        )
        return [torch.zeros_like(p) if h is None else h.detach() for h, p in zip(products, self.params, strict=True)]


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return float(sum((x * y).sum() for x, y in zip(a, b, strict=True)))


def _shaped(single: bool, vector: list[torch.Tensor]) -> torch.Tensor | tuple[torch.Tensor, ...]:
    return vector[0] if single else tuple(vector)


def hessian_vector_product(loss_fn: LossFn, params: Params, vector: Params) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """``H v``: the Hessian of ``loss_fn`` at ``params`` times ``vector`` (a double backward pass; Pearlmutter 1994).

    Args:
        loss_fn: called as ``loss_fn(params)`` (a tensor, or a tuple of tensors when ``params`` is a sequence);
            returns a scalar tensor, differentiable twice.
        params: where the Hessian is taken: a floating tensor or a sequence of them (not changed).
        vector: shaped like ``params``.

    Returns:
        ``H v``, shaped like ``params``.
    """
    operator = _HessianOperator(loss_fn, params)
    vectors, _ = _as_tensors(vector)
    if len(vectors) != len(operator.params):
        raise ValueError(f"vector has {len(vectors)} tensors but params has {len(operator.params)}; they must match")
    for i, (v, p) in enumerate(zip(vectors, operator.params, strict=True)):
        if v.shape != p.shape:
            raise ValueError(f"vector[{i}] has shape {tuple(v.shape)} but params[{i}] has {tuple(p.shape)}")
    return _shaped(operator.single, operator([v.to(p) for v, p in zip(vectors, operator.params, strict=True)]))


def _power_iteration(
    apply: Callable[[list[torch.Tensor]], list[torch.Tensor]], v: list[torch.Tensor], iterations: int, rtol: float
) -> tuple[float, list[torch.Tensor], float, int]:
    for k in range(1, iterations + 1):
        w = apply(v)
        value = _dot(v, w)
        residual = math.sqrt(sum(float(((x - value * y) ** 2).sum()) for x, y in zip(w, v, strict=True)))
        norm = math.sqrt(_dot(w, w))
        if norm == 0.0 or residual <= rtol * abs(value) or k == iterations:
            return value, v, residual, k  # the value and residual of the returned vector
        v = [x / norm for x in w]
    raise AssertionError("unreachable: iterations >= 1")


def top_hessian_eigenvalue(
    loss_fn: LossFn, params: Params, iterations: int, generator: torch.Generator, *, rtol: float = 1e-6
) -> HessianEigenpair:
    """The largest eigenvalue of the Hessian of ``loss_fn`` at ``params`` (the *sharpness*), by power iteration.

    Power iteration ``v <- H v / |H v|`` from a random Gaussian start converges to the eigenvalue of largest
    *magnitude*, the error falling like ``|lambda_2 / lambda_1|^k``. If that one is negative (a saddle, or a
    maximum), a second pass on ``H - lambda I`` (whose spectrum is ``>= 0``) finds the largest algebraic
    eigenvalue. Each step is one Hessian-vector product (:func:`hessian_vector_product`), so the Hessian is never
    formed. The iteration stops early once ``|H v - lambda v| <= rtol |lambda|``.

    Args:
        loss_fn: called as ``loss_fn(params)`` (a tensor, or a tuple of tensors when ``params`` is a sequence);
            returns a scalar tensor, differentiable twice (e.g. the full training loss of a network, written
            with ``torch.func.functional_call``).
        params: where the Hessian is taken: a floating tensor or a sequence of them (not changed).
        iterations: the most Hessian-vector products per pass (> 0).
        generator: draws the random start vector (on its own device; moved to the parameters').
        rtol: the relative residual at which to stop early (>= 0; 0 runs every iteration).

    Returns:
        A :class:`HessianEigenpair`: the eigenvalue, its unit vector shaped like ``params``, the residual
        ``|H v - lambda v|`` (an eigenvalue lies within it; read it to judge convergence) and the products used.

    Raises:
        TypeError: if ``loss_fn`` is not callable, ``params`` not floating tensors, or ``generator`` not a
            ``torch.Generator``.
        ValueError: if the loss is not a finite scalar, ``params`` holds NaN or Inf, or ``iterations`` /
            ``rtol`` are out of range.
    """
    iterations = check_positive_int("iterations", iterations)
    rtol = check_real("rtol", rtol)
    if rtol < 0:
        raise ValueError(f"rtol must be >= 0, got {rtol!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    operator = _HessianOperator(loss_fn, params)
    start = [
        torch.randn(p.shape, generator=generator, dtype=p.dtype, device=generator.device).to(p.device)
        for p in operator.params
    ]
    norm = math.sqrt(_dot(start, start))
    start = [x / norm for x in start]
    value, v, residual, used = _power_iteration(operator, start, iterations, rtol)
    if value < 0:  # the dominant eigenvalue is negative: shift the spectrum to make the top one dominant

        def shifted(u: list[torch.Tensor]) -> list[torch.Tensor]:
            return [h - value * x for h, x in zip(operator(u), u, strict=True)]

        # from the random start again: the first pass's vector is an eigenvector of eigenvalue 0 of H - value I
        top, v, residual, more = _power_iteration(shifted, start, iterations, rtol)
        value, used = top + value, used + more
    return HessianEigenpair(float(value), _shaped(operator.single, v), float(residual), used)


# ---------------------------------------------------------------------- stationary law of a 1-D diffusion


def _grid(lo: float, hi: float, points: int) -> np.ndarray:
    lo, hi = check_real("lo", lo), check_real("hi", hi)
    if not hi > lo:
        raise ValueError(f"hi must be larger than lo, got lo={lo!r}, hi={hi!r}")
    points = check_positive_int("points", points)
    if points < 3:
        raise ValueError(f"points must be >= 3, got {points}")
    return np.linspace(lo, hi, points)


def _field(name: str, fn: object, x: np.ndarray, *, positive: bool = False) -> np.ndarray:
    if not callable(fn):
        raise TypeError(f"{name} must be callable on a numpy array of positions, got {type(fn).__name__}")
    values = np.broadcast_to(np.asarray(fn(x), dtype=np.float64), x.shape)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} returned NaN or Inf on the grid")
    if positive and np.any(values <= 0):
        raise ValueError(
            f"{name} must be > 0 on the whole grid (min {float(values.min()):.3g}): a diffusion that vanishes "
            "cuts the line into pieces with no stationary law across them"
        )
    return values


def _log_density(
    grad_potential: ScalarField, diffusion: ScalarField, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Phi`` (from ``x[0]``), ``D`` and ``log p`` (up to a constant, max 0) on the grid."""
    drift = _field("grad_potential", grad_potential, x)
    d = _field("diffusion", diffusion, x, positive=True)
    phi = scipy.integrate.cumulative_trapezoid(drift / d, x, initial=0.0)
    log_p = -phi - np.log(d)
    return phi, d, log_p - log_p.max()


def stationary_density(
    grad_potential: ScalarField, diffusion: ScalarField, lo: float, hi: float, *, points: int = 20001
) -> tuple[np.ndarray, np.ndarray]:
    """The stationary density of ``dx = -U'(x) dt + sqrt(2 D(x)) dW`` (Ito) on ``[lo, hi]``, zero flux at the ends.

    ``p(x) = exp(-Phi(x)) / D(x) / Z`` with ``Phi(x) = int_lo^x U'(y) / D(y) dy``: the zero-flux solution of
    ``0 = d/dx [U' p + d/dx (D p)]``. For SGD with step ``lr``, batch ``B`` and per-example gradient variance
    ``C(x)``, ``D(x) = lr C(x) / (2 B)`` (time in units of ``1 / lr`` steps). Put ``lo`` and ``hi`` where a
    confining ``U`` leaves no mass (they act as reflecting walls). ``Phi`` is integrated by the trapezoid rule
    (error ``O(h^2)`` in the grid step ``h``).

    Args:
        grad_potential: ``U'``, vectorised over a numpy array of positions.
        diffusion: ``D > 0``, vectorised likewise (a constant ``T``: ``lambda x: T``).
        lo, hi: the interval.
        points: grid points (>= 3).

    Returns:
        ``(x, p)``: the grid and the density on it, normalised by the trapezoid rule.
    """
    x = _grid(lo, hi, points)
    _, _, log_p = _log_density(grad_potential, diffusion, x)
    p = np.exp(log_p)
    return x, p / float(np.trapezoid(p, x))


def stationary_well_weights(
    grad_potential: ScalarField,
    diffusion: ScalarField,
    boundaries: Sequence[float] | np.ndarray,
    lo: float,
    hi: float,
    *,
    points: int = 20001,
) -> np.ndarray:
    """The stationary mass of each well: of :func:`stationary_density` between consecutive ``boundaries``.

    Args:
        grad_potential, diffusion, lo, hi, points: as for :func:`stationary_density`.
        boundaries: strictly increasing points inside ``(lo, hi)`` (the barrier tops between wells).

    Returns:
        ``len(boundaries) + 1`` weights summing to 1: the masses of ``[lo, b_1], [b_1, b_2], ..., [b_m, hi]``.
    """
    x = _grid(lo, hi, points)
    cuts = np.array([check_real(f"boundaries[{i}]", b) for i, b in enumerate(boundaries)], dtype=np.float64)
    if cuts.size == 0 or np.any(np.diff(cuts) <= 0) or cuts[0] <= lo or cuts[-1] >= hi:
        raise ValueError(f"boundaries must be strictly increasing and inside (lo, hi) = ({lo}, {hi}), got {boundaries}")
    _, _, log_p = _log_density(grad_potential, diffusion, x)
    p = np.exp(log_p)
    mass = scipy.integrate.cumulative_trapezoid(p, x, initial=0.0)
    at_cuts = np.interp(cuts, x, mass)  # linear in each cell: error O(h^2) like the rest
    edges = np.concatenate([[0.0], at_cuts, [mass[-1]]])
    return np.asarray(np.diff(edges) / float(mass[-1]), dtype=np.float64)


def laplace_well_weights(
    grad_potential: ScalarField,
    diffusion: ScalarField,
    minima: Sequence[float] | np.ndarray,
    curvatures: Sequence[float] | np.ndarray,
    *,
    points: int = 20001,
) -> np.ndarray:
    """The small-noise (Laplace) weights of the wells: ``w_i ~ exp(-Phi(a_i)) sqrt(2 pi / (k_i D(a_i)))``.

    Gaussian approximation of :func:`stationary_density` at each minimum ``a_i`` (``Phi''(a_i) = k_i / D(a_i)``,
    ``k_i = U''(a_i)``). Isotropic noise (``D = T``) gives Boltzmann's ``exp(-U(a_i) / T) / sqrt(k_i)``; noise with
    ``D(a_i) = tau k_i`` (``C ~ H``) gives ``exp(-Phi(a_i)) / k_i``. ``Phi(a_i) - Phi(a_1)`` is integrated on a grid
    of ``points`` between the outermost minima.

    Args:
        grad_potential, diffusion: as for :func:`stationary_density`.
        minima: the positions ``a_i`` (strictly increasing).
        curvatures: ``U''(a_i) > 0``, one per minimum.
        points: grid points between the outermost minima.

    Returns:
        The weights, summing to 1.
    """
    a = np.array([check_real(f"minima[{i}]", m) for i, m in enumerate(minima)], dtype=np.float64)
    k = np.array([check_real(f"curvatures[{i}]", c) for i, c in enumerate(curvatures)], dtype=np.float64)
    if a.size == 0 or a.size != k.size:
        raise ValueError(f"minima and curvatures must be non-empty and of one length, got {a.size} and {k.size}")
    if np.any(np.diff(a) <= 0):
        raise ValueError(f"minima must be strictly increasing, got {list(minima)}")
    if np.any(k <= 0):
        raise ValueError(f"curvatures must be > 0 (each a_i a minimum), got {list(curvatures)}")
    if a.size == 1:
        return np.ones(1)
    x = _grid(float(a[0]), float(a[-1]), points)
    phi, _, _ = _log_density(grad_potential, diffusion, x)
    phi_at = np.interp(a, x, phi)
    d_at = _field("diffusion", diffusion, a, positive=True)
    log_w = -phi_at - 0.5 * np.log(k * d_at)
    w = np.exp(log_w - log_w.max())
    return np.asarray(w / w.sum())
