"""Closed forms for momentum and adaptive steps under gradient noise: the heavy-ball noise ball and Adam's step.

* :func:`heavy_ball_stationary_covariance`: constant-step SGD with (heavy-ball or Nesterov) momentum, in
  ``torch.optim.SGD``'s convention (:class:`noisygrad.SGD`: ``b <- beta b + (1 - dampening) g``,
  ``x <- x - lr b``), near a minimum ``f(x) ~ x^T H x / 2`` with additive gradient noise of covariance ``C / B``,
  i.i.d. from step to step (the sampling assumption of :func:`~noisygrad.noise.theory.sgd_stationary_covariance`).
  The iteration is linear in the augmented state ``z = (x, b)``: ``z' = M z + N xi``, so its stationary covariance
  solves the discrete Lyapunov equation ``S = M S M^T + N (C / B) N^T`` exactly, for every stable step. Its
  small-step limit is plain SGD's at the *effective step* ``lr (1 - dampening) / (1 - beta)`` (Smith and Le
  2018's noise scale ``lr N / (B (1 - beta))``), ``H Sigma + Sigma H = lr_eff C / B``: momentum accumulates the
  noise as a ``1 / (1 - beta)`` times larger step would (derivation at the function). At a finite step it is
  *not* plain SGD at ``lr_eff``. In ``H``'s eigenbasis (eigenvalues ``l_i``, the step's noise ``C / B`` is
  ``c_ij`` there, ``alpha = lr (1 - dampening)``) the heavy ball's ball is exactly

  ``Sigma_ij = lr_eff c_ij / (l_i + l_j - alpha l_i l_j / (1 + beta) + lr_eff beta (l_i - l_j)^2 / (1 - beta^2))``

  against plain SGD's ``lr_eff c_ij / (l_i + l_j - lr_eff l_i l_j)`` at ``lr_eff``. On the diagonal the momentum
  ball's finite-step excess is ``(1 - beta) / (1 + beta)`` times SGD's (it keeps the small-step variance), and it
  is stable up to ``alpha l < 2 (1 + beta)`` where SGD at ``lr_eff`` needs ``lr_eff l < 2``. Off the diagonal, the
  last term averages away the correlation the noise puts between directions of different curvature: the buffer
  makes each direction a damped oscillator, and two oscillators of different frequency dephase unless the buffer
  relaxes faster than they turn (``lr l << (1 - beta)^2``). At ``lr_eff l_max = 1``, ``beta = 0.9`` and
  ``l = (1, 0.1)`` a correlation of 0.49 in the small-step ball is 0.11 (plain SGD at ``lr_eff``: 0.37).
* :func:`adam_expected_step`: the mean step of Adam (Kingma and Ba 2015; :class:`noisygrad.Adam`) at a fixed point
  whose gradient coordinate is ``mu + sigma xi`` with ``xi`` i.i.d. in time. For decay rates near 1 the bias-corrected
  moments settle at ``m -> mu`` and ``v -> mu^2 + sigma^2``, so the step is
  ``lr mu / sqrt(mu^2 + sigma^2) = lr SNR / sqrt(1 + SNR^2)`` with ``SNR = mu / sigma``: Balles and Hennig (2018)'s
  sign times "variance adaptation factor". A noisy coordinate (``SNR << 1``) moves ``lr SNR``, not ``lr``; a clean
  one moves ``lr``, whatever the gradient's scale. The function gives that law, its finite-``beta`` correction (a
  second-order delta method) and the exact mean for Gaussian noise (a one-dimensional integral).

References: B. T. Polyak (1964), "Some methods of speeding up the convergence of iteration methods"; S. Mandt,
M. D. Hoffman, D. M. Blei (2017), "Stochastic gradient descent as approximate Bayesian inference", JMLR 18;
S. L. Smith, Q. V. Le (2018), "A Bayesian perspective on generalization and stochastic gradient descent", ICLR;
D. P. Kingma, J. Ba (2015), "Adam: a method for stochastic optimization", ICLR; L. Balles, P. Hennig (2018),
"Dissecting Adam: the sign, magnitude and variance of stochastic gradients", ICML.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import scipy.linalg

from noisygrad.checks import check_in_range, check_positive, check_positive_int
from noisygrad.noise.theory import ArrayLike, _covariance, _matrix, sgd_stationary_covariance

__all__ = ["adam_expected_step", "heavy_ball_stationary_covariance"]


def _heavy_ball_iteration(
    h: np.ndarray, lr: float, beta: float, dampening: float, nesterov: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(M, N)`` of ``z' = M z + N xi`` for ``z = (x, b)``, ``b`` torch's ``momentum_buffer``, ``g = H x + xi``."""
    eye = np.eye(h.shape[0])
    if nesterov:  # b' = beta b + g, x' = x - lr (g + beta b') = x - lr (1 + beta) g - lr beta^2 b
        top = np.hstack([eye - lr * (1 + beta) * h, -lr * beta**2 * eye])
        noise_top = -lr * (1 + beta) * eye
        bottom, noise_bottom = np.hstack([h, beta * eye]), eye
    else:  # b' = beta b + (1 - d) g, x' = x - lr b'
        scale = 1.0 - dampening
        top = np.hstack([eye - lr * scale * h, -lr * beta * eye])
        noise_top = -lr * scale * eye
        bottom, noise_bottom = np.hstack([scale * h, beta * eye]), scale * eye
    return np.vstack([top, bottom]), np.vstack([noise_top, noise_bottom])


def heavy_ball_stationary_covariance(
    hessian: ArrayLike,
    noise_cov: ArrayLike,
    lr: float,
    momentum: float,
    batch_size: int = 1,
    *,
    dampening: float = 0.0,
    nesterov: bool = False,
    method: str = "discrete",
    augmented: bool = False,
) -> np.ndarray:
    """Stationary covariance of constant-step SGD with momentum (:class:`noisygrad.SGD`) near a minimum.

    The rule is ``torch.optim.SGD``'s: ``b <- beta b + (1 - d) g`` then ``x <- x - lr b`` (heavy ball; Polyak's
    ``x' = x - alpha g + beta (x - x_prev)`` with ``alpha = lr (1 - d)``), or ``x <- x - lr (g + beta b)``
    (Nesterov), with ``g = H x + xi``, ``Cov(xi) = C / B``, ``xi`` i.i.d. between steps and independent of ``x``
    (additive noise: a noisy oracle, or i.i.d. batches when the batch Hessian's own noise is negligible).

    ``method="discrete"`` (exact): the state ``z = (x, b)`` (``b`` the buffer after the step that produced ``x``)
    obeys ``z' = M z + N xi`` with, for the heavy ball,
    ``M = [[I - alpha H, -lr beta I], [(1 - d) H, beta I]]`` and ``N = [-alpha I; (1 - d) I]``, so its stationary
    covariance solves ``S = M S M^T + N (C / B) N^T`` (``scipy.linalg.solve_discrete_lyapunov``); the ``x`` block is
    returned. Per eigen-direction of a commuting ``H``, ``C`` (eigenvalue ``lambda``, noise variance ``c``) it is
    ``alpha c (1 + beta) / (lambda (1 - beta) (2 (1 + beta) - alpha lambda))`` (heavy ball).

    ``method="continuous"``: the small-step limit ``H Sigma + Sigma H = lr_eff C / B`` with
    ``lr_eff = lr (1 - d) / (1 - beta)`` (``lr / (1 - beta)`` for Nesterov), i.e. ``lr_eff C / (2 B H)`` when ``C``
    commutes with ``H``. Derivation: with ``beta`` fixed and ``lr -> 0`` the buffer relaxes in ``1 / (1 - beta)``
    steps, much faster than ``x`` moves, so ``b`` follows ``(1 - d) sum_k beta^k g_{t-k} ~ (1 - d) g / (1 - beta)``;
    over the ``n`` steps of ``x``'s own time scale the increments sum to ``-lr_eff sum g``, a drift
    ``-lr_eff H x`` and a diffusion ``lr_eff^2 C / B`` per step, the Ornstein-Uhlenbeck process of plain SGD at
    ``lr_eff`` (Mandt et al. 2017). The exact form (module docstring) shows its range: per direction the ratio is
    ``1 / (1 - alpha l / (2 (1 + beta)))``, ``O(alpha l)`` (plain SGD at ``lr_eff``: ``O(lr_eff l)``), but the
    cross-covariances of directions of different curvature need ``lr_eff beta (l_i - l_j)^2 / (1 - beta^2)`` small
    against ``l_i + l_j``: at a fixed ``lr_eff``, ``beta -> 1`` moves *away* from this limit (with ``l = (1, 0.1)`` and
    ``lr_eff = 0.1`` the cross-covariance is 26% below it at ``beta = 0.9`` and 79% below at ``beta = 0.99``).

    Args:
        hessian: ``H``, symmetric, the curvature at the minimum.
        noise_cov: ``C``, the per-example gradient covariance there (symmetric, positive semi-definite).
        lr: the constant step, > 0.
        momentum: ``beta`` in [0, 1); 0 gives :func:`~noisygrad.noise.theory.sgd_stationary_covariance`.
        batch_size: ``B`` >= 1.
        dampening: ``d`` in [0, 1), as :class:`noisygrad.SGD`'s (0 with Nesterov).
        nesterov: Nesterov momentum (needs ``momentum > 0``), as :class:`noisygrad.SGD`'s.
        method: ``"discrete"`` (exact for additive i.i.d. noise) or ``"continuous"`` (the small-step limit).
        augmented: return the ``2d x 2d`` covariance of ``(x, b)`` instead (discrete only).

    Raises:
        ValueError: for an unstable step (spectral radius of ``M`` >= 1; for ``H`` positive definite the heavy
            ball needs ``alpha lambda_max < 2 (1 + beta)``, Nesterov ``lr lambda_max < 2 (1 + beta) / (1 + 2 beta)``),
            mismatched shapes, or arguments out of range.
    """
    h = _matrix("hessian", hessian)
    c = _covariance("noise_cov", noise_cov)
    if c.shape != h.shape:
        raise ValueError(f"noise_cov has shape {c.shape} but hessian has shape {h.shape}; they must match")
    lr = check_positive("lr", lr)
    beta = check_in_range("momentum", momentum, 0.0, 1.0)
    b = check_positive_int("batch_size", batch_size)
    d = check_in_range("dampening", dampening, 0.0, 1.0)
    if nesterov and (beta == 0.0 or d != 0.0):
        raise ValueError("nesterov=True needs momentum > 0 and dampening = 0")
    if method == "continuous":
        if augmented:
            raise ValueError("augmented=True needs method='discrete' (the continuous limit has no buffer)")
        effective = lr * (1.0 - d) / (1.0 - beta)  # d = 0 with Nesterov
        return sgd_stationary_covariance(h, c, effective, b, method="continuous")
    if method != "discrete":
        raise ValueError(f"method must be 'discrete' or 'continuous', got {method!r}")
    transition, gain = _heavy_ball_iteration(h, lr, beta, d, bool(nesterov))
    radius = float(np.max(np.abs(np.linalg.eigvals(transition))))
    if radius >= 1.0:
        bound = "lr lambda_max < 2 (1 + beta) / (1 + 2 beta)" if nesterov else "lr (1 - d) lambda_max < 2 (1 + beta)"
        raise ValueError(
            f"SGD with momentum at this lr is unstable (spectral radius of the mean iteration {radius:.4g} >= 1): "
            f"there is no stationary law; for a positive definite hessian it needs {bound}"
        )
    sigma = scipy.linalg.solve_discrete_lyapunov(transition, gain @ (c / b) @ gain.T)
    sigma = (sigma + sigma.T) / 2
    return np.asarray(sigma if augmented else sigma[: h.shape[0], : h.shape[0]])


# The exact mean step is (2 / sqrt(pi)) int_0^inf E[m exp(-w^2 v)] dw, integrated by the trapezoid rule in
# y = log w on [_Y_LOW, _Y_HIGH] (spacing _Y_STEP) plus w_low E[m] for the piece below w_low = exp(_Y_LOW); the
# integrand is analytic in |Im y| < pi / 4, so the rule converges geometrically: 1e-10 relative against erf at
# step 1 and against a 10x finer grid. Where 2 u b_0 < _SERIES the sums over k are their Taylor series in u
# (error (2 u b_0)^4), and nodes past the first one whose integrand underflows are skipped (it only falls).
_Y_LOW, _Y_HIGH, _Y_STEP = -30.0, 20.0, 0.2
_NEGLIGIBLE = 1e-18  # EMA weights below this fraction of the first are dropped (stationary moments)
_SERIES = 1e-5
_CHUNK = 8192


def _ema_weights(beta1: float, beta2: float, step: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The weights ``a_k``, ``b_k`` of ``g_{t-k}`` and ``g_{t-k}^2`` in Adam's bias-corrected ``m`` and ``v``."""
    largest = max(beta1, beta2)
    stationary = 1 if largest == 0.0 else math.ceil(math.log(_NEGLIGIBLE) / math.log(largest)) + 1
    terms = stationary if step is None else min(step, stationary)
    k = np.arange(terms, dtype=np.float64)
    first = 1.0 if step is None else 1.0 - beta1**step
    second = 1.0 if step is None else 1.0 - beta2**step
    return (1.0 - beta1) * beta1**k / first, (1.0 - beta2) * beta2**k / second


def _node_sums(u: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sum log1p(2 u b_k)``, ``sum b_k / (1 + 2 u b_k)`` and ``sum a_k / (1 + 2 u b_k)`` at each node ``u``."""
    log_norm, tilt, mean_weight = np.zeros_like(u), np.zeros_like(u), np.zeros_like(u)
    small = 2.0 * u * float(b.max()) < _SERIES
    if small.any():  # log1p(x) = x - x^2/2 + x^3/3, 1/(1 + x) = 1 - x + x^2, with x = 2 u b_k
        us = u[small]
        b1, b2, b3 = float(b.sum()), float(b @ b), float(b**3 @ np.ones_like(b))
        ab1, ab2 = float(a @ b), float(a @ b**2)
        log_norm[small] = 2 * us * b1 - 2 * us**2 * b2 + (8 / 3) * us**3 * b3
        tilt[small] = b1 - 2 * us * b2 + 4 * us**2 * b3
        mean_weight[small] = float(a.sum()) - 2 * us * ab1 + 4 * us**2 * ab2
    rest = np.flatnonzero(~small)
    for start in range(0, b.size, _CHUNK):  # bounded memory for the ~40,000 weights of beta2 = 0.999
        bk, ak = b[None, start : start + _CHUNK], a[None, start : start + _CHUNK]
        x = 2.0 * u[rest, None] * bk
        log_norm[rest] += np.log1p(x).sum(1)
        tilt[rest] += (bk / (1.0 + x)).sum(1)
        mean_weight[rest] += (ak / (1.0 + x)).sum(1)
    return log_norm, tilt, mean_weight


@functools.lru_cache(maxsize=64)
def _quadrature(beta1: float, beta2: float, step: int | None) -> tuple[np.ndarray, ...]:
    """The trapezoid nodes ``w`` and the sums of :func:`_node_sums` there (they do not depend on ``snr``): cached."""
    a, b = _ema_weights(beta1, beta2, step)
    w = np.exp(np.arange(_Y_LOW, _Y_HIGH + _Y_STEP / 2, _Y_STEP))
    u = w * w
    # the product prod_k (1 + 2 u b_k)^-1/2 is at most its first 4096 factors': past the first node where those
    # make it underflow (below 1e-320) the integrand only falls, and the nodes are dropped
    prefix = np.log1p(2.0 * u[:, None] * b[None, :4096]).sum(1)
    keep = int(np.searchsorted(-0.5 * prefix < -750.0, True)) + 1
    w, u = w[:keep], u[:keep]
    return (w, u, *_node_sums(u, a, b), np.array(a.sum()))


def _exact_step(snr: np.ndarray, beta1: float, beta2: float, step: int | None) -> np.ndarray:
    """``E[m / sqrt(v)]`` for ``m = sum a_k g_k``, ``v = sum b_k g_k^2``, ``g_k ~ N(snr, 1)`` independent.

    ``1 / sqrt(v) = pi^-1/2 int_0^inf u^-1/2 e^{-u v} du`` and, for ``g ~ N(s, 1)``,
    ``E[e^{-t g^2}] = (1 + 2t)^-1/2 exp(-t s^2 / (1 + 2t))``, ``E[g e^{-t g^2}] = s / (1 + 2t) E[e^{-t g^2}]``;
    independence makes ``E[m e^{-u v}]`` a product, and ``u = w^2`` removes the singularity at 0.
    """
    w, u, log_norm, tilt, mean_weight, a_sum = _quadrature(beta1, beta2, step)
    s = snr[:, None]
    integrand = s * np.exp(-0.5 * log_norm - u * s**2 * tilt) * mean_weight * w  # dw = w dy
    trapezoid = _Y_STEP * (integrand.sum(1) - 0.5 * (integrand[:, 0] + integrand[:, -1]))
    below = w[0] * snr * float(a_sum)  # int_0^{w_low} E[m e^{-w^2 v}] dw = w_low E[m] + O(w_low^3)
    return np.asarray(2.0 / math.sqrt(math.pi) * (trapezoid + below))


_EXPANSION_SNR = 1e4  # from here the exact step is the second-order one: its remainder, <= 1.2 snr^-4, is 1e-16


def _second_order_step(snr: np.ndarray, beta1: float, beta2: float, step: int | None) -> np.ndarray:
    """The second-order delta method for ``E[m / sqrt(v)]`` (see :func:`adam_expected_step`, ``order=2``)."""
    variance = 1.0 + snr**2
    a, b = _ema_weights(beta1, beta2, step)
    cross, square = float(a @ b), float(b @ b)
    return snr / np.sqrt(variance) * (1 - cross / variance + 0.375 * square * (4 * snr**2 + 2) / variance**2)


def adam_expected_step(
    snr: float | Sequence[float] | np.ndarray,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    *,
    step: int | None = None,
    order: int | None = None,
) -> float | np.ndarray:
    """Mean step ``E[x_t - x_{t+1}]`` of :class:`noisygrad.Adam` on a coordinate whose gradient has signal-to-noise
    ratio ``snr``, at a fixed point.

    The gradient is ``g = mu + sigma xi`` with ``xi`` i.i.d. in time and ``snr = mu / sigma``; the step is
    ``lr m_hat / (sqrt(v_hat) + eps)`` with the bias-corrected moments ``m_hat = sum_k a_k g_{t-k}``,
    ``v_hat = sum_k b_k g_{t-k}^2``, ``a_k = (1 - beta1) beta1^k / (1 - beta1^t)``,
    ``b_k = (1 - beta2) beta2^k / (1 - beta2^t)`` (``k < t``; both sum to 1). It is a function of ``snr`` alone once
    ``eps << sqrt(mu^2 + sigma^2)`` (``eps`` is neglected here), and odd in ``snr``.

    * ``order=1``: ``lr snr / sqrt(1 + snr^2)``, the law of ``m_hat -> mu``, ``v_hat -> mu^2 + sigma^2`` (betas near 1,
      ``t >> 1 / (1 - beta2)``; Balles and Hennig 2018). Any i.i.d. noise of that variance.
    * ``order=2``: with ``V = 1 + snr^2`` (in units of ``sigma^2``), the second-order delta method for ``m / sqrt(v)``:
      ``lr snr / sqrt(V) (1 - sum(a_k b_k) / V + (3/8) sum(b_k^2) (4 snr^2 + 2) / V^2)``, from
      ``Cov(m_hat, v_hat) = 2 mu sigma^2 sum a_k b_k`` and ``Var(v_hat) = (4 mu^2 sigma^2 + 2 sigma^4) sum b_k^2`` of
      Gaussian noise. Stationary: ``sum a_k b_k = (1 - beta1)(1 - beta2) / (1 - beta1 beta2)``,
      ``sum b_k^2 = (1 - beta2) / (1 + beta2)``. At small ``snr`` the stationary step is below the first-order law by
      0.06% for the default ``(0.9, 0.999)``, 1.4% at ``(0.9, 0.95)`` and 4.5% at ``(0.5, 0.9)``; the second-order
      form leaves ``O((1 - beta)^2)``: 0.06% at ``(0.9, 0.95)``, 0.6% at ``(0.5, 0.9)``.
    * ``order=None`` (default): the exact mean for Gaussian noise, through
      ``1 / sqrt(v) = pi^-1/2 int_0^inf u^-1/2 e^{-u v} du``, which makes ``E[m e^{-u v}]`` a product of Gaussian
      integrals: a one-dimensional quadrature (relative error about 1e-10), and from ``|snr| = 1e4`` the
      second-order form, whose remainder (at most ``1.2 snr^-4``) is then below rounding. At ``step=1`` it is
      ``lr erf(snr / sqrt 2)`` (``E[sign g]``: Adam's first step is ``lr sign(g)``).

    Args:
        snr: ``mu / sigma``, a number or an array of numbers (any sign, finite).
        lr: Adam's learning rate, > 0.
        betas: ``(beta1, beta2)``, each in [0, 1).
        step: the update's index ``t >= 1`` (its bias corrections); ``None`` for the stationary limit ``t -> inf``.
        order: ``1``, ``2`` or ``None`` (exact, Gaussian noise), as above.

    Raises:
        ValueError: for arguments out of range, and for ``betas[1] = 0 < betas[0]`` past the first step, where the
            step ``m / |g_t|`` has no finite mean (``|m / sqrt(v)|`` is bounded whenever ``betas[1] > 0``).

    Returns:
        The mean step, a float for a number ``snr``, else an array of ``snr``'s shape.
    """
    try:
        s = np.asarray(snr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"snr must be a number or an array of numbers, got {type(snr).__name__}") from exc
    if not np.all(np.isfinite(s)):
        raise ValueError("snr must be finite (no NaN or Inf)")
    lr = check_positive("lr", lr)
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    beta1 = check_in_range("betas[0]", betas[0], 0.0, 1.0)
    beta2 = check_in_range("betas[1]", betas[1], 0.0, 1.0)
    t = None if step is None else check_positive_int("step", step)
    if t is not None and max(beta1, beta2) ** t < _NEGLIGIBLE:
        t = None  # the bias corrections are 1 to within 1e-18: the stationary step (and its cached quadrature)
    if beta2 == 0.0 and beta1 > 0.0 and t != 1:  # m / |g_t| with m holding earlier g: E[1 / |g|] is infinite
        raise ValueError(
            "betas[1] = 0 with betas[0] > 0 gives Adam no finite mean step (m / |g_t| is limited only by eps); "
            "use betas[1] > 0"
        )
    if order not in (None, 1, 2):
        raise ValueError(f"order must be 1, 2 or None (exact), got {order!r}")
    flat = s.reshape(-1)
    if order == 1:
        out = flat / np.sqrt(1.0 + flat**2)
    elif order == 2:
        out = _second_order_step(flat, beta1, beta2, t)
    else:
        out = _exact_step(flat, beta1, beta2, t)
        # the quadrature's rounding grows as about 3.5e-16 |snr|; the expansion's remainder falls as 1.2 snr^-4
        large = np.abs(flat) >= _EXPANSION_SNR
        out[large] = _second_order_step(flat[large], beta1, beta2, t)
    result = lr * out.reshape(s.shape)
    return float(result) if s.ndim == 0 else result
