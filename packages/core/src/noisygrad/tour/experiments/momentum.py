"""Momentum and Adam under gradient noise: what the heavy ball keeps of the noise, and how Adam's step reads it.

Declared as ``noisygrad.experiments`` entry points in the core's ``pyproject.toml`` (``core.momentum``,
``core.adam-snr``). The closed forms are :mod:`noisygrad.noise.momentum`'s; tolerances are 4 Monte-Carlo standard
errors (plus the stated model allowance where a law is approximate). Many independent chains (or coordinates) run
side by side in one tensor through :class:`~noisygrad.SGD` and :class:`~noisygrad.Adam` themselves.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from noisygrad.noise.momentum import adam_expected_step, heavy_ball_stationary_covariance
from noisygrad.noise.theory import sgd_stationary_covariance
from noisygrad.optim.adam import Adam
from noisygrad.optim.sgd import SGD
from noisygrad.tour.experiments.science import _frobenius_finding
from noisygrad.tour.kit import TOLERANCE_Z, Curve, Finding, one_thread, torch_stream

_F64 = torch.float64

# the 2-D problem: H diagonal (stiff and flat directions), the noise's axes tilted from H's (correlation 0.85)
_HESSIAN = np.diag([1.0, 0.1])
_NOISE = np.array([[1.0, 0.6], [0.6, 0.5]])  # per-example gradient covariance C
_EXAMPLES, _BATCH = 64, 4  # a population of N per-example gradient offsets, batches of B drawn with replacement
_EFFECTIVE = 1.0  # lr / (1 - beta): lr_eff lambda_max = 1, where plain SGD's stiff variance is twice the limit
_BETAS = (0.0, 0.5, 0.8, 0.9, 0.95)  # 0 is plain SGD at the same effective step
_HEADLINE = 0.9


def _population(gen: torch.Generator) -> torch.Tensor:
    """``N`` per-example gradient offsets, centred, whose population covariance is exactly ``_NOISE``."""
    z = torch.randn(_EXAMPLES, 2, generator=gen, dtype=_F64)
    z = z - z.mean(0)
    whiten = torch.linalg.cholesky(z.T @ z / _EXAMPLES)
    white = torch.linalg.solve_triangular(whiten, z.T, upper=False).T
    offsets: torch.Tensor = white @ torch.linalg.cholesky(torch.tensor(_NOISE)).T
    return offsets


def _correlation(second: np.ndarray) -> float:
    return float(second[0, 1] / math.sqrt(second[0, 0] * second[1, 1]))


def _chain_moments(
    beta: float, offsets: torch.Tensor, chains: int, gen: torch.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per-chain time averages of ``x x^T`` for :class:`noisygrad.SGD` at ``lr = _EFFECTIVE (1 - beta)``.

    Returns the mean over chains (the stationary covariance: the mean is 0) and the ``(chains, 2, 2)`` averages,
    i.i.d. across chains, from which every standard error below is taken. Burn-in and spacing follow the slowest
    decay of the mean iteration (spectral radius ``r``: ``tau = 1 / (1 - r)`` steps).
    """
    lr = _EFFECTIVE * (1 - beta)
    optimizer = SGD(lr, momentum=beta)
    curvature = torch.tensor(np.diag(_HESSIAN))  # H is diagonal: H x is a row-wise product
    radius = max(abs(np.roots([1, -(1 + beta - lr * lam), beta])).max() for lam in np.diag(_HESSIAN))
    tau = max(int(1 / (1 - radius)), 2)
    x = torch.zeros(chains, 2, dtype=_F64)
    state = optimizer.init(x)
    acc = torch.zeros(chains, 2, 2, dtype=_F64)
    samples = 40
    for t in range(8 * tau + samples * (tau // 2)):
        batch = torch.randint(_EXAMPLES, (chains * _BATCH,), generator=gen)
        noise = offsets.index_select(0, batch).view(chains, _BATCH, 2).mean(1)
        x, state = optimizer.update(x, x * curvature + noise, state)
        if t >= 8 * tau and (t - 8 * tau) % (tau // 2) == tau // 2 - 1:
            acc += x.unsqueeze(2) * x.unsqueeze(1)
    per_chain = (acc / samples).numpy()
    return per_chain.mean(0), per_chain


def _se(values: np.ndarray) -> np.ndarray:
    return np.asarray(values.std(0, ddof=1) / math.sqrt(values.shape[0]))


def _predicted(beta: float) -> np.ndarray:
    lr = _EFFECTIVE * (1 - beta)
    return heavy_ball_stationary_covariance(_HESSIAN, _NOISE, lr, beta, _BATCH)


@one_thread()
def momentum(seed: int = 0, quick: bool = True) -> list[Finding]:
    """Heavy-ball SGD keeps the noise's variance at lr/(1 - beta) and averages out its finite-step and cross terms.

    On ``f = x^T H x / 2``, ``H = diag(1, 0.1)``, with mini-batch noise (batches of 4 drawn with replacement from
    64 per-example gradient offsets whose covariance ``C`` is tilted from ``H``'s axes, correlation 0.85), SGD with
    momentum ``beta`` runs at ``lr = lr_eff (1 - beta)`` for a fixed effective step ``lr_eff = 1 / lambda_max``,
    ``beta = 0`` being plain SGD at that step. Claims: the measured stationary covariances are the exact
    (augmented) discrete Lyapunov solutions; at ``beta = 0.9`` the stiff direction's variance is the small-step
    law ``lr c / (2 (1 - beta) lambda)`` (the variance the noise accumulates through the buffer, ``1 / (1 - beta)``
    times plain SGD's at ``lr``) up to ``1 / (1 - alpha lambda / (2 (1 + beta)))`` = 1.03, where plain SGD at the
    same effective step is twice it; and the correlation that the tilted noise puts between the stiff and flat
    directions is averaged away (0.11 instead of SGD's 0.37; the small-step limit is 0.49). Each ``beta``'s
    batches are sub-stream ``1 + i`` of ``seed``; the offsets are sub-stream 0.
    """
    chains = 2000 if quick else 10000
    offsets = _population(torch_stream(seed, 0))
    runs = {beta: _chain_moments(beta, offsets, chains, torch_stream(seed, 1 + i)) for i, beta in enumerate(_BETAS)}
    limit = sgd_stationary_covariance(_HESSIAN, _NOISE, _EFFECTIVE, _BATCH, method="continuous")
    common = {"H": _HESSIAN.tolist(), "C": _NOISE.tolist(), "batch": _BATCH, "N": _EXAMPLES, "chains": chains}
    common["lr_eff"] = _EFFECTIVE
    findings = []

    moving = [beta for beta in _BETAS if beta > 0]
    stacked = np.stack([runs[beta][0] for beta in moving])
    stacked_se = np.stack([_se(runs[beta][1]) for beta in moving])
    stacked_predicted = np.stack([_predicted(beta) for beta in moving])
    details = {**common, "betas": moving}
    details["per_beta_error"] = {
        str(beta): round(float(np.linalg.norm(m - p) / np.linalg.norm(p)), 5)
        for beta, m, p in zip(moving, stacked, stacked_predicted, strict=True)
    }
    details["continuous_limit_error"] = {
        str(beta): round(float(np.linalg.norm(limit - p) / np.linalg.norm(p)), 4)
        for beta, p in zip(moving, stacked_predicted, strict=True)
    }
    claim = "SGD with momentum (torch's heavy ball) stationary covariance = augmented discrete Lyapunov solution"
    findings.append(_frobenius_finding("core.momentum", claim, stacked, stacked_se, stacked_predicted, details))
    findings.append(
        _frobenius_finding(
            "core.momentum",
            "plain SGD at the same effective step lr/(1 - beta) = discrete Lyapunov solution",
            runs[0.0][0],
            _se(runs[0.0][1]),
            _predicted(0.0),
            {
                **common,
                "continuous_limit_error": float(
                    np.linalg.norm(limit - _predicted(0.0)) / np.linalg.norm(_predicted(0.0))
                ),
            },
        )
    )
    findings.append(_stiff_variance_finding(runs, limit, common))
    findings.append(_correlation_finding(runs, limit, common))
    return findings


def _beta_grid() -> list[float]:
    return [*np.linspace(0.0, 0.9, 46).tolist(), *np.linspace(0.91, 0.99, 9).tolist()]


def _stiff_variance_finding(
    runs: dict[float, tuple[np.ndarray, np.ndarray]], limit: np.ndarray, common: dict[str, Any]
) -> Finding:
    """The stiff direction's variance over the small-step law, along ``beta`` at a fixed effective step."""
    ratio = {beta: float(runs[beta][0][0, 0] / limit[0, 0]) for beta in _BETAS}
    se = {beta: float(_se(runs[beta][1][:, 0, 0])) / limit[0, 0] for beta in _BETAS}
    grid = _beta_grid()
    curve = Curve(
        x_label="momentum beta (at lr = lr_eff (1 - beta), lr_eff lambda_max = 1)",
        y_label="stiff variance / (lr c / (2 (1 - beta) lambda))",
        x=list(_BETAS),
        measured=[ratio[b] for b in _BETAS],
        uncertainty=[se[b] for b in _BETAS],
        predicted=[_predicted(float(b))[0, 0] / limit[0, 0] for b in grid],
        predicted_x=grid,
    )
    alpha = _EFFECTIVE * (1 - _HEADLINE)
    predicted = float(_predicted(_HEADLINE)[0, 0] / limit[0, 0])
    flat = float(runs[_HEADLINE][0][1, 1] / limit[1, 1])
    plain_at_lr = float(sgd_stationary_covariance(_HESSIAN, _NOISE, alpha, _BATCH)[0, 0])  # no momentum, same lr
    return Finding(
        experiment="core.momentum",
        claim=(
            f"at beta={_HEADLINE} the stiff variance is lr c/(2(1-beta) lambda) x 1/(1 - alpha lambda/(2(1+beta))): "
            "the noise accumulates at lr/(1-beta) without plain SGD's finite-step excess"
        ),
        predicted=predicted,
        measured=ratio[_HEADLINE],
        uncertainty=se[_HEADLINE],
        tolerance=TOLERANCE_Z * se[_HEADLINE],
        unit="x small-step law",
        details={
            **common,
            "alpha_lambda_max": alpha * float(_HESSIAN.max()),
            "closed_form_ratio": 1 / (1 - alpha * float(_HESSIAN.max()) / (2 * (1 + _HEADLINE))),
            "plain_sgd_same_effective_step": {
                "measured": ratio[0.0],
                "predicted": float(_predicted(0.0)[0, 0] / limit[0, 0]),
            },
            "flat_direction_ratio": {"measured": flat, "predicted": float(_predicted(_HEADLINE)[1, 1] / limit[1, 1])},
            "stiff_variance_over_plain_sgd_at_the_same_lr": {
                "measured": float(runs[_HEADLINE][0][0, 0]) / plain_at_lr,
                "predicted": float(_predicted(_HEADLINE)[0, 0]) / plain_at_lr,
                "leading_order_1/(1-beta)": 1 / (1 - _HEADLINE),
            },
        },
        curve=curve,
    )


def _correlation_se(per_chain: np.ndarray) -> tuple[float, float]:
    """The correlation of the mean second moment and its s.e. (delta method over the i.i.d. chain averages)."""
    mean = per_chain.mean(0)
    rho = _correlation(mean)
    s00, s11 = mean[0, 0], mean[1, 1]
    linear = per_chain[:, 0, 1] / math.sqrt(s00 * s11) - rho / 2 * (per_chain[:, 0, 0] / s00 + per_chain[:, 1, 1] / s11)
    return rho, float(linear.std(ddof=1) / math.sqrt(per_chain.shape[0]))


def _correlation_finding(
    runs: dict[float, tuple[np.ndarray, np.ndarray]], limit: np.ndarray, common: dict[str, Any]
) -> Finding:
    """The stiff-flat correlation of the ball along ``beta`` at a fixed effective step."""
    measured = {beta: _correlation_se(runs[beta][1]) for beta in _BETAS}
    grid = _beta_grid()
    curve = Curve(
        x_label="momentum beta (at lr = lr_eff (1 - beta), lr_eff lambda_max = 1)",
        y_label="stiff-flat correlation of the ball",
        x=list(_BETAS),
        measured=[measured[b][0] for b in _BETAS],
        uncertainty=[measured[b][1] for b in _BETAS],
        predicted=[_correlation(_predicted(float(b))) for b in grid],
        predicted_x=grid,
    )
    rho, se = measured[_HEADLINE]
    return Finding(
        experiment="core.momentum",
        claim=(
            f"at beta={_HEADLINE} momentum averages out the noise's stiff-flat correlation: the exact Lyapunov "
            "correlation, far below plain SGD's at the same effective step"
        ),
        predicted=_correlation(_predicted(_HEADLINE)),
        measured=rho,
        uncertainty=se,
        tolerance=TOLERANCE_Z * se,
        unit="correlation",
        details={
            **common,
            "noise_correlation": _correlation(_NOISE),
            "small_step_limit": _correlation(limit),
            "plain_sgd_same_effective_step": {
                "measured": measured[0.0][0],
                "predicted": _correlation(_predicted(0.0)),
            },
            "cross_term_law": (
                "Sigma_ij = lr_eff C_ij / (l_i + l_j - alpha l_i l_j / (1 + beta) "
                "+ lr_eff beta (l_i - l_j)^2 / (1 - beta^2))"
            ),
        },
        curve=curve,
    )


# Adam: the mean step at a fixed point, per coordinate, against the signal-to-noise ratio


def _adam_steps(
    betas: tuple[float, float], snr: np.ndarray, replicas: int, record: list[int], gen: torch.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean step / lr of :class:`noisygrad.Adam` per SNR level at the recorded steps, its s.e., and the raw mean.

    ``len(snr) x replicas`` coordinates, each with gradient ``mu + sigma xi`` (``sigma`` log-uniform on
    [0.01, 100], ``mu = snr sigma``), are updated from a fixed point that is never moved. The estimator is the
    step with a control variate of known mean 0: ``step / lr - (m_hat - mu) / sqrt(mu^2 + sigma^2)``, where
    ``m_hat`` (Adam's bias-corrected first moment) is exactly unbiased for ``mu`` at every step; it removes the
    first moment's noise, which would otherwise dominate at low SNR (its raw mean is returned too). Each
    coordinate's average over the recorded steps is i.i.d. across replicas: the s.e. is their spread.
    """
    lr = 1e-3
    levels = len(snr)
    sigma = torch.exp(torch.empty(levels, replicas, dtype=_F64).uniform_(math.log(0.01), math.log(100), generator=gen))
    mu = torch.tensor(snr, dtype=_F64)[:, None] * sigma
    scale = torch.sqrt(mu**2 + sigma**2)
    adam = Adam(lr, betas=betas)
    x = torch.zeros(levels, replicas, dtype=_F64)
    state = adam.init(x)
    controlled = torch.zeros(levels, replicas, dtype=_F64)
    raw = torch.zeros(levels, replicas, dtype=_F64)
    wanted = set(record)
    for t in range(1, max(record) + 1):
        grad = mu + sigma * torch.randn(levels, replicas, generator=gen, dtype=_F64)
        moved, state = adam.update(x, grad, state)
        if t in wanted:
            step = (x - moved) / lr
            m_hat = state["exp_avg"] / (1 - betas[0] ** t)
            raw += step
            controlled += step - (m_hat - mu) / scale
    controlled, raw = controlled / len(record), raw / len(record)
    se = controlled.std(1) / math.sqrt(replicas)
    return controlled.mean(1).numpy(), se.numpy(), raw.mean(1).numpy()


def _mean_step(
    snr: np.ndarray, betas: tuple[float, float], steps: Sequence[int | None], order: int | None = None
) -> np.ndarray:
    """:func:`~noisygrad.noise.momentum.adam_expected_step` / lr at ``snr``, averaged over the update indices."""
    per_step = [np.asarray(adam_expected_step(snr, 1.0, betas, step=t, order=order)) for t in steps]
    return np.asarray(np.mean(per_step, axis=0))


def _relative_finding(
    claim: str,
    measured: np.ndarray,
    se: np.ndarray,
    predicted: np.ndarray,
    allowance: float,
    details: dict[str, Any],
    curve: Curve,
) -> Finding:
    """RMS over the SNR levels of ``measured / predicted - 1``, with its s.e. (4 s.e. + ``allowance``)."""
    ones = np.ones(len(measured))  # |v| / |ones| is the RMS of v
    base = _frobenius_finding("core.adam-snr", claim, measured / predicted, se / predicted, ones, details)
    return dataclasses.replace(
        base, tolerance=base.tolerance + allowance, unit="RMS relative error over the SNR levels", curve=curve
    )


@one_thread()
def adam_snr(seed: int = 0, quick: bool = True) -> list[Finding]:
    """Adam's mean step per coordinate is lr SNR / sqrt(1 + SNR^2): it damps coordinates whose gradient is noisy.

    At a fixed point (the parameters never move), coordinates with gradient ``mu + sigma xi``, SNR ``mu / sigma``
    from 0.1 to 10 and ``sigma`` spread over four decades, each get :class:`noisygrad.Adam`'s update. Claims: at
    torch's default ``betas = (0.9, 0.999)`` the mean step is ``lr SNR / sqrt(1 + SNR^2)`` (``lr SNR`` for a noisy
    coordinate, ``lr`` for a clean one, whatever ``sigma``), within the law's finite-beta allowance; at
    ``betas = (0.9, 0.95)`` (common in large-model training) the step falls short of that law by up to 1.4% at low
    SNR, as the exact Gaussian mean (:func:`~noisygrad.noise.momentum.adam_expected_step`) predicts. Streams: the
    default-beta run is sub-stream 0 of ``seed``, the other 1.
    """
    snr = np.geomspace(0.1, 10.0, 17)
    replicas = 1000 if quick else 5000
    fine = np.geomspace(0.1, 10.0, 121)
    findings = []

    default = (0.9, 0.999)
    record = [1000, 1500, 2000]
    measured, se, raw = _adam_steps(default, snr, replicas, record, torch_stream(seed, 0))
    law = _mean_step(snr, default, [None], order=1)
    exact = _mean_step(snr, default, record)
    allowance = float(np.sqrt(np.mean((exact / law - 1) ** 2)))
    details: dict[str, Any] = {
        "betas": default,
        "recorded_steps": record,
        "replicas_per_level": replicas,
        "snr": snr.round(4).tolist(),
        "allowance": f"{allowance:.2e}: RMS of the exact Gaussian mean / the law - 1 at the recorded steps",
        "error_vs_exact": float(np.sqrt(np.mean((measured / exact - 1) ** 2))),
        "raw_mean_error_vs_law (no control variate)": float(np.sqrt(np.mean((raw / law - 1) ** 2))),
    }
    claim = "Adam's mean step / lr = SNR / sqrt(1 + SNR^2) per coordinate (default betas), whatever the gradient scale"
    curve = Curve(
        x_label="gradient signal-to-noise ratio mu / sigma",
        y_label="mean Adam step / lr",
        x=snr.tolist(),
        measured=measured.tolist(),
        uncertainty=se.tolist(),
        predicted=_mean_step(fine, default, [None], order=1).tolist(),
        predicted_x=fine.tolist(),
        log_x=True,
        log_y=True,
    )
    findings.append(_relative_finding(claim, measured, se, law, allowance, details, curve))

    short = (0.9, 0.95)
    record = list(range(200, 401, 20))
    measured, se, _ = _adam_steps(short, snr, replicas, record, torch_stream(seed, 1))
    law = _mean_step(snr, short, [None], order=1)
    exact = _mean_step(snr, short, record)
    law_error = float(np.sqrt(np.mean((measured / law - 1) ** 2)))
    details = {
        "betas": short,
        "recorded_steps": f"{record[0]} to {record[-1]} every {record[1] - record[0]}",
        "replicas_per_level": replicas,
        "first_order_law_error": law_error,
        "first_order_law_error_in_se": law_error / float(np.sqrt(np.mean((se / law) ** 2))),
        "second_order_error_vs_exact": float(np.max(np.abs(_mean_step(snr, short, record, order=2) / exact - 1))),
        "predicted_shortfall_at_snr_0.1": float(exact[0] / law[0] - 1),
    }
    claim = "at betas (0.9, 0.95) Adam's mean step is the exact Gaussian mean, up to 1.4% below SNR / sqrt(1 + SNR^2)"
    shortfall = _mean_step(fine, short, [None]) / _mean_step(fine, short, [None], order=1) - 1
    curve = Curve(
        x_label="gradient signal-to-noise ratio mu / sigma",
        y_label="mean Adam step / (lr SNR / sqrt(1 + SNR^2)) - 1",
        x=snr.tolist(),
        measured=(measured / law - 1).tolist(),
        uncertainty=(se / law).tolist(),
        predicted=shortfall.tolist(),
        predicted_x=fine.tolist(),
        log_x=True,
    )
    findings.append(_relative_finding(claim, measured, se, exact, 0.0, details, curve))
    return findings
