"""Zeroth-order gradient estimates: gradients from (noisy) function values only.

For a :class:`~noisygrad.NoisyBlackBox` (shots, simulations, experiments) or an :class:`~noisygrad.Energy`
evaluated without autograd. Every estimator puts all the points of one estimate into ONE
``objective.evaluate`` call (shape ``(K, d)``) so that simulators batch them (Qiskit Aer: one PUB).

* :class:`SPSA` (Spall 1992): two evaluations per estimate whatever the dimension ``d``, at ``x +- c_k Delta``
  with Rademacher ``Delta``. ``E[g] = grad f + O(c_k^2)``; for a smooth ``f`` its covariance is
  ``|g|^2 I - diag(g)^2`` per perturbation, so its gradient diversity ``tr(Cov)/|g|^2`` is ``rho = d - 1``,
  plus ``sigma^2 / (2 c_k^2)`` per component from evaluation noise of variance ``sigma^2``.
* :class:`GaussianSmoothing` (Nesterov and Spokoiny 2017; evolution strategies, Salimans et al. 2017):
  antithetic Gaussian directions ``u``: ``(f(x + s u) - f(x - s u)) u / (2 s)``, an unbiased gradient of the
  smoothed ``f_s(x) = E f(x + s u)`` (equal to ``grad f`` on quadratics), ``rho = d + 1``.
* :class:`~noisygrad.CentralDifference` (in :mod:`noisygrad.estimators.base`): ``2 d`` evaluations, no ``rho``
  (deterministic directions), noise ``sigma^2 / (2 h^2)`` per component.

With ``S`` perturbations averaged, the predicted alignment with the true gradient is
``E[cos] ~ (1 + rho / S)^(-1/2)`` (the noise-statistics law, :mod:`noisygrad.noise.statistics`).

Spall's gains ``a_k = a / (A + k + 1)^alpha`` are ``RobbinsMonro(a, b=A + 1, alpha=0.602)`` from
:mod:`noisygrad.schedules`; :func:`spsa_calibrate` chooses ``a``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from noisygrad.checks import check_finite, check_in_range, check_positive, check_positive_int, check_torch_generator
from noisygrad.estimators.base import Cost, Estimate, evaluate_points
from noisygrad.objectives import Energy, Kind, NoisyBlackBox, require_kind
from noisygrad.schedules import RobbinsMonro

__all__ = ["SPSA", "GaussianSmoothing", "SPSACalibration", "evaluate_points", "spsa_calibrate"]

_PERTURBATIONS = ("rademacher",)


def _flat(params: torch.Tensor) -> torch.Tensor:
    if not isinstance(params, torch.Tensor) or not params.is_floating_point() or params.numel() == 0:
        raise TypeError("params must be a non-empty floating-point tensor")
    return params.detach().reshape(1, -1)


def _spread_stats(per_draw: torch.Tensor) -> dict[str, float]:
    """Unbiased ``E|g - E g|^2`` of the mean of the rows of ``per_draw`` (needs two rows or more)."""
    k = per_draw.shape[0]
    if k < 2:
        return {}
    trace = float(per_draw.var(0, unbiased=True).sum())
    return {"trace_cov": trace, "grad_variance": trace / k}


class SPSA:
    """Simultaneous-perturbation gradient estimate (Spall 1992), an :class:`~noisygrad.Estimator`.

    At its ``k``-th call (``k = 0, 1, ...``) it uses ``c_k = c / (k + 1)^gamma``, draws ``resamplings``
    Rademacher vectors ``Delta_j`` from the generator, evaluates ``f`` at the ``2 * resamplings`` points
    ``x + c_k Delta_j`` (first half) and ``x - c_k Delta_j`` (second half) in ONE call, and returns

    ``g = mean_j (f(x + c_k Delta_j) - f(x - c_k Delta_j)) / (2 c_k) * Delta_j``

    (``1 / Delta_ji = Delta_ji`` for Rademacher entries). Per component, for a smooth ``f`` with gradient
    ``g`` and evaluation noise of variance ``sigma^2``: ``Var(g_i) = (sum_{j != i} g_j^2 + sigma^2 / (2 c_k^2)) / S``
    with ``S = resamplings``; the bias is ``O(c_k^2)`` (third derivatives).

    Args:
        objective: a :class:`~noisygrad.NoisyBlackBox` or an :class:`~noisygrad.Energy`.
        c: the perturbation size at ``k = 0``, > 0. Under evaluation noise it trades bias ``O(c^2)`` against
            variance ``sigma^2 / (2 c^2)``; Spall recommends about the noise's standard deviation.
        gamma: the decay exponent of ``c_k``, in [0, 1] (Spall: 0.101; 0 keeps ``c`` constant).
        resamplings: perturbations averaged per estimate, >= 1.
        perturbation: the distribution of ``Delta``; only ``"rademacher"`` (+-1 with probability 1/2),
            Spall's choice (its inverse moments are finite, unlike a Gaussian's).

    The stats of each estimate hold ``c_k``, ``k`` and, with ``resamplings >= 2``, ``grad_variance`` (an
    unbiased estimate of the trace of the estimate's covariance). The call counter ``k`` is the estimator's
    state (``state_dict`` / ``load_state_dict``), so a resumed :func:`~noisygrad.minimize` run continues the
    ``c_k`` sequence exactly.
    """

    def __init__(
        self,
        objective: NoisyBlackBox | Energy,
        *,
        c: float = 0.1,
        gamma: float = 0.101,
        resamplings: int = 1,
        perturbation: str = "rademacher",
    ) -> None:
        require_kind("SPSA", objective, (Kind.BLACK_BOX, Kind.ENERGY))
        self.objective = objective
        self.c = check_positive("c", c)
        self.gamma = check_in_range("gamma", gamma, 0.0, 1.0, high_open=False)
        self.resamplings = check_positive_int("resamplings", resamplings)
        if perturbation not in _PERTURBATIONS:
            raise ValueError(f"perturbation must be one of {_PERTURBATIONS}, got {perturbation!r}")
        self.perturbation = perturbation
        self.k = 0

    def perturbation_size(self, k: int) -> float:
        """``c_k = c / (k + 1)^gamma``."""
        k = check_positive_int("k", k, allow_zero=True)
        return self.c / float((k + 1) ** self.gamma)

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        """One SPSA estimate at ``params``; advances the call counter ``k``."""
        check_torch_generator("generator", generator)
        flat = _flat(params)
        d, s = flat.shape[1], self.resamplings
        ck = self.perturbation_size(self.k)
        deltas = (2 * torch.randint(0, 2, (s, d), generator=generator) - 1).to(flat.dtype).to(flat.device)
        points = torch.cat([flat + ck * deltas, flat - ck * deltas])
        values, cost = evaluate_points(self.objective, points, generator, params.shape)
        per_draw = ((values[:s] - values[s:]) / (2 * ck)).unsqueeze(1) * deltas
        grad = per_draw.mean(0).reshape(params.shape)
        stats = {"c_k": ck, "k": float(self.k), **_spread_stats(per_draw)}
        self.k += 1
        return Estimate(check_finite("SPSA gradient", grad), float(values.mean()), cost, stats)

    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"k"}:
            raise ValueError(f"SPSA state must have exactly the key 'k', got keys {sorted(state)}")
        self.k = check_positive_int("state['k']", state["k"], allow_zero=True)

    def __repr__(self) -> str:
        return f"SPSA(c={self.c}, gamma={self.gamma}, resamplings={self.resamplings}, k={self.k})"


class GaussianSmoothing:
    """Antithetic Gaussian-smoothing (evolution-strategy) gradient estimate, an :class:`~noisygrad.Estimator`.

    ``g = mean_j (f(x + s u_j) - f(x - s u_j)) u_j / (2 s)`` with ``u_j ~ N(0, I)``: ``2 * samples``
    evaluations in one call. It is an unbiased estimate of ``grad f_s(x)``, the gradient of the Gaussian
    smoothing ``f_s(x) = E f(x + s u)`` (``= grad f`` for quadratics; ``O(s^2)`` away otherwise). For a
    locally linear ``f`` its covariance is ``(|g|^2 I + g g^T) / samples``: ``rho = d + 1``; evaluation
    noise of variance ``sigma^2`` adds ``sigma^2 / (2 s^2 samples)`` per component.

    Args:
        objective: a :class:`~noisygrad.NoisyBlackBox` or an :class:`~noisygrad.Energy`.
        sigma: the smoothing radius ``s``, > 0.
        samples: antithetic pairs per estimate, >= 1.
    """

    def __init__(self, objective: NoisyBlackBox | Energy, *, sigma: float = 0.1, samples: int = 1) -> None:
        require_kind("GaussianSmoothing", objective, (Kind.BLACK_BOX, Kind.ENERGY))
        self.objective = objective
        self.sigma = check_positive("sigma", sigma)
        self.samples = check_positive_int("samples", samples)

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        check_torch_generator("generator", generator)
        flat = _flat(params)
        d, s = flat.shape[1], self.samples
        u = torch.randn(s, d, generator=generator, dtype=flat.dtype).to(flat.device)
        points = torch.cat([flat + self.sigma * u, flat - self.sigma * u])
        values, cost = evaluate_points(self.objective, points, generator, params.shape)
        per_draw = ((values[:s] - values[s:]) / (2 * self.sigma)).unsqueeze(1) * u
        grad = per_draw.mean(0).reshape(params.shape)
        return Estimate(check_finite("smoothing gradient", grad), float(values.mean()), cost, _spread_stats(per_draw))

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"GaussianSmoothing keeps no state, got keys {sorted(state)}")

    def __repr__(self) -> str:
        return f"GaussianSmoothing(sigma={self.sigma}, samples={self.samples})"


@dataclass(frozen=True)
class SPSACalibration:
    """The outcome of :func:`spsa_calibrate`.

    Attributes:
        a: the gain numerator of ``a_k = a / (A + k + 1)^alpha``.
        learning_rate: that schedule, ``RobbinsMonro(a, b=A + 1, alpha)``, ready for an optimizer.
        mean_magnitude: the measured mean ``|g_i|`` of the calibration estimates.
        cost: what the calibration spent (``2 * samples`` evaluations).
    """

    a: float
    learning_rate: RobbinsMonro
    mean_magnitude: float
    cost: Cost

    @property
    def evaluations(self) -> int:
        return self.cost.evaluations


def spsa_calibrate(
    objective: NoisyBlackBox | Energy,
    x0: torch.Tensor,
    *,
    generator: torch.Generator,
    c: float = 0.1,
    target_step: float = 2 * math.pi / 10,
    alpha: float = 0.602,
    stability: float = 0.0,
    samples: int = 25,
) -> SPSACalibration:
    """Choose SPSA's gain ``a`` so that the first steps move each parameter by about ``target_step``.

    Spall's rule (1998, "Implementation of the simultaneous perturbation algorithm"): measure the mean
    component magnitude ``m = mean |g_i|`` of ``samples`` SPSA estimates at ``x0`` (with Rademacher
    perturbations ``|g_i| = |f(x0 + c Delta) - f(x0 - c Delta)| / (2c)`` for every ``i``) and set
    ``a = target_step * (A + 1)^alpha / m``, so that the first step ``a_0 m`` equals ``target_step``. With
    ``A = 0`` this is Qiskit's ``SPSA.calibrate`` (which leaves out the ``(A + 1)^alpha`` factor otherwise).
    All ``2 * samples`` points go into one evaluation call.

    Args:
        objective: a :class:`~noisygrad.NoisyBlackBox` or an :class:`~noisygrad.Energy`.
        x0: the starting point (1-D; not modified).
        generator: the source of the perturbations (and of the black box's noise).
        c: perturbation size used for calibration (use the SPSA estimator's ``c``), > 0.
        target_step: the desired magnitude of the first update of each parameter, > 0 (Qiskit: 2 pi / 10).
        alpha: the gain exponent, in (1/2, 1] (Spall: 0.602).
        stability: Spall's stability constant ``A`` >= 0 (he suggests about 10% of the planned iterations).
        samples: the number of SPSA estimates averaged, >= 1.

    Raises:
        ValueError: if every measured difference is zero (a flat objective: no gain can be calibrated).
    """
    require_kind("spsa_calibrate", objective, (Kind.BLACK_BOX, Kind.ENERGY))
    check_torch_generator("generator", generator)
    flat = _flat(torch.as_tensor(x0))
    check_finite("x0", flat)
    c = check_positive("c", c)
    target_step = check_positive("target_step", target_step)
    alpha = check_in_range("alpha", alpha, 0.5, 1.0, low_open=True, high_open=False)
    stability = check_positive("stability", stability, allow_zero=True)
    samples = check_positive_int("samples", samples)
    deltas = (2 * torch.randint(0, 2, (samples, flat.shape[1]), generator=generator) - 1).to(flat.dtype).to(flat.device)
    points = torch.cat([flat + c * deltas, flat - c * deltas])
    values, cost = evaluate_points(objective, points, generator, torch.as_tensor(x0).shape)
    magnitude = float(((values[:samples] - values[samples:]) / (2 * c)).abs().mean())
    if magnitude == 0.0:
        raise ValueError(
            f"spsa_calibrate measured zero change of the objective at x0 over {samples} perturbations of size "
            f"c={c}; increase c or samples, or choose a by hand"
        )
    a = target_step * (stability + 1.0) ** alpha / magnitude
    return SPSACalibration(a, RobbinsMonro(a, stability + 1.0, alpha), magnitude, cost)
