"""What :func:`~noisygrad.minimize` checks before and during a run, and how it explains a NaN.

Before the first step, ``x0`` is checked against what the objective states about its parameters, so a wrong
length or dtype is reported naming ``x0`` instead of as a torch shape or dtype error deep in the user's loss:

* the number of parameters, where the objective knows it: a :class:`~noisygrad.GLM`'s ``n_features``, an
  ``n_params`` attribute (an objective's own, or its :class:`~noisygrad.ModuleLoss`'s), or a ``num_parameters``
  attribute (the quantum plugin's ``EnergyObjective``: the ansatz's parameters);
* the dtype and device, where the objective fixes them: a :class:`~noisygrad.GLM` computes in its data's dtype
  on its data's device.

Other objectives (a :class:`~noisygrad.FiniteSum` with the user's own loss, an :class:`~noisygrad.Energy`, a
black box) state neither; if the first gradient estimate fails, the error gets a note (PEP 678) comparing
``x0`` with the objective's data, so the same mistakes are still named.

The dtype policy: ``x0`` must be real (complex parameters are refused; split them into real and imaginary
parts), and float16 / bfloat16 tensors are refused: the loop keeps the parameters and the optimizer's state in
``x0``'s dtype, and in float16 Adam's squared gradients overflow above ``|g| = 256`` while its ``eps = 1e-8``
underflows to 0, so the run turns to NaN; float32 is the smallest dtype the loop takes. A gradient estimate that
comes back complex for the real parameters is refused naming the estimator.

When a gradient or value is NaN/Inf, :func:`explain_non_finite` tells the three causes apart: at ``x0``, before
any step, the objective or its data give NaN there (the learning rate has not acted yet); later, data that hold
NaN/Inf (a mini-batch that drew them for the first time); otherwise the run diverged at that step.
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import torch

from noisygrad.checks import NonFiniteGradientError, as_parameter_vector
from noisygrad.estimators.base import Estimate, Estimator
from noisygrad.optim.base import Optimizer, State

__all__ = [
    "as_start_point",
    "estimate_checked",
    "explain_non_finite",
    "note_first_estimate_failure",
    "stated_dimension",
    "stated_dtype_and_device",
    "update_checked",
]

_HALF = (torch.float16, torch.bfloat16)


def _is_complex(x0: object) -> bool:
    if isinstance(x0, torch.Tensor):
        return x0.is_complex()
    if isinstance(x0, complex):
        return True
    try:
        return bool(np.iscomplexobj(cast(Any, x0)))
    except (TypeError, ValueError):
        return False


def stated_dimension(objective: object) -> tuple[int, str] | None:
    """``(number of parameters, where that number comes from)`` if the objective states it, else ``None``."""
    candidates = (
        (objective, "n_features", "the GLM's columns of X"),
        (objective, "n_params", "the objective's n_params"),
        (getattr(objective, "loss", None), "n_params", "the module's parameters (ModuleLoss.n_params)"),
        (objective, "num_parameters", "the objective's num_parameters"),
    )
    for owner, attribute, source in candidates:
        value = getattr(owner, attribute, None)
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            return int(value), source
    return None


def stated_dtype_and_device(objective: object) -> tuple[torch.dtype, torch.device] | None:
    """The dtype and device the objective computes in, where it fixes them (a GLM: its data's)."""
    from noisygrad.glm import GLM

    if isinstance(objective, GLM):
        return objective.X.dtype, objective.X.device
    return None


def as_start_point(x0: object, objective: object) -> torch.Tensor:
    """``x0`` as the run's first iterate (a detached 1-D copy), checked against ``objective``.

    Raises ``TypeError`` for complex or float16/bfloat16 ``x0`` and for a dtype or device other than the one the
    objective computes in; ``ValueError`` for a length other than the objective's number of parameters.
    """
    if _is_complex(x0):
        raise TypeError(
            "x0 must be real: minimize works on real parameters (split complex parameters into their real and "
            "imaginary parts, a real vector twice as long)"
        )
    if isinstance(x0, torch.Tensor) and x0.dtype in _HALF:
        raise TypeError(
            f"x0 is {x0.dtype}: minimize keeps the parameters and the optimizer's state in x0's dtype, and in half "
            "precision Adam's squared gradients overflow (|g| > 256) and its eps underflows, so the run turns to NaN; "
            "pass x0.float() (float32 or float64) and an objective that computes in that dtype"
        )
    x = as_parameter_vector("x0", x0)
    dimension = stated_dimension(objective)
    if dimension is not None and x.numel() != dimension[0]:
        raise ValueError(
            f"x0 must have {dimension[0]} entries, one per parameter ({dimension[1]}); got shape {tuple(x.shape)}"
        )
    fixed = stated_dtype_and_device(objective)
    if fixed is not None and (x.dtype, x.device) != fixed:
        raise TypeError(
            f"x0 must be {fixed[0]} on {fixed[1]}, the dtype and device the objective's data are in; "
            f"got {x.dtype} on {x.device} (pass x0.to(X.dtype, X.device) or build the objective in x0's dtype)"
        )
    return x


def _describe(tensor: torch.Tensor) -> str:
    return f"shape {tuple(tensor.shape)}, {tensor.dtype} on {tensor.device}"


def _data(objective: object) -> tuple[torch.Tensor, ...]:
    data = getattr(objective, "data", None)
    if isinstance(data, tuple) and all(isinstance(t, torch.Tensor) for t in data):
        return data
    return ()


def note_first_estimate_failure(exc: BaseException, x: torch.Tensor, objective: object) -> None:
    """Add a note to an error raised by the first gradient estimate: ``x0`` against the objective's data."""
    lines = [f"noisygrad.minimize: this came from the first gradient estimate, at x0 ({_describe(x)})."]
    data = _data(objective)
    if data:
        lines.append(
            "The objective's data: " + "; ".join(f"data[{i}] {_describe(t)}" for i, t in enumerate(data)) + "."
        )
        floating = {t.dtype for t in data if t.is_floating_point()}
        if floating and x.dtype not in floating:
            names = ", ".join(sorted(str(d) for d in floating))
            lines.append(f"x0 is {x.dtype} but the data are {names}: pass x0 in the data's dtype.")
        devices = {t.device for t in data}
        if x.device not in devices:
            names = ", ".join(sorted(str(d) for d in devices))
            lines.append(f"x0 is on {x.device} but the data are on {names}: put them on one device.")
    dimension = stated_dimension(objective)
    if dimension is None:
        lines.append(
            "The objective does not state its number of parameters: check that x0's length is the one its loss expects."
        )
    exc.add_note(" ".join(lines))


def _non_finite_data(objective: object) -> str | None:
    """Which data tensors of the objective hold NaN/Inf (one pass over the data, on the failure path only)."""
    found = []
    for i, tensor in enumerate(_data(objective)):
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                found.append(f"data[{i}] has {bad} of {tensor.numel()}")
    return "; ".join(found) if found else None


def explain_non_finite(
    exc: NonFiniteGradientError, *, step: int, at_x0: bool, objective: object
) -> NonFiniteGradientError:
    """The same error type with a message that says where the NaN/Inf came from.

    Args:
        exc: the error a gradient estimate (or a check of it) raised.
        step: the steps taken before the failing estimate (the iterate is the one after ``step`` steps).
        at_x0: the failing estimate was the run's first, at ``x0`` (a fresh run, not a resumed one).
        objective: the estimator's objective, whose data are scanned for NaN/Inf.
    """
    detail = str(exc).split("; ", 1)[0]  # the finding, without the generic hint after it
    bad_data = _non_finite_data(objective)
    if at_x0:
        where = f"its data hold NaN/Inf ({bad_data} non-finite entries)" if bad_data else "the objective gives NaN/Inf"
        message = (
            f"the objective/data give NaN at x0, before any step: {detail}; {where}. The learning rate has not "
            "acted yet: check the objective and its data at x0"
        )
    elif bad_data:
        message = (
            f"non-finite values at step {step}: {detail}; the objective's data hold NaN/Inf ({bad_data} non-finite "
            "entries), which the estimates drew only now: clean the data (the learning rate is not the cause)"
        )
    else:
        message = (
            f"diverged at step {step}: {detail} at the iterate after {step} steps, from a finite x0: lower the "
            "learning rate, check the objective for overflow, or clip gradients"
        )
    return type(exc)(message)


def _finite(tensor: torch.Tensor) -> bool:
    """No NaN/Inf in ``tensor`` (one reduction; the entrywise test only when the sum is not finite).

    ``math.isfinite(float(...))`` of the sum costs about a third of ``torch.isfinite`` on a 0-d tensor.
    """
    total = tensor.sum()
    if not total.is_complex() and math.isfinite(float(total)):
        return True
    return bool(torch.isfinite(tensor).all())


def _check_gradient(grad: torch.Tensor, value: float | None, x: torch.Tensor, estimator: object, at_x0: bool) -> None:
    """Refuse a complex gradient for real parameters (naming the estimator); at ``x0`` a NaN/Inf value too."""
    if grad.is_complex() and not x.is_complex():
        raise TypeError(
            f"{type(estimator).__name__} returned a complex gradient ({grad.dtype}) for the real parameters "
            f"({x.dtype}); minimize keeps the parameters real: return a real gradient (split complex parameters "
            "into their real and imaginary parts)"
        )
    if at_x0 and value is not None and not np.isfinite(value):
        raise NonFiniteGradientError(f"the objective's value at x0 is {value}")


def estimate_checked(
    estimator: Estimator, x: torch.Tensor, generator: torch.Generator, *, step: int, at_x0: bool
) -> Estimate:
    """``estimator.estimate(x, generator)``, its NaN/Inf explained and, at ``x0``, its other errors annotated.

    A complex gradient for real parameters raises ``TypeError`` naming the estimator; at ``x0`` a NaN/Inf value
    raises too (later values are only recorded). Finiteness of the gradient is left to the estimator's own check
    and to :func:`update_checked`, so a step pays for one extra reduction only.
    """
    objective = getattr(estimator, "objective", None)
    try:
        est = estimator.estimate(x, generator)
        _check_gradient(est.grad, est.value, x, estimator, at_x0)
    except NonFiniteGradientError as exc:
        raise explain_non_finite(exc, step=step, at_x0=at_x0, objective=objective) from exc
    except Exception as exc:
        if at_x0:
            note_first_estimate_failure(exc, x, objective)
        raise
    return est


def update_checked(
    optimizer: Optimizer, x: torch.Tensor, est: Estimate, state: State, *, estimator: Estimator, step: int, at_x0: bool
) -> tuple[torch.Tensor, State]:
    """``optimizer.update(x, est.grad, state)``; a NaN/Inf candidate raises, saying where it came from.

    ``x`` is finite here (``x0`` is checked and so is every candidate), so a NaN/Inf the rule reports is the
    gradient's; a rule that does not check its gradient gives a NaN/Inf candidate, and the gradient is then
    examined to tell a NaN gradient from an update that overflowed (divergence at step ``step + 1``). A rule that
    turns a NaN/Inf gradient into a finite candidate (one that skips or clips such a step) is let through.
    """
    objective = getattr(estimator, "objective", None)
    try:
        candidate, new_state = optimizer.update(x, est.grad, state)
        finite = _finite(candidate)
        if not finite and not _finite(est.grad):
            bad = int((~torch.isfinite(est.grad)).sum())
            raise NonFiniteGradientError(
                f"gradient of {type(estimator).__name__} has {bad} non-finite entr{'y' if bad == 1 else 'ies'} "
                f"(NaN or Inf) out of {est.grad.numel()}"
            )
    except NonFiniteGradientError as exc:
        raise explain_non_finite(exc, step=step, at_x0=at_x0, objective=objective) from exc
    if not finite:
        raise NonFiniteGradientError(
            f"diverged at step {step + 1}: the update made the parameters NaN/Inf from a finite gradient; lower the "
            "learning rate, check the objective for overflow, or clip gradients"
        )
    return candidate, new_state
