"""Turn what a user names (``"adam"``, ``"lbfgs"``, a noisygrad rule, a torch optimizer) into a
``torch.optim.Optimizer`` over a DeepXDE model's trainable tensors, plus the warnings DeepXDE does not give.

DeepXDE's pytorch backend accepts a ``torch.optim.Optimizer`` instance in ``Model.compile`` but then wires
nothing for it: ``net.regularizer`` and ``external_trainable_variables`` are left to the caller, and an
``LBFGS`` instance is stepped as if it were first order. :func:`build_optimizer` does that wiring for the
names it knows and says how it will step the result (:class:`Built`).
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from noisygrad import LBFGS, SGD, Adam, Optimizer, TorchOptimizer
from noisygrad.checks import NonFiniteGradientError, check_finite, check_positive, check_positive_int
from noisygrad.optim.natural_gradient import EnergyNaturalGradient
from noisygrad.optim.quasi_newton import BFGS, SSBFGS, PrecisionWarning, SSBroyden

from .engd import PinnEnergyNaturalGradient

FIRST_ORDER_NAMES = ("adam", "adamw", "sgd")
LBFGS_NAMES = ("lbfgs", "L-BFGS", "L-BFGS-B")
QUASI_NEWTON = {"bfgs": BFGS, "ssbfgs": SSBFGS, "ssbroyden": SSBroyden}  # full-matrix, strong-Wolfe (core)
CHUNKED_NAMES = ("lbfgs", *QUASI_NEWTON, "engd")  # built here with max_iter = one DeepXDE step's chunk of iterations
NAMES = (*FIRST_ORDER_NAMES, "lbfgs", *QUASI_NEWTON, "engd")
DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 1e-2}
DETERMINISTIC_SAMPLERS = ("Hammersley", "Halton", "Sobol", "uniform")
LINE_SEARCH_EVALS = 25  # function evaluations a one-iteration strong-Wolfe step may spend


class PinnWarning(UserWarning):
    """A DeepXDE setting that silently trains less (or differently) than the user likely expects."""


@dataclass(frozen=True)
class Built:
    """A torch optimizer ready for a DeepXDE model, and how to step it.

    Attributes:
        optimizer: the ``torch.optim.Optimizer``.
        second_order: True for closure-driven quasi-Newton optimizers (L-BFGS), whose one ``step`` runs up
            to ``max_iter`` iterations with several loss evaluations.
        name: a short description for results and messages.
    """

    optimizer: torch.optim.Optimizer
    second_order: bool
    name: str


def trainable(model: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The network's parameters and the model's external trainable variables (unknowns of the PDE)."""
    return list(model.net.parameters()), list(model.external_trainable_variables or [])


def _l2_factor(model: Any) -> float:
    reg = getattr(model.net, "regularizer", None)
    if reg is None:
        return 0.0
    if reg[0] != "l2":
        raise NotImplementedError(f"noisygrad.pinn supports net.regularizer=('l2', c) only, got {reg!r}")
    return float(reg[1])


def is_lbfgs(optimizer: torch.optim.Optimizer) -> bool:
    """True for ``torch.optim.LBFGS`` (and subclasses): a closure-driven method with inner iterations."""
    return isinstance(optimizer, torch.optim.LBFGS)


def is_robust_lbfgs(optimizer: torch.optim.Optimizer) -> bool:
    """True for the core's noise-robust :class:`noisygrad.LBFGS` (same-batch curvature pairs)."""
    return isinstance(optimizer, LBFGS)


class CheckedLBFGS(torch.optim.LBFGS):
    """``torch.optim.LBFGS`` that refuses NaN/Inf instead of stepping on it.

    torch's L-BFGS takes a NaN loss or gradient into its line search and history without a word, and the
    parameters come back NaN. Here a ``step`` first checks the parameters, and each evaluation of the closure
    checks the loss and every gradient; on NaN/Inf it raises :class:`~noisygrad.NonFiniteGradientError` and puts
    the parameters and the optimizer's state back to where the step began. The arithmetic is torch's own.
    """

    @torch.no_grad()
    def step(self, closure: Any) -> Any:  # type: ignore[override]
        params = [p for group in self.param_groups for p in group["params"]]
        for p in params:
            check_finite("params", p, hint="the parameters were already NaN/Inf before this step")
        start = [p.detach().clone() for p in params]
        state = {p: copy.deepcopy(value) for p, value in self.state.items()}  # the same tensors as keys

        @torch.enable_grad()
        def checked() -> Any:
            loss = closure()
            check_finite("loss", torch.as_tensor(loss).detach())
            for p in params:
                if p.grad is not None:
                    check_finite("gradient", p.grad)
            return loss

        try:
            return super().step(checked)
        except NonFiniteGradientError:
            for p, p0 in zip(params, start, strict=True):
                p.copy_(p0)
            self.state = defaultdict(dict, state)
            raise


def lbfgs(
    params: Sequence[torch.Tensor],
    *,
    max_iter: int,
    lr: float = 1.0,
    history_size: int = 100,
    tolerance_grad: float = 1e-8,
    tolerance_change: float = 0.0,
) -> torch.optim.LBFGS:
    """``torch.optim.LBFGS`` (as :class:`CheckedLBFGS`) with a strong-Wolfe line search and DeepXDE's tolerances.

    ``max_eval`` is ``max(5 max_iter / 4, 25)``: torch's own default (``5 max_iter / 4``) leaves a
    one-iteration step a single evaluation, so the line search returns a zero step whenever the unit step
    does not decrease the loss.

    Every setting is checked here, before torch sees it: ``params`` a non-empty sequence of tensors, ``max_iter``
    and ``history_size`` integers > 0, ``lr`` finite and > 0, the tolerances finite and >= 0.
    """
    if isinstance(params, torch.Tensor) or not isinstance(params, Iterable):
        raise TypeError(f"params must be a list of tensors, got {type(params).__name__}")
    params = list(params)
    if not params:
        raise ValueError("params must hold at least one tensor, got an empty list")
    if not all(isinstance(p, torch.Tensor) for p in params):
        raise TypeError("params must be a list of tensors; an entry is not a torch.Tensor")
    max_iter = check_positive_int("max_iter", max_iter)
    history_size = check_positive_int("history_size", history_size)
    lr = check_positive("lr", lr)
    tolerance_grad = check_positive("tolerance_grad", tolerance_grad, allow_zero=True)
    tolerance_change = check_positive("tolerance_change", tolerance_change, allow_zero=True)
    return CheckedLBFGS(
        params,
        lr=lr,
        max_iter=max_iter,
        max_eval=max(max_iter * 5 // 4, LINE_SEARCH_EVALS),
        tolerance_grad=tolerance_grad,
        tolerance_change=tolerance_change,
        history_size=history_size,
        line_search_fn="strong_wolfe",
    )


ROBUST_LBFGS_LR = 0.5  # fixed step of the noise-robust L-BFGS on mini-batches (it has no line search)
ROBUST_LBFGS_HISTORY = 10


def build_optimizer(
    model: Any, optimizer: object, *, lr: float | None = None, lbfgs_max_iter: int = 1000, minibatch: bool = False
) -> Built:
    """A torch optimizer over ``model``'s trainable tensors, from a name, a noisygrad rule or a torch optimizer.

    Args:
        model: a ``dde.Model`` (compiled or not).
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"``, ``"lbfgs"`` (``"L-BFGS"`` and ``"L-BFGS-B"`` are accepted
            with a warning for the latter), ``"bfgs"``, ``"ssbfgs"``, ``"ssbroyden"`` (the core's full-matrix
            quasi-Newton methods with a strong-Wolfe line search, :mod:`noisygrad.optim.quasi_newton`; full
            collocation set only; :func:`quasi_newton` builds one with options), ``"engd"`` (energy natural
            gradient / Gauss-Newton with per-point Jacobians, :mod:`noisygrad.pinn.engd`), a noisygrad
            :class:`~noisygrad.Optimizer` (wrapped in :class:`~noisygrad.TorchOptimizer`), or a
            ``torch.optim.Optimizer`` over the model's tensors.
        lr: learning rate for a named optimizer (Adam 1e-3, SGD 1e-2 by default; L-BFGS's step scale, 1 by
            default). An optimizer instance carries its own rate, so ``lr`` must then be None.
        lbfgs_max_iter: L-BFGS (and BFGS-family) iterations per ``step`` call.
        minibatch: the optimizer will see a fresh collocation batch each step. ``"lbfgs"`` is then the core's
            noise-robust :class:`noisygrad.LBFGS` (same-batch curvature pairs, fixed step ``lr``, default 0.5,
            history 10); on the full set it is ``torch.optim.LBFGS`` with a strong-Wolfe line search.

    ``net.regularizer=("l2", c)`` becomes ``weight_decay=c`` for named first-order optimizers; an instance
    is used as given (a warning says so when a regularizer is set).
    """
    net_params, external = trainable(model)
    l2 = _l2_factor(model)
    if lr is not None:
        lr = check_positive("lr", lr)
    if isinstance(optimizer, str):
        return _from_name(model, optimizer, lr, l2, net_params, external, lbfgs_max_iter, minibatch)
    if lr is not None:
        raise ValueError("lr must be None when optimizer is an instance: the instance carries its own learning rate")
    if l2 > 0:
        warnings.warn(
            f"net.regularizer=('l2', {l2}) is not applied to an optimizer instance; give the optimizer "
            f"weight_decay={l2} yourself (as DeepXDE's compile does for named optimizers)",
            PinnWarning,
            stacklevel=3,
        )
    if isinstance(optimizer, torch.optim.Optimizer):
        _check_covers(optimizer, net_params + external)
        if is_robust_lbfgs(optimizer):
            return Built(optimizer, True, "noisygrad.LBFGS")
        if is_quasi_newton(optimizer) or isinstance(optimizer, EnergyNaturalGradient):
            if minibatch:
                raise ValueError(_NO_MINIBATCH.format(name=type(optimizer).__name__))
            if isinstance(optimizer, EnergyNaturalGradient) and not isinstance(optimizer, PinnEnergyNaturalGradient):
                raise TypeError(
                    "a core EnergyNaturalGradient needs a closure returning residuals, which DeepXDE's training loop "
                    "does not give; use noisygrad.pinn.engd.PinnEnergyNaturalGradient(model, ...) or optimizer='engd'"
                )
            return Built(optimizer, True, type(optimizer).__name__)
        if is_lbfgs(optimizer):
            check_lbfgs_options(optimizer, stacklevel=4)
            return Built(optimizer, True, type(optimizer).__name__)
        return Built(optimizer, False, type(optimizer).__name__)
    if isinstance(optimizer, Optimizer):
        groups: list[dict[str, Any]] = [{"params": net_params}]
        if external:
            groups.append({"params": external})
        return Built(TorchOptimizer(groups, optimizer), False, type(optimizer).__name__)
    raise TypeError(
        f"optimizer must be one of {NAMES}, a noisygrad optimizer (noisygrad.Adam(...), ...) "
        f"or a torch.optim.Optimizer instance, got {type(optimizer).__name__}"
    )


def _from_name(
    model: Any,
    name: str,
    lr: float | None,
    l2: float,
    net_params: list[torch.Tensor],
    external: list[torch.Tensor],
    lbfgs_max_iter: int,
    minibatch: bool,
) -> Built:
    if name in LBFGS_NAMES:
        if name == "L-BFGS-B":
            warnings.warn(
                "DeepXDE's pytorch backend trains 0 steps, silently, with compile('L-BFGS-B'); noisygrad.pinn runs "
                "torch L-BFGS instead (bounds are not supported); pass optimizer='lbfgs' to silence this warning",
                PinnWarning,
                stacklevel=4,
            )
        if l2 > 0:
            raise ValueError(
                f"L-BFGS does not take weight decay, but net.regularizer=('l2', {l2}); remove the regularizer "
                "or train with a first-order optimizer"
            )
        if minibatch:
            robust = LBFGS(
                net_params + external, lr=ROBUST_LBFGS_LR if lr is None else lr, history_size=ROBUST_LBFGS_HISTORY
            )
            return Built(robust, True, "lbfgs (noise-robust)")
        check_positive_int("lbfgs_max_iter", lbfgs_max_iter)
        built = lbfgs(net_params + external, max_iter=lbfgs_max_iter, lr=1.0 if lr is None else lr)
        return Built(built, True, "lbfgs")
    if name in QUASI_NEWTON:
        return _quasi_newton(name, lr, l2, net_params + external, lbfgs_max_iter, minibatch)
    if name == "engd":
        if lr is not None:
            raise ValueError("lr must be None for 'engd': its step length is set by its Levenberg-Marquardt damping")
        if minibatch:
            raise ValueError(_NO_MINIBATCH.format(name="'engd'"))
        if l2 > 0:
            raise ValueError(_NO_DECAY.format(name="engd", l2=l2))
        check_positive_int("lbfgs_max_iter", lbfgs_max_iter)
        with warnings.catch_warnings():  # train() warns about float32 once, at the user's line
            warnings.simplefilter("ignore", PrecisionWarning)
            engd = PinnEnergyNaturalGradient(model, net_params + external, max_iter=lbfgs_max_iter)
        return Built(engd, True, "engd")
    if name not in FIRST_ORDER_NAMES:
        raise ValueError(
            f"optimizer must be one of {', '.join(repr(n) for n in NAMES)}, a noisygrad "
            f"optimizer or a torch.optim.Optimizer instance, got {name!r}"
        )
    rate = DEFAULT_LR[name] if lr is None else lr
    if name == "sgd":
        rule: Optimizer = SGD(rate, weight_decay=l2)
    elif name == "adamw":
        rule = Adam(rate, weight_decay=l2 if l2 > 0 else 1e-2, decoupled_weight_decay=True)
    else:
        rule = Adam(rate, weight_decay=l2)
    if external and l2 > 0:
        warnings.warn(
            f"net.regularizer=('l2', {l2}) also decays external_trainable_variables here (DeepXDE exempts them); "
            "remove the regularizer if the unknowns must not be shrunk",
            PinnWarning,
            stacklevel=4,
        )
    params = [{"params": net_params}] + ([{"params": external}] if external else [])
    return Built(TorchOptimizer(params, rule), False, name)


_NO_MINIBATCH = (
    "{name} runs on the full collocation set (its line search on one random batch would chase that batch's "
    "noise); drop batch_size, or use optimizer='lbfgs' (the noise-robust L-BFGS) on mini-batches"
)


def is_quasi_newton(optimizer: torch.optim.Optimizer) -> bool:
    """True for the core's full-matrix quasi-Newton methods (:class:`noisygrad.optim.quasi_newton.BFGS` and its
    self-scaled variants): closure-driven, ``max_iter`` iterations per ``step``, stepped like L-BFGS."""
    return isinstance(optimizer, BFGS)


def quasi_newton(model: Any, name: str = "ssbfgs", **options: Any) -> BFGS:
    """A full-matrix quasi-Newton optimizer over ``model``'s trainable tensors, with options.

    ``ngp.train(model, optimizer="ssbfgs")`` builds one with the defaults; this builds one with options, e.g.
    ``ngp.train(model, optimizer=quasi_newton(model, "ssbroyden", loss_transform="sqrt", max_iter=500))``.

    Args:
        model: a ``dde.Model`` (its network's parameters and ``external_trainable_variables``).
        name: ``"bfgs"``, ``"ssbfgs"`` or ``"ssbroyden"``.
        **options: the core optimizer's keyword arguments (``max_iter``, ``loss_transform``, ``c1``, ``c2``, ...).
    """
    if name not in QUASI_NEWTON:
        raise ValueError(f"name must be one of {', '.join(repr(n) for n in QUASI_NEWTON)}, got {name!r}")
    if _l2_factor(model) > 0:
        raise ValueError(_NO_DECAY.format(name=name, l2=_l2_factor(model)))
    net_params, external = trainable(model)
    with warnings.catch_warnings():  # train() warns about float32 once, at the user's line
        warnings.simplefilter("ignore", PrecisionWarning)
        return QUASI_NEWTON[name](net_params + external, **options)


_NO_DECAY = (
    "{name} does not take weight decay, but net.regularizer=('l2', {l2}); remove the regularizer or train with a "
    "first-order optimizer"
)


def _quasi_newton(
    name: str, lr: float | None, l2: float, params: list[torch.Tensor], max_iter: int, minibatch: bool
) -> Built:
    if minibatch:
        raise ValueError(_NO_MINIBATCH.format(name=repr(name)))
    if l2 > 0:
        raise ValueError(_NO_DECAY.format(name=name, l2=l2))
    check_positive_int("lbfgs_max_iter", max_iter)
    with warnings.catch_warnings():  # train() warns about float32 once, at the user's line
        warnings.simplefilter("ignore", PrecisionWarning)
        built = QUASI_NEWTON[name](params, lr=1.0 if lr is None else lr, max_iter=max_iter)
    return Built(built, True, name)


def _check_covers(optimizer: torch.optim.Optimizer, tensors: list[torch.Tensor]) -> None:
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = [t for t in tensors if id(t) not in held]
    if missing:
        raise ValueError(
            f"the optimizer does not hold {len(missing)} of the model's {len(tensors)} trainable tensors; build it "
            "over model.net.parameters() (plus any external_trainable_variables)"
        )


def check_lbfgs_options(optimizer: torch.optim.Optimizer, *, stacklevel: int = 2) -> None:
    """Warn about torch L-BFGS settings that quietly cripple it."""
    group = optimizer.param_groups[0]
    if group["max_eval"] <= 1 and group["line_search_fn"] == "strong_wolfe":
        warnings.warn(
            f"torch.optim.LBFGS with max_iter={group['max_iter']} and max_eval={group['max_eval']} gives the "
            "strong-Wolfe line search one trial point, so it returns a zero step whenever the unit step fails; "
            f"set max_eval={LINE_SEARCH_EVALS} (or use noisygrad.pinn.lbfgs(...))",
            PinnWarning,
            stacklevel=stacklevel,
        )


def check_precision(model: Any, *, stacklevel: int = 2) -> None:
    """Warn when L-BFGS is about to run in float32 (it stops after a few hundred iterations there)."""
    dtypes = {p.dtype for p in model.net.parameters()}
    if torch.float32 in dtypes or torch.float16 in dtypes:
        warnings.warn(
            "L-BFGS in float32 stops early (its line search cannot resolve the loss changes); call "
            'dde.config.set_default_float("float64") before building the network and data',
            PinnWarning,
            stacklevel=stacklevel,
        )


def check_sampling(model: Any, callbacks: Sequence[object] | None, *, stacklevel: int = 2) -> None:
    """Warn when a PDEPointResampler would redraw the very same (quasi-random or grid) points."""
    dde_callbacks = [cb for cb in callbacks or [] if type(cb).__name__ == "PDEPointResampler"]
    sampler = getattr(model.data, "train_distribution", None)
    if dde_callbacks and sampler in DETERMINISTIC_SAMPLERS:
        warnings.warn(
            f"PDEPointResampler redraws the same points with train_distribution={sampler!r}, so it adds no "
            "fresh points; build the data with train_distribution='pseudo' (or 'LHS'), or use "
            "noisygrad.pinn.train(..., batch_size=b) for random collocation mini-batches",
            PinnWarning,
            stacklevel=stacklevel,
        )


def check_model(model: Any, callbacks: Sequence[object] | None = None) -> None:
    """All of DeepXDE's silent traps this plugin knows, for a model compiled by DeepXDE itself.

    Warns (:class:`PinnWarning`) about ``compile("L-BFGS-B")`` on pytorch (0 steps), L-BFGS in float32,
    an ``LBFGS`` instance with ``max_eval`` at 1, and a resampler over a deterministic sampler.
    """
    from ._deepxde import deepxde

    if not isinstance(model, deepxde().Model):
        raise TypeError(f"model must be a dde.Model, got {type(model).__name__}")
    if model.opt_name == "L-BFGS-B":
        warnings.warn(
            "DeepXDE's pytorch backend trains 0 steps, silently, with compile('L-BFGS-B'); compile('L-BFGS') or "
            "noisygrad.pinn.train(model, optimizer='lbfgs') instead",
            PinnWarning,
            stacklevel=2,
        )
    opt = model.opt
    if model.opt_name in ("L-BFGS", "L-BFGS-B") or (opt is not None and is_lbfgs(opt)):
        check_precision(model, stacklevel=3)
    if opt is not None and is_lbfgs(opt):
        check_lbfgs_options(opt, stacklevel=3)
    check_sampling(model, callbacks, stacklevel=3)
