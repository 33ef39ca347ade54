"""Headline experiments of the core science: each claim measured beside its closed form.

Declared as ``noisygrad.experiments`` entry points in the core's ``pyproject.toml`` (``noisygrad run core.<name>``).
Tolerances are sized to the Monte-Carlo error of each measurement (4 standard errors unless stated in ``details``). Many
independent chains run side by side as the rows of one tensor; 2 x 2 products are written elementwise, which
stays fast whatever the thread count. An experiment with one use of randomness draws from
``torch.Generator().manual_seed(seed)``; one with several gives each its keyed sub-stream of ``seed``
(:func:`~noisygrad.rng.torch_stream`, :func:`~noisygrad.rng.substream_seed`), never ``seed + k``. A sampler's
noise is spawned from its chain's generator (``init(x0, generator=...)``), as ``minimize`` does with the run's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from noisygrad.estimators.batch import MiniBatch
from noisygrad.estimators.variance_reduction import SAGA, SVRG
from noisygrad.estimators.zeroth_order import SPSA
from noisygrad.loop import StepInfo, minimize
from noisygrad.noise.statistics import NoiseStats, gradient_noise, monte_carlo_cosine
from noisygrad.noise.tails import hill_tail_index, kesten_tail_index
from noisygrad.noise.theory import (
    langevin_stationary_covariance,
    least_squares_sgld_noise_correction,
    least_squares_sgld_stationary_covariance,
    sgd_stationary_covariance,
)
from noisygrad.objectives import FiniteSum, NoisyBlackBox
from noisygrad.optim.langevin import BAOAB, SGLD
from noisygrad.optim.lbfgs import minimize_lbfgs
from noisygrad.optim.sgd import SGD
from noisygrad.tour.kit import TOLERANCE_Z, Curve, Finding, Parameter, substream_seed, takes, torch_stream

_F64 = torch.float64


def _rows_times(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x @ a`` for many short rows, as a broadcast product (no BLAS call)."""
    return (x.unsqueeze(2) * a.unsqueeze(0)).sum(1)


def _chain_covariance(
    step: object, x0: torch.Tensor, *, burn_in: int, samples: int, every: int
) -> tuple[np.ndarray, np.ndarray]:
    """Second moment of the rows after burn-in and its entrywise s.e. (per-chain time averages are i.i.d.)."""
    x = x0
    for _ in range(burn_in):
        x = step(x)  # type: ignore[operator]
    acc = torch.zeros(x.shape[0], x.shape[1], x.shape[1], dtype=x.dtype)
    for _ in range(samples):
        for _ in range(every):
            x = step(x)  # type: ignore[operator]
        acc += x.unsqueeze(2) * x.unsqueeze(1)
    per_chain = acc / samples
    return per_chain.mean(0).numpy(), (per_chain.std(0) / math.sqrt(x.shape[0])).numpy()


def _frobenius_finding(
    experiment: str, claim: str, measured: np.ndarray, se: np.ndarray, predicted: np.ndarray, details: dict[str, Any]
) -> Finding:
    """Relative Frobenius error of ``measured`` vs ``predicted`` with its s.e. from ``se``: an upper bound of
    4 s.e. on the error (a norm, 0 for a perfect match)."""
    norm = float(np.linalg.norm(predicted))
    error = float(np.linalg.norm(measured - predicted)) / norm
    uncertainty = float(np.linalg.norm(se)) / norm
    return Finding.at_most(
        experiment,
        claim,
        bound=TOLERANCE_Z * uncertainty,
        measured=error,
        uncertainty=uncertainty,
        unit="relative Frobenius error",
        details={**details, "measured": measured.round(8).tolist(), "predicted": predicted.round(8).tolist()},
    )


def _least_squares(n: int, d: int, noise: float, gen: torch.Generator) -> tuple[FiniteSum, torch.Tensor]:
    """``0.5 (x.w - y)^2`` on Gaussian features; returns the objective and its minimiser."""
    X = torch.randn(n, d, generator=gen, dtype=_F64)
    y = X @ torch.randn(d, generator=gen, dtype=_F64) + noise * torch.randn(n, generator=gen, dtype=_F64)
    objective = FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))
    return objective, torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)


def _cosine_draws(b: int, quick: bool) -> int:
    """Monte-Carlo batches per batch size: enough at b = 16 to resolve the first-order law's 2% miss there."""
    base = 200_000 if b == 16 else 20_000 if b == 64 else 4_000
    return base if quick else 5 * base


def cosine_alignment(seed: int = 0, quick: bool = True) -> list[Finding]:
    """E[cos(g_b, g)]: the first-order law (1 + (rho/b)(1 - b/N))^(-1/2), its second-order correction, their regimes.

    d = 100 least squares (N = 2000) far from (w = 0) and near (w* + 0.3 u) its optimum, and a d = 2 one whose
    noise lives in two directions. Each finding holds the prediction trusted at that batch size (the
    second-order one at b = 16, the first-order law at b >= 64) to the acceptance tolerance plus 4 Monte-Carlo
    s.e.; its details give both orders' errors, the relative variance of ``|g_b|^2`` and both reliability
    flags, and the first finding of each problem lists the other batch sizes measured, so the regimes where the
    first-order law fails (b = 16 near the optimum, b = 1 and 4, low effective dimension) and the
    finite-population factor at b -> N are shown, not hidden. It runs on one torch thread (restored afterwards):
    its many small kernels took 7x the CPU time on two threads of a busy 2-core machine (measured).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _cosine_findings(seed, quick)
    finally:
        torch.set_num_threads(threads)


def _cosine_findings(seed: int, quick: bool) -> list[Finding]:
    """The findings of :func:`cosine_alignment`."""
    gen = torch.Generator().manual_seed(seed)
    n = 2000
    objective, w_star = _least_squares(n, 100, 0.5, gen)
    u = torch.randn(100, generator=gen, dtype=_F64)
    low_objective, low_star = _least_squares(n, 2, 1.0, gen)
    # each problem: where, the objective, the point, the swept batch sizes, and the checks (b, order, formula error)
    problems = (
        ("far from the optimum", objective, torch.zeros(100, dtype=_F64), (16, 64), ((16, 2, 0.01), (64, 1, 0.005))),
        (
            "near the optimum",
            objective,
            w_star + 0.3 * u / u.norm(),
            (1, 4, 16, 64, 256, 1024, 1900),
            ((16, 2, 0.01), (64, 1, 0.005), (1900, 1, 0.005)),
        ),
        (
            "d = 2, near the optimum",
            low_objective,
            low_star + torch.tensor([0.5, 0.4], dtype=_F64),
            (16, 64),
            ((64, 2, 0.01),),
        ),
    )
    findings = []
    for where, problem, w, sizes, checks in problems:
        stats = gradient_noise(problem, w)
        grads = problem.per_example_grads(w, torch.arange(n))
        rows: dict[int, dict[str, Any]] = {}
        for b in sizes:
            measured, se = monte_carlo_cosine(grads, b, draws=_cosine_draws(b, quick), generator=gen)
            first, second = stats.predicted_cosine(b), stats.predicted_cosine(b, order=2)
            rows[b] = {
                "measured": measured,
                "se": se,
                "first_order": first,
                "second_order": second,
                "first_order_error": round(first / measured - 1, 5),
                "second_order_error": round(second / measured - 1, 5),
                "relative_variance_of_norm_sq": round(stats.norm_sq_relative_variance(b), 4),
                "first_order_reliable": stats.cosine_formula_reliable(b),
                "second_order_reliable": stats.cosine_formula_reliable(b, order=2),
                "draws": _cosine_draws(b, quick),
            }
        checked = [b for b, _, _ in checks]
        for b, order, formula_error in checks:
            row = rows[b]
            law = "first-order (1 + (rho/b)(1 - b/N))^-1/2" if order == 1 else "second-order (delta method)"
            details: dict[str, Any] = {
                "rho": round(stats.rho, 3),
                "effective_dim": round(stats.effective_dim, 2),
                **{k: v for k, v in row.items() if k not in ("measured", "se", "first_order", "second_order")},
                "tolerance": f"{formula_error:.1%} (formula) + 4 s.e.",
            }
            if b == checked[0] and set(sizes) - set(checked):
                details["other_batch_sizes"] = {
                    c: {k: v for k, v in rows[c].items() if k.endswith(("error", "norm_sq", "reliable"))}
                    for c in sizes
                    if c not in checked
                }
            if b == n - 100:  # b -> N: without the (1 - b/N) factor (or with i.i.d. moments) both orders miss
                details["without_fpc_error"] = round((1 + stats.rho / b) ** -0.5 / row["measured"] - 1, 5)
                iid = stats.predicted_cosine(b, order=2, replace=True)
                details["iid_moments_second_order_error"] = round(iid / row["measured"] - 1, 5)
            findings.append(
                Finding(
                    experiment="core.cosine-alignment",
                    claim=f"E[cos(g_b, g)] at b={b} of N={n}, {where} (d_eff={stats.effective_dim:.0f}): {law}",
                    predicted=row["first_order" if order == 1 else "second_order"],
                    measured=row["measured"],
                    uncertainty=row["se"],
                    tolerance=formula_error * row["measured"] + TOLERANCE_Z * row["se"],
                    details=details,
                    curve=_cosine_curve(stats, rows, gap=b > 64) if b in (64, 1900) and len(sizes) > 2 else None,
                )
            )
    return findings


def _cosine_curve(stats: NoiseStats, rows: dict[int, dict[str, Any]], *, gap: bool) -> Curve:
    """Monte-Carlo E[cos] against the first-order law over the swept batch sizes.

    ``gap=False`` draws ``E[cos]`` on log-log axes (the law's small-batch over-prediction shows); ``gap=True``
    draws ``1 - E[cos]`` on a log scale against a linear ``b``, which the finite-population factor sends to 0 as
    b -> N.
    """
    n = stats.n_examples
    grid = np.unique(np.r_[np.geomspace(1, n - 1, 60), np.linspace(1, n - 1, 80)].round().astype(int)).tolist()
    law = [stats.predicted_cosine(b) for b in grid]
    return Curve(
        x_label="batch size b (examples, without replacement)",
        y_label="1 - E[cos(g_b, g)]" if gap else "E[cos(g_b, g)]",
        x=list(rows),
        measured=[1 - row["measured"] if gap else row["measured"] for row in rows.values()],
        uncertainty=[row["se"] for row in rows.values()],
        predicted=[1 - c if gap else c for c in law],
        predicted_x=grid,
        log_x=not gap,
        log_y=True,
    )


@takes(Parameter("draws", int, 4000, "SPSA gradient estimates drawn", full=40000, low=100, high=10**6))
def spsa_variance(seed: int = 0, quick: bool = True, *, draws: int) -> list[Finding]:
    """SPSA: E|g - grad f|^2 = (d - 1)|g|^2 + d sigma^2 / (2 c^2) per perturbation; two evaluations for any d."""
    gen = torch.Generator().manual_seed(seed)
    d, sigma, c = 20, 0.01, 0.05
    q = torch.randn(d, d, generator=gen, dtype=_F64)
    A = q @ q.T / d + torch.eye(d, dtype=_F64)
    b = torch.randn(d, generator=gen, dtype=_F64)

    def fn(points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        clean = 0.5 * (_rows_times(points, A) * points).sum(1) + (points * b).sum(1)
        return clean + sigma * torch.randn(points.shape[0], generator=generator, dtype=points.dtype)

    x = torch.randn(d, generator=gen, dtype=_F64)
    g = A @ x + b
    spsa = SPSA(NoisyBlackBox(fn), c=c, gamma=0.0)
    errors = torch.tensor([float((spsa.estimate(x, gen).grad - g).pow(2).sum()) for _ in range(draws)], dtype=_F64)
    predicted = (d - 1) * float(g @ g) + d * sigma**2 / (2 * c**2)
    se = float(errors.std()) / math.sqrt(draws)  # the draws are i.i.d.: the s.e. of their mean
    return [
        Finding(
            experiment="core.spsa-variance",
            claim="SPSA per-perturbation error E|g - grad f|^2 = (d - 1)|grad f|^2 + d sigma^2/(2c^2) (rho = d - 1)",
            predicted=predicted,
            measured=float(errors.mean()),
            uncertainty=se,
            tolerance=TOLERANCE_Z * se,
            details={"d": d, "sigma": sigma, "c": c, "draws": draws, "evaluations per perturbation": 2},
        )
    ]


@takes(Parameter("chains", int, 2000, "independent SGD chains", full=20000, low=100, high=10**6))
def lyapunov(seed: int = 0, quick: bool = True, *, chains: int) -> list[Finding]:
    """Constant-step SGD's stationary covariance is the discrete Lyapunov solution, even at lr lambda_max = 0.33."""
    gen = torch.Generator().manual_seed(seed)
    A = np.array([[1.0, 0.3], [0.3, 0.2]])
    C = np.array([[1.0, -0.2], [-0.2, 0.5]])
    lr = 0.3
    a, chol = torch.tensor(A), torch.linalg.cholesky(torch.tensor(C))
    tau = int(1 / (lr * 0.1))

    def step(x: torch.Tensor) -> torch.Tensor:
        return x - lr * (_rows_times(x, a) + _rows_times(torch.randn(x.shape, generator=gen, dtype=_F64), chol.T))

    measured, se = _chain_covariance(
        step, torch.zeros(chains, 2, dtype=_F64), burn_in=8 * tau, samples=40, every=tau // 2
    )
    predicted = sgd_stationary_covariance(A, C, lr)
    mandt = sgd_stationary_covariance(A, C, lr, method="continuous")
    details = {
        "lr": lr,
        "lr*lambda_max": 0.33,
        "chains": chains,
        "continuous_form_error": float(np.linalg.norm(mandt - predicted) / np.linalg.norm(predicted)),
    }
    claim = "SGD stationary covariance = discrete Lyapunov solution (additive i.i.d. noise)"
    return [_frobenius_finding("core.lyapunov", claim, measured, se, predicted, details)]


@takes(Parameter("chains", int, 2000, "independent chains of each sampler", full=20000, low=100, high=10**6))
def sgld_boltzmann(seed: int = 0, quick: bool = True, *, chains: int) -> list[Finding]:
    """Langevin samplers on a Gaussian: SGLD matches its exact discrete law, BAOAB the Boltzmann law itself.

    Streams: the SGLD chains' noise is sub-stream 0 of ``seed``, BAOAB's 1; the control-variate runs take 2-4.
    """
    A = np.array([[1.0, 0.3], [0.3, 0.2]])
    a = torch.tensor(A)
    t = 0.5
    findings = []
    h = 0.1  # h lambda_max = 0.11
    sgld = SGLD(h, temperature=t)
    x0 = torch.zeros(chains, 2, dtype=_F64)
    state = sgld.init(x0, generator=torch_stream(seed, 0))

    def sgld_step(x: torch.Tensor) -> torch.Tensor:
        nonlocal state
        x, state = sgld.update(x, _rows_times(x, a), state)
        return x

    tau = int(1 / (h * 0.1))
    measured, se = _chain_covariance(sgld_step, x0, burn_in=8 * tau, samples=40, every=tau // 2)
    predicted = langevin_stationary_covariance(A, h, t)
    boltzmann = t * np.linalg.inv(A)
    bias = float(np.linalg.norm(predicted - boltzmann) / np.linalg.norm(boltzmann))
    findings.append(
        _frobenius_finding(
            "core.sgld-boltzmann",
            "SGLD (exact gradients) covariance = discrete Lyapunov solution, O(h) off the Boltzmann law",
            measured,
            se,
            predicted,
            {"h": h, "T": t, "chains": chains, "bias_vs_boltzmann": bias},
        )
    )
    hb = 1.0 / math.sqrt(1.1)
    baoab = BAOAB(hb, friction=1.0, temperature=t)
    state_b = baoab.init(x0, generator=torch_stream(seed, 1))

    def baoab_step(x: torch.Tensor) -> torch.Tensor:
        nonlocal state_b
        x, state_b = baoab.update(x, _rows_times(x, a), state_b)
        return x

    measured, se = _chain_covariance(baoab_step, x0, burn_in=200, samples=40, every=10)
    findings.append(
        _frobenius_finding(
            "core.sgld-boltzmann",
            "BAOAB positions have exactly the Boltzmann covariance T A^-1 at h sqrt(lambda_max) = 1",
            measured,
            se,
            boltzmann,
            {"h": hb, "friction": 1.0, "T": t, "chains": chains},
        )
    )
    findings.extend(_control_variate_sgld(seed, chains))
    return findings


def _control_variate_sgld(seed: int, chains: int) -> list[Finding]:
    """SGLD-CV on a Bayesian linear regression: its exact (multiplicative-noise) law, and the corrected chain.

    The control variate anchored at the mode leaves the noise ``(A_B - P)(x - mode)``: multiplicative, so the
    chain's law is the discrete Lyapunov solution with the multiplicative term, not the posterior (the ``O(h)``
    bias plus that noise) nor the full-gradient discrete law. Chains run in ``delta = x - mode``. The design is
    sub-stream 2 of ``seed``; each run (uncorrected: 3, corrected: 4) has a generator of its own that seeds the
    sampler's noise and then draws the batches, as in ``minimize``.
    """
    gen = torch_stream(seed, 2)
    n, batch, prior = 1000, 10, 0.01
    X = torch.randn(n, 2, generator=gen, dtype=_F64) * torch.tensor([0.8, 1.0], dtype=_F64)
    X[:, 1] += 0.3 * X[:, 0]
    P = (X.T @ X).numpy() + prior * np.eye(2)
    lam = np.linalg.eigvalsh(P)
    h = 0.05 / float(lam[-1])  # h lambda_max = 0.05, i.e. Welling and Teh's eps lambda_max = 0.1
    tau = int(1 / (h * float(lam[0])))
    zeros = np.zeros(n)  # residuals x_i^T (mode - anchor) with the anchor at the mode
    exact = least_squares_sgld_stationary_covariance(X, zeros, h, batch, prior_precision=prior)
    full = langevin_stationary_covariance(P, h)
    posterior = np.linalg.inv(P)
    correction = least_squares_sgld_noise_correction(X, zeros, batch, prior_precision=prior)

    def run(c: np.ndarray | None, key: int) -> tuple[np.ndarray, np.ndarray]:
        sampler = SGLD(h, noise_correction=c)
        x0 = torch.zeros(chains, 2, dtype=_F64)
        chain = torch_stream(seed, key)  # the run's generator: the sampler's noise, then the batches
        state = sampler.init(x0, generator=chain)

        def step(d: torch.Tensor) -> torch.Tensor:  # grad U(mode) = 0; (N/b) sum_batch x_i x_i^T d + P0 d
            nonlocal state
            xb = X[torch.randint(n, (d.shape[0], batch), generator=chain)]
            grad = prior * d + n / batch * (xb * (xb * d.unsqueeze(1)).sum(2, keepdim=True)).sum(1)
            d, state = sampler.update(d, grad, state)
            return d

        return _chain_covariance(step, x0, burn_in=8 * tau, samples=40, every=tau // 2)

    findings = []
    for key, (label, c, predicted) in enumerate(
        (("uncorrected", None, exact), ("noise_correction", correction, posterior)), start=3
    ):
        measured, se = run(c, key)
        details: dict[str, Any] = {"h*lambda_max": 0.05, "batch": batch, "N": n, "chains": chains, "chain": label}
        if c is None:
            claim = "control-variate SGLD covariance = exact discrete law with its multiplicative noise"
            for name, reference in (("posterior", posterior), ("full_gradient_discrete", full)):
                norm = float(np.linalg.norm(reference))
                details[f"error_vs_{name}"] = float(np.linalg.norm(measured - reference)) / norm
                details[f"predicted_error_vs_{name}"] = float(np.linalg.norm(exact - reference)) / norm
        else:
            claim = "control-variate SGLD with noise_correction samples the exact posterior covariance"
        findings.append(_frobenius_finding("core.sgld-boltzmann", claim, measured, se, predicted, details))
    return findings


#: The accuracy every variance-reduced run must reach, in F - F*.
VR_TARGET = 1e-10
#: Step budget of each variance-reduced run, as a multiple of the steps the full-gradient rate predicts (see
#: :func:`_vr_rate_steps`). Steps each run needed to reach ``VR_TARGET``, over the predicted steps, on seeds 0-9 and
#: 15-29: SVRG 0.60-0.84, SAGA 0.54-0.85 (the strong convexity mu of the data ranged 5.7e-3-1.7e-2, so the steps
#: themselves ranged 500-1930; a fixed budget of 800 steps failed for 8 of seeds 0-9). A budget of twice the rate
#: leaves a margin of 2.3x over the worst ratio, whatever the data's mu.
VR_MARGIN = 2.0
#: How often (steps) a variance-reduced run checks F - F* to stop at ``VR_TARGET``.
VR_CHECK_EVERY = 10


def _vr_rate_steps(gap: float, lr: float, mu: float) -> int:
    """Steps for F - F* to fall from ``gap`` to :data:`VR_TARGET` at the full-gradient rate ``(1 - lr mu)^2`` a step.

    Gradient descent at step ``lr`` contracts the distance to the optimum of a ``mu``-strongly convex function by
    ``1 - lr mu`` a step near it, so F - F* by its square; SVRG and SAGA converge linearly at (about) that rate at
    their constant steps. The budget is this count times :data:`VR_MARGIN`, so it follows the data's conditioning
    instead of a fixed count that a seed with a smaller mu would not reach.
    """
    return math.ceil(math.log(gap / VR_TARGET) / (-2.0 * math.log1p(-lr * mu)))


def variance_reduction(seed: int = 0, quick: bool = True) -> list[Finding]:
    """SVRG and SAGA reach 1e-10 at a constant step on L2-logistic regression; constant-step SGD stalls.

    Each variance-reduced run has a budget of :data:`VR_MARGIN` times the steps the full-gradient rate
    ``(1 - lr mu)^2`` per step predicts (mu: the smallest Hessian eigenvalue at the optimum), and stops once
    F - F* <= 1e-10 (checked every :data:`VR_CHECK_EVERY` steps). The data are sub-stream 0 of ``seed``; the three
    runs share run seed ``substream_seed(seed, 1)`` (common random numbers for SGD, SVRG and SAGA, apart from the
    data's).
    """
    gen = torch_stream(seed, 0)
    n, d, lam = 2000, 10, 1e-3
    X = torch.randn(n, d, generator=gen, dtype=_F64) * torch.linspace(0.3, 2.0, d, dtype=_F64)
    logits = X @ torch.randn(d, generator=gen, dtype=_F64)
    y = torch.where(torch.rand(n, generator=gen, dtype=_F64) < torch.sigmoid(logits), 1.0, -1.0).to(_F64)

    def loss(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.softplus(-y * (X @ w)).mean() + 0.5 * lam * (w @ w)

    objective = FiniteSum(loss, (X, y))
    w = torch.zeros(d, dtype=_F64)
    for _ in range(25):  # Newton for F*: z = y x.w, grad = -X^T(y s(-z))/n + lam w, H = X^T diag(s(z)s(-z)) X/n + lam I
        z = y * (X @ w)
        grad = -(X.T @ (y * torch.sigmoid(-z))) / n + lam * w
        weights = torch.sigmoid(z) * torch.sigmoid(-z)
        hessian = (X.T * weights) @ X / n + lam * torch.eye(d, dtype=_F64)
        w = w - torch.linalg.solve(hessian, grad)
    f_star = objective.value(w)
    mu = float(torch.linalg.eigvalsh(hessian)[0])
    x0 = torch.zeros(d, dtype=_F64)
    gap0 = objective.value(x0) - f_star
    run_seed = substream_seed(seed, 1)
    sgd = minimize(MiniBatch(objective, 64), SGD(0.8), x0, steps=800, seed=run_seed)
    assert sgd.fun is not None

    def reached(info: StepInfo) -> bool:
        return info.step % VR_CHECK_EVERY == 0 and objective.value(info.x) - f_star <= VR_TARGET

    findings = []
    for name, estimator, lr in (("SVRG", SVRG(objective, 64), 1.0), ("SAGA", SAGA(objective, 64), 0.8)):
        rate_steps = _vr_rate_steps(gap0, lr, mu)
        budget = math.ceil(VR_MARGIN * rate_steps)
        result = minimize(estimator, SGD(lr), x0, steps=budget, seed=run_seed, callbacks=[reached])
        # not reached within the budget: the claim fails (an Inf never passes), and the details say how far it got
        ratio = result.nit / rate_steps if result.stopped_by_callback else math.inf
        findings.append(
            Finding.at_most(
                "core.variance-reduction",
                f"{name} at a constant step reaches F - F* <= {VR_TARGET:g} on L2-logistic regression (N={n}) "
                f"within {VR_MARGIN:g}x the steps of the full-gradient rate (1 - lr mu)^2 a step",
                bound=VR_MARGIN,
                measured=ratio,
                unit="steps to 1e-10 / the rate's steps",
                details={
                    "final_gap": max(objective.value(result.x) - f_star, 0.0),
                    "steps": result.nit,
                    "rate_steps": rate_steps,
                    "budget_steps": budget,
                    "mu": mu,
                    "passes": result.cost.examples / n,
                    "gradient_evaluations": result.cost.examples,
                    "sgd_same_step_floor": sgd.fun - f_star,
                    "lr": lr,
                    "batch": 64,
                    "tolerance": f"a budget of {VR_MARGIN:g}x the rate's steps; runs needed 0.54-0.85x of them "
                    "on seeds 0-9 and 15-29 (deterministic given the seed: no Monte-Carlo error)",
                },
            )
        )
    return findings


def lbfgs_noise(seed: int = 0, quick: bool = True) -> list[Finding]:
    """Same-batch curvature pairs are (almost) never skipped; torch L-BFGS on fresh batches skips many.

    Streams: the data and torch's batches are sub-stream 0 of ``seed``, noisygrad's run is seeded with
    ``substream_seed(seed, 1)``.
    """
    gen = torch_stream(seed, 0)
    n, d, b, steps = 2000, 10, 16, 300
    X = torch.randn(n, d, generator=gen, dtype=_F64) * torch.linspace(0.3, 2.0, d, dtype=_F64)
    y = X @ torch.randn(d, generator=gen, dtype=_F64) + torch.randn(n, generator=gen, dtype=_F64)

    def loss(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((X @ w - y) ** 2).mean()

    objective = FiniteSum(loss, (X, y))
    f_star = objective.value(torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1))
    ours = minimize_lbfgs(
        objective, torch.zeros(d, dtype=_F64), batch_size=b, steps=steps, lr=0.3, seed=substream_seed(seed, 1)
    )
    w = torch.zeros(d, dtype=_F64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=0.3, max_iter=1, history_size=steps + 10)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        batch_loss = loss(w, *objective.batch(torch.randperm(n, generator=gen)[:b]))
        batch_loss.backward()  # type: ignore[no-untyped-call]
        return batch_loss

    for _ in range(steps):
        opt.step(closure)  # type: ignore[no-untyped-call]
    torch_skipped = (steps - 1 - len(opt.state[w]["old_dirs"])) / (steps - 1)
    return [
        Finding.at_most(
            "core.lbfgs-noise",
            "noise-robust L-BFGS (same-batch pairs) skips < 1% of curvature pairs on noisy least squares",
            bound=0.01,
            measured=ours.skipped_fraction,
            unit="fraction of pairs",
            details={
                "torch_lbfgs_fresh_batches_skipped": torch_skipped,
                "final_suboptimality_ours": ours.fun - f_star,
                "batch": b,
                "steps": steps,
            },
        )
    ]


@takes(
    Parameter("chains", int, 20_000, "independent SGD chains (250 samples each)", full=100_000, low=2000, high=10**6)
)
def heavy_tails(seed: int = 0, quick: bool = True, *, chains: int) -> list[Finding]:
    """Light-tailed data, heavy-tailed iterates: SGD on Gaussian least squares has Kesten's tail index."""
    gen = torch.Generator().manual_seed(seed)
    lr = 0.4
    e = torch.zeros(chains, dtype=_F64)
    draws = []
    for t in range(300):
        x = torch.randn(chains, generator=gen, dtype=_F64)
        e = (1 - lr * x * x) * e + 0.5 * lr * x * torch.randn(chains, generator=gen, dtype=_F64)
        if t >= 50:
            draws.append(e)
    alpha, se = hill_tail_index(torch.cat(draws), fraction=0.001)
    return [
        Finding(
            experiment="core.heavy-tails",
            claim="SGD (lr = 0.4, B = 1) on Gaussian least squares: tail index solves E|1 - lr x^2|^alpha = 1",
            predicted=kesten_tail_index(lr),
            measured=alpha,
            uncertainty=se,
            tolerance=TOLERANCE_Z * se + 0.05,
            details={"estimator": "Hill, top 0.1%", "samples": len(draws) * chains, "tolerance": "4 s.e. + 0.05 bias"},
        )
    ]
