"""Full-matrix quasi-Newton optimizers with a strong-Wolfe line search: BFGS and the self-scaled BFGS and Broyden
methods (SSBFGS, SSBroyden), as ``torch.optim.Optimizer`` s driven by a closure.

Why a dense inverse Hessian: small networks trained to round-off accuracy (PINNs with a few thousand weights)
need curvature along all directions. L-BFGS keeps a few dozen pairs and stalls orders of magnitude above what a
full BFGS matrix reaches; Urbán, Stefanou and Pons (2024, "Unveiling the optimization process of PINNs: how
accurate and competitive can PINNs be?") and Kiyani, Shukla, Urbán, Darbon and Karniadakis (2025, "Which optimizer
works best for PINNs and KANs?") report errors orders of magnitude below Adam then L-BFGS with these methods in
float64. The matrix costs ``8 n^2`` bytes in float64 (``n`` the number of parameters): ``max_params`` guards it.

The update, in inverse form (``H`` approximates the inverse Hessian), for the step ``s = x' - x``, the gradient
change ``y = g' - g``, ``rho = 1 / s^T y``, ``w = H y``, ``v = rho s - w / y^T w``::

    H' = (H - w w^T / y^T w + phi (y^T w) v v^T) / tau + rho s s^T

``phi = 1, tau = 1`` is BFGS; ``phi = 1`` and Al-Baali's scaling ``tau = min(1, 1 / b)`` (``b = s^T B s / s^T y =
-t s^T g / s^T y``, ``t`` the accepted step along ``d = -H g``) is SSBFGS; SSBroyden chooses ``phi`` and ``tau``
from ``a = b h - 1`` and ``h = y^T H y / s^T y`` (Urbán et al. 2024, their equations 13-23; the "SSBroyden2"
variant of their code). On the first update (``H = I``) every method scales ``H`` by ``tau = y^T y / s^T y``
first (Nocedal and Wright's eq. 6.20; SSBroyden: ``tau = h / (1 + a theta)``). Applied as one in-place GEMM
over ``H``, then each entry averaged with its mirror, the update keeps ``H`` exactly symmetric; ``s^T y > 0``
(guaranteed by the strong-Wolfe step) and ``phi > -1 / a`` keep it positive definite. A pair failing the cosine
test ``s^T y > curvature_eps |s| |y|`` is skipped and counted; a direction that is not a descent direction resets
``H`` to the identity (counted).

The line search is torch's strong-Wolfe search (``torch.optim.lbfgs._strong_wolfe``: bracketing and cubic
zoom, ``c1``, ``c2``), wrapped so that a trial point with a NaN/Inf loss restarts the search from a ten times
shorter step instead of poisoning the bracket. Whether each accepted step meets both strong-Wolfe conditions is
checked and counted (:meth:`BFGS.report`).

``loss_transform`` trains ``sqrt(L)`` or ``log(L)`` instead of the loss ``L`` (Urbán et al. 2024's modified
loss, their ``use_sqrt`` / ``use_log``): near a zero-residual minimum ``L ~ |r|^2`` is flat to second order, and
the transformed loss keeps the line search's sufficient-decrease tests above round-off for longer. The closure
still returns (and ``step`` still reports) ``L`` itself.

Usage: exactly like ``torch.optim.LBFGS``; the closure re-evaluates the loss and its gradients::

    opt = noisygrad.SSBFGS(model.parameters(), max_iter=100)
    def closure():
        opt.zero_grad()
        loss = loss_fn(model)
        loss.backward()
        return loss
    for _ in range(50):
        opt.step(closure)   # up to max_iter iterations per call
    opt.report()           # iterations, evaluations, updates, skipped pairs, resets, Wolfe failures

Precision: float64 parameters are what these methods are for. float32 parameters get a :class:`PrecisionWarning`
(the line search cannot resolve loss changes below ~1e-7 relative, so the run stalls there); float16/bfloat16 and
complex parameters are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch.optim.lbfgs import _strong_wolfe

from noisygrad.checks import (
    NonFiniteGradientError,
    check_finite,
    check_in_range,
    check_positive,
    check_positive_int,
    warn,
)

__all__ = ["BFGS", "SSBFGS", "PrecisionWarning", "SSBroyden", "inverse_hessian_update", "symmetrize_"]

UPDATES = ("bfgs", "ssbfgs", "ssbroyden")
LOSS_TRANSFORMS = (None, "sqrt", "log")
MAX_PARAMS = 10_000  # 800 MB of float64 inverse Hessian
SYMMETRIZE_EVERY = 50  # updates between exact re-symmetrisations (the drift in between is rounding-level)
_RETRIES = 8  # line-search restarts after a NaN/Inf trial point, each from a ten times shorter step


class PrecisionWarning(UserWarning):
    """The optimizer runs in a precision that limits the accuracy it can reach (float32 with a line search)."""


class _NonFiniteTrial(Exception):
    """A trial point of the line search gave a NaN/Inf loss or gradient."""


Update = tuple[float, torch.Tensor, torch.Tensor]


def inverse_hessian_update(
    H: torch.Tensor,
    s: torch.Tensor,
    y: torch.Tensor,
    grad: torch.Tensor,
    step: float,
    rule: str,
    first: bool,
    hy: torch.Tensor | None = None,
) -> Update | None:
    """Apply one inverse-Hessian update in place: BFGS, SSBFGS or SSBroyden (see the module docs).

    Args:
        H: the inverse-Hessian approximation, ``(n, n)``, symmetric positive definite; changed in place.
        s: the step ``x' - x``; ``y``: the gradient change ``g' - g``.
        grad: the gradient ``g`` at ``x`` (where the step started along ``d = -H g``).
        step: the accepted step length ``t`` (``s = t d``).
        rule: ``"bfgs"``, ``"ssbfgs"`` or ``"ssbroyden"``.
        first: ``H`` is the (unscaled) identity: use the initial scaling.
        hy: ``H y`` if the caller has it (saves a matrix-vector product).

    Returns:
        ``(tau, U, c)`` with ``H' = H / tau + U diag(c) U^T`` (``U`` is ``n x 3``), so a caller can apply ``H'``
        to a vector it already multiplied by ``H``; None (``H`` untouched) when a scaling came out non-finite or
        non-positive. The caller guarantees ``s^T y > 0``. ``H'`` is symmetric up to rounding (one in-place GEMM);
        :func:`symmetrize_` restores exact symmetry.
    """
    if rule not in UPDATES:
        raise ValueError(f"rule must be one of {', '.join(map(repr, UPDATES))}, got {rule!r}")
    sy = float(s @ y)
    rho = 1.0 / sy
    w = H @ y if hy is None else hy
    yhy = float(y @ w)
    h = yhy * rho
    b = -step * rho * float(s @ grad)  # s^T B s / s^T y, with B s = -t g
    phi = 1.0
    if rule == "ssbroyden":
        a = b * h - 1.0  # >= 0 by Cauchy-Schwarz; 0 when s and H y are parallel (the family members coincide)
        theta = 0.0
        if a > 1e-12:
            rho_minus = min(1.0, h * (1.0 - math.sqrt(a / (1.0 + a))))
            theta_minus = (rho_minus - 1.0) / a
            theta_plus = 1.0 / rho_minus
            theta = max(theta_minus, min(theta_plus, (1.0 - b) / b))
        sigma = 1.0 + theta * a
        if first:
            tau = h / sigma
        else:
            rho_k = min(1.0, 1.0 / b)
            sigma_n = abs(sigma) ** (1.0 / (1.0 - s.numel())) if s.numel() > 1 else 1.0
            tau = min(rho_k * sigma_n, sigma) if theta <= 0 else rho_k * min(sigma_n, 1.0 / theta)
        phi = (1.0 - theta) / sigma
    elif first:
        tau = float(y @ y) * rho  # H = (s^T y / y^T y) I before the update
    elif rule == "ssbfgs":
        tau = min(1.0, 1.0 / b)
    else:
        tau = 1.0
    if not (math.isfinite(tau) and tau > 0 and math.isfinite(phi) and math.isfinite(yhy) and yhy > 0):
        return None
    v = s * rho - w / yhy
    # H' = H / tau + U diag(c) U^T with U = [w, v, s]: one in-place GEMM pass over H
    basis = torch.stack([w, v, s], dim=1)
    coefs = torch.tensor([-1.0 / (yhy * tau), phi * yhy / tau, rho], dtype=H.dtype, device=H.device)
    H.addmm_(basis, (basis * coefs).T, beta=1.0 / tau)
    return tau, basis, coefs


def symmetrize_(H: torch.Tensor, block: int = 128) -> torch.Tensor:
    """``H <- (H + H^T) / 2`` in place, block by block (no ``n x n`` temporary): exactly symmetric afterwards.

    A GEMM (or BLAS ``ger``) update is symmetric only up to rounding (its kernels fuse multiply-adds in vector
    loops but not in their tails); averaging each entry with its mirror makes ``H`` bit-symmetric and keeps
    ``x^T H x`` unchanged, so positive definiteness is unaffected. The transposed reads cost about ten GEMM
    updates, so the optimizers call it every :data:`SYMMETRIZE_EVERY` updates, not every one.
    """
    n = H.shape[0]
    for i in range(0, n, block):
        rows = slice(i, min(i + block, n))
        diag = H[rows, rows]
        diag.copy_((diag + diag.T) * 0.5)
        for j in range(i + block, n, block):
            cols = slice(j, min(j + block, n))
            mean = (H[rows, cols] + H[cols, rows].T) * 0.5
            H[rows, cols] = mean
            H[cols, rows] = mean.T
    return H


def _transform(value: float, grad: torch.Tensor, transform: str | None) -> tuple[float, torch.Tensor]:
    """The trained objective (``L``, ``sqrt(L)`` or ``log(L)``) and its gradient from ``L`` and ``dL/dx``."""
    if transform is None:
        return value, grad
    if value < 0:
        raise ValueError(f"loss_transform={transform!r} needs a loss >= 0, but the closure returned {value!r}")
    if value == 0:
        return (0.0 if transform == "sqrt" else -math.inf), torch.zeros_like(grad)
    if transform == "sqrt":
        root = math.sqrt(value)
        return root, grad / (2.0 * root)
    return math.log(value), grad / value


class BFGS(torch.optim.Optimizer):
    """Full BFGS with a strong-Wolfe line search, as a ``torch.optim.Optimizer`` (see the module docs).

    Args:
        params: the parameters (one group; real floating tensors, float64 recommended).
        lr: the first trial step of each line search (1, the quasi-Newton step); the very first iteration and
            the one after a reset (``H = I``) try ``lr * min(1, 1 / |g|_1)``, as ``torch.optim.LBFGS``.
        max_iter: iterations per ``step`` call.
        max_eval: loss-and-gradient evaluations per ``step`` call (None: no limit beyond ``line_search_evals``
            per iteration).
        tolerance_grad: stop when ``max |dL/dx| <= tolerance_grad`` (on the loss itself, whatever the transform).
        tolerance_change: stop when the trained objective changes by less than this, or the step moves every
            parameter by at most this (0: only a failed line search or ``tolerance_grad`` stop).
        c1, c2: the strong-Wolfe constants, ``0 < c1 < c2 < 1``.
        line_search_evals: the most evaluations one line search may spend.
        curvature_eps: a pair is used only if ``s^T y > curvature_eps |s| |y|``.
        loss_transform: None (train ``L``), ``"sqrt"`` or ``"log"`` (train ``sqrt(L)`` / ``log(L)``; ``L >= 0``).
        max_params: refuse more parameters than this (the dense ``n x n`` matrix); raise it knowingly.

    Each ``step(closure)`` evaluates the closure at the current point, then runs up to ``max_iter`` iterations
    and returns the loss at the starting point (as ``torch.optim.LBFGS``). The whole state (the matrix, the
    counters) lives in ``self.state`` of the first parameter, so ``state_dict`` / ``load_state_dict`` continue a
    run bit for bit. A NaN/Inf loss or gradient at the starting point raises
    :class:`~noisygrad.NonFiniteGradientError` with the parameters untouched.
    """

    rule: ClassVar[str] = "bfgs"

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        *,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-12,
        tolerance_change: float = 0.0,
        c1: float = 1e-4,
        c2: float = 0.9,
        line_search_evals: int = 25,
        curvature_eps: float = 1e-12,
        loss_transform: str | None = None,
        max_params: int = MAX_PARAMS,
    ) -> None:
        c1 = check_in_range("c1", c1, 0.0, 1.0, low_open=True)
        c2 = check_in_range("c2", c2, 0.0, 1.0, low_open=True)
        if not c1 < c2:
            raise ValueError(f"c1 must be smaller than c2 (0 < c1 < c2 < 1), got c1={c1!r}, c2={c2!r}")
        if loss_transform not in LOSS_TRANSFORMS:
            raise ValueError(f"loss_transform must be one of {LOSS_TRANSFORMS}, got {loss_transform!r}")
        defaults = {
            "lr": check_positive("lr", lr),
            "max_iter": check_positive_int("max_iter", max_iter),
            "max_eval": None if max_eval is None else check_positive_int("max_eval", max_eval),
            "tolerance_grad": check_positive("tolerance_grad", tolerance_grad, allow_zero=True),
            "tolerance_change": check_positive("tolerance_change", tolerance_change, allow_zero=True),
            "c1": c1,
            "c2": c2,
            "line_search_evals": check_positive_int("line_search_evals", line_search_evals),
            "curvature_eps": check_in_range("curvature_eps", curvature_eps, 0.0, 1.0),
            "loss_transform": loss_transform,
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(f"{type(self).__name__} supports a single parameter group (as torch.optim.LBFGS does)")
        self._params: list[torch.Tensor] = self.param_groups[0]["params"]
        check_dtypes(type(self).__name__, self._params)
        self._numel = sum(p.numel() for p in self._params)
        limit = check_positive_int("max_params", max_params)
        if self._numel > limit:
            raise ValueError(
                f"{type(self).__name__} keeps a dense {self._numel} x {self._numel} inverse Hessian "
                f"({8 * self._numel**2 / 1e9:.1f} GB in float64) but max_params={limit}; use L-BFGS for large "
                "models, or raise max_params if the memory is there"
            )

    # -- flat views -------------------------------------------------------------------------------------------
    def _flat_params(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self._params])

    def _flat_grad(self) -> torch.Tensor:
        return torch.cat(
            [p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1) for p in self._params]
        )

    @torch.no_grad()
    def _set(self, x0: torch.Tensor, t: float = 0.0, d: torch.Tensor | None = None) -> None:
        """Set the parameters to ``x0 + t d`` (the one expression used for trial and accepted points), or ``x0``."""
        point = x0 if d is None else torch.add(x0, d, alpha=t)
        offset = 0
        for p in self._params:
            n = p.numel()
            p.copy_(point[offset : offset + n].view_as(p))
            offset += n

    # -- evaluation -------------------------------------------------------------------------------------------
    def _evaluate(self, closure: Callable[[], Any]) -> tuple[Any, float, torch.Tensor]:
        with torch.enable_grad():
            loss = closure()
        value = float(torch.as_tensor(loss).detach())
        return loss, value, self._flat_grad()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Up to ``max_iter`` iterations; ``closure`` re-evaluates the loss and its gradients (required)."""
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure that evaluates the loss and its gradients")
        group = self.param_groups[0]
        state = self.state[self._params[0]]
        for key in ("func_evals", "n_iter", "updates", "skipped", "resets", "wolfe_failures", "stalls"):
            state.setdefault(key, 0)
        for p in self._params:
            check_finite("params", p.detach(), hint="the parameters were already NaN/Inf before this step")
        transform = group["loss_transform"]
        orig_loss, raw, raw_grad = self._evaluate(closure)
        state["func_evals"] += 1
        if not math.isfinite(raw):
            raise NonFiniteGradientError(
                f"loss is {raw} at the starting point; the parameters are unchanged. Check the model and data "
                "(or train in float64)"
            )
        check_finite("gradient", raw_grad, hint="the parameters are unchanged; check the model and data")
        if float(raw_grad.abs().max()) <= group["tolerance_grad"]:
            return orig_loss
        f, g = _transform(raw, raw_grad, transform)
        if not math.isfinite(f):  # log of an exactly zero loss: nothing left to minimise
            return orig_loss
        H = state.get("H")
        if H is None:
            H = torch.eye(self._numel, dtype=g.dtype, device=g.device)
            state["H"] = H
            state["n_updates"] = 0
        evals = 1
        n = 0
        hg = g.clone() if state["n_updates"] == 0 else H @ g  # H g, carried from one iteration to the next
        while n < group["max_iter"]:
            n += 1
            state["n_iter"] += 1
            d = hg.neg()
            gtd = float(g @ d)
            if not (math.isfinite(gtd) and gtd < 0):  # not a descent direction: forget the curvature
                self._reset(state)
                H = state["H"]
                hg = g.clone()
                d = g.neg()
                gtd = float(g @ d)
            identity = state["n_updates"] == 0
            t0 = group["lr"] * min(1.0, 1.0 / float(g.abs().sum())) if identity else group["lr"]
            budget = group["line_search_evals"]
            if group["max_eval"] is not None:
                budget = min(budget, max(group["max_eval"] - evals, 1))
            x0 = self._flat_params()
            f_new, g_new, t, raw_new, raw_grad_new, used = self._line_search(closure, x0, t0, d, f, g, gtd, budget)
            evals += used
            state["func_evals"] += used
            if not f_new < f:  # no decrease along d
                self._set(x0)
                if not identity:  # the curvature may be stale: retry along -g next iteration
                    self._reset(state)
                    H = state["H"]
                    hg = g.clone()
                    continue
                state["stalls"] += 1
                break
            self._set(x0, t, d)
            armijo = f_new <= f + group["c1"] * t * gtd
            curvature = abs(float(g_new @ d)) <= -group["c2"] * gtd
            if not (armijo and curvature):
                state["wolfe_failures"] += 1
            s = d * t
            y = g_new - g
            sy = float(s @ y)
            hg_new = g_new.clone() if identity else H @ g_new
            update = None
            if sy > group["curvature_eps"] * float(s.norm() * y.norm()):
                update = inverse_hessian_update(H, s, y, g, t, self.rule, identity, hy=hg_new - hg)
            if update is None:
                state["skipped"] += 1
                hg = hg_new
            else:
                tau, basis, coefs = update
                hg = hg_new.div_(tau).add_(basis @ (coefs * (basis.T @ g_new)))  # H' g_new without a product
                state["n_updates"] += 1
                state["updates"] += 1
                if state["updates"] % SYMMETRIZE_EVERY == 0:
                    symmetrize_(H)
            change = abs(f_new - f)
            f, g, raw, raw_grad = f_new, g_new, raw_new, raw_grad_new
            if float(raw_grad.abs().max()) <= group["tolerance_grad"] or not math.isfinite(f):
                break
            if change < group["tolerance_change"] or float(s.abs().max()) <= group["tolerance_change"]:
                break
            if group["max_eval"] is not None and evals >= group["max_eval"]:
                break
        return orig_loss

    def _reset(self, state: dict[str, Any]) -> None:
        state["H"] = torch.eye(self._numel, dtype=state["H"].dtype, device=state["H"].device)
        state["n_updates"] = 0
        state["resets"] += 1

    def _line_search(
        self,
        closure: Callable[[], Any],
        x0: torch.Tensor,
        t0: float,
        d: torch.Tensor,
        f: float,
        g: torch.Tensor,
        gtd: float,
        budget: int,
    ) -> tuple[float, torch.Tensor, float, float, torch.Tensor, int]:
        """Strong-Wolfe search along ``d`` from ``x0``; the parameters are left at ``x0``.

        Returns ``(f, g, t, loss, dloss, evaluations)`` at the accepted point (the trained objective, its gradient,
        the step, the loss and its gradient); ``t = 0`` and ``f`` itself when nothing decreased.
        """
        group = self.param_groups[0]
        transform = group["loss_transform"]
        raw_at: dict[float, tuple[float, torch.Tensor]] = {0.0: (math.nan, g)}
        used = 0

        def obj_func(_x: Any, t: Any, direction: torch.Tensor) -> tuple[float, torch.Tensor]:
            nonlocal used
            t = float(t)
            self._set(x0, t, direction)
            _, value, grad = self._evaluate(closure)
            used += 1
            if not (math.isfinite(value) and bool(torch.isfinite(grad).all())):
                raise _NonFiniteTrial
            raw_at[t] = (value, grad)
            return _transform(value, grad, transform)

        step = t0
        try:
            for _ in range(_RETRIES):
                left = budget - used
                if left <= 0:
                    break
                try:
                    f_new, g_new, t, _ = _strong_wolfe(  # type: ignore[no-untyped-call]
                        obj_func, x0, step, d, f, g, torch.tensor(gtd, dtype=g.dtype), group["c1"], group["c2"],
                        tolerance_change=1e-14, max_ls=left,
                    )  # fmt: skip
                except _NonFiniteTrial:
                    step *= 0.1
                    continue
                t = float(t)
                if t > 0 and t in raw_at and float(f_new) < f:
                    value, grad = raw_at[t]
                    return float(f_new), g_new, t, value, grad, used
                break
        finally:
            self._set(x0)
        return f, g, 0.0, math.nan, g, used

    def report(self) -> dict[str, int]:
        """Counters so far: iterations, evaluations, updates, skipped pairs, resets, strong-Wolfe failures, stalls.

        ``wolfe_failures`` counts accepted steps that decreased the objective without meeting both strong-Wolfe
        conditions (the search ran out of evaluations); ``stalls`` counts iterations where no step along the
        steepest-descent direction decreased the objective (converged to round-off).
        """
        state = self.state[self._params[0]]
        keys = ("n_iter", "func_evals", "updates", "skipped", "resets", "wolfe_failures", "stalls")
        return {k: int(state.get(k, 0)) for k in keys}

    def inverse_hessian(self) -> torch.Tensor:
        """A copy of the current inverse-Hessian approximation (the identity before the first step)."""
        H = self.state[self._params[0]].get("H")
        if H is None:
            p = self._params[0]
            return torch.eye(self._numel, dtype=p.dtype, device=p.device)
        return torch.as_tensor(H).clone()


class SSBFGS(BFGS):
    """Self-scaled BFGS with Al-Baali's scaling ``tau = min(1, 1 / b)`` (Urbán et al. 2024's "SSBFGS_AB")."""

    rule: ClassVar[str] = "ssbfgs"


class SSBroyden(BFGS):
    """Self-scaled Broyden: ``phi`` and ``tau`` chosen per step (Urbán et al. 2024, eqs. 13-23, "SSBroyden2")."""

    rule: ClassVar[str] = "ssbroyden"


def check_dtypes(name: str, params: list[torch.Tensor], *, warn_float32: bool = True) -> None:
    """Refuse complex, integer and half-precision parameters; warn (:class:`PrecisionWarning`) on float32."""
    dtypes = {p.dtype for p in params}
    bad = sorted(str(dt) for dt in dtypes if dt.is_complex or not dt.is_floating_point)
    if bad:
        raise TypeError(f"{name} takes real floating parameters, got {', '.join(bad)}")
    low = sorted(str(dt) for dt in dtypes if dt in (torch.float16, torch.bfloat16))
    if low:
        raise TypeError(
            f"{name} refuses {', '.join(low)} parameters: its line search and curvature pairs need float64 "
            "(or at least float32); convert the model with .double()"
        )
    if warn_float32 and torch.float32 in dtypes:
        warn(
            f"{name} on float32 parameters stalls near 1e-7 relative loss changes (the line search cannot resolve "
            "smaller ones); use float64 (model.double(), or dde.config.set_default_float('float64')) for accuracy",
            PrecisionWarning,
        )
