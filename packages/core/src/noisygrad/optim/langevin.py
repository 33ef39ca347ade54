"""Langevin samplers as optimizers: SGLD (first order) and BAOAB (underdamped, second order).

Both are :class:`~noisygrad.Optimizer` rules (``init`` / ``update`` with a plain-dict state), so they run in
:func:`~noisygrad.minimize` and, through :class:`~noisygrad.TorchOptimizer`, in any ``torch.optim`` loop.

Where the noise comes from: a CPU ``torch.Generator`` whose state (a ``uint8`` tensor) lives *inside* the optimizer
state, so a checkpointed run continues bit-identically (``TorchOptimizer.load_state_dict`` keeps that tensor
exact). ``init`` seeds it once, from one of two places, never both:

* ``init(params, generator=g)``: a sub-stream spawned from the run's generator ``g`` (one draw of ``g``,
  :func:`noisygrad.rng.torch_from_torch`). A loop that owns the run's generator passes it
  (:func:`noisygrad.rng.init_state`), so the run's seed alone determines the batches *and* the Langevin noise.
  The sampler must then have no ``seed`` of its own (``init`` refuses the pair: it would be a second source).
* ``init(params)`` (standalone use, ``TorchOptimizer``): the sampler's ``seed`` (0 when left out); the ``n``-th
  such ``init`` of one sampler takes sub-stream ``(seed, n)`` (:func:`noisygrad.rng.torch_stream`), so the
  parameter tensors of a model (one ``init`` each under ``TorchOptimizer``) get independent noise.

Temperature convention: with exact gradients of ``f``, the stationary law is the Boltzmann law
``exp(-f(x) / T)`` (up to the step's discretisation error). For a Bayesian posterior written as a *mean* loss
``f = U / N`` over ``N`` examples (``U = -log posterior``), use ``T = 1 / N`` (as ``posteriors`` does).

Mini-batch gradients add noise of covariance ``V`` to each step and heat the chain: for SGLD the stationary
covariance becomes ``Sigma = (I - h A) Sigma (I - h A)^T + 2 h T I + h^2 V``
(:func:`noisygrad.noise.theory.langevin_stationary_covariance`), i.e. an extra temperature of about ``h V / 2``
per direction, which dominates when ``V ~ N^2 / n`` (+160% on a 1000-example regression with batches of 10 at
``h lambda_max = 0.05``, measured). Control variates (:class:`noisygrad.estimators.variance_reduction.SVRG` with a fixed
anchor at the mode) remove most of it: what is left is *multiplicative* noise, ``(A_B - A)(x - anchor)``, and
the chain's exact law is :func:`noisygrad.noise.theory.least_squares_sgld_stationary_covariance` (0.5% above the
full-gradient law there, 2% above the posterior, most of it SGLD's own ``O(h)`` bias). ``SGLD``'s
``noise_correction`` removes both biases on a Gaussian target.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from noisygrad.checks import check_positive, check_positive_int
from noisygrad.optim.base import Rule, State
from noisygrad.rng import torch_from_torch, torch_stream
from noisygrad.schedules import Schedule, as_schedule

__all__ = ["BAOAB", "SGLD"]


def _seed(seed: int | None) -> int | None:
    return None if seed is None else check_positive_int("seed", seed, allow_zero=True)


class _Sampler(Rule):
    """Seeding and the generator-in-state mechanics shared by the samplers."""

    seed: int | None
    _inits: int

    def init(self, params: torch.Tensor, *, generator: torch.Generator | None = None) -> State:
        """The state before the first step, with the noise's generator state under ``"generator"``.

        ``generator``: the run's generator; the noise is a sub-stream spawned from it (``generator`` advances
        by one draw). Without it the sampler's own ``seed`` seeds the noise (see the module docstring).
        """
        if generator is not None and self.seed is not None:
            raise ValueError(
                f"{type(self).__name__} has seed={self.seed} and was given the run's generator too: the run's "
                "seed (minimize(..., seed=)) seeds the noise there; construct the sampler without seed="
            )
        state = super().init(params)  # checks the parameters before anything is drawn
        if generator is not None:
            noise = torch_from_torch(generator)
        else:
            noise = torch_stream(0 if self.seed is None else self.seed, self._inits)
            self._inits += 1
        state["generator"] = noise.get_state()
        return state

    @staticmethod
    def _normal(state: State, like: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator()
        gen.set_state(state["generator"])
        noise = torch.randn(like.shape, generator=gen, dtype=like.dtype).to(like.device)  # CPU generator
        state["generator"] = gen.get_state()
        return noise


class SGLD(_Sampler):
    """Stochastic-gradient Langevin dynamics (Welling and Teh 2011) with a temperature.

    ``x <- x - h g + sqrt(2 h T) xi``, ``xi ~ N(0, I)`` drawn from the generator in the state (spawned from the
    run's generator under ``minimize``), with ``h`` the step (``lr``) and ``g`` the (estimated) gradient of
    ``f``. Welling and Teh's ``epsilon`` is ``2 h``. With exact gradients on a Gaussian target of Hessian ``A``
    the stationary covariance per eigenvalue ``lambda`` is ``T / (lambda (1 - h lambda / 2))``: an ``O(h)``
    bias that a decreasing schedule (``RobbinsMonro``) removes asymptotically.

    ``noise_correction=C`` injects ``N(0, 2 h T I - h^2 C)`` instead of ``N(0, 2 h T I)``. On a Gaussian target
    with ``C = T A + V`` (``V`` the covariance of the gradient noise at stationarity) the chain's stationary
    covariance is *exactly* ``T A^-1`` for every stable step: ``T A`` cancels the discretisation bias (the chain
    is then the exact discretisation of the Ornstein-Uhlenbeck law), ``V`` the heating by mini-batch noise (the
    subtraction of SGHMC's ``B-hat``, Chen et al. 2014, and ``posteriors``' ``lr (2 - lr beta) T``).
    :func:`noisygrad.noise.theory.least_squares_sgld_noise_correction` computes ``C`` for a Bayesian linear regression,
    control variates included. Away from Gaussian targets ``C`` from the mode's Hessian and noise is an
    approximation. It needs ``2 h T I - h^2 C`` positive semi-definite (a step raises otherwise).

    Args:
        lr: the step ``h``, a float >= 0 or a schedule.
        temperature: ``T`` > 0 (``1 / N`` for a posterior written as a mean loss over ``N`` examples).
        seed: seeds the noise in standalone use (``init`` without a generator; ``None``: 0). Leave it out under
            :func:`~noisygrad.minimize`, whose generator seeds the noise (see the module docstring).
        noise_correction: ``None``; a number ``c`` (``C = c I``); or a symmetric ``(k, k)`` matrix acting on the
            last dimension of the parameters (``k`` their last size; the rows of a ``(..., k)`` tensor get
            independent draws). In units of the gradient ``g`` squared (for ``f = U / N``, ``C_f = C_U / N^2``).
    """

    def __init__(
        self,
        lr: float | Schedule = 1e-3,
        *,
        temperature: float = 1.0,
        seed: int | None = None,
        noise_correction: float | torch.Tensor | np.ndarray | None = None,
    ) -> None:
        self.lr = as_schedule("lr", lr)
        self.temperature = check_positive("temperature", temperature)
        self.seed = _seed(seed)
        self.noise_correction = _correction(noise_correction)
        self._inits = 0
        self._factor_cache: tuple[tuple[float, float, int], torch.Tensor] | None = None

    def _init(self, params: torch.Tensor) -> State:
        c = self.noise_correction
        if isinstance(c, torch.Tensor) and (params.ndim == 0 or params.shape[-1] != c.shape[0]):
            raise ValueError(
                f"noise_correction has shape {tuple(c.shape)} but the parameters' last dimension is "
                f"{tuple(params.shape)[-1:] or 'absent'}; they must match"
            )
        return {}

    def _noise_factor(self, lr: float) -> float | torch.Tensor:
        """``L`` with ``L L^T = 2 h T I - h^2 C`` (a number when ``C`` is ``None`` or a number)."""
        c, t = self.noise_correction, self.temperature
        if c is None:
            return math.sqrt(2.0 * lr * t)
        if not isinstance(c, torch.Tensor):
            variance = 2.0 * lr * t - lr**2 * c
            if variance < 0:
                raise ValueError(f"noise_correction={c} is too large for lr={lr}: 2 lr T - lr^2 c < 0; lower lr")
            return math.sqrt(variance)
        key = (lr, t, id(c))  # the factor depends on all three (temperature and correction are public)
        if self._factor_cache is not None and self._factor_cache[0] == key:
            return self._factor_cache[1]
        cov = 2.0 * lr * t * torch.eye(c.shape[0], dtype=c.dtype) - lr**2 * c
        values, vectors = torch.linalg.eigh(cov)
        if float(values.min()) < -1e-12 * 2.0 * lr * t:
            raise ValueError(
                f"noise_correction is too large for lr={lr}: 2 lr T I - lr^2 C is not positive semi-definite "
                f"(smallest eigenvalue {float(values.min()):.3g}); lower lr"
            )
        factor: torch.Tensor = vectors * values.clamp(min=0.0).sqrt()  # L L^T = cov
        self._factor_cache = (key, factor)
        return factor

    def _step(self, params: torch.Tensor, grad: torch.Tensor, state: State, lr: float) -> tuple[torch.Tensor, State]:
        noise = self._normal(state, params)
        factor = self._noise_factor(lr)
        if isinstance(factor, torch.Tensor):
            return params.add(grad, alpha=-lr).add(noise @ factor.to(noise).T), state
        return params.add(grad, alpha=-lr).add(noise, alpha=factor), state


def _correction(value: float | torch.Tensor | np.ndarray | None) -> float | torch.Tensor | None:
    """Check ``noise_correction``: ``None``, a finite number >= 0, or a finite symmetric square matrix."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return check_positive("noise_correction", value, allow_zero=True)
    try:
        c = torch.as_tensor(np.asarray(value, dtype=np.float64) if isinstance(value, np.ndarray) else value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"noise_correction must be a number or a square matrix, got {type(value).__name__}") from exc
    c = c.detach().to(torch.float64).cpu().clone()
    if c.ndim == 0:
        return check_positive("noise_correction", float(c), allow_zero=True)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise ValueError(f"noise_correction must be a number or a square (k, k) matrix, got shape {tuple(c.shape)}")
    if not bool(torch.isfinite(c).all()):
        raise ValueError("noise_correction must hold finite numbers (no NaN or Inf)")
    if not torch.allclose(c, c.T, rtol=1e-10, atol=1e-12 * max(1.0, float(c.abs().max()))):
        raise ValueError("noise_correction must be symmetric")
    return (c + c.T) / 2


class BAOAB(_Sampler):
    """Underdamped Langevin dynamics by the BAOAB splitting (Leimkuhler and Matthews 2013), unit mass.

    One step of length ``h`` is: B (half kick ``v -= h/2 g``), A (half drift ``x += h/2 v``), O (exact
    Ornstein-Uhlenbeck ``v <- e^{-gamma h} v + sqrt(T (1 - e^{-2 gamma h})) xi``, ``xi`` from the generator in
    the state as for :class:`SGLD`), A, B. Since ``update`` sees one gradient per call (at the current ``x``),
    the closing half kick of a step is applied at the start of the next one together with its opening half
    kick: the positions are exactly BAOAB's.

    On a Gaussian target BAOAB's positions have *exactly* the target covariance ``T A^{-1}`` for every stable
    step (``h sqrt(lambda_max) < 2``), unlike SGLD's ``O(h)`` bias. Gradient noise of covariance ``V`` adds
    about ``h V / (2 gamma)`` to the temperature (as in SGHMC, Chen et al. 2014).

    Args:
        lr: the time step ``h`` (float >= 0 or schedule). Note that ``h^2 / 2`` plays the role of an SGD step.
        friction: ``gamma`` > 0 (large: close to overdamped Langevin; small: close to Hamiltonian dynamics).
        temperature: ``T`` > 0.
        seed: seeds the noise in standalone use, as for :class:`SGLD`; leave it out under ``minimize``.
    """

    def __init__(
        self,
        lr: float | Schedule = 1e-2,
        *,
        friction: float = 1.0,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.lr = as_schedule("lr", lr)
        self.friction = check_positive("friction", friction)
        self.temperature = check_positive("temperature", temperature)
        self.seed = _seed(seed)
        self._inits = 0

    def _init(self, params: torch.Tensor) -> State:
        return {"velocity": torch.zeros_like(params), "pending_kick": 0.0}

    def _step(self, params: torch.Tensor, grad: torch.Tensor, state: State, lr: float) -> tuple[torch.Tensor, State]:
        half = 0.5 * lr
        v = state["velocity"].add(grad, alpha=-(state["pending_kick"] + half))  # B (closing + opening)
        x = params.add(v, alpha=half)  # A
        decay = math.exp(-self.friction * lr)
        noise = self._normal(state, params)
        v = v.mul(decay).add(noise, alpha=math.sqrt(self.temperature * (1.0 - decay**2)))  # O
        x = x.add(v, alpha=half)  # A
        state["velocity"], state["pending_kick"] = v, half
        return x, state
