"""The ``minimize`` loop: estimate, step, record, call back, and checkpoint anywhere.

One loop serves every caller: :class:`~noisygrad.Minimizer` and ``noisygrad.quantum.vqe`` run on it. What a
caller needs beyond ``estimate -> update`` comes as a part from :mod:`noisygrad.loop_parts`, each in its own
slot: ``projection=`` (:class:`~noisygrad.Projection`, bounds), ``blocking=`` (:class:`~noisygrad.Blocking`,
reject steps that raised the measured value), ``averaging=`` (:class:`~noisygrad.IterateAveraging`, the
returned point) and ``final=`` (:class:`~noisygrad.FinalEstimate`, a fresh value at the returned point).

A run's whole state (parameters, optimizer state, estimator memory, the generator's state, the step, the cost
so far and the parts' states) is in :attr:`MinimizeResult.checkpoint`, a dict that ``torch.save`` stores and
``torch.load(..., weights_only=True)`` restores; ``minimize(..., resume=checkpoint)`` with the same parts
continues the run bit-identically to one that was never interrupted. The checkpoint carries a schema (format
version, the optimizer's and estimator's kinds, the parameters' shape and dtype, a checksum), and ``resume=``
refuses a truncated, corrupted, foreign or mismatched checkpoint before any work (:mod:`noisygrad.loop_checkpoint`).
A stateful learning-rate schedule or callback (a :class:`~noisygrad.Thermostat`) is in the checkpoint too.

The history is bounded by default: ``history_size`` keeps the last records (a ring buffer), so a long run's
memory stays flat; ``record_every`` thins it. A run that qualifies (:func:`noisygrad.loop_fused.fused_reason`:
SAGA or SVRG on a GLM under plain SGD, numba installed) and uses no callbacks, parts or stateful schedule is
taken in compiled stretches (:func:`noisygrad.loop_fused.minimize_fused`), with the same result to rounding.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from noisygrad.checks import NonFiniteGradientError, check_positive_int
from noisygrad.estimators.base import Cost, Estimate, Estimator
from noisygrad.loop_checkpoint import (
    check_checkpoint,
    companion_states,
    companions_of,
    load_companion_states,
    load_estimator_state,
    stamp_checkpoint,
)
from noisygrad.loop_checks import as_start_point, estimate_checked, explain_non_finite, update_checked
from noisygrad.loop_parts import Blocking, FinalEstimate, IterateAveraging, Measure, Projection, measure_of
from noisygrad.objectives import Kind
from noisygrad.optim.base import Optimizer, State
from noisygrad.rng import init_state


@dataclass(frozen=True)
class StepInfo:
    """What a callback sees after each step.

    Attributes:
        step: the steps taken so far (across resumed runs).
        x: the current iterate (the candidate if it was accepted, else the point before the step).
        estimate: the gradient estimate the step used.
        lr: the learning rate of the step.
        cost: what the run has spent so far.
        accepted: whether the step was taken (always ``True`` without blocking).
        details: the blocking decision, if any: the candidate's ``measured`` value, the ``reference`` (last
            accepted value) and the ``allowed`` increase.
    """

    step: int
    x: torch.Tensor
    estimate: Estimate
    lr: float
    cost: Cost
    accepted: bool = True
    details: Mapping[str, float] = field(default_factory=dict)


Callback = Callable[[StepInfo], bool | None]


@dataclass
class MinimizeResult:
    """The outcome of :func:`minimize`.

    Attributes:
        x: the returned point: the last iterate, or the average of the last ones with ``averaging=``.
        fun: the objective at ``x``: exact for finite sums and energies (its cost is *not* in ``cost``,
            it is a report, not part of the run), ``None`` for black boxes (see ``fun_estimate``).
        nit: steps taken in total (across resumed runs), rejected ones included.
        cost: what the run spent: gradient estimates, blocking's measurements and the final estimate.
        history: one dict per recorded step (the last ``history_size`` of them): ``step``, ``value`` (the
            estimate's), ``grad_norm``, ``lr`` and the cumulative cost; with blocking also ``accepted`` and the
            decision's ``details``.
        stopped_by_callback: a callback returned ``True``.
        checkpoint: the state to pass as ``resume=`` to continue the run (its cost leaves out the final estimate).
        rejected: steps rejected by blocking (across resumed runs).
        fun_estimate: with ``final=``, the re-estimated value at ``x``.
        fun_stderr: its standard error, where known.
        nfev: evaluations of the objective (across resumed runs), as scipy's ``nfev``: every point at which a
            black box or an energy was evaluated (``cost.evaluations``: zeroth-order and finite-difference
            estimates, blocking's measurements, the final estimate), plus one for every gradient estimate that
            evaluated the objective and its gradient together without counting evaluations (autograd or a
            closed form: ``FullBatch``, ``MiniBatch``, SVRG, ...), whatever the number of examples it read. So
            for a finite sum ``nfev`` counts the loss-and-gradient evaluations, one per step (the examples they
            read are ``cost.examples``); for a black box it is ``cost.evaluations``.
        status: why the run ended: ``0`` it took all ``steps`` steps; ``1`` a callback returned ``True``;
            ``2`` the value reported at ``x`` (``fun``, or ``fun_estimate``) is NaN/Inf.
        success: ``status`` is 0 or 1 (a callback stops a run it judges done).
        message: the reason in words.
    """

    x: torch.Tensor
    fun: float | None
    nit: int
    cost: Cost
    history: list[dict[str, float]]
    stopped_by_callback: bool
    checkpoint: dict[str, Any] = field(repr=False)
    rejected: int = 0
    fun_estimate: float | None = None
    fun_stderr: float | None = None
    nfev: int = 0
    status: int = 0
    success: bool = True
    message: str = ""


#: How many history records :func:`minimize` keeps by default (the last ones): about 4 MB, whatever the steps.
HISTORY_SIZE = 10_000

#: ``MinimizeResult.status`` codes and their messages (``success`` for 0 and 1).
STATUS_MESSAGES = {
    0: "took all {steps} steps asked for",
    1: "a callback stopped the run after {taken} of {steps} steps",
    2: "the value at the returned point is {value} (not finite)",
}


def _final_value(estimator: Estimator, x: torch.Tensor) -> float | None:
    objective = estimator.objective
    if objective.kind is Kind.BLACK_BOX:
        return None
    return objective.value(x)  # type: ignore[union-attr]


def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    """The run's generator: the caller's, used as it stands, or a fresh one seeded with ``seed`` (default 0)."""
    if generator is None:
        return torch.Generator().manual_seed(0 if seed is None else check_positive_int("seed", seed, allow_zero=True))
    if seed is not None:
        raise ValueError("pass either seed (a fresh generator) or generator (your own), not both")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


_PARTS: dict[str, type] = {
    "projection": Projection,
    "blocking": Blocking,
    "averaging": IterateAveraging,
    "final": FinalEstimate,
}


def _check_arguments(estimator: object, optimizer: object, callbacks: object, parts: dict[str, object]) -> None:
    """Refuse, before any work, an estimator or optimizer that is not one, callbacks that are not callables, and
    parts of the wrong kind (each error names its argument)."""
    missing = [m for m in ("estimate", "state_dict", "load_state_dict") if not callable(getattr(estimator, m, None))]
    if missing:
        raise TypeError(
            f"estimator must be a noisygrad estimator (MiniBatch, FullBatch, SPSA, ...) with estimate(x, generator), "
            f"state_dict() and load_state_dict(); got {type(estimator).__name__} (no {', '.join(missing)})"
        )
    missing = [m for m in ("init", "update", "lr") if not callable(getattr(optimizer, m, None))]
    if missing:
        raise TypeError(
            f"optimizer must be a noisygrad optimizer (SGD, Adam, SGLD, ...) with init, update and an lr schedule; "
            f"got {type(optimizer).__name__} (no {', '.join(missing)})"
        )
    if isinstance(callbacks, str | bytes) or not isinstance(callbacks, Sequence):
        raise TypeError(f"callbacks must be a sequence of callables (a list), got {type(callbacks).__name__}")
    for i, callback in enumerate(callbacks):
        if not callable(callback):
            raise TypeError(f"callbacks[{i}] must be callable as callback(info), got {type(callback).__name__}")
    for name, part in parts.items():
        kind = _PARTS[name]
        if part is not None and not isinstance(part, kind):
            raise TypeError(f"{name} must be a noisygrad.{kind.__name__} or None, got {type(part).__name__}")


def check_history_size(history_size: object) -> int | None:
    """``history_size`` if it is ``None`` or an integer > 0; the error names it."""
    return None if history_size is None else check_positive_int("history_size", history_size)


def new_history(history_size: int | None) -> deque[dict[str, float]]:
    """The run's history: a ring buffer of ``history_size`` records (unbounded for ``None``)."""
    return deque(maxlen=history_size)


def _fused_run(
    estimator: object,
    optimizer: object,
    generator: torch.Generator | None,
    callbacks: Sequence[Any],
    parts: dict[str, Any],
) -> bool:
    """Whether :func:`minimize` hands the run to :func:`~noisygrad.loop_fused.minimize_fused`: no callbacks, no
    parts, no stateful schedule (their states would need the loop between steps), and a run that qualifies."""
    if callbacks or any(part is not None for part in parts.values()) or companions_of(optimizer, ()):
        return False
    from noisygrad.loop_fused import fused_reason  # loop_fused imports this module

    return fused_reason(estimator, optimizer, generator) is None


def _measure(part: Blocking | FinalEstimate, estimator: Estimator) -> Measure:
    return part.measure if part.measure is not None else measure_of(estimator.objective)


def minimize(
    estimator: Estimator,
    optimizer: Optimizer,
    x0: Sequence[float] | torch.Tensor | None = None,
    *,
    steps: int,
    seed: int | None = None,
    callbacks: Sequence[Callback] = (),
    record_every: int = 1,
    history_size: int | None = HISTORY_SIZE,
    resume: dict[str, Any] | None = None,
    generator: torch.Generator | None = None,
    projection: Projection | None = None,
    blocking: Blocking | None = None,
    averaging: IterateAveraging | None = None,
    final: FinalEstimate | None = None,
) -> MinimizeResult:
    """Run ``steps`` steps of ``optimizer`` on the estimates of ``estimator``, starting at ``x0``.

    Each step: estimate the gradient at ``x``, let the optimizer propose a candidate, project it onto the box
    (``projection``), let ``blocking`` accept or reject it, record, call back. The returned point is the last
    iterate or, with ``averaging``, the mean of the last ones; ``final`` re-estimates its value.

    Args:
        estimator: produces the gradient estimate at each step (it knows its objective).
        optimizer: the update rule.
        x0: the starting point, a 1-D array (copied, never modified). Omit it when resuming.
        steps: how many steps to take in this call (> 0).
        seed: seeds the run's ``torch.Generator``, the only randomness the estimator and the parts get
            (default 0).
        callbacks: called with a :class:`StepInfo` after every step; one returning ``True`` stops the run.
        record_every: record every ``record_every``-th step in the history (> 0).
        history_size: keep the last ``history_size`` records (> 0; default :data:`HISTORY_SIZE`), a ring buffer;
            ``None`` keeps every record. Why a ring buffer rather than a default ``record_every``: it keeps every
            step of a short run and the recent steps of a long one at full resolution (what convergence checks
            read), while the memory stays flat whatever ``steps`` is (a record takes about 370 bytes: SGLD for 1e6
            steps kept 370 MB of history before). Totals are not lost: ``cost``, ``nit`` and ``nfev`` count
            every step.
        resume: a ``checkpoint`` of an earlier result (a dict: ``torch.load(path, weights_only=True)`` a saved
            one first); continues that run (leave ``x0`` and ``generator`` out; ``seed`` is ignored). Pass the same
            optimizer and estimator classes and the same parts again: their states come from the checkpoint. It is
            checked first (:func:`noisygrad.loop_checkpoint.check_checkpoint`): a truncated, corrupted (checksum),
            foreign (another optimizer or estimator), diverged (NaN) or mismatched (shape, dtype) checkpoint raises
            :class:`~noisygrad.loop_checkpoint.CheckpointError` naming the entry at fault; one without the schema
            (older) is resumed with a :class:`~noisygrad.loop_checkpoint.LegacyCheckpointWarning`.
        generator: use this generator instead of a fresh seeded one (not with ``seed``), for a caller whose
            earlier draws (an initial point, a calibration) belong to the same stream.
        projection: keeps every iterate in a box (:class:`~noisygrad.Projection`).
        blocking: accepts or rejects each step from measured values (:class:`~noisygrad.Blocking`).
        averaging: returns the mean of the last accepted iterates (:class:`~noisygrad.IterateAveraging`).
        final: re-estimates the value at the returned point (:class:`~noisygrad.FinalEstimate`).

    Checks (:mod:`noisygrad.loop_checks`): before the first step ``x0`` must be real, float32 or float64
    (float16/bfloat16 are refused: Adam's state overflows there), and of the length, dtype and device the
    objective states (a wrong one raises naming ``x0``); an error of the first estimate gets a note comparing
    ``x0`` with the objective's data. A complex gradient for the real parameters raises ``TypeError`` naming the
    estimator. A NaN/Inf gradient raises :class:`~noisygrad.NonFiniteGradientError` saying whether the objective or
    its data give NaN at ``x0`` (before any step, or a NaN/Inf value there), the data hold NaN/Inf that a later
    mini-batch drew, or the run diverged at a given step.
    """
    check_positive_int("steps", steps)
    check_positive_int("record_every", record_every)
    history_size = check_history_size(history_size)
    part_args: dict[str, object] = {
        "projection": projection,
        "blocking": blocking,
        "averaging": averaging,
        "final": final,
    }
    _check_arguments(estimator, optimizer, callbacks, part_args)
    if _fused_run(estimator, optimizer, generator, callbacks, part_args):
        from noisygrad.loop_fused import minimize_fused

        return minimize_fused(
            estimator,
            optimizer,
            x0,
            steps=steps,
            seed=seed,
            record_every=record_every,
            history_size=history_size,
            resume=resume,
            generator=generator,
        )
    history = new_history(history_size)
    companions = companions_of(optimizer, callbacks)
    parts: dict[str, Any] = {}
    measures = {
        name: _measure(part, estimator) for name, part in (("blocking", blocking), ("final", final)) if part is not None
    }
    objective = getattr(estimator, "objective", None)
    if resume is None:
        if x0 is None:
            raise ValueError("x0 is required unless resume= continues an earlier run")
        x = as_start_point(x0, objective)
        if projection is not None:
            projection.check(x)
            x = projection.project(x)
        generator = _generator(seed, generator)
        opt_state: State = init_state(optimizer, x, generator)  # a sampler's noise is spawned from the run's stream
        start, total, value_and_grad_calls = 0, Cost(), 0
    else:
        if x0 is not None:
            raise ValueError("pass either x0 (a new run) or resume= (continue a run), not both")
        if generator is not None:
            raise ValueError("resume= continues the checkpoint's generator: leave generator out")
        saved = check_checkpoint(resume, optimizer=optimizer, estimator=estimator)
        for name, part in (("blocking", blocking), ("averaging", averaging)):
            if name in saved:
                if part is None:
                    raise ValueError(f"the checkpoint was taken with {name}=; pass it again to continue the run")
                parts[name] = saved[name]
        x = saved["x"].clone()
        if projection is not None:
            projection.check(x)
        opt_state = dict(saved["optimizer"])
        before = companion_states(companions)
        load_companion_states(companions, saved)  # all or none; the checks above change nothing
        try:
            load_estimator_state(estimator, saved["estimator"])  # last
        except Exception:
            for obj, entry in zip(companions, before, strict=True):  # a failed resume leaves everything as it was
                obj.load_state_dict(entry["state"])
            raise
        generator = torch.Generator()
        generator.set_state(saved["generator"])
        start, total = int(saved["step"]), Cost(**saved["cost"])
        value_and_grad_calls = int(saved.get("value_and_grad_calls", 0))
    if blocking is not None and "blocking" not in parts:
        try:
            parts["blocking"], spent = blocking.init(x, generator, measures["blocking"])
        except NonFiniteGradientError as exc:
            raise explain_non_finite(exc, step=start, at_x0=resume is None, objective=objective) from exc
        total = total + spent
    if averaging is not None and "averaging" not in parts:
        parts["averaging"] = averaging.init()
    stopped = False
    details: dict[str, float]
    for t in range(start, start + steps):
        at_x0 = resume is None and t == 0
        est = estimate_checked(estimator, x, generator, step=t, at_x0=at_x0)
        lr = optimizer.lr(int(opt_state["step"]))
        candidate, new_state = update_checked(optimizer, x, est, opt_state, estimator=estimator, step=t, at_x0=at_x0)
        total = total + est.cost
        value_and_grad_calls += est.cost.evaluations == 0  # value and gradient together (autograd, closed form)
        if projection is not None:
            candidate = projection.project(candidate)
        accepted, details = True, {}
        if blocking is not None:
            accepted, parts["blocking"], details, spent = blocking.judge(
                candidate, parts["blocking"], generator, measures["blocking"]
            )
            total = total + spent
        if accepted:
            x, opt_state = candidate, new_state
            if averaging is not None:
                parts["averaging"] = averaging.observe(x, parts["averaging"])
        else:
            opt_state = {**opt_state, "step": new_state["step"]}  # the gain schedule still advances
        if (t + 1) % record_every == 0:
            history.append(
                {
                    "step": t + 1,
                    "value": float("nan") if est.value is None else est.value,
                    "grad_norm": float(torch.linalg.vector_norm(est.grad)),  # Tensor.norm without its Python wrapper
                    "lr": lr,
                    "examples": total.examples,
                    "evaluations": total.evaluations,
                    "shots": total.shots,
                    **({} if blocking is None else {"accepted": accepted, **details}),
                }
            )
        info = StepInfo(t + 1, x, est, lr, total, accepted, details)
        if any([cb(info) is True for cb in callbacks]):  # every callback sees every step
            stopped = True
            break
    nit = t + 1
    state = {
        "x": x.clone(),
        "optimizer": opt_state,
        "estimator": estimator.state_dict(),
        "generator": generator.get_state(),
        "step": nit,
        "cost": {"examples": total.examples, "evaluations": total.evaluations, "shots": total.shots},
        "value_and_grad_calls": value_and_grad_calls,
        **parts,
        **({"companions": companion_states(companions)} if companions else {}),
    }
    checkpoint = stamp_checkpoint(state, optimizer=optimizer, estimator=estimator)
    point = x if averaging is None else averaging.point(x, parts["averaging"])
    fun_estimate = fun_stderr = None
    if final is not None:
        fun_estimate, fun_stderr, spent = final.estimate(point, generator, measures["final"])
        total = total + spent
    rejected = int(parts["blocking"]["rejected"]) if blocking is not None else 0
    fun = _final_value(estimator, point)
    reported = fun if fun is not None else fun_estimate
    status = 2 if reported is not None and not math.isfinite(reported) else (1 if stopped else 0)
    message = STATUS_MESSAGES[status].format(steps=steps, taken=nit - start, value=reported)
    return MinimizeResult(
        point,
        fun,
        nit,
        total,
        list(history),
        stopped,
        checkpoint,
        rejected,
        fun_estimate,
        fun_stderr,
        nfev=total.evaluations + value_and_grad_calls,
        status=status,
        success=status in (0, 1),
        message=message,
    )
