"""``TorchOptimizer``: any noisygrad optimizer as a ``torch.optim.Optimizer``, a citizen of ``torch.optim``.

It reads ``p.grad`` as left by ``backward()``, applies the noisygrad rule to each parameter tensor with its own
state (as ``torch.optim`` keeps per-parameter state) and writes the result back in place. What a ``torch.optim``
user relies on carries over:

* **parameter groups**: ``lr`` and every setting the rule lists in ``hyperparameters`` (``momentum``, ``betas``,
  ``weight_decay``, ...) are read per group at every step, so per-group settings, ``add_param_group`` and the
  cyclic schedulers (``OneCycleLR``/``CyclicLR`` cycle ``momentum`` or ``betas``) work; a group setting the rule
  cannot honour is refused by name when the group is added;
* **learning rates**: ``group["lr"]`` is the rate of each step, so ``torch.optim.lr_scheduler`` works unchanged,
  ``lr = 0`` included (a warm-up from 0, a frozen group). A rule with its own schedule writes the schedule's
  value into ``group["lr"]`` after each step instead; a torch scheduler on top of it gives a warning;
* ``maximize``, complex parameters (stepped as pairs of reals, as ``torch.optim`` does), closures, step hooks,
  ``pickle``/``copy.deepcopy`` (the rule travels along), and state dicts in the twin's format: a rule whose
  ``torch_twin`` is ``"Adam"`` keeps the keys and state of ``torch.optim.Adam``, so a state dict loads from one
  into the other.

The implementation flags of ``torch.optim`` are honoured where they change nothing (``foreach``: the per-tensor
arithmetic is the same) and refused by name where they would (``fused=True``, ``capturable=True``,
``differentiable=True``); sparse gradients are refused. :meth:`TorchOptimizer.drop_in` makes a class with the
twin's own signature and defaults (``TorchOptimizer.drop_in(noisygrad.Adam)(model.parameters(), lr=1e-3)``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch

from noisygrad.checks import check_finite, check_positive, warn
from noisygrad.optim.adam import Adam
from noisygrad.optim.base import Optimizer, Rule, is_constant_rate
from noisygrad.optim.sgd import SGD
from noisygrad.schedules import check_rate

# torch.optim's implementation flags: their default, and the values allowed here (None: any value).
_FLAG_DEFAULTS: dict[str, object] = {"foreach": None, "fused": None, "capturable": False, "differentiable": False}
_FLAG_ALLOWED: dict[str, tuple[object, ...] | None] = {
    "foreach": None,  # the per-tensor loop computes what torch's for-loop computes; foreach only changes speed
    "fused": (None, False),
    "capturable": (False,),
    "differentiable": (False,),
}
_WHY_REFUSED = {
    "fused": "TorchOptimizer runs the per-tensor arithmetic, not a fused kernel",
    "capturable": "TorchOptimizer steps with Python floats and cannot be captured in a CUDA graph",
    "differentiable": "TorchOptimizer steps under no_grad, so the step cannot be differentiated",
}


def _l2_in_gradient(rule: Rule) -> bool:
    """Whether ``rule`` adds an L2 weight decay to the gradient (``weight_decay`` without AdamW's decoupling)."""
    return bool(getattr(rule, "weight_decay", 0.0)) and not getattr(rule, "decoupled_weight_decay", False)


def _plain(value: Any, name: str = "a setting") -> Any:
    """A one-element tensor as a Python number (torch allows tensor ``lr``, ``betas``, ``weight_decay``)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} given as a tensor must hold one element, got shape {tuple(value.shape)}")
        return value.item()
    if isinstance(value, tuple | list):
        return tuple(_plain(v, f"{name}[{i}]") for i, v in enumerate(value))
    return value


def _twin(rule: Optimizer) -> type[torch.optim.Optimizer] | None:
    name = getattr(rule, "torch_twin", None)
    return None if name is None else getattr(torch.optim, name)


def _twin_defaults(twin: type[torch.optim.Optimizer]) -> dict[str, Any]:
    """The parameter-group defaults of a ``torch.optim`` class, read from an instance (they include keys, such
    as AdamW's ``decoupled_weight_decay``, that its signature does not show)."""
    return dict(twin([torch.nn.Parameter(torch.zeros(1))]).defaults)  # type: ignore[call-arg]


@functools.cache
def _torch_setting_names() -> frozenset[str]:
    """Every parameter-group setting of the installed ``torch.optim`` optimizers (``momentum``, ``betas``,
    ``weight_decay``, ...), read from their defaults: the names a user moving from ``torch.optim`` may put in a
    group. Read once, on first use."""
    names: set[str] = set()
    for attribute in dir(torch.optim):
        kind = getattr(torch.optim, attribute)
        if not (isinstance(kind, type) and issubclass(kind, torch.optim.Optimizer)) or kind is torch.optim.Optimizer:
            continue
        try:  # a 2-D parameter: some optimizers (Muon) take only matrices
            names.update(kind([torch.nn.Parameter(torch.zeros(2, 2))]).defaults)  # type: ignore[call-arg]
        except Exception:  # an optimizer that needs more to be built lists no defaults here
            continue
    return frozenset(names)


def _is_neutral(value: Any) -> bool:
    """``None``, ``False`` or zero: the value at which a setting a rule lacks changes nothing."""
    value = _plain(value)
    return value is None or (isinstance(value, bool | int | float) and value == 0)


def _scalar_dtype() -> torch.dtype:
    """The dtype of ``torch.optim``'s ``step`` counters (float32 unless the default dtype is float64)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class TorchOptimizer(torch.optim.Optimizer):
    """Wrap a noisygrad :class:`~noisygrad.Optimizer` for code that expects ``torch.optim``.

    Args:
        params: an iterable of tensors, of ``(name, tensor)`` pairs or of parameter-group dicts, as for any
            ``torch.optim`` optimizer. A group may set ``lr`` and any of the rule's ``hyperparameters``.
        optimizer: the noisygrad update rule (``noisygrad.Adam(lr=1e-3)``, ``noisygrad.SGLD(...)``, ...).
        maximize: step up the gradient instead of down (``torch.optim``'s flag).
        foreach, fused, capturable, differentiable: ``torch.optim``'s implementation flags (see the module
            docstring: ``foreach`` is accepted, the others only with their default values).

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = TorchOptimizer(model.parameters(), Adam(lr=1e-3))
        >>> loss = model(torch.randn(8, 3)).pow(2).mean()
        >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    rule: Optimizer

    def __init__(
        self,
        params: Iterable[Any],
        optimizer: Optimizer,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be a noisygrad optimizer (with init/update/lr), got {type(optimizer).__name__}"
            )
        self.rule = optimizer
        twin = _twin(optimizer)
        self._twin_defaults = {} if twin is None else _twin_defaults(twin)
        defaults = {**self._twin_defaults, **self._rule_settings(optimizer)}
        defaults.update(lr=optimizer.lr(0), maximize=maximize, schedule_step=0)
        flags = {"foreach": foreach, "fused": fused, "capturable": capturable, "differentiable": differentiable}
        for name, value in flags.items():
            if name in defaults or value != _FLAG_DEFAULTS[name]:  # the twin's keys, or a flag the user set
                defaults[name] = value
        # per group: (its watched settings, its rule, the rule a complex parameter steps with after its L2 decay)
        self._group_rules: dict[int, tuple[tuple[Any, ...], Optimizer, Optimizer]] = {}
        self._warned_two_schedules = False
        super().__init__(params, defaults)

    # ------------------------------------------------------------------------------------------ construction

    @staticmethod
    def _rule_settings(rule: Optimizer) -> dict[str, Any]:
        names = rule.hyperparameters if isinstance(rule, Rule) else ()
        return {name: getattr(rule, name) for name in names}

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group as ``torch.optim`` does, after checking its settings (nothing is added if one is refused)."""
        if isinstance(param_group, dict):
            index, full = len(self.param_groups), {**self.defaults, **param_group}
            self._group_rule(index, full)  # raises, naming the setting
            self._checked_rate(full, index)
            if "lr" in param_group and not is_constant_rate(self.rule) and param_group["lr"] != self.defaults["lr"]:
                raise ValueError(
                    f"param group {index} sets lr={param_group['lr']!r}, but the rule {self.rule!r} carries its own "
                    "schedule, which sets every group's lr; give the rule a constant lr to set rates per group"
                )
        super().add_param_group(param_group)

    def _group_rule(self, index: int, group: dict[str, Any]) -> tuple[Optimizer, Optimizer]:
        """The rule with this group's settings, checked, and the rule a complex parameter steps with once its L2
        decay is added to the gradient (``weight_decay=0``; the rule itself when it adds none). Cached per group
        until one of the group's settings changes."""
        # without a twin, torch's setting names are watched too: one set on a group after it was added is refused
        foreign = () if self._twin_defaults else sorted(_torch_setting_names())
        watched = (*_FLAG_ALLOWED, *self._twin_defaults, *self._rule_settings(self.rule), *foreign)
        key = tuple(_plain(group.get(name), f"param group {index}: {name}") for name in watched)
        cached = self._group_rules.get(index)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        for name, allowed in _FLAG_ALLOWED.items():
            if allowed is not None and group.get(name, allowed[0]) not in allowed:
                raise ValueError(
                    f"param group {index}: {name}={group[name]!r} is not supported ({_WHY_REFUSED[name]}); "
                    f"leave {name} at {allowed[0]!r}"
                )
        handled = {"lr", "maximize", "schedule_step", *_FLAG_ALLOWED, *self._rule_settings(self.rule)}
        for name, default in self._twin_defaults.items():
            if name not in handled and name in group and _plain(group[name]) != _plain(default):
                raise ValueError(
                    f"param group {index}: {name}={group[name]!r} is a setting of torch.optim.{self.rule.torch_twin} "  # type: ignore[attr-defined]
                    f"that noisygrad.{type(self.rule).__name__} does not have; leave it at {default!r}"
                )
        if not self._twin_defaults:
            self._refuse_foreign_torch_settings(index, group, handled)
        rule = self.rule
        settings = {name: _plain(group[name]) for name in self._rule_settings(self.rule)}
        if isinstance(rule, Rule) and settings != {k: _plain(v) for k, v in self._rule_settings(rule).items()}:
            try:
                rule = rule.replace(**settings)
            except (TypeError, ValueError) as error:
                raise type(error)(f"param group {index}: {error}") from error
        # torch.optim adds L2 decay to a complex gradient in complex arithmetic (a product, then a sum: two roundings)
        # before it views the two as real; the real view's sum may be fused into one rounding (FMA), so the decay is
        # added first and the complex parameter steps with this decay-free rule
        complex_rule = rule.replace(weight_decay=0.0) if isinstance(rule, Rule) and _l2_in_gradient(rule) else rule
        self._group_rules[index] = (key, rule, complex_rule)
        return rule, complex_rule

    def _refuse_foreign_torch_settings(self, index: int, group: dict[str, Any], handled: set[str]) -> None:
        """A rule without a torch twin: a ``torch.optim`` setting it lacks (``weight_decay=0.1`` for SGLD) is
        refused by name rather than kept and ignored; a neutral value (0, ``False``, ``None``) is let through.
        (With a twin, a group holds what the twin's group would hold: keys the twin lacks are ignored, as torch
        ignores them.)"""
        own = ["lr", "maximize", *self._rule_settings(self.rule)]
        for name in sorted(_torch_setting_names() - handled):
            if name in group and not _is_neutral(group[name]):
                raise ValueError(
                    f"param group {index}: {name}={group[name]!r} is a torch.optim setting that "
                    f"noisygrad.{type(self.rule).__name__} does not have (its settings: {', '.join(own)}); "
                    "leave it out, or use a rule that has it"
                )

    def _checked_rate(self, group: dict[str, Any], index: int) -> float:
        """The group's rate as a float: finite and >= 0, as ``torch.optim`` allows (a tensor ``lr`` included)."""
        try:
            return check_positive("lr", _plain(group["lr"], "lr"), allow_zero=True)
        except (TypeError, ValueError) as error:
            raise type(error)(f"param group {index}: {error}") from error

    # ------------------------------------------------------------------------------------------------ stepping

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step on the current ``p.grad``; ``closure`` (re-)computes the loss and gradients first."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        follow_schedule = not is_constant_rate(self.rule)
        if follow_schedule:
            self._warn_if_two_schedules()
        # Every check comes before any update, so a refused step changes no parameter and no state (checking
        # each tensor just before its update would leave a half-applied step). noisygrad's own rules then skip
        # the per-call checks of ``update``: shapes match by construction.
        plans = [self._checked_group(index, group) for index, group in enumerate(self.param_groups)]
        for group, (rule, complex_rule, lr) in zip(self.param_groups, plans, strict=True):
            for p in group["params"]:
                if p.grad is not None:
                    self._step_parameter(p, -p.grad if group["maximize"] else p.grad, rule, complex_rule, lr)
            if follow_schedule:
                group["schedule_step"] += 1
                group["lr"] = check_rate(self.rule.lr, group["schedule_step"])
        return loss

    def _checked_group(self, index: int, group: dict[str, Any]) -> tuple[Optimizer, Optimizer, float]:
        """The group's rules (:meth:`_group_rule`) and rate, after checking them and every parameter and gradient."""
        rule, complex_rule = self._group_rule(index, group)
        lr = self._checked_rate(group, index)
        for position, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"TorchOptimizer does not support sparse gradients (param group {index})")
            check_finite(f"parameter {position} of param group {index}", p, hint="it was NaN/Inf before this step")
            check_finite(f"gradient of parameter {position} of param group {index}", p.grad)
        return rule, complex_rule, lr

    def _step_parameter(
        self, p: torch.Tensor, grad: torch.Tensor, rule: Optimizer, complex_rule: Optimizer, lr: float
    ) -> None:
        """Update one tensor in place; a complex one as its real view, its state kept complex (torch's format)."""
        is_complex = p.is_complex() and getattr(rule, "complex_as_real", True)
        if is_complex and complex_rule is not rule:  # its L2 decay in complex arithmetic, as torch.optim adds it
            grad = grad.add(p.detach(), alpha=rule.weight_decay)  # type: ignore[attr-defined]
            rule = complex_rule
        param = torch.view_as_real(p.detach()) if is_complex else p.detach()
        grad = torch.view_as_real(grad) if is_complex else grad
        state = self.state[p]
        working = self._working_state(state, is_complex) if state else self.rule.init(param)
        if isinstance(rule, Rule):
            new_param, new_state = rule._advance(param, grad, working, lr)
        else:
            new_param, new_state = rule.update(param, grad, dict(working), lr=lr)
        param.copy_(new_param)
        for key, value in new_state.items():
            if is_complex and isinstance(value, torch.Tensor) and value.shape == param.shape:
                value = torch.view_as_complex(value.contiguous())
            state[key] = value
        state["step"] = torch.tensor(float(new_state["step"]), dtype=_scalar_dtype())  # torch.optim's format

    @staticmethod
    def _working_state(state: dict[str, Any], as_real: bool) -> dict[str, Any]:
        """The stored state as the rule reads it: real views of complex tensors (``as_real``) and ``step`` as an
        int (0 when the state came from a torch twin that keeps none, as ``torch.optim.SGD``)."""
        working = {
            k: torch.view_as_real(v) if as_real and isinstance(v, torch.Tensor) and v.is_complex() else v
            for k, v in state.items()
        }
        working["step"] = int(working.get("step", 0))
        return working

    def _warn_if_two_schedules(self) -> None:
        """A torch scheduler marks each group with ``initial_lr``; with the rule's own schedule the two fight."""
        if self._warned_two_schedules:
            return
        if any("initial_lr" in group for group in self.param_groups):
            self._warned_two_schedules = True
            warn(
                f"a torch lr_scheduler is attached while the rule {self.rule!r} carries its own schedule: the "
                "scheduler's changes to group['lr'] last one step before the rule's schedule overwrites them. "
                "Give the rule a constant lr and let the torch scheduler set the rate (or drop the scheduler)",
                UserWarning,
            )

    # -------------------------------------------------------------------------------- serialisation and copies

    def __getstate__(self) -> dict[str, Any]:
        """``torch.optim`` pickles defaults, state and groups; the rule must travel too."""
        state = super().__getstate__()
        state["rule"] = self.rule
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        twin = _twin(self.rule)
        self._twin_defaults = {} if twin is None else _twin_defaults(twin)
        self._group_rules = {}
        self._warned_two_schedules = False

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load as ``torch.optim`` does (from this class or from the rule's torch twin), keeping non-float state
        (generator states, counters) exact and filling group keys the saved groups lack with the defaults.

        ``torch.optim.Optimizer.load_state_dict`` casts every floating tensor in the state to its parameter's
        dtype; that would corrupt a ``torch.Generator`` state (uint8) kept by a stochastic rule.
        """
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        self._group_rules = {}
        saved = state_dict["state"]
        params = [p for group in self.param_groups for p in group["params"]]
        for index, entries in saved.items():
            live = self.state[params[int(index)]]
            for key, value in entries.items():
                if isinstance(value, torch.Tensor) and not value.is_floating_point() and not value.is_complex():
                    live[key] = value.clone()

    # ----------------------------------------------------------------------------------------------- drop-ins

    @classmethod
    def drop_in(
        cls, rule: type[Rule], like: type[torch.optim.Optimizer] | None = None, *, name: str | None = None, **fixed: Any
    ) -> type[TorchOptimizer]:
        """A ``torch.optim``-style class for ``rule``: the signature and defaults of its twin, ``like``.

        ``TorchOptimizer.drop_in(noisygrad.Adam)`` is called exactly as ``torch.optim.Adam`` is (positional
        arguments, keyword arguments and defaults alike, ``lr=1e-3`` included); ``like=torch.optim.AdamW`` gives
        AdamW's defaults (``weight_decay=1e-2``, decoupled). ``fixed`` settings go to the rule as they are.
        ``name`` names the class (default ``"Torch" + like.__name__``); pickling an instance finds the class by
        its module and name, as for any class, so assign it to that name in a module (as :data:`TorchAdam` is).
        """
        twin = (
            like if like is not None else (None if rule.torch_twin is None else getattr(torch.optim, rule.torch_twin))
        )
        if twin is None:
            raise ValueError(f"{rule.__name__} has no torch_twin: pass like=<a torch.optim class>")
        signature = inspect.signature(twin.__init__)
        twin_defaults = _twin_defaults(twin)
        adapter_flags = {"maximize", *_FLAG_DEFAULTS}

        def __init__(self: TorchOptimizer, params: Iterable[Any], *args: Any, **kwargs: Any) -> None:
            try:
                bound = signature.bind(self, params, *args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{twin.__name__}: {error}") from error
            given = {name: value for name, value in bound.arguments.items() if name not in ("self", "params")}
            settings = {**twin_defaults, **given}
            lr = _plain(settings.pop("lr"), "lr")
            rule_settings = {name: _plain(settings[name], name) for name in rule.hyperparameters if name in settings}
            for name, value in settings.items():
                if (
                    name not in rule.hyperparameters
                    and name not in adapter_flags
                    and _plain(value) != _plain(twin_defaults.get(name, value))
                ):
                    raise ValueError(f"{name}={value!r} is a setting of {twin.__name__} that {rule.__name__} lacks")
            flags = {name: settings[name] for name in adapter_flags if name in settings}
            TorchOptimizer.__init__(self, params, rule(lr=lr, **{**rule_settings, **fixed}), **flags)  # type: ignore[call-arg]

        class_name = name or f"Torch{twin.__name__}"
        doc = (
            f"``torch.optim.{twin.__name__}``'s signature and defaults over ``noisygrad.{rule.__name__}``: "
            f"``{class_name}(params, ...)`` is called as ``torch.optim.{twin.__name__}(params, ...)`` is."
        )
        return type(class_name, (cls,), {"__init__": __init__, "__doc__": doc, "__module__": cls.__module__})


TorchSGD = TorchOptimizer.drop_in(SGD)
TorchAdam = TorchOptimizer.drop_in(Adam)
TorchAdamW = TorchOptimizer.drop_in(Adam, like=torch.optim.AdamW)
