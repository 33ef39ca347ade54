"""The estimator contract: determinism, exact resumption, dtypes, refusal of NaN, and unbiasedness."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import scipy.stats
import torch

# The core's names are exported lazily (``__all__ = sorted(...)``), which mypy's strict mode does not read as
# explicit re-exports; hence the ignore.
from noisygrad import Cost, Estimate, Estimator, Kind
from noisygrad.rng import torch_stream

from ._common import (
    Check,
    as_points,
    clone,
    describe_tensor,
    difference,
    expect_refusal,
    fail,
    global_rng_states,
    global_seeds,
    is_real,
    poisoned,
    same_global_rng_states,
    serialise,
)

ESTIMATOR_CHECKS = (
    "protocol",
    "state_round_trip",
    "determinism",
    "dtype_shape_device",
    "nonfinite_params",
    "refusal_keeps_state",
    "no_input_mutation",
    "unbiasedness",
)
"""The checks of :func:`estimator_checks`, in the order they run."""

FAMILY_FALSE_ALARM = 1e-6
"""The probability that ``unbiasedness`` fails an unbiased estimator, over all coordinates of one check."""

DRAWS = ("fresh", "sequential")

EstimatorFactory = Callable[[Any], Any]
Gradient = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


def _path(point: torch.Tensor, t: int) -> torch.Tensor:
    """The ``t``-th point of a short straight path from ``point`` (so that estimators with memory see motion)."""
    direction = torch.linspace(-1.0, 1.0, point.numel(), dtype=torch.float64).reshape(point.shape)
    return point + (0.05 * t) * direction.to(dtype=point.dtype, device=point.device)


def _record(estimate: Any) -> tuple[Any, ...]:
    """What two estimates must share to be the same: gradient, value, cost and statistics."""
    cost = estimate.cost
    return (estimate.grad, estimate.value, (cost.examples, cost.evaluations, cost.shots), dict(estimate.stats))


def mean_tolerance(draws: int, coordinates: int) -> float:
    """The multiple of the standard error that bounds ``|mean - expectation|`` in every coordinate.

    The ``1 - FAMILY_FALSE_ALARM / (2 d)`` quantile of Student's t with ``draws - 1`` degrees of freedom:
    two-sided, Bonferroni over the ``d`` coordinates, so an unbiased estimator fails the whole check with
    probability below :data:`FAMILY_FALSE_ALARM` (to the accuracy of the central limit theorem at ``draws``).
    """
    if draws < 2 or coordinates < 1:
        raise ValueError(f"need draws >= 2 and coordinates >= 1, got {draws} and {coordinates}")
    return float(scipy.stats.t.ppf(1.0 - FAMILY_FALSE_ALARM / (2 * coordinates), draws - 1))


def estimator_checks(
    make_estimator: EstimatorFactory,
    objective: Any,
    params: torch.Tensor | Sequence[torch.Tensor],
    *,
    gradient: Gradient | None = None,
    bias_tolerance: float = 0.0,
    samples: int = 1000,
    draws: str = "fresh",
    calls: int = 4,
    seed: int = 0,
    name: str | None = None,
) -> list[tuple[str, Check]]:
    """The contract checks of a noisygrad :class:`~noisygrad.Estimator`, by name.

    Args:
        make_estimator: ``make_estimator(objective)`` returns a fresh estimator on ``objective``, the same one
            at every call (put any memory the checks should start from, a snapshot or a filled table, in here,
            drawn from a generator of its own).
        objective: the objective the estimator is bound to.
        params: the point, or several points (other dtypes, shapes, devices), that the objective accepts.
            Every check runs at the first; ``dtype_shape_device`` at each.
        gradient: what the estimator's mean is at ``params[0]``: a tensor, or a function of the point. By default
            the objective's exact gradient (a :class:`~noisygrad.FiniteSum` or :class:`~noisygrad.Energy`); a
            :class:`~noisygrad.NoisyBlackBox` has none, so pass it. An estimator biased by design is tested
            against the quantity it is unbiased for (Gaussian smoothing: the smoothed function's gradient) or,
            with ``bias_tolerance``, against the gradient within its known bias.
        bias_tolerance: a bound on ``|E[g] - gradient|`` in each coordinate, known from theory (central
            differences of step ``h``: ``h^2 / 6`` times a bound on the third derivative), 0 for unbiased.
        samples: estimates averaged by ``unbiasedness``.
        draws: ``"fresh"``: each of those estimates comes from a fresh estimator (``make_estimator(objective)``),
            so estimators with memory give independent draws; ``"sequential"``: successive estimates of one
            estimator (a stream in a fixed order, unbiased as the average over a pass of ``samples`` calls).
        calls: length of the runs of the determinism and round-trip checks (interrupted half way).
        seed: seeds the generators the checks pass to ``estimate``.
        name: how failures name the object (default: the estimator's class name).

    Returns:
        ``(check_name, check)`` pairs in the order of :data:`ESTIMATOR_CHECKS`; each ``check()`` returns
        nothing or raises ``AssertionError`` naming the object and the property.

    The checks, and why each matters:

    * ``protocol``: an instance of :class:`~noisygrad.Estimator`; ``estimate`` returns an
      :class:`~noisygrad.Estimate` (a tensor gradient, a finite value or ``None``, a :class:`~noisygrad.Cost` of
      counts >= 0, numeric statistics); ``state_dict()`` survives ``torch.load(weights_only=True)`` and loads back.
    * ``state_round_trip``: half way through a run along a short path, the estimator's ``state_dict`` and the
      generator's state go through ``torch.save`` / ``torch.load(weights_only=True)`` into a fresh estimator;
      the continuation must be bit-identical (``torch.equal``), as :func:`~noisygrad.minimize`'s ``resume`` needs.
    * ``determinism``: two fresh estimators fed generators with the same seed give bit-identical estimates,
      whatever the global seeds of torch and numpy, and neither global generator is touched: the generator
      passed in is the only randomness.
    * ``dtype_shape_device``: at each point, the gradient has the point's dtype, shape and device.
    * ``nonfinite_params``: parameters holding NaN or Inf are refused (:class:`~noisygrad.NonFiniteGradientError`
      or a ``ValueError`` saying so), not turned into a NaN gradient.
    * ``refusal_keeps_state``: such a refused call, on a fresh estimator or after two estimates, leaves
      ``state_dict()`` as it was, so a caller can recover (retry from the last good point) with the same object.
    * ``no_input_mutation``: ``estimate`` changes neither the parameters nor the objective's data.
    * ``unbiasedness``: the mean of ``samples`` estimates at ``params[0]`` lies within
      ``t * se + bias_tolerance`` of ``gradient`` in every coordinate, ``se`` the sample standard error and
      ``t`` from :func:`mean_tolerance` (family-wise false alarm below 1e-6, Bonferroni over the coordinates),
      plus a rounding allowance of ``100 eps`` of the dtype times the scale of the estimates.
    """
    points = as_points(params)
    x = points[0]
    if draws not in DRAWS:
        raise ValueError(f"draws must be one of {DRAWS}, got {draws!r}")
    if samples < 2 or calls < 2:
        raise ValueError(f"samples and calls must be >= 2, got {samples} and {calls}")
    if not (math.isfinite(bias_tolerance) and bias_tolerance >= 0):
        raise ValueError(f"bias_tolerance must be a finite number >= 0, got {bias_tolerance!r}")
    if gradient is None:
        if getattr(objective, "kind", None) not in (Kind.FINITE_SUM, Kind.ENERGY):
            raise ValueError(
                f"gradient= is required for an objective of kind {getattr(objective, 'kind', type(objective))}: "
                "only a FiniteSum or an Energy knows its exact gradient"
            )

        def reference() -> torch.Tensor:
            return objective.value_and_grad(x)[1]  # type: ignore[no-any-return]
    elif isinstance(gradient, torch.Tensor):
        fixed = gradient

        def reference() -> torch.Tensor:
            return fixed
    else:
        function = gradient

        def reference() -> torch.Tensor:
            return function(x)

    label = name if name is not None else type(make_estimator(objective)).__name__
    half = calls // 2

    def run(est: Any, gen: torch.Generator, start: int, stop: int, point: torch.Tensor = x) -> list[Any]:
        return [_record(est.estimate(_path(point, t), gen)) for t in range(start, stop)]

    def protocol() -> None:
        check = "protocol"
        est = make_estimator(objective)
        if not isinstance(est, Estimator):
            fail(label, check, f"{type(est).__name__} is not a noisygrad.Estimator (objective, estimate, state_dict)")
        out = est.estimate(x, torch.Generator().manual_seed(seed))
        if not isinstance(out, Estimate) or not isinstance(out.grad, torch.Tensor):
            fail(label, check, f"estimate must return a noisygrad.Estimate with a tensor grad, got {out!r}")
        if out.value is not None and not (is_real(out.value) and math.isfinite(out.value)):
            fail(label, check, f"Estimate.value must be a finite number or None, got {out.value!r}")
        cost = out.cost
        counts = (cost.examples, cost.evaluations, cost.shots) if isinstance(cost, Cost) else ()
        if not counts or not all(isinstance(c, int) and c >= 0 for c in counts):
            fail(label, check, f"Estimate.cost must be a noisygrad.Cost of counts >= 0, got {cost!r}")
        if not isinstance(out.stats, dict) or not all(isinstance(k, str) and is_real(v) for k, v in out.stats.items()):
            fail(label, check, f"Estimate.stats must map names to numbers, got {out.stats!r}")
        state = est.state_dict()
        if not isinstance(state, dict):
            fail(label, check, f"state_dict() returned {type(state).__name__}, not a dict")
        try:
            est.load_state_dict(serialise(label, check, state))
        except Exception as exc:
            fail(label, check, f"load_state_dict refused its own state_dict after torch.save/load: {exc!r}")

    def state_round_trip() -> None:
        check = "state_round_trip"
        reference_run = run(make_estimator(objective), torch.Generator().manual_seed(seed), 0, calls)
        first, gen = make_estimator(objective), torch.Generator().manual_seed(seed)
        head = run(first, gen, 0, half)
        saved = serialise(label, check, {"estimator": first.state_dict(), "generator": gen.get_state()})
        fresh, fresh_gen = make_estimator(objective), torch.Generator()
        fresh.load_state_dict(saved["estimator"])
        fresh_gen.set_state(saved["generator"])
        tail = run(fresh, fresh_gen, half, calls)
        for t, (a, b) in enumerate(zip(reference_run, head + tail, strict=True)):
            found = difference(a, b)
            if found is not None:
                fail(
                    label,
                    check,
                    f"after {half} estimates, a save/load of state_dict and generator into a fresh estimator and "
                    f"{t + 1 - half} more, the estimate differs from the uninterrupted run's (grad, value, cost, "
                    f"stats): {found}",
                )

    def determinism() -> None:
        check = "determinism"
        runs = []
        for global_seed in (0, 12345):
            with global_seeds(global_seed):
                before = global_rng_states()
                gen = torch.Generator().manual_seed(seed)
                runs.append((run(make_estimator(objective), gen, 0, calls), gen.get_state()))
                if not same_global_rng_states(before, global_rng_states()):
                    fail(label, check, "estimate drew from torch's or numpy's global generator (use the one passed in)")
        found = difference(runs[0], runs[1])
        if found is not None:
            fail(label, check, f"two fresh estimators with equally seeded generators disagree: {found}")

    def dtype_shape_device() -> None:
        check = "dtype_shape_device"
        for point in points:
            est, gen = make_estimator(objective), torch.Generator().manual_seed(seed)
            for t in range(2):
                grad = est.estimate(_path(point, t), gen).grad
                if grad.dtype != point.dtype or grad.shape != point.shape or grad.device != point.device:
                    fail(label, check, f"params {describe_tensor(point)} gave a gradient {describe_tensor(grad)}")

    def nonfinite_params() -> None:
        check = "nonfinite_params"
        for bad in (math.nan, math.inf):
            est, gen = make_estimator(objective), torch.Generator().manual_seed(seed)
            run(est, gen, 0, 2)
            point = poisoned(x, bad)
            expect_refusal(label, check, f"params holding {bad}", est.estimate, point, gen)

    def refusal_keeps_state() -> None:
        check = "refusal_keeps_state"
        for warm in (0, 2):
            for bad in (math.nan, math.inf):
                est, gen = make_estimator(objective), torch.Generator().manual_seed(seed)
                run(est, gen, 0, warm)
                before = clone(est.state_dict())
                with contextlib.suppress(Exception):  # whether it refuses is nonfinite_params' business
                    est.estimate(poisoned(x, bad), gen)
                found = difference(before, clone(est.state_dict()))
                if found is not None:
                    when = "a fresh estimator" if warm == 0 else f"after {warm} estimates"
                    fail(label, check, f"an estimate at params holding {bad} ({when}) changed the state: {found}")

    def no_input_mutation() -> None:
        check = "no_input_mutation"
        data = getattr(objective, "data", None)
        tensors = [t for t in data if isinstance(t, torch.Tensor)] if isinstance(data, (tuple, list)) else []
        inputs = [_path(x, t) for t in range(calls)]
        before = clone((inputs, tensors))
        est, gen = make_estimator(objective), torch.Generator().manual_seed(seed)
        for point in inputs:
            est.estimate(point, gen)
        found = difference(before, (inputs, tensors))
        if found is not None:
            fail(label, check, f"estimate changed its params or the objective's data: {found}")

    def unbiasedness() -> None:
        check = "unbiasedness"
        gen = torch_stream(seed, 1)  # a sub-stream of the check's seed, apart from the one the other checks use
        if draws == "fresh":
            grads = [make_estimator(objective).estimate(x, gen).grad for _ in range(samples)]
        else:
            est = make_estimator(objective)
            grads = [est.estimate(x, gen).grad for _ in range(samples)]
        g = torch.stack([t.detach().to("cpu", torch.float64).reshape(-1) for t in grads])
        expected = reference().detach().to("cpu", torch.float64).reshape(-1)
        if expected.shape != g.shape[1:]:
            fail(label, check, f"gradient= has {expected.numel()} entries, the estimates {g.shape[1]}")
        mean, se = g.mean(0), g.std(0, correction=1) / math.sqrt(samples)
        # |mean_i - E g_i| <= t se_i for every coordinate i, t the 1 - 1e-6 / (2 d) quantile of Student's t: by
        # Bonferroni over the d coordinates an unbiased estimator fails with probability below 1e-6 in all.
        t = mean_tolerance(samples, g.shape[1])
        rounding = 100 * torch.finfo(x.dtype).eps * float(expected.abs().max() + g.abs().max())
        tolerance = t * se + bias_tolerance + rounding
        gap = (mean - expected).abs()
        bad = torch.nonzero(~(gap <= tolerance)).reshape(-1).tolist()
        if bad:
            rows = "; ".join(
                f"[{i}] mean {float(mean[i]):.6g} vs {float(expected[i]):.6g}: |gap| {float(gap[i]):.3g} > "
                f"{t:.2f} se ({float(se[i]):.3g}) + bias {bias_tolerance:.3g} = {float(tolerance[i]):.3g}"
                for i in bad[:5]
            )
            fail(
                label,
                check,
                f"the mean of {samples} estimates ({draws} draws) is off the expected gradient in {len(bad)} of "
                f"{g.shape[1]} coordinates (family-wise false-alarm probability {FAMILY_FALSE_ALARM:g}): {rows}",
            )

    checks: dict[str, Check] = {
        "protocol": protocol,
        "state_round_trip": state_round_trip,
        "determinism": determinism,
        "dtype_shape_device": dtype_shape_device,
        "nonfinite_params": nonfinite_params,
        "refusal_keeps_state": refusal_keeps_state,
        "no_input_mutation": no_input_mutation,
        "unbiasedness": unbiasedness,
    }
    return [(check, checks[check]) for check in ESTIMATOR_CHECKS]
