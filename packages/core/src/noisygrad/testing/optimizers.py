"""The optimizer contract: noisygrad's ``init`` / ``update`` rules and ``torch.optim.Optimizer`` classes.

Both kinds are run on the same small problem, a separable quadratic with a fixed sequence of gradient noise
(``g_t(x) = h * (x - m) + noise_t``), so that every run is a deterministic function of the optimizer alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

# The core's names are exported lazily (``__all__ = sorted(...)``), which mypy's strict mode does not read as
# explicit re-exports; hence the ignore.
from noisygrad import Optimizer

from ._common import (
    Check,
    clone,
    describe_tensor,
    devices,
    difference,
    expect_refusal,
    fail,
    forked_torch_generators,
    poisoned,
    serialise,
)

OPTIMIZER_CHECKS = (
    "protocol",
    "state_round_trip",
    "determinism",
    "dtype_shape_device",
    "nonfinite_grad",
    "nonfinite_params",
    "no_input_mutation",
)
"""The checks of :func:`optimizer_checks`, in the order they run."""

TORCH_OPTIMIZER_CHECKS = (
    "protocol",
    "state_round_trip",
    "determinism",
    "dtype_shape_device",
    "nonfinite_grad",
    "nonfinite_params",
    "no_grad_mutation",
)
"""The checks of :func:`torch_optimizer_checks`, in the order they run."""

OptimizerFactory = Callable[[], Any]
TorchOptimizerFactory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]


class _Quadratic:
    """``g_t(x) = h * (x - m) + noise_t`` for ``t < steps``, drawn once from a fixed seed (float64, then cast)."""

    def __init__(
        self, shape: Sequence[int], steps: int, dtype: torch.dtype, device: torch.device, seed: int = 0
    ) -> None:
        gen = torch.Generator().manual_seed(seed)
        size = tuple(shape)

        def draw(scale: float = 1.0) -> torch.Tensor:
            return (scale * torch.randn(size, generator=gen, dtype=torch.float64)).to(dtype=dtype, device=device)

        self.x0 = draw()
        self.center = draw()
        self.curvature = (0.5 + 1.5 * torch.rand(size, generator=gen, dtype=torch.float64)).to(
            dtype=dtype, device=device
        )
        self.noise = [draw(0.1) for _ in range(steps)]

    def grad(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return self.curvature * (x - self.center) + self.noise[t]

    def loss(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """A loss whose gradient is ``grad(x, t)``."""
        return (0.5 * self.curvature * (x - self.center) ** 2 + self.noise[t] * x).sum()


def _name_of(make: Callable[[], object], name: str | None) -> str:
    return name if name is not None else type(make()).__name__


# ------------------------------------------------------------------------------ init / update rules


def optimizer_checks(
    make_optimizer: OptimizerFactory,
    *,
    name: str | None = None,
    shapes: Sequence[Sequence[int]] = ((5,), (2, 3)),
    steps: int = 6,
    resume_after: int = 3,
) -> list[tuple[str, Check]]:
    """The contract checks of a noisygrad :class:`~noisygrad.Optimizer` (``init`` / ``update``), by name.

    Args:
        make_optimizer: ``make_optimizer()`` returns a fresh optimizer, the same one at every call (fixed
            hyperparameters and seed): the checks compare runs of different instances.
        name: how failures name the object (default: its class name).
        shapes: parameter shapes to run on; the first is the main one.
        steps: steps of each run; the state round trip interrupts it after ``resume_after`` steps.

    Returns:
        ``(check_name, check)`` pairs in the order of :data:`OPTIMIZER_CHECKS`; each ``check()`` returns
        nothing or raises ``AssertionError`` naming the object and the property (parametrize a test with them).

    The checks, and why each matters:

    * ``protocol``: an instance of :class:`~noisygrad.Optimizer`; ``init`` returns a dict whose ``"step"`` is 0
      and grows by one per ``update`` (:func:`~noisygrad.minimize` reads it to evaluate ``lr``); ``lr(0)`` is a
      finite number > 0; ``update(..., lr=optimizer.lr(t))`` is the same step as ``update(...)``.
    * ``state_round_trip``: after ``resume_after`` steps the parameters and state go through ``torch.save`` /
      ``torch.load(weights_only=True)`` into a *fresh* optimizer, whose continuation must be bit-identical
      (``torch.equal``) to the uninterrupted run: the state is the whole memory, and it is plain data.
    * ``determinism``: two fresh optimizers give bit-identical runs, whatever torch's global seed (a sampler's
      noise must come from its seed or the generator given to ``init``, kept in the state) and without touching
      torch's global generator.
    * ``dtype_shape_device``: float32 and float64 parameters of each shape (on the CPU, and on CUDA when
      available) keep their dtype, shape and device through ``update``, and so do the state's floating tensors.
    * ``nonfinite_grad``: a gradient holding NaN or Inf is refused with :class:`~noisygrad.NonFiniteGradientError`
      (or a ``ValueError`` saying so) instead of corrupting the parameters.
    * ``nonfinite_params``: parameters holding NaN or Inf are refused likewise.
    * ``no_input_mutation``: ``init`` and ``update`` leave the ``params``, ``grad`` and ``state`` they are given
      unchanged (``update`` is pure and returns new tensors).
    """
    label = _name_of(make_optimizer, name)
    main = tuple(shapes[0])
    if not 0 < resume_after < steps:
        raise ValueError(f"resume_after must lie in (0, steps={steps}), got {resume_after}")

    def run(opt: Any, problem: _Quadratic, x: torch.Tensor, state: Any, start: int, stop: int) -> tuple[list[Any], Any]:
        xs = []
        for t in range(start, stop):
            x, state = opt.update(x, problem.grad(x, t), state)
            xs.append(x)
        return xs, state

    def protocol() -> None:
        check = "protocol"
        opt = make_optimizer()
        if not isinstance(opt, Optimizer):
            fail(label, check, f"{type(opt).__name__} is not a noisygrad.Optimizer (init, update and an lr schedule)")
        problem = _Quadratic(main, 2, torch.float64, torch.device("cpu"))
        state = opt.init(problem.x0)
        if not isinstance(state, dict):
            fail(label, check, f"init returned {type(state).__name__}, not a dict")
        if state.get("step") != 0:
            fail(label, check, f"init's state must have 'step' = 0 (minimize reads it), got {state.get('step')!r}")
        rate = opt.lr(0)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (math.isfinite(rate) and rate > 0):
            fail(label, check, f"lr(0) must be a finite number > 0, got {rate!r}")
        x1, s1 = opt.update(problem.x0, problem.grad(problem.x0, 0), state)
        step = s1.get("step") if isinstance(s1, dict) else None
        if step != 1:
            fail(label, check, f"after one update the state's 'step' must be 1, got {step!r}")
        x2, s2 = opt.update(problem.x0, problem.grad(problem.x0, 0), state, lr=float(rate))
        found = difference((x1, s1), (x2, s2))
        if found is not None:
            fail(label, check, f"update(..., lr=lr(0)) differs from update(...) at step 0: {found}")

    def state_round_trip() -> None:
        check = "state_round_trip"
        for dtype in (torch.float64, torch.float32):
            problem = _Quadratic(main, steps, dtype, torch.device("cpu"))
            opt = make_optimizer()
            reference, final = run(opt, problem, problem.x0, opt.init(problem.x0), 0, steps)
            first = make_optimizer()
            head, state = run(first, problem, problem.x0, first.init(problem.x0), 0, resume_after)
            saved = serialise(label, check, {"params": head[-1], "state": state})
            tail, resumed = run(make_optimizer(), problem, saved["params"], saved["state"], resume_after, steps)
            for t, (x, y) in enumerate(zip(reference, head + tail, strict=True)):
                found = difference(x, y)
                if found is not None:
                    fail(
                        label,
                        check,
                        f"{dtype}: after {resume_after} steps, a save/load into a fresh optimizer and "
                        f"{t + 1 - resume_after} more, the parameters differ from the uninterrupted run's: {found}",
                    )
            found = difference(final, resumed)
            if found is not None:
                fail(label, check, f"{dtype}: the final state differs from the uninterrupted run's: {found}")

    def determinism() -> None:
        check = "determinism"
        problem = _Quadratic(main, steps, torch.float64, torch.device("cpu"))
        runs = []
        for seed in (0, 12345):
            with forked_torch_generators():
                torch.manual_seed(seed)
                before = torch.get_rng_state()
                opt = make_optimizer()
                runs.append(run(opt, problem, problem.x0, opt.init(problem.x0), 0, steps))
                if not torch.equal(before, torch.get_rng_state()):
                    fail(label, check, "init/update drew from torch's global generator (use a seeded generator)")
        found = difference(runs[0], runs[1])
        if found is not None:
            fail(label, check, f"two fresh optimizers (global seeds 0 and 12345) gave different runs: {found}")

    def dtype_shape_device() -> None:
        check = "dtype_shape_device"
        for device in devices():
            for dtype in (torch.float32, torch.float64):
                for shape in shapes:
                    problem = _Quadratic(shape, 3, dtype, device)
                    opt = make_optimizer()
                    xs, state = run(opt, problem, problem.x0, opt.init(problem.x0), 0, 3)
                    for x in xs:
                        if not isinstance(x, torch.Tensor) or x.dtype != dtype or x.shape != problem.x0.shape:
                            got = describe_tensor(x) if isinstance(x, torch.Tensor) else type(x).__name__
                            fail(label, check, f"params {describe_tensor(problem.x0)} came back as {got}")
                        if x.device != device:
                            fail(label, check, f"params {describe_tensor(problem.x0)} came back on {x.device}")
                    for key, value in _flat_state(state):
                        if value.is_floating_point() and (value.dtype != dtype or value.device != device):
                            fail(
                                label,
                                check,
                                f"state {key} is {describe_tensor(value)} for {describe_tensor(problem.x0)}",
                            )

    def nonfinite_grad() -> None:
        check = "nonfinite_grad"
        problem = _Quadratic(main, 3, torch.float64, torch.device("cpu"))
        opt = make_optimizer()
        xs, state = run(opt, problem, problem.x0, opt.init(problem.x0), 0, 2)
        for bad in (math.nan, math.inf):
            grad = poisoned(problem.grad(xs[-1], 2), bad)
            expect_refusal(label, check, f"a gradient holding {bad}", opt.update, xs[-1], grad, state)

    def nonfinite_params() -> None:
        check = "nonfinite_params"
        problem = _Quadratic(main, 3, torch.float64, torch.device("cpu"))
        opt = make_optimizer()
        xs, state = run(opt, problem, problem.x0, opt.init(problem.x0), 0, 2)
        grad = problem.grad(xs[-1], 2)
        for bad in (math.nan, math.inf):
            x = poisoned(xs[-1], bad)
            expect_refusal(label, check, f"params holding {bad}", opt.update, x, grad, state)

    def no_input_mutation() -> None:
        check = "no_input_mutation"
        problem = _Quadratic(main, 3, torch.float64, torch.device("cpu"))
        opt = make_optimizer()
        x0 = problem.x0.clone()
        state = opt.init(x0)
        if difference(x0, problem.x0) is not None:
            fail(label, check, "init changed the params it was given")
        xs, state = run(opt, problem, x0, state, 0, 2)
        x, grad = xs[-1], problem.grad(xs[-1], 2)
        before = clone((x, grad, state))
        opt.update(x, grad, state)
        for what, old, new in zip(("params", "grad", "state"), before, (x, grad, state), strict=True):
            found = difference(old, new)
            if found is not None:
                fail(label, check, f"update changed the {what} it was given: {found}")

    checks: dict[str, Check] = {
        "protocol": protocol,
        "state_round_trip": state_round_trip,
        "determinism": determinism,
        "dtype_shape_device": dtype_shape_device,
        "nonfinite_grad": nonfinite_grad,
        "nonfinite_params": nonfinite_params,
        "no_input_mutation": no_input_mutation,
    }
    return [(check, checks[check]) for check in OPTIMIZER_CHECKS]


# ------------------------------------------------------------------------------ torch.optim.Optimizer classes

_TORCH_SHAPES = ((3,), (2, 2))


class _TorchRun:
    """A ``torch.optim`` optimizer over tensors of ``_TORCH_SHAPES`` on the quadratic, stepped with closures.

    Step ``t``'s closure evaluates step ``t``'s loss every time it is called (an L-BFGS calls it several times
    per step: one batch per step) and sets each ``p.grad`` to a new tensor; it remembers the last gradients.
    """

    def __init__(self, dtype: torch.dtype, device: torch.device, steps: int) -> None:
        self.problems = [_Quadratic(shape, steps, dtype, device, seed=i) for i, shape in enumerate(_TORCH_SHAPES)]
        self.last_grads: list[torch.Tensor] = []
        self.first_loss: torch.Tensor | None = None

    def params(self) -> list[torch.Tensor]:
        return [p.x0.clone().requires_grad_(True) for p in self.problems]

    def closure(self, params: list[torch.Tensor], t: int, poison: float | None = None) -> Callable[[], Any]:
        self.first_loss = None

        def closure() -> torch.Tensor:
            with torch.enable_grad():
                loss = torch.stack([q.loss(p, t) for q, p in zip(self.problems, params, strict=True)]).sum()
                grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads, strict=True):
                p.grad = g.detach().clone()
            if poison is not None:  # the last tensor's gradient: a step that updates tensor by tensor is caught
                params[-1].grad = poisoned(grads[-1], poison)
            self.last_grads = [p.grad.clone() for p in params if p.grad is not None]
            value = loss.detach()
            if self.first_loss is None:
                self.first_loss = value
            return value

        return closure

    def run(self, opt: torch.optim.Optimizer, params: list[torch.Tensor], start: int, stop: int) -> list[Any]:
        trajectory = []
        for t in range(start, stop):
            opt.step(self.closure(params, t))
            trajectory.append([p.detach().clone() for p in params])
        return trajectory


def torch_optimizer_checks(
    make_optimizer: TorchOptimizerFactory,
    *,
    name: str | None = None,
    steps: int = 6,
    resume_after: int = 3,
) -> list[tuple[str, Check]]:
    """The contract checks of a ``torch.optim.Optimizer`` (:class:`~noisygrad.TorchOptimizer`, ``LBFGS``), by name.

    Args:
        make_optimizer: ``make_optimizer(params)`` returns a fresh optimizer over the list of tensors ``params``
            (two tensors, shapes ``(3,)`` and ``(2, 2)``), the same one at every call. It is stepped with a
            closure that sets every ``p.grad``.
        name: how failures name the object (default: its class name).
        steps: steps of each run; the state round trip interrupts it after ``resume_after`` steps.

    Returns:
        ``(check_name, check)`` pairs in the order of :data:`TORCH_OPTIMIZER_CHECKS`.

    The checks: ``protocol`` (a ``torch.optim.Optimizer``; ``step(closure)`` returns the closure's first loss;
    ``state_dict()`` has ``"state"`` and ``"param_groups"``); ``state_round_trip`` (``state_dict`` through
    ``torch.save`` / ``torch.load(weights_only=True)`` into a fresh optimizer over copies of the parameters,
    then ``load_state_dict``: the continuation must be bit-identical to the uninterrupted run);
    ``determinism`` (two fresh optimizers, different global seeds: identical runs); ``dtype_shape_device``
    (float32 and float64 tensors, CPU and CUDA when available, are updated in place and keep dtype, shape and
    device, and so do the state's floating tensors other than a 0-dimensional ``step`` counter, which
    ``torch.optim`` keeps in float32); ``nonfinite_grad`` and ``nonfinite_params`` (a NaN or Inf
    in the last tensor's gradient, or in a parameter, is refused with a clear error and leaves *every*
    parameter and the state as they were: no half-applied step); ``no_grad_mutation`` (``step`` leaves the
    ``.grad`` tensors as the closure set them; the parameters are updated in place, as torch's API says).
    """
    probe = _TorchRun(torch.float64, torch.device("cpu"), 1)
    label = name if name is not None else type(make_optimizer(probe.params())).__name__
    if not 0 < resume_after < steps:
        raise ValueError(f"resume_after must lie in (0, steps={steps}), got {resume_after}")

    def protocol() -> None:
        check = "protocol"
        run = _TorchRun(torch.float64, torch.device("cpu"), 1)
        params = run.params()
        opt = make_optimizer(params)
        if not isinstance(opt, torch.optim.Optimizer):
            fail(label, check, f"{type(opt).__name__} is not a torch.optim.Optimizer")
        returned = opt.step(run.closure(params, 0))
        if (
            not isinstance(returned, torch.Tensor)
            or run.first_loss is None
            or not torch.equal(returned, run.first_loss)
        ):
            fail(label, check, f"step(closure) must return the closure's first loss, got {returned!r}")
        state = opt.state_dict()
        if not isinstance(state, dict) or not {"state", "param_groups"} <= set(state):
            fail(label, check, "state_dict() must be a dict with 'state' and 'param_groups'")

    def state_round_trip() -> None:
        check = "state_round_trip"
        for dtype in (torch.float64, torch.float32):
            run = _TorchRun(dtype, torch.device("cpu"), steps)
            params = run.params()
            reference = run.run(make_optimizer(params), params, 0, steps)
            first_params = run.params()
            first = make_optimizer(first_params)
            head = run.run(first, first_params, 0, resume_after)
            saved = serialise(label, check, {"params": [p.detach() for p in first_params], "opt": first.state_dict()})
            fresh_params = [p.clone().requires_grad_(True) for p in saved["params"]]
            fresh = make_optimizer(fresh_params)
            fresh.load_state_dict(saved["opt"])
            tail = run.run(fresh, fresh_params, resume_after, steps)
            for t, (x, y) in enumerate(zip(reference, head + tail, strict=True)):
                found = difference(x, y)
                if found is not None:
                    fail(
                        label,
                        check,
                        f"{dtype}: after {resume_after} steps, state_dict through torch.save/load into a fresh "
                        f"optimizer and {t + 1 - resume_after} more, the parameters differ from the uninterrupted "
                        f"run's: {found}",
                    )

    def determinism() -> None:
        check = "determinism"
        runs = []
        for seed in (0, 12345):
            run = _TorchRun(torch.float64, torch.device("cpu"), steps)
            with forked_torch_generators():
                torch.manual_seed(seed)
                before = torch.get_rng_state()
                params = run.params()
                runs.append(run.run(make_optimizer(params), params, 0, steps))
                if not torch.equal(before, torch.get_rng_state()):
                    fail(label, check, "step drew from torch's global generator (use a seeded generator)")
        found = difference(runs[0], runs[1])
        if found is not None:
            fail(label, check, f"two fresh optimizers (global seeds 0 and 12345) gave different runs: {found}")

    def dtype_shape_device() -> None:
        check = "dtype_shape_device"
        for device in devices():
            for dtype in (torch.float32, torch.float64):
                run = _TorchRun(dtype, device, 3)
                params = run.params()
                originals = list(params)
                opt = make_optimizer(params)
                run.run(opt, params, 0, 3)
                held = [p for group in opt.param_groups for p in group["params"]]
                if len(held) != len(originals) or any(a is not b for a, b in zip(held, originals, strict=True)):
                    fail(
                        label,
                        check,
                        "the optimizer no longer holds the tensors it was given (updates must be in place)",
                    )
                for p, shape in zip(params, _TORCH_SHAPES, strict=True):
                    if p.dtype != dtype or tuple(p.shape) != shape or p.device != device:
                        fail(label, check, f"a {dtype} {shape} tensor on {device} became {describe_tensor(p)}")
                for p in params:
                    for key, value in _flat_state(opt.state.get(p, {})):
                        if key == "['step']" and value.ndim == 0:
                            continue  # torch.optim's step counter: float32 (float64 under that default dtype)
                        if value.is_floating_point() and (value.dtype != dtype or value.device != device):
                            fail(
                                label,
                                check,
                                f"state {key} is {describe_tensor(value)} for a {dtype} tensor on {device}",
                            )

    def refusal(check: str, poison_grad: bool) -> None:
        for bad in (math.nan, math.inf):
            run = _TorchRun(torch.float64, torch.device("cpu"), 3)
            params = run.params()
            opt = make_optimizer(params)
            run.run(opt, params, 0, 2)
            if not poison_grad:
                with torch.no_grad():
                    params[-1].copy_(poisoned(params[-1], bad))
            before = clone({"params": [p.detach() for p in params], "state_dict": opt.state_dict()})
            what = f"a gradient holding {bad}" if poison_grad else f"a parameter holding {bad}"
            closure = run.closure(params, 2, bad if poison_grad else None)
            expect_refusal(label, check, what, opt.step, closure)
            found = difference(before, clone({"params": [p.detach() for p in params], "state_dict": opt.state_dict()}))
            if found is not None:
                fail(label, check, f"after refusing {what}, the parameters or the state had changed: {found}")

    def no_grad_mutation() -> None:
        check = "no_grad_mutation"
        run = _TorchRun(torch.float64, torch.device("cpu"), 3)
        params = run.params()
        opt = make_optimizer(params)
        for t in range(3):
            opt.step(run.closure(params, t))
            found = difference(run.last_grads, [p.grad for p in params if p.grad is not None])
            if found is not None:
                fail(label, check, f"step changed the .grad tensors the closure left: {found}")

    checks: dict[str, Check] = {
        "protocol": protocol,
        "state_round_trip": state_round_trip,
        "determinism": determinism,
        "dtype_shape_device": dtype_shape_device,
        "nonfinite_grad": lambda: refusal("nonfinite_grad", True),
        "nonfinite_params": lambda: refusal("nonfinite_params", False),
        "no_grad_mutation": no_grad_mutation,
    }
    return [(check, checks[check]) for check in TORCH_OPTIMIZER_CHECKS]


def _flat_state(state: Any, path: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in a per-parameter state (nested lists and dicts), with where it sits."""
    if isinstance(state, torch.Tensor):
        return [(path or "value", state)]
    if isinstance(state, dict):
        return [found for k, v in state.items() for found in _flat_state(v, f"{path}[{k!r}]")]
    if isinstance(state, (list, tuple)):
        return [found for i, v in enumerate(state) for found in _flat_state(v, f"{path}[{i}]")]
    return []
