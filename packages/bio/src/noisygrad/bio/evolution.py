"""Evolution as population search: Wright-Fisher selection beside SGD and an evolution strategy.

A population of ``N`` genotypes ``z`` (real vectors: quantitative traits) has log-fitness ``s f(z)``, so the
fitness is ``W = exp(s f)`` and ``s`` is the selection strength. Each Wright-Fisher generation draws ``N``
parents with probability proportional to ``W`` (multinomial sampling: selection plus genetic drift),
optionally recombines two parents trait by trait (free recombination), and adds Gaussian mutations.

Two facts the module makes measurable:

* Drift is directionless. With ``s = 0`` the change of the mean genotype has mean zero whatever the
  landscape; it is noise of covariance about ``G/N`` (``G`` the genetic covariance), not a noisy estimate
  of the fitness gradient the way a mini-batch gradient is.
* Selection follows the gradient. By the Price equation the expected change of the mean is
  ``Cov(z, W)/mean(W)``, which for weak selection is Lande's ``s G grad f_G(zbar)``, where ``f_G`` is ``f``
  averaged over the population's spread (exact for a Gaussian population, by Stein's lemma). On a linear
  landscape ``f = b . z`` the mean log-fitness therefore rises by ``s b^T G b = s Var(f)`` per generation
  (Fisher's fundamental theorem). A population thus climbs a Gaussian-smoothed landscape, like an
  evolution strategy with search spread ``G``, which is why it crosses ruggedness that traps SGD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from noisygrad.checks import as_array, check_generator, check_positive, check_positive_int


def _as_points(z: np.ndarray, dim: int) -> np.ndarray:
    arr = np.asarray(z, dtype=np.float64)
    if arr.shape[-1:] != (dim,):
        raise ValueError(f"genotypes must have last dimension {dim}, got shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class LinearLandscape:
    """``f(z) = slope . z``: a constant selection gradient, where Lande's and Fisher's laws are exact to O(s)."""

    slope: np.ndarray

    def __post_init__(self) -> None:
        b = np.array(self.slope, dtype=np.float64, ndmin=1)
        if b.ndim != 1 or not np.all(np.isfinite(b)):
            raise ValueError(f"slope must be a finite 1-D array, got {self.slope!r}")
        object.__setattr__(self, "slope", b)

    @property
    def dim(self) -> int:
        return int(self.slope.size)

    def value(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(_as_points(z, self.dim) @ self.slope)

    def grad(self, z: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.slope, _as_points(z, self.dim).shape).copy()


@dataclass(frozen=True)
class RuggedLandscape:
    """A bowl with ripples: ``f(z) = -|z - o|^2/(2 width^2) + depth sum_i cos(2 pi (z_i - o_i)/period)``.

    The global maximum is at ``o``; the ripples make local maxima about one ``period`` apart where a
    gradient follower stalls. Its average over a Gaussian spread with per-trait variances ``v`` is known
    in closed form (each cosine is damped by ``exp(-2 pi^2 v_i / period^2)``), which gives Lande's
    prediction for a population of that spread.
    """

    dim: int = 2
    width: float = 2.0
    depth: float = 1.0
    period: float = 1.0
    optimum: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        check_positive_int("dim", self.dim)
        check_positive("width", self.width)
        check_positive("depth", self.depth, allow_zero=True)
        check_positive("period", self.period)
        o = np.zeros(self.dim) if np.size(self.optimum) == 0 else np.array(self.optimum, dtype=np.float64)
        if o.shape != (self.dim,) or not np.all(np.isfinite(o)):
            raise ValueError(f"optimum must be a finite array of shape ({self.dim},), got {self.optimum!r}")
        object.__setattr__(self, "optimum", o)

    def value(self, z: np.ndarray) -> np.ndarray:
        d = _as_points(z, self.dim) - self.optimum
        k = 2.0 * math.pi / self.period
        return np.asarray(-(d * d).sum(-1) / (2 * self.width**2) + self.depth * np.cos(k * d).sum(-1))

    def grad(self, z: np.ndarray) -> np.ndarray:
        d = _as_points(z, self.dim) - self.optimum
        k = 2.0 * math.pi / self.period
        return np.asarray(-d / self.width**2 - self.depth * k * np.sin(k * d))

    def smoothed_grad(self, mean: np.ndarray, variances: np.ndarray) -> np.ndarray:
        """Gradient of ``E f(mean + e)`` for ``e ~ N(0, diag(variances))`` (the landscape a population climbs)."""
        d = _as_points(mean, self.dim) - self.optimum
        v = np.asarray(variances, dtype=np.float64)
        k = 2.0 * math.pi / self.period
        return np.asarray(-d / self.width**2 - self.depth * k * np.sin(k * d) * np.exp(-0.5 * k * k * v))


Landscape = LinearLandscape | RuggedLandscape


@dataclass(frozen=True)
class WrightFisher:
    """Wright-Fisher reproduction with selection, mutation and optional free recombination.

    Args:
        landscape: log-fitness ``f`` (``value`` on arrays of genotypes).
        population_size: ``N`` individuals per generation, >= 2.
        selection: ``s`` in ``W = exp(s f)``, >= 0 (0 is pure drift).
        mutation_sd: standard deviation of the Gaussian mutation added to every trait, >= 0.
        recombination: if true, each offspring takes every trait from one of two parents at random.
    """

    landscape: Landscape
    population_size: int
    selection: float
    mutation_sd: float
    recombination: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.landscape, LinearLandscape | RuggedLandscape):
            raise TypeError(
                f"landscape must be a LinearLandscape or a RuggedLandscape, got {type(self.landscape).__name__}"
            )
        n = check_positive_int("population_size", self.population_size)
        if n < 2:
            raise ValueError(f"population_size must be >= 2, got {n}")
        check_positive("selection", self.selection, allow_zero=True)
        check_positive("mutation_sd", self.mutation_sd, allow_zero=True)

    def parent_weights(self, population: np.ndarray) -> np.ndarray:
        """Selection probabilities ``W_i / sum W``, shape ``(R, N)`` for populations of shape ``(R, N, d)``."""
        return self._weights(self.landscape.value(population))

    def _weights(self, fitness: np.ndarray) -> np.ndarray:
        logw = self.selection * fitness
        w = np.exp(logw - logw.max(axis=-1, keepdims=True))
        return np.asarray(w / w.sum(axis=-1, keepdims=True))

    def step(self, population: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One generation of ``R`` independent populations, shape ``(R, N, d)`` (a new array)."""
        check_generator(rng)
        pop = np.asarray(population, dtype=np.float64)
        if pop.ndim != 3 or pop.shape[1:] != (self.population_size, self.landscape.dim):
            raise ValueError(
                f"population must have shape (R, {self.population_size}, {self.landscape.dim}), got {pop.shape}"
            )
        if not np.all(np.isfinite(pop)):
            raise ValueError("population must hold finite genotypes (found NaN or Inf)")
        return self._reproduce(pop, self.parent_weights(pop), rng)

    def _reproduce(self, pop: np.ndarray, probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Children of ``pop`` drawn with selection probabilities ``probs`` (checked inputs)."""
        r, n, d = pop.shape
        rows = np.arange(r)[:, None]
        first = _sample_parents(probs, rng)
        child = pop[rows, first]
        if self.recombination:
            second = _sample_parents(probs, rng)
            take = rng.random((r, n, d)) < 0.5
            child = np.where(take, pop[rows, second], child)
        if self.mutation_sd > 0:
            child = child + self.mutation_sd * rng.standard_normal((r, n, d))
        return np.asarray(child)

    def run(self, population: np.ndarray, generations: int, rng: np.random.Generator) -> WrightFisherHistory:
        """Advance ``population`` (shape ``(N, d)`` or ``(R, N, d)``) and record what Lande's law needs."""
        check_generator(rng)
        t_max = check_positive_int("generations", generations)
        pop = np.array(population, dtype=np.float64)
        if pop.ndim == 2:
            pop = pop[None]
        if pop.ndim != 3 or pop.shape[1] != self.population_size or pop.shape[2] != self.landscape.dim:
            raise ValueError(
                f"population must have shape (N, d) or (R, N, d) with N={self.population_size} and "
                f"d={self.landscape.dim}, got {np.shape(population)}"
            )
        if not np.all(np.isfinite(pop)):
            raise ValueError("population must hold finite genotypes (found NaN or Inf)")
        r, _, d = pop.shape
        means = np.empty((t_max + 1, r, d))
        covs = np.empty((t_max + 1, r, d, d))
        mean_f = np.empty((t_max + 1, r))
        var_f = np.empty((t_max + 1, r))
        selected_mean = np.empty((t_max, r, d))
        for t in range(t_max + 1):
            f = self.landscape.value(pop)
            means[t] = pop.mean(axis=1)
            dev = pop - means[t][:, None, :]
            covs[t] = np.einsum("rni,rnj->rij", dev, dev) / (self.population_size - 1)
            mean_f[t], var_f[t] = f.mean(axis=1), f.var(axis=1, ddof=1)
            if t < t_max:  # one fitness evaluation per generation serves the records and the selection
                probs = self._weights(f)
                selected_mean[t] = np.einsum("rn,rni->ri", probs, pop)
                pop = self._reproduce(pop, probs, rng)
        return WrightFisherHistory(means, covs, mean_f, var_f, selected_mean, pop)


@dataclass(frozen=True)
class WrightFisherHistory:
    """Per-generation records of :meth:`WrightFisher.run` for ``R`` replicate populations.

    Attributes:
        means: mean genotype, shape ``(T + 1, R, d)``.
        covariances: genetic covariance ``G`` (sample covariance), shape ``(T + 1, R, d, d)``.
        mean_log_fitness: population mean of ``f``, shape ``(T + 1, R)``.
        var_log_fitness: population variance of ``f``, shape ``(T + 1, R)``.
        selected_means: the Price-equation expectation of the next mean, ``sum_i W_i z_i / sum W``,
            shape ``(T, R, d)``.
        final: the last population, shape ``(R, N, d)``.
    """

    means: np.ndarray
    covariances: np.ndarray
    mean_log_fitness: np.ndarray
    var_log_fitness: np.ndarray
    selected_means: np.ndarray
    final: np.ndarray


def _sample_parents(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multinomial parent indices for each row of ``probs`` (shape ``(R, N)``), all rows in one search."""
    r, n = probs.shape
    cum = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0
    offsets = np.arange(r, dtype=np.float64)[:, None]
    flat = (cum + offsets).ravel()  # row k lives in (k, k + 1]; one sorted array for every row
    draws = rng.random((r, n)) + offsets
    idx = np.searchsorted(flat, draws.ravel(), side="right").reshape(r, n)
    return np.minimum(idx - n * np.arange(r)[:, None], n - 1)


# ---------------------------------------------------------------------- three searches on one landscape


@dataclass(frozen=True)
class SearchResult:
    """Where a search ended: final point, its log-fitness, and the fitness evaluations it spent."""

    name: str
    final: np.ndarray
    final_value: float
    evaluations: int


def compare_searches(
    landscape: RuggedLandscape,
    start: np.ndarray,
    *,
    iterations: int = 300,
    population_size: int = 200,
    selection: float = 0.5,
    mutation_sd: float = 0.15,
    lr: float = 0.05,
    gradient_noise: float = 1.0,
    es_sigma: float = 0.5,
    rng: np.random.Generator,
) -> list[SearchResult]:
    """SGD, an evolution strategy and a Wright-Fisher population climbing the same rugged landscape.

    * SGD (the core's :class:`noisygrad.SGD` on ``-f``) steps along the true gradient plus Gaussian noise
      of standard deviation ``gradient_noise`` per coordinate: an unbiased gradient estimate.
    * The evolution strategy estimates the gradient of the Gaussian-smoothed landscape from
      ``population_size`` antithetic samples of spread ``es_sigma`` and feeds it to the same SGD.
    * Wright-Fisher evolves ``population_size`` genotypes started at ``start`` with selection strength
      ``selection`` and mutation ``mutation_sd``; its result is the final mean genotype.
    """
    import torch

    from noisygrad import SGD

    if not isinstance(landscape, RuggedLandscape):
        raise TypeError(f"landscape must be a RuggedLandscape, got {type(landscape).__name__}")
    check_generator(rng)
    steps = check_positive_int("iterations", iterations)
    pop_n = check_positive_int("population_size", population_size)
    noise = check_positive("gradient_noise", gradient_noise, allow_zero=True)
    spread = check_positive("es_sigma", es_sigma)
    check_positive("lr", lr)
    x0 = as_array("start", start, np.float64, ndim=(1,), copy=True)  # NaN/Inf refused here, naming start
    if x0.shape != (landscape.dim,):
        raise ValueError(f"start must have {landscape.dim} entries, one per dimension of the landscape, got {x0.shape}")
    wf = WrightFisher(landscape, pop_n, selection, mutation_sd)  # its settings checked before any search runs
    results = []

    def descend(grad_fn: object, name: str, evals_per_step: int) -> None:
        optimizer = SGD(lr)
        x = torch.as_tensor(x0.copy())
        state = optimizer.init(x)
        for _ in range(steps):
            g = grad_fn(x.numpy())  # type: ignore[operator]
            x, state = optimizer.update(x, torch.as_tensor(-g), state)
        final = x.numpy()
        results.append(SearchResult(name, final, float(landscape.value(final)), steps * evals_per_step))

    descend(lambda x: landscape.grad(x) + noise * rng.standard_normal(landscape.dim), "sgd", 1)

    half = max(1, pop_n // 2)

    def es_grad(x: np.ndarray) -> np.ndarray:
        eps = rng.standard_normal((half, landscape.dim))
        diff = landscape.value(x + spread * eps) - landscape.value(x - spread * eps)
        return np.asarray((diff[:, None] * eps).mean(axis=0) / (2.0 * spread))

    descend(es_grad, "evolution strategy", 2 * half)

    pop = np.broadcast_to(x0, (1, pop_n, landscape.dim)).copy()
    for _ in range(steps):
        pop = wf.step(pop, rng)
    final = pop[0].mean(axis=0)
    results.append(SearchResult("wright-fisher", final, float(landscape.value(final)), steps * pop_n))
    return results
