"""The core's headline experiments: each measures a claim of the theory beside its closed form.

Every function takes ``seed`` and ``quick`` and returns a list of :class:`~noisygrad.Finding`; the tour
runs them (``noisygrad tour``), plugins add their own through the entry-point group. Tolerances are sized
to the Monte-Carlo error of the measurement (stated in each finding's ``details``).
"""

from __future__ import annotations

import math

import torch

from noisygrad.estimators.batch import FullBatch, MiniBatch
from noisygrad.objectives import FiniteSum
from noisygrad.optim.sgd import SGD
from noisygrad.schedules import RobbinsMonro
from noisygrad.tour.kit import TOLERANCE_Z, Finding, Parameter, takes


def _least_squares(n: int, d: int, generator: torch.Generator) -> FiniteSum:
    X = torch.randn(n, d, generator=generator, dtype=torch.float64)
    y = X @ torch.randn(d, generator=generator, dtype=torch.float64) + torch.randn(
        n, generator=generator, dtype=torch.float64
    )
    return FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))


@takes(
    Parameter("batch", int, 16, "examples per mini-batch b, of the N = 200", low=1, high=199),
    Parameter("draws", int, 2000, "mini-batches drawn per scheme", full=20000, low=100, high=10**6),
)
def minibatch_variance(seed: int = 0, quick: bool = True, *, batch: int, draws: int) -> list[Finding]:
    """A mini-batch gradient is unbiased; its covariance trace is (tr S / b)(1 - b/N) without replacement."""
    gen = torch.Generator().manual_seed(seed)
    n, d, b = 200, 5, batch
    objective = _least_squares(n, d, gen)
    w = torch.zeros(d, dtype=torch.float64)
    true_grad = FullBatch(objective).estimate(w, gen).grad
    per_example = objective.per_example_grads(w, torch.arange(n))
    trace_s = float(per_example.var(0, unbiased=True).sum())
    findings = []
    for replace, predicted in ((False, trace_s / b * (1 - b / n)), (True, trace_s * (n - 1) / n / b)):
        estimator = MiniBatch(objective, b, replace=replace)
        sq_err = torch.stack([(estimator.estimate(w, gen).grad - true_grad).pow(2).sum() for _ in range(draws)])
        measured, se = float(sq_err.mean()), float(sq_err.std() / math.sqrt(draws))
        scheme = "with" if replace else "without"
        formula = "tr(S)(N-1)/(N b)" if replace else "tr(S)/b (1 - b/N)"
        findings.append(
            Finding(
                experiment="core.minibatch-variance",
                claim=f"E|g_b - g|^2 of a batch drawn {scheme} replacement equals {formula}",
                predicted=predicted,
                measured=measured,
                uncertainty=se,
                tolerance=TOLERANCE_Z * se,
                details={"N": n, "d": d, "b": b, "draws": draws, "tolerance": "4 standard errors"},
            )
        )
    return findings


@takes(
    Parameter("chains", int, 4000, "independent chains (coordinates of one vector)", full=40000, low=100, high=10**7),
    Parameter("steps", int, 400, "SGD steps T of every chain", low=100, high=100_000),
)
def noise_ball(seed: int = 0, quick: bool = True, *, chains: int, steps: int) -> list[Finding]:
    """Constant-step SGD stalls in a noise ball; Robbins-Monro steps shrink it like 1/T.

    On ``f(x) = a x^2 / 2`` with gradient noise of variance ``sigma^2``, constant step ``eta`` gives the
    stationary variance ``eta sigma^2 / (a (2 - eta a))`` (the exact discrete Lyapunov solution), while
    ``lr_t = 1 / (a (1 + t))`` makes ``x_T`` the running mean of the noise: variance ``sigma^2 / (a^2 T)``.
    Many independent chains run side by side as the coordinates of one parameter vector.
    """
    gen = torch.Generator().manual_seed(seed)
    a, sigma, eta = 2.0, 1.0, 0.1
    findings = []
    runs = (
        (SGD(eta), eta * sigma**2 / (a * (2 - eta * a)), "constant step: variance eta sigma^2/(a(2 - eta a))"),
        (SGD(RobbinsMonro(1 / a, 1.0, 1.0)), sigma**2 / (a**2 * steps), "lr 1/(a(1+t)): variance sigma^2/(a^2 T)"),
    )
    for optimizer, predicted, claim in runs:
        x = torch.ones(chains, dtype=torch.float64)
        state = optimizer.init(x)
        for _ in range(steps):
            grad = a * x + sigma * torch.randn(chains, generator=gen, dtype=torch.float64)
            x, state = optimizer.update(x, grad, state)
        measured = float(x.pow(2).mean())  # the mean is 0 in both cases up to (1 - eta a)^T ~ 1e-39
        se = predicted * math.sqrt(2.0 / chains)
        findings.append(
            Finding(
                experiment="core.noise-ball",
                claim=f"SGD on a noisy quadratic, {claim}",
                predicted=predicted,
                measured=measured,
                uncertainty=se,
                tolerance=TOLERANCE_Z * se,
                details={"a": a, "sigma": sigma, "eta": eta, "steps": steps, "chains": chains},
            )
        )
    return findings
