""":func:`~noisygrad.minimize` for SAGA and SVRG on a GLM under plain SGD, in compiled stretches of steps.

A run of :class:`~noisygrad.SAGA` or :class:`~noisygrad.SVRG` on a :class:`~noisygrad.GLM` (data on the CPU)
under :class:`~noisygrad.SGD` without momentum, with no callbacks and none of the loop's parts (projection,
blocking, averaging, final estimate), needs nothing from Python between two steps. :func:`minimize_fused` runs
such a run as :func:`~noisygrad.minimize` does, with the steps in compiled kernels
(:mod:`noisygrad.estimators.glm_epochs`): the same batches from the same generator, the same iterates to
rounding, the same costs, history, checkpoint (interchangeable with ``minimize``'s in both directions: resume a
fused run step by step or the reverse) and the same generator state afterwards, at about a microsecond a step
plus ``b d`` arithmetic and the generator's ``N`` draws per batch (see :mod:`noisygrad.estimators.torch_mt`).

What stays step by step, through the loop's own checks (:mod:`noisygrad.loop_checks`): the first step of a new
run (its checks at ``x0``), the steps that fill the estimator's memory (SAGA's table, SVRG's first anchor), and a
step the kernel refuses (a NaN/Inf gradient or iterate, a learning rate that is not a finite number >= 0): that
step then raises the error ``minimize`` raises, or, if it was a false alarm (a sum that overflowed on finite
entries), the kernel takes over again after it.

:func:`fused_reason` says why a run does not qualify (``None`` when it does); ``minimize`` takes this path by
itself when it returns ``None`` (numba installed, the core's ``fast`` extra) and the run has no callbacks, parts
or stateful schedule.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from noisygrad.checks import check_positive_int
from noisygrad.estimators.base import Cost, Estimator
from noisygrad.estimators.variance_reduction import SAGA, SVRG
from noisygrad.loop import (
    HISTORY_SIZE,
    STATUS_MESSAGES,
    MinimizeResult,
    _final_value,
    _generator,
    check_history_size,
    new_history,
)
from noisygrad.loop_checkpoint import (
    check_checkpoint,
    companions_of,
    load_companion_states,
    load_estimator_state,
    stamp_checkpoint,
)
from noisygrad.loop_checks import as_start_point, estimate_checked, update_checked
from noisygrad.optim.base import Optimizer, State
from noisygrad.optim.sgd import SGD
from noisygrad.rng import init_state
from noisygrad.schedules import Constant

__all__ = ["fused_reason", "minimize_fused"]

_DTYPES = (torch.float32, torch.float64)
_STRETCH = 1 << 14
"""The most steps one kernel call takes (its per-step buffers stay small; a call's overhead is tens of us)."""


def fused_reason(estimator: object, optimizer: object, generator: torch.Generator | None = None) -> str | None:
    """``None`` when :func:`minimize_fused` can run ``estimator`` under ``optimizer``; else why not, in words.

    ``generator``: the caller's generator, if the run is to use one (it must be a CPU generator).
    """
    if type(estimator) not in (SAGA, SVRG):
        return f"the estimator is {type(estimator).__name__}, not SAGA or SVRG"
    assert isinstance(estimator, SAGA | SVRG)
    glm = estimator._glm
    if glm is None:
        return "the objective is not a GLM"
    if not glm.on_cpu:
        return f"the GLM's data are on {glm.device} (the compiled steps run on numpy views of CPU data)"
    if glm.dtype not in _DTYPES:
        return f"the GLM's data are {glm.dtype}, not float32 or float64"
    if type(optimizer) is not SGD or optimizer.momentum != 0.0:
        return "the optimizer is not SGD without momentum"
    if companions_of(optimizer, ()):
        return "the learning-rate schedule keeps a state (a Thermostat): it needs the loop between steps"
    if isinstance(generator, torch.Generator) and generator.device.type != "cpu":
        return f"the generator is on {generator.device} (the batches of CPU data are drawn on the CPU)"
    from noisygrad.compiled import HAVE_NUMBA  # numba is imported only for runs that qualify otherwise

    if not HAVE_NUMBA:
        return "numba is not installed (pip install 'noisygrad-core[fast]')"
    from noisygrad.estimators.torch_mt import MAX_N, layout_matches

    if glm.n_examples >= MAX_N:
        return f"N = {glm.n_examples} >= {MAX_N}: torch's randperm draws 64-bit numbers there"
    if not layout_matches():
        return "this torch's generator does not draw as the compiled Mersenne Twister does"
    return None


@dataclass
class _Run:
    """The loop's variables: what a step reads and changes."""

    x: torch.Tensor
    opt_state: State
    total: Cost
    value_and_grad_calls: int
    generator: torch.Generator
    history: deque[dict[str, float]] = field(default_factory=deque)


def _one_step(run: _Run, estimator: Estimator, optimizer: Optimizer, t: int, *, at_x0: bool, record_every: int) -> None:
    """Step ``t`` as :func:`~noisygrad.minimize`'s loop takes it (without parts or callbacks)."""
    est = estimate_checked(estimator, run.x, run.generator, step=t, at_x0=at_x0)
    lr = optimizer.lr(int(run.opt_state["step"]))
    run.x, run.opt_state = update_checked(
        optimizer, run.x, est, run.opt_state, estimator=estimator, step=t, at_x0=at_x0
    )
    run.total = run.total + est.cost
    run.value_and_grad_calls += est.cost.evaluations == 0
    if (t + 1) % record_every == 0:
        run.history.append(
            {
                "step": t + 1,
                "value": float("nan") if est.value is None else est.value,
                "grad_norm": float(torch.linalg.vector_norm(est.grad)),  # Tensor.norm without its Python wrapper
                "lr": lr,
                "examples": run.total.examples,
                "evaluations": run.total.evaluations,
                "shots": run.total.shots,
            }
        )


def _rates(optimizer: SGD, first: int, count: int) -> tuple[list[Any], np.ndarray]:
    """The schedule's values for ``count`` steps from ``first``, cut before one that is not a finite number >= 0."""
    if isinstance(optimizer.lr, Constant):  # checked when the rule was built
        return [optimizer.lr.value] * count, np.full(count, optimizer.lr.value, dtype=np.float64)
    raw = [optimizer.lr(first + i) for i in range(count)]
    rates = np.asarray(raw, dtype=np.float64)
    bad = ~(np.isfinite(rates) & (rates >= 0.0))
    if bad.any():
        cut = int(np.argmax(bad))
        raw, rates = raw[:cut], rates[:cut]
    return raw, rates


def _stretch(run: _Run, estimator: SAGA | SVRG, optimizer: SGD, t: int, count: int, record_every: int) -> int:
    """Up to ``count`` steps from step ``t`` in one kernel call; returns the steps committed."""
    from noisygrad.estimators.glm_epochs import Stretch
    from noisygrad.estimators.torch_mt import read_state, skip, write_state

    first = int(run.opt_state["step"])
    raw_rates, rates = _rates(optimizer, first, count)
    count = len(rates)
    if count == 0:
        return 0
    words, counters = read_state(run.generator)
    start = words.copy(), counters.copy()
    n = estimator.objective.n_examples
    stretch = Stretch(
        w=run.x.numpy().copy(),
        rates=rates,
        weight_decay=float(optimizer.weight_decay),
        words=words,
        counters=counters,
        scratch=np.arange(n, dtype=np.int64),
        record=(np.arange(t + 1, t + 1 + count) % record_every) == 0,
        values=np.empty(count),
        grad_norms=np.empty(count),
    )
    done, examples, batches = estimator._compiled_steps(stretch)
    if done < count:  # the refused step may have drawn its batch: replay the committed steps' draws instead
        words, counters = start
        skip(words, counters, batches * (n - 1))
    write_state(run.generator, words, counters)
    seen = run.total.examples + np.cumsum(examples)
    run.x = torch.from_numpy(stretch.w)
    run.opt_state = {**run.opt_state, "step": first + done}
    run.total = run.total + Cost(examples=int(examples.sum()))
    run.value_and_grad_calls += done
    recorded = np.flatnonzero(stretch.record[:done])
    if run.history.maxlen is not None:  # the ring buffer would drop the earlier records at once
        recorded = recorded[-run.history.maxlen :]
    for i in recorded:
        run.history.append(
            {
                "step": t + 1 + int(i),
                "value": float(stretch.values[i]),
                "grad_norm": float(stretch.grad_norms[i]),
                "lr": raw_rates[i],
                "examples": int(seen[i]),
                "evaluations": run.total.evaluations,
                "shots": run.total.shots,
            }
        )
    return done


def minimize_fused(
    estimator: Estimator,
    optimizer: Optimizer,
    x0: Any = None,
    *,
    steps: int,
    seed: int | None = None,
    record_every: int = 1,
    history_size: int | None = HISTORY_SIZE,
    resume: dict[str, Any] | None = None,
    generator: torch.Generator | None = None,
) -> MinimizeResult:
    """:func:`~noisygrad.minimize` for SAGA or SVRG on a GLM under plain SGD, with the steps compiled.

    The arguments and the result are ``minimize``'s (without callbacks or parts); the run is ``minimize``'s
    to rounding, with the same batches, costs, history, checkpoint and generator state. Raises ``ValueError``
    saying why when the run does not qualify (:func:`fused_reason`), before any work.
    """
    reason = fused_reason(estimator, optimizer, generator)
    if reason is not None:
        raise ValueError(f"minimize_fused runs SAGA or SVRG on a GLM under SGD without momentum: {reason}")
    assert isinstance(estimator, SAGA | SVRG)
    assert isinstance(optimizer, SGD)
    check_positive_int("steps", steps)
    check_positive_int("record_every", record_every)
    history_size = check_history_size(history_size)
    if resume is None:
        if x0 is None:
            raise ValueError("x0 is required unless resume= continues an earlier run")
        x = as_start_point(x0, estimator.objective)
        gen = _generator(seed, generator)
        run = _Run(x, init_state(optimizer, x, gen), Cost(), 0, gen, new_history(history_size))
        start = 0
    else:  # as minimize: the checkpoint is checked before anything changes, the estimator's state loaded last
        if x0 is not None:
            raise ValueError("pass either x0 (a new run) or resume= (continue a run), not both")
        if generator is not None:
            raise ValueError("resume= continues the checkpoint's generator: leave generator out")
        saved = check_checkpoint(resume, optimizer=optimizer, estimator=estimator)
        load_companion_states([], saved)  # a checkpoint with a stateful schedule's or callback's state: refused
        for name in ("blocking", "averaging"):
            if name in saved:
                raise ValueError(f"the checkpoint was taken with {name}=; pass it again to continue the run")
        x = saved["x"].clone()
        opt_state = dict(saved["optimizer"])
        load_estimator_state(estimator, saved["estimator"])
        gen = torch.Generator()
        gen.set_state(saved["generator"])
        calls = int(saved.get("value_and_grad_calls", 0))
        run = _Run(x, opt_state, Cost(**saved["cost"]), calls, gen, new_history(history_size))
        start = int(saved["step"])
    t, end, refused = start, start + steps, False
    while t < end:
        at_x0 = resume is None and t == 0
        if at_x0 or refused or estimator._memory_empty():
            _one_step(run, estimator, optimizer, t, at_x0=at_x0, record_every=record_every)
            t, refused = t + 1, False
            continue
        asked = min(end - t, _STRETCH)
        done = _stretch(run, estimator, optimizer, t, asked, record_every)
        t, refused = t + done, done < asked
    state = {
        "x": run.x.clone(),
        "optimizer": run.opt_state,
        "estimator": estimator.state_dict(),
        "generator": run.generator.get_state(),
        "step": end,
        "cost": {"examples": run.total.examples, "evaluations": run.total.evaluations, "shots": run.total.shots},
        "value_and_grad_calls": run.value_and_grad_calls,
    }
    checkpoint = stamp_checkpoint(state, optimizer=optimizer, estimator=estimator)
    fun = _final_value(estimator, run.x)
    status = 2 if fun is not None and not math.isfinite(fun) else 0
    return MinimizeResult(
        run.x,
        fun,
        end,
        run.total,
        list(run.history),
        False,
        checkpoint,
        nfev=run.total.evaluations + run.value_and_grad_calls,
        status=status,
        success=status == 0,
        message=STATUS_MESSAGES[status].format(steps=steps, taken=steps, value=fun),
    )
