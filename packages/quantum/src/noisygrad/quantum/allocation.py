"""Variance-optimal shot allocation across measurement groups: spend shots where the noise is.

One energy estimate measures every qubit-wise commuting group ``g`` with ``m_g`` shots; its variance is
``sum_g sigma_g**2 / m_g`` with ``sigma_g`` the single-shot standard deviation of the group's coefficient-weighted
observable ``O_g = sum_{t in g} c_t P_t``. For a total of ``M`` shots this is smallest with ``m_g`` proportional to
``sigma_g`` (Lagrange), where it equals ``(sum_g sigma_g)**2 / M``; so a target standard deviation ``eps`` needs

    M_opt = (sum_g sigma_g)**2 / eps**2      against      M_equal = G * sum_g sigma_g**2 / eps**2

shots for equal shots per group, a saving of ``M_opt / M_equal = (sum_g sigma_g)**2 / (G * sum_g sigma_g**2)``
(Cauchy-Schwarz: at most 1, equal to 1 only when every group is equally noisy).

The ``sigma_g`` are not known; :class:`ShotAllocator` keeps running estimates from the shots already taken (the
sample variance of each group's single-shot values, shot-weighted, with an exponential forgetting factor because
the state moves along a run) and allocates from them, with a floor of shots per group so that a group whose
estimate happens to be small (or zero: all its shots agreed) is never starved. Until a first estimate exists every
group gets ``pilot_shots``. :meth:`~noisygrad.quantum.measurement.MeasurementPlan.shots_for_precision` is the
state-independent worst case (``sigma_g`` replaced by its bound ``sum |c_t|``); this is the state's own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from noisygrad.checks import check_positive_int

from .measurement import MAX_SHOTS, MeasurementPlan


def _check_sigmas(sigmas: object) -> np.ndarray:
    arr = np.asarray(sigmas, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"sigmas must be a non-empty 1-D array (one standard deviation per group), got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"sigmas must be finite and >= 0, got {arr}")
    return arr


def _check_target(precision: float | None, total: int | None) -> None:
    if (precision is None) == (total is None):
        raise ValueError("give exactly one of precision (target standard deviation) and total (shot budget)")
    if precision is not None and (
        isinstance(precision, bool)
        or not isinstance(precision, (int, float))
        or not math.isfinite(precision)
        or precision <= 0
    ):
        raise ValueError(f"precision must be a finite number > 0 (the standard deviation asked), got {precision!r}")


def optimal_shots(
    sigmas: object, *, precision: float | None = None, total: int | None = None, min_shots: int = 1
) -> np.ndarray:
    """Shots per group ``(G,)``, proportional to ``sigmas`` and at least ``min_shots`` each.

    With ``precision``: ``m_g = max(ceil(sigma_g * sum(sigma) / precision**2), min_shots)``, so that
    ``sum_g sigma_g**2 / m_g <= precision**2``. With ``total`` (an int >= ``G * min_shots``): ``min_shots`` each
    and the rest split in proportion to ``sigma_g`` (largest remainders), summing to ``total`` exactly. All
    ``sigmas`` zero: ``min_shots`` each (precision) or ``total`` split equally.
    """
    sig = _check_sigmas(sigmas)
    _check_target(precision, total)
    min_shots = check_positive_int("min_shots", min_shots)
    g = sig.size
    if precision is not None:
        shots = np.maximum(np.ceil(sig * sig.sum() / precision**2), min_shots)
        if not np.all(shots < float(MAX_SHOTS)):
            raise ValueError(f"precision={precision:g} needs more than {MAX_SHOTS} shots for one group")
        return shots.astype(np.int64)
    budget = check_positive_int("total", total)
    if budget < g * min_shots:
        raise ValueError(f"total must be at least G * min_shots = {g * min_shots} shots, got {budget}")
    spare = budget - g * min_shots
    weights = sig / sig.sum() if sig.sum() > 0 else np.full(g, 1.0 / g)
    ideal = spare * weights
    extra = np.floor(ideal).astype(np.int64)
    rest = spare - int(extra.sum())
    extra[np.argsort(-(ideal - extra), kind="stable")[:rest]] += 1
    return extra + min_shots


def saving(sigmas: object) -> float:
    """The closed-form ratio ``(sum sigma)**2 / (G * sum sigma**2)`` of optimal to equal shots at equal precision."""
    sig = _check_sigmas(sigmas)
    squares = float((sig**2).sum())
    return 1.0 if squares == 0 else float(sig.sum() ** 2 / (sig.size * squares))


def equal_shots(sigmas: object, precision: float) -> np.ndarray:
    """Equal shots per group meeting ``precision``: ``ceil(sum sigma**2 / precision**2)`` each (the baseline)."""
    sig = _check_sigmas(sigmas)
    _check_target(precision, None)
    return np.full(sig.size, max(math.ceil(float((sig**2).sum()) / precision**2), 1), dtype=np.int64)


def group_variances(plan: MeasurementPlan, counts: np.ndarray, shots: int | np.ndarray) -> np.ndarray:
    """Unbiased sample variances ``(K, G)`` of each group's single-shot values from outcome counts ``(K, G, 2**n)``
    (0 for a group measured once, where none can be estimated)."""
    m = np.broadcast_to(np.asarray(shots, dtype=np.float64), (plan.num_groups,))
    values = np.stack([grp.values for grp in plan.groups])
    freq = counts / m[None, :, None]
    mean = np.einsum("kgb,gb->kg", freq, values)
    second = np.einsum("kgb,gb->kg", freq, values**2)
    return np.clip(second - mean**2, 0.0, None) * (m / np.maximum(m - 1, 1))


def exact_group_sigmas(plan: MeasurementPlan, probabilities: np.ndarray) -> np.ndarray:
    """The exact single-shot standard deviations ``(K, G)`` from outcome probabilities ``(K, G, 2**n)``."""
    values = np.stack([grp.values for grp in plan.groups])
    mean = np.einsum("kgb,gb->kg", probabilities, values)
    second = np.einsum("kgb,gb->kg", probabilities, values**2)
    return np.sqrt(np.clip(second - mean**2, 0.0, None))


class ShotAllocator:
    """Allocates the shots of each measurement group from running estimates of the groups' noise.

    Args:
        num_groups: the measurement groups of the observable (``MeasurementPlan.num_groups``).
        precision: the standard deviation asked of each energy estimate (give this or ``total``).
        total: the shots of one energy estimate, all groups together (give this or ``precision``).
        min_shots: the floor of shots per group (>= 2, so every group keeps a variance estimate).
        pilot_shots: shots per group before any estimate exists (>= 2).
        decay: forgetting factor in ``[0, 1)`` per update: the running variance is the shot-weighted mean of the
            sample variances, older updates weighted by ``decay**age`` (0: only the latest call counts).

    :meth:`shots` gives the allocation; :meth:`update` feeds it the per-group sample variances of a call.
    """

    def __init__(
        self,
        num_groups: int,
        *,
        precision: float | None = None,
        total: int | None = None,
        min_shots: int = 16,
        pilot_shots: int = 256,
        decay: float = 0.5,
    ) -> None:
        self.num_groups = check_positive_int("num_groups", num_groups)
        _check_target(precision, total)
        self.precision = None if precision is None else float(precision)
        self.total = None if total is None else check_positive_int("total", total)
        self.min_shots = check_positive_int("min_shots", min_shots)
        self.pilot_shots = check_positive_int("pilot_shots", pilot_shots)
        if self.min_shots < 2 or self.pilot_shots < 2:
            raise ValueError(
                f"min_shots and pilot_shots must be >= 2 (a variance needs two shots), got {min_shots}, {pilot_shots}"
            )
        if self.total is not None and self.total < self.num_groups * self.min_shots:
            raise ValueError(
                f"total must be at least num_groups * min_shots = {self.num_groups * self.min_shots}, got {total}"
            )
        if not isinstance(decay, (int, float)) or not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must be a number in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self._weight = np.zeros(self.num_groups)  # decayed shot weights
        self._weighted_var = np.zeros(self.num_groups)  # decayed shot-weighted sums of sample variances
        self.history: list[list[int]] = []

    @property
    def sigmas(self) -> np.ndarray | None:
        """The running single-shot standard deviation of each group, or ``None`` before the first update."""
        if not np.all(self._weight > 0):
            return None
        return np.sqrt(self._weighted_var / self._weight)

    def shots(self) -> np.ndarray:
        """Shots of each group ``(G,)`` for the next estimate (``pilot_shots`` each until estimates exist)."""
        sig = self.sigmas
        if sig is None:
            if self.total is not None:
                return optimal_shots(np.ones(self.num_groups), total=self.total, min_shots=2)
            return np.full(self.num_groups, self.pilot_shots, dtype=np.int64)
        return optimal_shots(sig, precision=self.precision, total=self.total, min_shots=self.min_shots)

    def update(self, variances: np.ndarray, shots: np.ndarray) -> None:
        """Fold in the sample variances ``(K, G)`` (or ``(G,)``) measured with ``shots`` ``(G,)`` at ``K`` points."""
        var = np.atleast_2d(np.asarray(variances, dtype=float))
        if var.shape[1] != self.num_groups or not np.all(np.isfinite(var)) or np.any(var < 0):
            raise ValueError(f"variances must be finite, >= 0, with {self.num_groups} groups, got shape {var.shape}")
        m = np.broadcast_to(np.asarray(shots, dtype=float), (self.num_groups,))
        self._weight = self.decay * self._weight + m * len(var)
        self._weighted_var = self.decay * self._weighted_var + m * var.sum(0)
        self.history.append([int(s) for s in m])

    def state_dict(self) -> dict[str, Any]:
        return {
            "weight": self._weight.tolist(),
            "weighted_var": self._weighted_var.tolist(),
            "history": [list(h) for h in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        weight = np.asarray(state["weight"], dtype=float)
        weighted = np.asarray(state["weighted_var"], dtype=float)
        if weight.shape != (self.num_groups,) or weighted.shape != (self.num_groups,):
            raise ValueError(f"state must hold {self.num_groups} groups, got {weight.shape} and {weighted.shape}")
        self._weight, self._weighted_var = weight.copy(), weighted.copy()
        self.history = [list(h) for h in state["history"]]
