"""Synaptic pruning as a first-passage problem.

A synapse weight is driven down by a constant depressive drift and shaken by activity noise,

    w_{n+1} = w_n - eta * kappa + eta * sigma * xi_n,        xi_n ~ N(0, 1) independent,

and is eliminated the first time it falls below the threshold ``theta < w0``. This is SGD with learning
rate ``eta`` on a loss of slope ``kappa`` whose gradient is read with noise ``sigma``. Time is counted in
steps. The diffusion with the same first two moments per step is ``dw = -eta kappa dt + eta sigma dW``;
its first-passage time is inverse Gaussian with

    mean m = (w0 - theta) / (eta kappa)             (the same for every sigma),
    shape  = (w0 - theta)^2 / (eta sigma)^2,         variance = (w0 - theta) sigma^2 / (eta kappa^3).

The discrete walk jumps past ``theta``; Wald's identity ``E[w_N] = w0 - eta kappa E[N]`` makes its mean
passage time ``(w0 - theta + E[O]) / (eta kappa)`` with the overshoot ``O = theta - w_N``, computed here
from the renewal-theory limit (Spitzer's series), which Siegmund's corrected diffusion approximates by
``E[O] ~ eta (rho sigma + kappa / 4)`` with ``rho = -zeta(1/2)/sqrt(2 pi) = 0.5826``.

Caveat: "the mean does not depend on sigma" holds for the constant-drift diffusion only, and for the mean
only; variance, quantiles and the fraction pruned by a given time all depend on sigma. It fails with
state-dependent drift (weight decay), multiplicative noise or a reflecting upper bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import special, stats

from noisygrad.checks import check_generator, check_positive, check_positive_int, check_real

#: Siegmund's constant -zeta(1/2)/sqrt(2 pi): the expected overshoot of a driftless Gaussian walk, in steps' sd.
RHO = float(-special.zeta(0.5) / math.sqrt(2.0 * math.pi))

# Work arrays are at most this many float64 numbers (32 MB), whatever the number of synapses.
_MAX_BLOCK_ELEMENTS = 1 << 22

#: The most steps a walk is simulated for (a guard against runs that cannot finish: at 1e-12 drift per step a
#: synapse would walk 1e24 steps). A longer horizon is refused before any work, naming ``max_steps``.
MAX_WALK_STEPS = 10**9

# How far beyond the mean the horizon of an uncapped run reaches, in units of the passage time's exponential tail.
_TAIL_LENGTHS = 60.0


@dataclass(frozen=True)
class PruningModel:
    """One synapse's weight walk toward the elimination threshold.

    Args:
        w0: initial weight.
        theta: elimination threshold, strictly below ``w0``.
        eta: learning rate (weight change per unit drive), > 0.
        kappa: depressive drift per step in units of ``eta``, > 0 (with ``kappa <= 0`` the weight may
            never reach ``theta`` and the mean passage time is infinite).
        sigma: standard deviation of the activity noise per step in units of ``eta``, >= 0.
    """

    w0: float
    theta: float
    eta: float
    kappa: float
    sigma: float

    def __post_init__(self) -> None:
        check_real("w0", self.w0)
        check_real("theta", self.theta)
        if self.theta >= self.w0:
            raise ValueError(f"theta must lie below w0 (the synapse starts above threshold), got {self.theta!r}")
        check_positive("eta", self.eta)
        check_positive("kappa", self.kappa)
        check_positive("sigma", self.sigma, allow_zero=True)

    @property
    def distance(self) -> float:
        """Weight still to lose before elimination, ``w0 - theta``."""
        return float(self.w0 - self.theta)

    # ------------------------------------------------------------------ closed forms (diffusion)

    def mean_passage_time(self) -> float:
        """Mean first-passage time of the diffusion, ``(w0 - theta)/(eta kappa)`` steps, for every sigma."""
        return self.distance / (self.eta * self.kappa)

    def variance_passage_time(self) -> float:
        """Variance of the diffusion's first-passage time, ``(w0 - theta) sigma^2 / (eta kappa^3)``."""
        return self.distance * self.sigma**2 / (self.eta * self.kappa**3)

    def passage_time_distribution(self) -> Any:
        """The diffusion's first-passage law as a frozen ``scipy.stats.invgauss``.

        scipy's ``invgauss(mu, scale=s)`` has mean ``mu s`` and shape ``s``, so an inverse Gaussian of mean
        ``m`` and shape ``lam`` is ``invgauss(m / lam, scale=lam)``.
        """
        if self.sigma == 0.0:
            raise ValueError("sigma must be > 0 for a passage-time distribution (sigma = 0 is deterministic)")
        mean = self.mean_passage_time()
        shape = (self.distance / (self.eta * self.sigma)) ** 2
        return stats.invgauss(mean / shape, scale=shape)

    # ------------------------------------------------------------------ closed forms (discrete walk)

    def expected_overshoot(self) -> float:
        """Mean overshoot ``E[theta - w_N]`` of the discrete walk, in weight units (renewal limit).

        Spitzer's formula for a walk with increments of mean ``k = kappa`` and variance ``s^2 = sigma^2``
        (in units of ``eta``) toward the threshold: ``E[O]/eta = (k^2 + s^2)/(2k) - sum_n E[S_n^-]/n``,
        with ``S_n ~ N(n k, n s^2)``. Exact as ``(w0 - theta)/(eta sigma) -> infinity``; the finite-distance
        correction decays exponentially. Beyond ``sigma/kappa = 300`` the series would need more than
        10^7 terms and Siegmund's expansion ``rho sigma + kappa/4`` (error O(kappa^2/sigma)) is used.
        """
        k, s = self.kappa, self.sigma
        if s == 0.0:
            return 0.0  # deterministic steps: see discrete_mean_passage_time
        if s / k > 300.0:
            return self.eta * (RHO * s + k / 4.0)
        # the terms decay like exp(-n k^2 / (2 s^2)); 45 e-folds leave < 1e-19 of the sum out
        n = np.arange(1, int(90.0 * s * s / (k * k)) + 64, dtype=np.float64)
        root = np.sqrt(n)
        negative_part = s * root * stats.norm.pdf(k * root / s) - n * k * stats.norm.cdf(-k * root / s)
        return self.eta * float((k * k + s * s) / (2.0 * k) - np.sum(negative_part / n))

    def discrete_mean_passage_time(self) -> float:
        """Mean number of steps of the discrete walk, ``(w0 - theta + E[O])/(eta kappa)`` (Wald's identity).

        With ``sigma = 0`` the walk is deterministic: ``floor((w0 - theta)/(eta kappa)) + 1`` steps.
        """
        if self.sigma == 0.0:
            return float(math.floor(self.distance / (self.eta * self.kappa)) + 1)
        return (self.distance + self.expected_overshoot()) / (self.eta * self.kappa)

    # ------------------------------------------------------------------ simulation

    def passage_horizon(self) -> float:
        """The steps by which every synapse of any realistic population is eliminated: the mean passage time
        plus 60 lengths of the passage time's exponential tail.

        The first-passage law (inverse Gaussian) has the tail ``P(N > t) ~ exp(-t / tau)`` with
        ``tau = 2 sigma^2 / kappa^2`` steps (independent of ``eta`` and ``w0 - theta``), so a synapse is alive
        beyond the horizon with probability about ``exp(-60) = 1e-26``. Used as the step cap of an uncapped
        :meth:`simulate_walk` and of the bridge of :meth:`simulate_sde`.
        """
        tail = 2.0 * (self.sigma / self.kappa) ** 2
        return self.mean_passage_time() + _TAIL_LENGTHS * tail + 1000.0

    def _step_cap(self, max_steps: int | None, dt: float = 1.0, name: str = "max_steps") -> tuple[int, bool]:
        """``(steps to simulate at most, whether that cap is the caller's)``; a horizon past
        :data:`MAX_WALK_STEPS` is refused naming ``max_steps`` (or ``max_time``)."""
        if max_steps is not None:
            cap = check_positive_int("max_steps", max_steps)
            if cap > MAX_WALK_STEPS:
                raise ValueError(f"max_steps must be <= {MAX_WALK_STEPS:.0e} (a walk that long never ends), got {cap}")
            return cap, True
        horizon = self.passage_horizon() / dt
        if not math.isfinite(horizon) or horizon > MAX_WALK_STEPS:
            raise ValueError(
                f"the walk would need up to {horizon:.3g} steps of {dt:g} to eliminate every synapse (mean passage "
                f"time {self.mean_passage_time():.3g} steps at drift eta*kappa = {self.eta * self.kappa:.3g} per step, "
                f"tail 2 sigma^2/kappa^2 = {2.0 * (self.sigma / self.kappa) ** 2:.3g} steps), beyond the cap of "
                f"{MAX_WALK_STEPS:.0e}: pass {name}= to stop earlier (synapses alive then are returned as inf), or "
                "use the closed forms (mean_passage_time, passage_time_distribution)"
            )
        return math.ceil(horizon), False

    def simulate_walk(self, n_synapses: int, rng: np.random.Generator, *, max_steps: int | None = None) -> np.ndarray:
        """Elimination step ``N = min{n : w_n < theta}`` of ``n_synapses`` independent synapses.

        Vectorised: all living synapses advance a block of steps at once (one ``cumsum``), those that
        crossed are recorded and dropped. Returns float64 step counts; ``inf`` marks a synapse still alive
        after ``max_steps`` (at most :data:`MAX_WALK_STEPS`).

        ``max_steps=None`` runs until every synapse is eliminated, which happens with probability 1 since
        ``kappa > 0``, but within :meth:`passage_horizon` steps only: a model whose horizon exceeds
        :data:`MAX_WALK_STEPS` (a drift so small the walk would not end in a lifetime) is refused before any
        work with a ``ValueError`` naming ``max_steps``, and a synapse still alive at the horizon (probability
        about 1e-26 each) raises ``RuntimeError`` instead of being reported as eliminated.
        """
        n = check_positive_int("n_synapses", n_synapses)
        check_generator(rng)
        cap, capped = self._step_cap(max_steps)
        limit = cap
        out = np.empty(n, dtype=np.float64)
        drift, noise = -self.eta * self.kappa, self.eta * self.sigma
        block = self._block_length()
        chunk = max(1, _MAX_BLOCK_ELEMENTS // block)
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            times = np.full(size, np.inf)
            alive = np.arange(size)
            gap = np.full(size, self.distance)  # w - theta of the living synapses
            step = 0
            while alive.size and step < limit:
                k = min(block, limit - step)
                path = rng.normal(drift, noise, size=(alive.size, k))
                path[:, 0] += gap
                np.cumsum(path, axis=1, out=path)
                hit = path.min(axis=1) < 0.0
                times[alive[hit]] = step + 1 + (path[hit] < 0.0).argmax(axis=1)
                alive, gap = alive[~hit], path[~hit, -1]
                step += k
            if alive.size and not capped:
                raise RuntimeError(
                    f"{alive.size} synapse(s) still alive after {limit} steps, 60 tail lengths beyond the mean passage "
                    f"time ({self.mean_passage_time():.3g}): pass max_steps= to return them as inf"
                )
            out[start : start + size] = times
        return out

    def simulate_sde(
        self,
        n_synapses: int,
        rng: np.random.Generator,
        *,
        method: Literal["exact", "bridge"] = "exact",
        dt: float = 1.0,
        max_time: float | None = None,
    ) -> np.ndarray:
        """First-passage times of the diffusion ``dw = -eta kappa dt + eta sigma dW`` (time in steps).

        ``method="exact"`` draws the inverse Gaussian law directly (numpy's ``Generator.wald``): exact and
        the fastest, but tied to constant drift. ``method="bridge"`` integrates the diffusion on a grid
        of step ``dt``. With constant coefficients the Gaussian grid increments are exact; between grid
        points the path is a Brownian bridge, which crosses ``theta`` with probability
        ``exp(-2 a b / (s^2 dt))`` (endpoints ``a, b`` above ``theta``, ``s = eta sigma``). Given a crossing,
        the crossing time ``t + dt y/(1+y)`` with ``y ~ IG(a/|b|, a^2/(s^2 dt))`` is the bridge's exact
        first-hitting law. So the grid costs speed, never accuracy, for any ``dt``; unlike the direct
        sampler the same scheme extends to drifts that change from one grid step to the next.
        ``inf`` marks synapses alive at ``max_time``.
        """
        n = check_positive_int("n_synapses", n_synapses)
        check_generator(rng)
        if self.sigma == 0.0:
            raise ValueError("sigma must be > 0 to simulate the diffusion (sigma = 0 is deterministic)")
        horizon = math.inf if max_time is None else check_positive("max_time", max_time)
        if method == "exact":
            shape = (self.distance / (self.eta * self.sigma)) ** 2
            times = rng.wald(self.mean_passage_time(), shape, size=n)
            times[times > horizon] = np.inf
            return times
        if method != "bridge":
            raise ValueError(f"method must be 'exact' or 'bridge', got {method!r}")
        h = check_positive("dt", dt)
        if max_time is None:
            self._step_cap(
                None, h, "max_time"
            )  # refuses, naming max_time, a diffusion that would not end in MAX_WALK_STEPS
            horizon = self.passage_horizon()
        elif horizon / h > MAX_WALK_STEPS:
            raise ValueError(
                f"max_time / dt must be <= {MAX_WALK_STEPS:.0e} grid steps, got max_time={max_time!r}, dt={dt!r}"
            )
        return self._bridge(n, rng, h, horizon)

    def _block_length(self, dt: float = 1.0) -> int:
        """Steps simulated per block: about a quarter of the mean passage time, at least 16."""
        return int(min(4096, max(16, math.ceil(0.25 * self.mean_passage_time() / dt))))

    def _bridge(self, n: int, rng: np.random.Generator, dt: float, horizon: float) -> np.ndarray:
        s2dt = (self.eta * self.sigma) ** 2 * dt
        drift, noise = -self.eta * self.kappa * dt, self.eta * self.sigma * math.sqrt(dt)
        block = self._block_length(dt)
        chunk = max(1, _MAX_BLOCK_ELEMENTS // (3 * block))
        out = np.empty(n, dtype=np.float64)
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            times = np.full(size, np.inf)
            alive = np.arange(size)
            gap = np.full(size, self.distance)
            step = 0
            while alive.size and step * dt < horizon:
                path = rng.normal(drift, noise, size=(alive.size, block))
                path[:, 0] += gap
                np.cumsum(path, axis=1, out=path)
                before = np.concatenate([gap[:, None], path[:, :-1]], axis=1)
                p_cross = np.exp(-2.0 * np.maximum(before, 0.0) * np.maximum(path, 0.0) / s2dt)
                crossed = (path <= 0.0) | (rng.random(path.shape) < p_cross)
                hit = crossed.any(axis=1)
                rows = np.flatnonzero(hit)
                first = crossed[rows].argmax(axis=1)
                a = before[rows, first]
                b = np.maximum(np.abs(path[rows, first]), 1e-300)
                y = rng.wald(a / b, a * a / s2dt)
                times[alive[rows]] = (step + first + 1.0 / (1.0 + 1.0 / y)) * dt
                alive, gap = alive[~hit], path[~hit, -1]
                step += block
            out[start : start + size] = times
        out[out > horizon] = np.inf
        return out


# ---------------------------------------------------------------------- competition between inputs


@dataclass(frozen=True)
class CompetitionResult:
    """Outcome of :func:`simulate_competition`.

    Attributes:
        weights: final weights, shape ``(n_neurons, n_inputs)``; pruned synapses hold 0.
        pruned_at: step at which each synapse was eliminated, ``inf`` if it survived.
        correlated: boolean mask of the inputs in the correlated group, shape ``(n_inputs,)``.
        first_step: every synapse's first-step weight change divided by ``eta``, shape
            ``(n_neurons, n_inputs)``; its expectation is :func:`oja_drift` at the initial weights.
    """

    weights: np.ndarray
    pruned_at: np.ndarray
    correlated: np.ndarray
    first_step: np.ndarray

    def kept_fraction(self, group: Literal["correlated", "uncorrelated"]) -> float:
        """Fraction of the synapses of one input group that survived."""
        mask = self.correlated if group == "correlated" else ~self.correlated
        return float(np.isinf(self.pruned_at[:, mask]).mean())


def input_covariance(n_correlated: int, n_uncorrelated: int, correlation: float) -> np.ndarray:
    """Covariance of the presynaptic activity: one correlated block, the other inputs independent."""
    nc = check_positive_int("n_correlated", n_correlated)
    n = nc + check_positive_int("n_uncorrelated", n_uncorrelated, allow_zero=True)
    c = check_real("correlation", correlation)
    if not 0.0 <= c < 1.0:
        raise ValueError(f"correlation must lie in [0, 1), got {correlation!r}")
    cov = np.eye(n)
    block = np.full((nc, nc), c)
    np.fill_diagonal(block, 1.0)
    cov[:nc, :nc] = block
    return cov


def oja_drift(weights: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Expected Oja update per unit rate, ``C w - (w^T C w) w``: Hebbian growth minus competition."""
    w = np.asarray(weights, dtype=np.float64)
    cov = np.asarray(covariance, dtype=np.float64)
    if w.ndim != 1 or cov.shape != (w.size, w.size):
        raise ValueError(f"covariance must have shape ({w.size}, {w.size}) for {w.size} weights, got {cov.shape}")
    cw = cov @ w
    return np.asarray(cw - (w @ cw) * w)


def simulate_competition(
    n_neurons: int,
    n_correlated: int,
    n_uncorrelated: int,
    *,
    correlation: float = 0.5,
    eta: float = 0.005,
    theta: float = 0.05,
    steps: int = 1500,
    rng: np.random.Generator,
) -> CompetitionResult:
    """Activity-dependent competition: many neurons, each pruning its inputs under Oja's rule.

    Each neuron receives zero-mean, unit-variance inputs ``x``: ``n_correlated`` share a common source
    (pairwise correlation ``correlation``), ``n_uncorrelated`` are independent. Its output is
    ``y = w . x`` and every living synapse follows Oja's rule (Oja 1982),
    ``w_i <- w_i + eta (y x_i - y^2 w_i)``: Hebbian growth for inputs that drive the cell together, and a
    normalising loss shared by all (the competition for a fixed total strength). In expectation the
    weights climb toward the principal eigenvector of the input covariance, which loads on the
    correlated group only, so the uncorrelated weights drift down, noisily, and are eliminated when they
    fall below ``theta`` (a first passage), while the correlated ones settle near ``1/sqrt(n_correlated)``.
    Weights start at ``1/sqrt(n_inputs)`` (unit norm).
    """
    p = check_positive_int("n_neurons", n_neurons)
    nc = check_positive_int("n_correlated", n_correlated)
    nu = check_positive_int("n_uncorrelated", n_uncorrelated)
    c = check_positive("correlation", correlation)
    if c >= 1.0:
        raise ValueError(f"correlation must lie in (0, 1), got {correlation!r}")
    rate = check_positive("eta", eta)
    threshold = check_positive("theta", theta)
    n_steps = check_positive_int("steps", steps)
    check_generator(rng)
    n = nc + nu
    if threshold >= 1.0 / math.sqrt(n):
        raise ValueError(f"theta must lie below the initial weight 1/sqrt(n_inputs) = {1 / math.sqrt(n):.4g}")
    w = np.full((p, n), 1.0 / math.sqrt(n))
    alive = np.ones((p, n), dtype=bool)
    pruned_at = np.full((p, n), np.inf)
    mix = np.sqrt([c] * nc + [0.0] * nu), np.sqrt([1.0 - c] * nc + [1.0] * nu)
    first_change = np.empty((p, n))
    for step in range(1, n_steps + 1):
        x = mix[0] * rng.standard_normal((p, 1)) + mix[1] * rng.standard_normal((p, n))
        y = np.einsum("ij,ij->i", w, x)[:, None]
        change = (y * x - y * y * w) * alive
        if step == 1:
            first_change = change
        w = w + rate * change
        newly = alive & (w < threshold)
        pruned_at[newly] = step
        alive &= ~newly
        w[~alive] = 0.0
    return CompetitionResult(
        weights=w,
        pruned_at=pruned_at,
        correlated=np.arange(n) < nc,
        first_step=first_change,
    )
