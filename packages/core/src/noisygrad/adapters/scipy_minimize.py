"""``Minimizer``: a noisygrad optimizer as a ``scipy.optimize.minimize`` method and as a minimizer callable.

Two callers, one object:

* ``scipy.optimize.minimize(fun, x0, args=..., method=Minimizer(...), jac=..., bounds=..., callback=...)``:
  scipy calls a callable ``method`` as ``method(fun, x0, args=, jac=, hess=, hessp=, bounds=, constraints=,
  callback=, **options)`` (after turning ``jac=True`` into a memoised value-and-gradient pair, before it
  standardises ``bounds``) and returns what it returns;
* ``qiskit_algorithms`` (its ``Minimizer`` protocol) and scipy-style code call ``minimizer(fun, x0, jac=None,
  bounds=None)`` directly; every keyword of the first form works here as well.

The result is a ``scipy.optimize.OptimizeResult`` whose fields mean what scipy's built-in methods mean
(``x fun jac nit nfev njev status success message``) plus the run's ``history``. The run is
:func:`~noisygrad.minimize`'s, with ``bounds`` as a :class:`~noisygrad.Projection` and the reported ``fun`` as a
:class:`~noisygrad.FinalEstimate`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import torch
from scipy.optimize import Bounds as ScipyBounds
from scipy.optimize import OptimizeResult

from noisygrad.checks import NonFiniteGradientError, check_finite, check_positive_int
from noisygrad.estimators.base import Cost, Estimate, Estimator, Stateless
from noisygrad.estimators.differences import CentralDifference
from noisygrad.loop import StepInfo, minimize
from noisygrad.loop_parts import FinalEstimate, Measurement, Projection
from noisygrad.objectives import NoisyBlackBox
from noisygrad.optim.base import Optimizer

Bounds: TypeAlias = Sequence[tuple[float | None, float | None]] | ScipyBounds
EstimatorFactory = Callable[[NoisyBlackBox], Estimator]
Fun = Callable[..., Any]

#: ``OptimizeResult.status`` codes of :class:`Minimizer` and their messages.
STATUS_MESSAGES = {
    0: "Took all {maxiter} steps of {rule}.",
    2: "The value at the returned point is not finite.",
    99: "`callback` raised `StopIteration`.",  # scipy's own code and message (scipy.optimize.minimize)
}

_FINITE_DIFFERENCE_NAMES = ("2-point", "3-point", "cs")  # scipy's jac strings: our gradient= estimator serves


def box_from_bounds(bounds: Bounds | None, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(low, high)`` tensors from ``bounds``, checked against ``x0``.

    ``bounds`` is a ``scipy.optimize.Bounds`` (``lb`` and ``ub`` broadcast to ``x0``'s shape; ``keep_feasible`` is
    moot, as every iterate is projected into the box) or scipy's older form, one ``(low, high)`` pair per
    parameter with ``None`` (or an infinity) for no bound.
    """
    if bounds is None:
        return None
    n = x0.numel()
    if isinstance(bounds, ScipyBounds):
        try:
            lb = np.broadcast_to(np.asarray(bounds.lb, dtype=np.float64), (n,))
            ub = np.broadcast_to(np.asarray(bounds.ub, dtype=np.float64), (n,))
        except ValueError as exc:
            raise ValueError(
                f"bounds (a scipy.optimize.Bounds) must broadcast to x0's {n} entries, got lb shape "
                f"{np.shape(bounds.lb)} and ub shape {np.shape(bounds.ub)}"
            ) from exc
    else:
        try:
            pairs = [tuple(pair) for pair in bounds]
        except TypeError as exc:
            kind = type(bounds).__name__
            raise TypeError(
                f"bounds must be a scipy.optimize.Bounds or a sequence of (low, high) pairs, got {kind}"
            ) from exc
        if len(pairs) != n or any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"bounds must give one (low, high) pair per parameter ({n}), got {len(pairs)}")
        lb = np.array([-np.inf if lo is None else float(lo) for lo, _ in pairs])
        ub = np.array([np.inf if hi is None else float(hi) for _, hi in pairs])
    low = torch.tensor(lb, dtype=x0.dtype)
    high = torch.tensor(ub, dtype=x0.dtype)
    if bool((low > high).any()) or bool(torch.isnan(low).any() | torch.isnan(high).any()):
        raise ValueError("bounds must satisfy low <= high for every parameter (None means unbounded)")
    return low, high


def scalar_value(value: object) -> float:
    """``fun``'s return value as a float: a real number, a numpy scalar or an array of size 1 (numpy 2 safe)."""
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"fun must return a scalar (or an array of size 1), got an array of shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"fun must return a real number, got {arr.dtype} ({type(value).__name__})")
    return float(arr.item())


class _ValueAndGradient:
    """``fun(x, *args) -> (value, gradient)`` (``jac=True``) split into a value and a gradient, one call per point.

    The pair at the last point is kept, so asking for the value and then the gradient at one point (or the
    reverse) calls ``fun`` once, as scipy's ``MemoizeJac`` does.
    """

    def __init__(self, fun: Fun) -> None:
        self.fun = fun
        self.x: np.ndarray | None = None
        self.pair: tuple[object, object] = (None, None)

    def _at(self, x: np.ndarray, *args: object) -> tuple[object, object]:
        if self.x is None or not np.array_equal(self.x, x):
            out = self.fun(x, *args)
            if not isinstance(out, tuple | list) or len(out) != 2:
                raise TypeError(f"with jac=True, fun must return (value, gradient), got {type(out).__name__}")
            self.x, self.pair = np.array(x, copy=True), (out[0], out[1])
        return self.pair

    def value(self, x: np.ndarray, *args: object) -> object:
        return self._at(x, *args)[0]

    def gradient(self, x: np.ndarray, *args: object) -> object:
        return self._at(x, *args)[1]


class _Jacobian(Stateless):
    """The caller's ``jac`` as an estimator: one ``jac`` call per estimate, checked for shape and finiteness."""

    def __init__(self, objective: NoisyBlackBox, jac: Fun, args: tuple[object, ...], counts: dict[str, int]):
        self.objective = objective
        self.jac = jac
        self.args = args
        self.counts = counts

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        return Estimate(check_finite("gradient returned by jac", self.gradient(params)), None, Cost())

    def gradient(self, params: torch.Tensor) -> torch.Tensor:
        """One ``jac`` call (counted in ``njev``), checked for type and shape; NaN/Inf are left to the caller."""
        self.counts["njev"] += 1
        raw = np.asarray(self.jac(params.numpy().copy(), *self.args))
        if raw.dtype.kind == "c":
            raise TypeError(f"jac returned a complex gradient ({raw.dtype}); Minimizer works on real parameters")
        grad = torch.as_tensor(np.asarray(raw, dtype=np.float64))
        if grad.shape != params.shape:
            raise ValueError(f"jac returned shape {tuple(grad.shape)}, expected {tuple(params.shape)} like x0")
        return grad


class _ScipyCallback:
    """The caller's ``callback`` called as scipy calls it; calling returns ``True`` when it raised ``StopIteration``.

    A callback whose only parameter is named ``intermediate_result`` gets an ``OptimizeResult`` (``wants_value``:
    it holds ``fun`` at ``x``); any other gets a copy of ``x`` (the legacy ``callback(xk)``). This is the rule of
    scipy's own ``_wrap_callback``.
    """

    def __init__(self, callback: Callable[..., object]) -> None:
        if not callable(callback):
            raise TypeError(
                f"callback must be callable as callback(intermediate_result) or callback(xk), got {callback!r}"
            )
        try:
            self.wants_value = set(inspect.signature(callback).parameters) == {"intermediate_result"}
        except (TypeError, ValueError):  # a builtin without a signature: the legacy form
            self.wants_value = False
        self.callback = callback

    def __call__(self, result: OptimizeResult) -> bool:
        try:
            if self.wants_value:
                self.callback(intermediate_result=result)
            else:
                self.callback(np.copy(result.x))
        except StopIteration:
            return True
        return False


@dataclass
class _Last:
    """What the run's record keeps for the result: whether scipy's callback stopped the run."""

    halted: bool = False


class History(list[dict[str, Any]]):
    """The result's ``history``: one dict per step (``nit``, ``grad_norm``, ``nfev``), a plain list in every use,
    whose printed form is one line (steps, fields, the last step) so that printing a result does not print every
    step; ``list(result.history)`` or indexing gives the steps themselves."""

    def __repr__(self) -> str:
        if not self:
            return "History(0 steps)"
        last = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self[-1].items())
        return f"History({len(self)} steps of {', '.join(self[-1])}; last: {last})"

    __str__ = __repr__


def _refuse(name: str, value: object, why: str) -> None:
    if value is not None:
        raise ValueError(f"Minimizer does not take {name}= ({why}); leave it out (got {type(value).__name__})")


class Minimizer:
    """Run a noisygrad optimizer for ``maxiter`` steps on a plain Python objective; a scipy ``method``.

    Args:
        optimizer: the update rule.
        maxiter: steps per call (> 0); ``options={"maxiter": n}`` of ``scipy.optimize.minimize`` overrides it.
        gradient: how to get a gradient when ``jac`` is not given: a factory taking the objective wrapped
            as a :class:`~noisygrad.NoisyBlackBox` and returning an estimator (default: central
            differences with step ``1e-6``; use SPSA for noisy objectives).
        seed: seeds the generator handed to the gradient estimator.
        callback: noisygrad's own progress hook, called as ``callback(nit, x, fun_estimate)`` after every step
            (``fun_estimate`` is the estimator's value at the point before the step, ``None`` if it has none).
            scipy's callbacks go to the call's ``callback=`` instead.

    Calling it, ``minimizer(fun, x0, jac=None, bounds=None, *, args=(), callback=None, **options)``:

    * ``fun(x, *args)`` returns a real number (a numpy scalar or a size-1 array will do); with ``jac=True`` it
      returns ``(value, gradient)``. ``x0`` must be real and 1-D.
    * ``jac``: a callable ``jac(x, *args)`` (one call per step), ``True`` (see above), or ``None`` / ``False`` /
      scipy's ``"2-point"``-style names, which all mean the ``gradient`` estimator.
    * ``bounds``: a ``scipy.optimize.Bounds`` or ``(low, high)`` pairs (``None`` unbounded); ``x0`` and every
      iterate are projected onto the box.
    * ``callback``: scipy's forms, ``callback(intermediate_result)`` (a parameter of that name, as scipy
      detects it) or the legacy ``callback(xk)``, after every step; raising ``StopIteration`` stops the run.
      ``intermediate_result`` holds ``x``, ``fun`` (``fun`` evaluated at ``x``: one more evaluation per step,
      counted in ``nfev``; free with ``jac=True``, whose next gradient is at the same point), ``jac`` (the
      gradient the step used), ``nit``, ``nfev`` and ``njev``.
    * ``options``: ``maxiter`` (this call's steps) and ``disp`` (print the result's message). ``tol``, ``hess``,
      ``hessp`` and ``constraints`` are refused by name: a fixed number of first-order steps has no use for them.

    The result, a ``scipy.optimize.OptimizeResult``:

    * ``x``: the last iterate (float64, shape ``(n,)``); ``fun``: ``fun`` evaluated once more at ``x``
      (``np.float64``); ``jac``: the gradient at ``x`` (float64, shape ``(n,)``), as scipy's methods report it:
      one more ``jac`` call (free with ``jac=True``: the pair of ``fun``'s call at ``x``), or one more estimate
      by ``gradient`` (central differences: ``2n`` evaluations, counted in ``nfev``). NaN/Inf there are
      reported, not raised;
    * ``nit``: the steps taken (fewer than ``maxiter`` when a callback stopped the run);
    * ``nfev``: how many times ``fun`` was called for a value (with ``jac=True``, the value requests of
      scipy's memoised pair, as scipy's own methods count them); ``njev``: gradient evaluations, one per step
      and one for the result's ``jac``: ``jac`` calls, or estimates by ``gradient`` when there is no ``jac``
      (as scipy counts its finite-difference gradients in ``njev``);
    * ``status``: ``0`` all ``maxiter`` steps taken; ``2`` ``fun`` at ``x`` is NaN/Inf; ``99`` the callback raised
      ``StopIteration`` (scipy's code and message); ``success`` is ``status == 0``; ``message`` says which.
      Reaching ``maxiter`` is success here (the method takes a fixed number of steps; scipy's line-search
      methods report status 1 there).
    * ``history``: one dict per step (``nit``, ``grad_norm``, ``nfev``), a :class:`History` (a list that prints
      as one line, so printing the result stays short).

    A NaN/Inf gradient raises :class:`~noisygrad.NonFiniteGradientError` (from :func:`~noisygrad.minimize`:
    NaN at ``x0``, or divergence at a given step) rather than returning a failed result.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        maxiter: int = 100,
        gradient: EstimatorFactory | None = None,
        seed: int = 0,
        callback: Callable[[int, np.ndarray, float | None], None] | None = None,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a noisygrad optimizer, got {type(optimizer).__name__}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable as callback(nit, x, fun_estimate), got {callback!r}")
        self.optimizer = optimizer
        self.maxiter = check_positive_int("maxiter", maxiter)
        self.gradient = gradient or (lambda objective: CentralDifference(objective))
        self.seed = check_positive_int("seed", seed, allow_zero=True)
        self.callback = callback

    def __call__(
        self,
        fun: Fun,
        x0: Sequence[float] | np.ndarray,
        jac: Fun | bool | str | None = None,
        bounds: Bounds | None = None,
        *,
        args: tuple[object, ...] | object = (),
        hess: object = None,
        hessp: object = None,
        constraints: object = (),
        callback: Callable[..., object] | None = None,
        **options: Any,
    ) -> OptimizeResult:
        if not callable(fun):
            raise TypeError(f"fun must be callable as fun(x, *args) -> float, got {type(fun).__name__}")
        _refuse("hess", hess, "it takes first-order steps")
        _refuse("hessp", hessp, "it takes first-order steps")
        if not (constraints is None or (isinstance(constraints, list | tuple) and len(constraints) == 0)):
            raise ValueError(
                "Minimizer does not take constraints= (only bounds, by projection); "
                f"leave it out (got {type(constraints).__name__})"
            )
        maxiter, disp = self._options(options)
        extra = args if isinstance(args, tuple) else (args,)  # scipy's rule: a lone argument becomes a 1-tuple
        x = _start(x0)
        box = box_from_bounds(bounds, x)
        value_fun, jac_fun = _split_jac(fun, jac)
        scipy_callback = None if callback is None else _ScipyCallback(callback)
        counts = {"nfev": 0, "njev": 0}

        def value(point: np.ndarray) -> float:
            counts["nfev"] += 1
            return scalar_value(value_fun(point, *extra))

        def batch_fun(points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            return torch.tensor([value(p.numpy().copy()) for p in points], dtype=points.dtype)

        def measure(points: torch.Tensor, generator: torch.Generator) -> Measurement:  # NaN allowed: status 2
            return Measurement(batch_fun(points, generator), cost=Cost(evaluations=len(points)))

        objective = NoisyBlackBox(batch_fun)
        estimator = self.gradient(objective) if jac_fun is None else _Jacobian(objective, jac_fun, extra, counts)
        history = History()
        last = _Last()

        def record(info: StepInfo) -> bool:
            if jac_fun is None:
                counts["njev"] += 1  # one gradient estimate per step, as scipy counts its finite-difference ones
            grad = info.estimate.grad.numpy().copy()
            history.append({"nit": info.step, "grad_norm": float(np.linalg.norm(grad)), "nfev": counts["nfev"]})
            if self.callback is not None:
                self.callback(info.step, info.x.numpy().copy(), info.estimate.value)
            if scipy_callback is None:
                return False
            point = info.x.numpy().copy()
            intermediate = OptimizeResult(x=point, jac=grad.copy(), nit=info.step)
            if scipy_callback.wants_value:
                intermediate["fun"] = np.float64(value(point.copy()))
            intermediate.update(nfev=counts["nfev"], njev=counts["njev"])
            last.halted = scipy_callback(intermediate)
            return last.halted

        generator = torch.Generator().manual_seed(self.seed)  # minimize's own seeding, kept for the last gradient
        run = minimize(
            estimator,
            self.optimizer,
            x,
            steps=maxiter,
            generator=generator,
            callbacks=[record],
            projection=None if box is None else Projection(*box),
            final=FinalEstimate(measure),
        )
        fun_final = np.float64(run.fun_estimate)  # final= always gives one
        jac_final = _gradient_at(run.x, estimator, generator, counts)
        status = 99 if last.halted else (0 if np.isfinite(fun_final) else 2)
        message = STATUS_MESSAGES[status].format(maxiter=maxiter, rule=type(self.optimizer).__name__)
        if disp:
            print(f"{message} nit={run.nit} nfev={counts['nfev']} njev={counts['njev']} fun={fun_final}")
        return OptimizeResult(
            x=run.x.numpy().copy(),
            fun=fun_final,
            jac=jac_final,
            nit=run.nit,
            nfev=counts["nfev"],
            njev=counts["njev"],
            status=status,
            success=status == 0,
            message=message,
            history=history,
        )

    def _options(self, options: dict[str, Any]) -> tuple[int, bool]:
        """``(maxiter, disp)`` from scipy's ``options``; anything else is refused by name."""
        unknown = sorted(set(options) - {"maxiter", "disp"})
        if "tol" in unknown:
            raise ValueError(
                "Minimizer does not take tol= (it takes a fixed number of noisy-gradient steps, where a tolerance on "
                "an estimate means little); set maxiter, or stop early with a callback that raises StopIteration"
            )
        if unknown:
            raise ValueError(f"Minimizer does not take the option(s) {', '.join(unknown)}; it takes maxiter and disp")
        maxiter = self.maxiter if options.get("maxiter") is None else check_positive_int("maxiter", options["maxiter"])
        return maxiter, bool(options.get("disp", False))


def _gradient_at(
    x: torch.Tensor, estimator: Estimator, generator: torch.Generator, counts: dict[str, int]
) -> np.ndarray:
    """The result's ``jac``: the gradient at the returned ``x``, as scipy's methods report it (one more ``jac``
    call, or one more estimate whose evaluations count in ``nfev``; with ``jac=True`` the pair of the final
    value's call serves). NaN/Inf are reported, not raised, as ``fun`` is: the run is over."""
    if isinstance(estimator, _Jacobian):
        return estimator.gradient(x).numpy().copy()
    counts["njev"] += 1
    try:
        grad = estimator.estimate(x, generator).grad
    except NonFiniteGradientError:
        return np.full(x.numel(), np.nan)
    return np.asarray(grad.detach().cpu().numpy(), dtype=np.float64).copy()


def _start(x0: object) -> torch.Tensor:
    """``x0`` as a float64 tensor copy (real, 1-D): what ``fun`` and ``jac`` receive, as float64 arrays."""
    try:
        arr = np.asarray(x0.detach().cpu().numpy() if isinstance(x0, torch.Tensor) else x0)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"x0 must be a 1-D array of real numbers, got {type(x0).__name__}") from exc
    if arr.dtype.kind == "c":
        raise TypeError(f"x0 must be real, got {arr.dtype}: Minimizer works on real parameters")
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"x0 must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"x0 must be a non-empty 1-D array, got shape {arr.shape}")
    return torch.tensor(np.asarray(arr, dtype=np.float64))


def _split_jac(fun: Fun, jac: Fun | bool | str | None) -> tuple[Fun, Fun | None]:
    """``(value function, gradient function or None)`` from scipy's ``jac`` conventions."""
    if jac is True:
        pair = _ValueAndGradient(fun)
        return pair.value, pair.gradient
    if callable(jac):
        return fun, jac
    if jac is None or jac is False or (isinstance(jac, str) and jac in _FINITE_DIFFERENCE_NAMES):
        return fun, None
    raise TypeError(
        f"jac must be a callable jac(x, *args), True (fun returns (value, gradient)), None/False or one of "
        f"{', '.join(_FINITE_DIFFERENCE_NAMES)} (the gradient= estimator); got {jac!r}"
    )
