"""The bad-input matrix: hundreds of wrong arguments to the public entry points of the five packages.

Each case calls one public function or constructor with one bad argument and asserts three things:

* the exception type: ``TypeError`` for a value of the wrong type (a string, ``None``, a bool where a number
  is due, an object that is not the expected kind), ``ValueError`` (or a subclass) for a value of the right type
  out of its range (NaN, Inf, a negative size, mismatched shapes, an unknown name);
* that the message names the argument (each case states the pattern it looks for);
* that nothing passed in was changed: every argument (tensors and arrays bit for bit, dicts, lists, and the
  public state of objects such as estimators and filters) is frozen before the call and compared after it.

Cases that fail in packages whose sources this change does not touch are marked ``xfail(strict=True)`` with the
reason, so the day they are fixed the mark has to go. The heavy field packages (qiskit, DeepXDE) are imported by
the cases that need them, on first use.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

NAN, INF = math.nan, math.inf

Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    """One bad call: ``build()`` gives ``(function, args, kwargs)``; the call must raise ``error`` matching
    ``names`` (a regex that finds the argument's name in the message)."""

    id: str
    build: Callable[[], Call]
    error: type[BaseException] | tuple[type[BaseException], ...]
    names: str
    xfail: str | None = None


# ---------------------------------------------------------------------------------------------- freezing inputs


def freeze(value: Any, depth: int = 0, seen: set[int] | None = None) -> Any:
    """A comparable snapshot of ``value``: tensors and arrays by dtype, shape and bytes, containers item by item,
    other objects by their public attributes (a few levels deep)."""
    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        return ("T", str(t.dtype), tuple(t.shape), t.reshape(-1).view(torch.uint8).numpy().tobytes())
    if isinstance(value, np.ndarray):
        return ("A", value.dtype.str, value.shape, np.ascontiguousarray(value).tobytes())
    if isinstance(value, float):
        return ("F", value.hex() if math.isfinite(value) else repr(value))
    if value is None or isinstance(value, bool | int | str | bytes | complex | np.generic):
        return value
    if isinstance(value, torch.Generator):
        return ("G", value.get_state().numpy().tobytes())
    if isinstance(value, np.random.Generator):
        return ("R", repr(value.bit_generator.state))
    if depth > 5 or id(value) in seen:
        return ("seen", type(value).__name__)
    seen = seen | {id(value)}
    if isinstance(value, dict):
        return ("D", tuple((repr(k), freeze(v, depth + 1, seen)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(freeze(v, depth + 1, seen) for v in value))
    if isinstance(value, torch.nn.Module):
        return ("M", freeze(dict(value.state_dict()), depth + 1, seen))
    if callable(value) and not hasattr(value, "__dict__"):
        return ("C", id(value))
    attributes = getattr(value, "__dict__", None)
    if attributes is None:
        return ("O", type(value).__name__, id(value))
    public = {k: v for k, v in attributes.items() if not callable(v) or isinstance(v, torch.nn.Module)}
    return ("O", type(value).__name__, freeze(public, depth + 1, seen))


def _params(cases: list[Case]) -> list[Any]:
    marks: list[Any] = []
    for case in cases:
        extra = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        marks.append(pytest.param(case, id=case.id, marks=extra))
    return marks


def check(case: Case) -> None:
    fn, args, kwargs = case.build()
    before = freeze((args, kwargs))
    with pytest.raises(case.error) as raised:
        fn(*args, **kwargs)
    message = str(raised.value)
    assert re.search(case.names, message), f"the message does not name the argument ({case.names!r}): {message!r}"
    assert freeze((args, kwargs)) == before, "an input was changed by the failed call"


# ---------------------------------------------------------------------------------------------- value families

POSITIVE = [
    (NAN, ValueError),
    (INF, ValueError),
    (-1.0, ValueError),
    (0.0, ValueError),
    ("1", TypeError),
    (None, TypeError),
    (True, TypeError),
]
NON_NEGATIVE = [(NAN, ValueError), (INF, ValueError), (-1.0, ValueError), ("1", TypeError), (None, TypeError)]
COUNT = [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError), (None, TypeError)]
COUNT_OR_ZERO = [(-1, ValueError), (1.5, TypeError), ("2", TypeError), (None, TypeError)]
REAL = [(NAN, ValueError), (INF, ValueError), ("1", TypeError), (None, TypeError)]
SEED = [(-1, ValueError), (1.5, TypeError), ("7", TypeError)]


def sweep(
    prefix: str,
    fn: Callable[..., Any],
    name: str,
    values: list[tuple[Any, type[BaseException]]],
    *,
    args: Callable[[], tuple[Any, ...]] = tuple,
    kwargs: Callable[[], dict[str, Any]] = dict,
    names: str | None = None,
    xfail: dict[Any, str] | None = None,
) -> Iterator[Case]:
    """One case per bad ``value`` of the keyword ``name`` (the other arguments fresh from ``args``/``kwargs``)."""
    for value, error in values:
        key = repr(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
        if " at 0x" in key:  # an object's default repr holds its address: name its type, so ids are stable
            key = type(value).__name__
        reason = None
        if xfail:
            reason = xfail.get(key, xfail.get("*"))
        yield Case(
            f"{prefix}-{name}={key}",
            lambda value=value: (fn, args(), {**kwargs(), name: value}),
            error,
            names or rf"\b{re.escape(name)}\b",
            reason,
        )


def one(
    id: str,
    fn: Callable[..., Any],
    error: type[BaseException] | tuple[type[BaseException], ...],
    names: str,
    *args: Any,
    xfail: str | None = None,
    **kwargs: Any,
) -> Case:
    """A single case with fixed arguments (built fresh: ``args`` and ``kwargs`` may hold zero-argument lambdas,
    called at build time, for inputs that must be new objects)."""

    def build() -> Call:
        def fresh(v: Any) -> Any:
            return v() if isinstance(v, _Fresh) else v

        return fn, tuple(fresh(a) for a in args), {k: fresh(v) for k, v in kwargs.items()}

    return Case(id, build, error, names, xfail)


class _Fresh:
    """A value built anew for every case (``fresh(lambda: ...)``)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make

    def __call__(self) -> Any:
        return self.make()


def fresh(make: Callable[[], Any]) -> _Fresh:
    return _Fresh(make)


def lazy(module: str, name: str) -> Callable[..., Any]:
    """``module.name``, imported when called (qiskit, DeepXDE and the plugins load only for their cases)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = name
    return call


# ================================================================================================ core

import noisygrad as ng  # noqa: E402


def _data(n: int = 24, d: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return X, X @ torch.ones(d, dtype=torch.float64) + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)


def _glm() -> ng.GLM:
    return ng.GLM(*_data(), loss="squared")


def _finite_sum() -> ng.FiniteSum:
    return ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), _data())


def _bowl() -> ng.NoisyBlackBox:
    return ng.NoisyBlackBox(lambda p, g: (p**2).sum(1) + 0.01 * torch.randn(p.shape[0], generator=g, dtype=p.dtype))


def _energy() -> ng.Energy:
    return ng.Energy(lambda x: (x**2).sum())


def _noisy_batches() -> ng.MiniBatch:
    return ng.MiniBatch(_glm(), 4, noise_stats=True)


def _x0() -> torch.Tensor:
    return torch.zeros(3, dtype=torch.float64)


def _checkpoint() -> dict[str, Any]:
    return ng.minimize(ng.MiniBatch(_glm(), 4), ng.Adam(0.05), _x0(), steps=2).checkpoint


def _minimize(**changes: Any) -> Call:
    kwargs: dict[str, Any] = {"steps": 3}
    kwargs.update(changes)
    x0 = kwargs.pop("x0", _x0())
    args = (ng.MiniBatch(_glm(), 4), ng.Adam(0.05)) if x0 is _NO_X0 else (ng.MiniBatch(_glm(), 4), ng.Adam(0.05), x0)
    return ng.minimize, args, kwargs


_NO_X0 = object()


def core_cases() -> Iterator[Case]:
    # update rules
    yield from sweep("SGD", ng.SGD, "lr", [v for v in POSITIVE if v[0] != 0.0])
    yield from sweep(
        "SGD", ng.SGD, "momentum", [(NAN, ValueError), (-0.1, ValueError), (1.5, ValueError), ("x", TypeError)]
    )
    yield from sweep("SGD", ng.SGD, "dampening", [(NAN, ValueError), (-0.1, ValueError), ("x", TypeError)])
    yield from sweep("SGD", ng.SGD, "weight_decay", NON_NEGATIVE)
    yield from sweep("Adam", ng.Adam, "lr", [v for v in POSITIVE if v[0] != 0.0])
    yield from sweep(
        "Adam",
        ng.Adam,
        "betas",
        [
            ((1.0, 0.999), ValueError),
            ((0.9, -0.1), ValueError),
            ((NAN, 0.9), ValueError),
            ("x", TypeError),
            ((0.9,), ValueError),
        ],
    )
    yield from sweep("Adam", ng.Adam, "eps", POSITIVE)
    yield from sweep("Adam", ng.Adam, "weight_decay", NON_NEGATIVE)
    yield from sweep("SGLD", ng.SGLD, "lr", [v for v in POSITIVE if v[0] != 0.0])
    yield from sweep("SGLD", ng.SGLD, "temperature", [v for v in POSITIVE if v[0] != 0.0])
    yield from sweep("SGLD", ng.SGLD, "seed", SEED)
    yield from sweep("BAOAB", ng.BAOAB, "friction", POSITIVE)
    yield from sweep("BAOAB", ng.BAOAB, "temperature", [v for v in POSITIVE if v[0] != 0.0])
    yield from sweep("BAOAB", ng.BAOAB, "seed", SEED)
    # schedules
    yield from sweep("RobbinsMonro", ng.RobbinsMonro, "a", POSITIVE, kwargs=lambda: {"b": 1.0})
    yield from sweep(
        "RobbinsMonro",
        ng.RobbinsMonro,
        "b",
        [(NAN, ValueError), (-1.0, ValueError), ("1", TypeError)],
        kwargs=lambda: {"a": 1.0},
    )
    yield from sweep(
        "RobbinsMonro",
        ng.RobbinsMonro,
        "alpha",
        [(NAN, ValueError), (0.0, ValueError), (1.5, ValueError), ("1", TypeError)],
        kwargs=lambda: {"a": 1.0},
    )
    yield from sweep(
        "Constant", ng.Constant, "value", [(NAN, ValueError), (INF, ValueError), (-1.0, ValueError), ("1", TypeError)]
    )
    yield from sweep("Cosine", ng.Cosine, "steps", COUNT, kwargs=lambda: {"value": 0.1})
    yield from sweep(
        "Cosine",
        ng.Cosine,
        "final",
        [(NAN, ValueError), (-1.0, ValueError)],
        kwargs=lambda: {"value": 0.1, "steps": 10},
    )
    yield from sweep("StepDecay", ng.StepDecay, "every", COUNT, kwargs=lambda: {"value": 0.1})
    yield from sweep(
        "StepDecay",
        ng.StepDecay,
        "factor",
        [(NAN, ValueError), (0.0, ValueError), (-0.5, ValueError)],
        kwargs=lambda: {"value": 0.1, "every": 5},
    )
    # objectives
    yield one("FiniteSum-loss=3", ng.FiniteSum, TypeError, r"\bloss\b", 3, fresh(_data))
    yield one("FiniteSum-data=[]", ng.FiniteSum, TypeError, r"\bdata\b", lambda w: w, [])
    yield one("FiniteSum-data=3", ng.FiniteSum, TypeError, r"\bdata\b", lambda w: w, 3)
    yield one(
        "FiniteSum-data-lengths",
        ng.FiniteSum,
        ValueError,
        r"\bdata\b",
        lambda w, X, y: w,
        fresh(lambda: (torch.zeros(5, 2), torch.zeros(4))),
    )
    yield one(
        "FiniteSum-data-empty", ng.FiniteSum, ValueError, r"\bdata\b", lambda w, X: w, fresh(lambda: torch.zeros(0, 2))
    )
    yield one("NoisyBlackBox-fn=3", ng.NoisyBlackBox, TypeError, r"\bfn\b", 3)
    yield from sweep(
        "NoisyBlackBox", ng.NoisyBlackBox, "cost_per_evaluation", POSITIVE, args=lambda: (lambda p, g: p.sum(1),)
    )
    yield one(
        "NoisyBlackBox.evaluate-generator=None",
        lambda b, p, g: b.evaluate(p, g),
        TypeError,
        r"\bgenerator\b",
        fresh(_bowl),
        fresh(lambda: torch.zeros(2, 3)),
        None,
    )
    yield one(
        "NoisyBlackBox.evaluate-points-1d",
        lambda b, p, g: b.evaluate(p, g),
        ValueError,
        r"\bpoints\b",
        fresh(_bowl),
        fresh(lambda: torch.zeros(3)),
        fresh(torch.Generator),
    )
    yield one("Energy-fn=None", ng.Energy, TypeError, r"\bfn\b", None)
    # NaN in a tensor is the core's NonFiniteGradientError (a FloatingPointError), as for x0; the message names X
    yield one(
        "GLM-X-nan",
        ng.GLM,
        (ValueError, ng.NonFiniteGradientError),
        r"\bX\b",
        fresh(lambda: torch.full((4, 2), NAN, dtype=torch.float64)),
        fresh(lambda: torch.zeros(4, dtype=torch.float64)),
        loss="squared",
    )
    yield one(
        "GLM-X-1d",
        ng.GLM,
        ValueError,
        r"\bX\b",
        fresh(lambda: torch.zeros(4, dtype=torch.float64)),
        fresh(lambda: torch.zeros(4, dtype=torch.float64)),
        loss="squared",
    )
    yield one(
        "GLM-y-length",
        ng.GLM,
        ValueError,
        r"\by\b",
        fresh(lambda: torch.zeros(4, 2, dtype=torch.float64)),
        fresh(lambda: torch.zeros(3, dtype=torch.float64)),
        loss="squared",
    )
    yield one(
        "GLM-y-labels",
        ng.GLM,
        ValueError,
        r"\by\b",
        fresh(lambda: torch.zeros(4, 2, dtype=torch.float64)),
        fresh(lambda: torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)),
        loss="logistic",
    )
    yield one(
        "GLM-loss",
        ng.GLM,
        ValueError,
        r"\bloss\b",
        fresh(lambda: torch.zeros(4, 2, dtype=torch.float64)),
        fresh(lambda: torch.zeros(4, dtype=torch.float64)),
        loss="hinge",
    )
    yield one(
        "GLM-dtypes",
        ng.GLM,
        TypeError,
        r"\bX and y\b",
        fresh(lambda: torch.zeros(4, 2, dtype=torch.float64)),
        fresh(lambda: torch.zeros(4, dtype=torch.float32)),
        loss="squared",
    )
    yield from sweep("GLM", ng.GLM, "l2", NON_NEGATIVE, args=lambda: _data(), kwargs=lambda: {"loss": "squared"})
    yield one("ModuleLoss-module=3", ng.ModuleLoss, TypeError, r"\bmodule\b", 3, lambda out, y: out)
    yield one(
        "ModuleLoss-example_loss=3",
        ng.ModuleLoss,
        TypeError,
        r"\bexample_loss\b",
        fresh(lambda: torch.nn.Linear(2, 1)),
        3,
    )
    yield one(
        "ModuleLoss-no-parameters", ng.ModuleLoss, ValueError, r"\bmodule\b", fresh(torch.nn.Tanh), lambda o, y: o
    )
    # estimators
    yield from sweep("MiniBatch", ng.MiniBatch, "batch_size", [*COUNT, (25, ValueError)], args=lambda: (_glm(),))
    yield one(
        "MiniBatch-objective=black-box",
        ng.MiniBatch,
        (TypeError, ng.BatchingNotAllowedError),
        r"objective|MiniBatch",
        fresh(_bowl),
        4,
    )
    yield one(
        "MiniBatch-objective=energy",
        ng.MiniBatch,
        (TypeError, ng.BatchingNotAllowedError),
        r"objective|MiniBatch|energy",
        fresh(_energy),
        4,
    )
    yield one(
        "MiniBatch-noise_stats", ng.MiniBatch, ValueError, r"noise_stats|method", fresh(_glm), 4, noise_stats="bogus"
    )
    yield one(
        "MiniBatch-probes=0", ng.MiniBatch, ValueError, r"\bprobes\b", fresh(_glm), 4, noise_stats="probe", probes=0
    )
    yield one(
        "MiniBatch.estimate-generator=None",
        lambda e, x, g: e.estimate(x, g),
        TypeError,
        r"\bgenerator\b",
        fresh(lambda: ng.MiniBatch(_glm(), 4)),
        fresh(_x0),
        None,
    )
    yield one("FullBatch-objective=3", ng.FullBatch, TypeError, r"objective|FullBatch", 3)
    yield one("FullBatch-objective=black-box", ng.FullBatch, TypeError, r"objective|FullBatch", fresh(_bowl))
    yield from sweep("SPSA", ng.SPSA, "c", POSITIVE, args=lambda: (_bowl(),))
    yield from sweep(
        "SPSA", ng.SPSA, "gamma", [(NAN, ValueError), (-0.1, ValueError), ("x", TypeError)], args=lambda: (_bowl(),)
    )
    yield from sweep("SPSA", ng.SPSA, "resamplings", COUNT, args=lambda: (_bowl(),))
    yield one("SPSA-perturbation", ng.SPSA, ValueError, r"\bperturbation\b", fresh(_bowl), perturbation="gaussian-ish")
    yield one("SPSA-objective=finite-sum", ng.SPSA, TypeError, r"objective|SPSA", fresh(_glm))
    yield from sweep("GaussianSmoothing", ng.GaussianSmoothing, "sigma", POSITIVE, args=lambda: (_bowl(),))
    yield from sweep("GaussianSmoothing", ng.GaussianSmoothing, "samples", COUNT, args=lambda: (_bowl(),))
    yield from sweep("CentralDifference", ng.CentralDifference, "step", POSITIVE, args=lambda: (_bowl(),))
    yield from sweep("Clipped", ng.Clipped, "max_norm", POSITIVE, args=lambda: (ng.FullBatch(_glm()),))
    yield one("Clipped-estimator=3", ng.Clipped, TypeError, r"\bestimator\b", 3, 1.0)
    yield from sweep("SVRG", ng.SVRG, "batch_size", COUNT[:3], args=lambda: (_glm(),))
    yield one(
        "SVRG-refresh",
        ng.SVRG,
        ValueError,
        r"\brefresh\b",
        fresh(_glm),
        4,
        refresh="sometimes",
    )
    yield one(
        "SVRG-anchor-shape",
        ng.SVRG,
        ValueError,
        r"\banchor\b",
        fresh(_glm),
        4,
        anchor=fresh(lambda: torch.zeros(5, dtype=torch.float64)),
    )
    yield from sweep("SAGA", ng.SAGA, "batch_size", COUNT[:3], args=lambda: (_glm(),))
    yield from sweep(
        "STORM",
        ng.STORM,
        "momentum",
        [(NAN, ValueError), (-0.1, ValueError), (1.5, ValueError)],
        args=lambda: (_glm(), 4),
    )
    yield from sweep(
        "spsa_calibrate",
        ng.spsa_calibrate,
        "generator",
        [(None, TypeError), (np.random.default_rng(0), TypeError)],
        args=lambda: (_bowl(), _x0()),
    )
    yield from sweep(
        "spsa_calibrate",
        ng.spsa_calibrate,
        "samples",
        COUNT[:2],
        args=lambda: (_bowl(), _x0()),
        kwargs=lambda: {"generator": torch.Generator()},
    )
    yield from sweep(
        "spsa_calibrate",
        ng.spsa_calibrate,
        "target_step",
        POSITIVE[:4],
        args=lambda: (_bowl(), _x0()),
        kwargs=lambda: {"generator": torch.Generator()},
    )
    # the loop and its parts
    yield from (Case(f"minimize-steps={v!r}", lambda v=v: _minimize(steps=v), e, r"\bsteps\b") for v, e in COUNT)
    yield from (
        Case(f"minimize-record_every={v!r}", lambda v=v: _minimize(record_every=v), e, r"\brecord_every\b")
        for v, e in COUNT[:3]
    )
    bad_x0 = [
        ("nan", lambda: torch.tensor([0.0, NAN, 0.0], dtype=torch.float64), ng.NonFiniteGradientError),
        ("inf", lambda: [0.0, INF, 0.0], ng.NonFiniteGradientError),
        ("2d", lambda: torch.zeros(3, 1, dtype=torch.float64), ValueError),
        ("empty", lambda: torch.zeros(0, dtype=torch.float64), ValueError),
        ("length", lambda: torch.zeros(4, dtype=torch.float64), ValueError),
        ("complex", lambda: torch.zeros(3, dtype=torch.complex128), TypeError),
        ("float16", lambda: torch.zeros(3, dtype=torch.float16), TypeError),
        ("float32-vs-float64-data", lambda: torch.zeros(3, dtype=torch.float32), TypeError),
        ("string", lambda: "zeros", TypeError),
        ("bool-tensor", lambda: torch.zeros(3, dtype=torch.bool), TypeError),
    ]
    for label, make, error in bad_x0:
        yield Case(f"minimize-x0={label}", lambda make=make: _minimize(x0=make()), error, r"\bx0\b")
    yield Case("minimize-x0-missing", lambda: _minimize(x0=_NO_X0), ValueError, r"\bx0\b")
    yield Case(
        "minimize-generator=numpy", lambda: _minimize(generator=np.random.default_rng(0)), TypeError, r"\bgenerator\b"
    )
    yield Case(
        "minimize-seed-and-generator",
        lambda: _minimize(seed=1, generator=torch.Generator()),
        ValueError,
        r"\bseed\b.*\bgenerator\b",
    )
    yield from (Case(f"minimize-seed={v!r}", lambda v=v: _minimize(seed=v), e, r"\bseed\b") for v, e in SEED)
    bad_resume = [
        ("{}", lambda: {}, ValueError),
        ("str", lambda: "run.pt", TypeError),
        ("int", lambda: 3, TypeError),
        ("truncated", lambda: {k: v for k, v in _checkpoint().items() if k != "generator"}, ValueError),
        ("foreign", lambda: ng.minimize(ng.MiniBatch(_glm(), 4), ng.SGD(0.05), _x0(), steps=2).checkpoint, ValueError),
        ("flipped", lambda: {**_checkpoint(), "step": 3}, ValueError),
    ]

    def diverged() -> dict[str, Any]:
        from noisygrad.loop_checkpoint import checkpoint_checksum

        checkpoint = _checkpoint()
        checkpoint["x"] = checkpoint["x"].clone()
        checkpoint["x"][0] = NAN
        checkpoint["checksum"] = checkpoint_checksum(checkpoint)
        return checkpoint

    bad_resume.append(("nan", diverged, ValueError))
    for label, make, error in bad_resume:
        yield Case(
            f"minimize-resume={label}", lambda make=make: _minimize(x0=_NO_X0, resume=make()), error, r"\bresume\b"
        )
    yield one("Projection-low>high", ng.Projection, ValueError, r"\blow\b", 1.0, 0.0)
    yield one("Projection-low=text", ng.Projection, TypeError, r"\blow\b", "zero", 1.0)
    yield Case(
        "minimize-projection-shape",
        lambda: _minimize(projection=ng.Projection(torch.zeros(2), torch.ones(2))),
        ValueError,
        r"\bprojection\b",
    )
    yield Case("minimize-projection=tuple", lambda: _minimize(projection=(0.0, 1.0)), TypeError, r"\bprojection\b")
    yield Case("minimize-blocking=True", lambda: _minimize(blocking=True), TypeError, r"\bblocking\b")
    yield Case("minimize-averaging=5", lambda: _minimize(averaging=5), TypeError, r"\baveraging\b")
    yield Case("minimize-final=1", lambda: _minimize(final=1), TypeError, r"\bfinal\b")
    yield Case("minimize-callbacks=[3]", lambda: _minimize(callbacks=[3]), TypeError, r"\bcallbacks\b")
    yield Case("minimize-callbacks=print", lambda: _minimize(callbacks=print), TypeError, r"\bcallbacks\b")
    yield one(
        "minimize-optimizer=text",
        ng.minimize,
        TypeError,
        r"\boptimizer\b",
        fresh(lambda: ng.FullBatch(_glm())),
        "sgd",
        fresh(_x0),
        steps=2,
    )
    yield one(
        "minimize-estimator=text",
        ng.minimize,
        TypeError,
        r"\bestimator\b",
        "full-batch",
        fresh(lambda: ng.SGD(0.1)),
        fresh(_x0),
        steps=2,
    )
    for label, schedule in (
        ("nan", lambda t: 0.1 if t < 2 else NAN),
        ("negative", lambda t: 0.1 if t < 2 else -1.0),
        ("inf", lambda t: 0.1 if t < 2 else INF),
    ):
        yield one(
            f"minimize-lr-schedule-{label}-at-step-2",
            ng.minimize,
            ValueError,
            r"\blr\b",
            fresh(lambda: ng.FullBatch(_glm())),
            fresh(lambda schedule=schedule: ng.SGD(schedule)),
            fresh(_x0),
            steps=5,
        )

    def nan_data() -> ng.FiniteSum:
        X, y = _data()
        X[3, 1] = NAN
        return ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))

    yield one(
        "minimize-data-nan",
        ng.minimize,
        ng.NonFiniteGradientError,
        r"\bdata\b",
        fresh(lambda: ng.FullBatch(nan_data())),
        fresh(lambda: ng.SGD(0.1)),
        fresh(_x0),
        steps=3,
    )
    yield one(
        "minimize-sgld-noise_correction-shape",
        ng.minimize,
        ValueError,
        r"\bnoise_correction\b",
        fresh(lambda: ng.FullBatch(_glm())),
        fresh(lambda: ng.SGLD(0.1, noise_correction=torch.eye(2))),
        fresh(_x0),
        steps=3,
    )
    yield one(
        "Projection-nan", ng.Projection, ValueError, r"\blow\b|\bhigh\b", fresh(lambda: torch.tensor([0.0, NAN])), 1.0
    )
    yield from sweep("Blocking", ng.Blocking, "sigmas", [(0.0, ValueError), (NAN, ValueError), (-1.0, ValueError)])
    yield from sweep("Blocking", ng.Blocking, "allowed_increase", [(-1.0, ValueError), (NAN, ValueError)])
    yield from sweep("IterateAveraging", ng.IterateAveraging, "last", COUNT[:4])
    yield from sweep("FinalEstimate", ng.FinalEstimate, "repeats", COUNT[:4])
    # noise theory
    eye = lambda: np.eye(2)  # noqa: E731
    yield from sweep(
        "sgd_stationary_covariance", ng.sgd_stationary_covariance, "lr", POSITIVE[:5], args=lambda: (eye(), eye())
    )
    yield one(
        "sgd_stationary_covariance-lr-unstable",
        ng.sgd_stationary_covariance,
        ValueError,
        r"\blr\b",
        fresh(eye),
        fresh(eye),
        2.5,
    )
    yield from sweep(
        "sgd_stationary_covariance",
        ng.sgd_stationary_covariance,
        "batch_size",
        COUNT[:4],
        args=lambda: (eye(), eye(), 0.1),
    )
    yield one(
        "sgd_stationary_covariance-method",
        ng.sgd_stationary_covariance,
        ValueError,
        r"\bmethod\b",
        fresh(eye),
        fresh(eye),
        0.1,
        method="exact",
    )
    for label, make in (
        ("nonsquare", lambda: np.ones((2, 3))),
        ("asymmetric", lambda: np.array([[1.0, 0.5], [0.0, 1.0]])),
        ("nan", lambda: np.array([[NAN, 0.0], [0.0, 1.0]])),
        ("empty", lambda: np.zeros((0, 0))),
        ("text", lambda: "identity"),
    ):
        error = TypeError if label == "text" else ValueError
        yield one(
            f"sgd_stationary_covariance-hessian={label}",
            ng.sgd_stationary_covariance,
            error,
            r"\bhessian\b",
            fresh(make),
            fresh(eye),
            0.1,
        )
        yield one(f"noise_ball-noise_cov={label}", ng.noise_ball, error, r"\bnoise_cov\b", fresh(eye), fresh(make), 0.1)
    for label, make in (
        ("negative-definite", lambda: -np.eye(2)),
        ("indefinite", lambda: np.array([[1.0, 2.0], [2.0, 1.0]])),
        ("shape", lambda: np.eye(3)),
    ):
        yield one(
            f"noise_ball-noise_cov={label}", ng.noise_ball, ValueError, r"\bnoise_cov\b", fresh(eye), fresh(make), 0.1
        )
        yield one(
            f"langevin_stationary_covariance-grad_noise_cov={label}",
            ng.langevin_stationary_covariance,
            ValueError,
            r"\bgrad_noise_cov\b",
            fresh(eye),
            0.1,
            grad_noise_cov=fresh(make),
        )
    yield from sweep(
        "langevin_stationary_covariance",
        ng.langevin_stationary_covariance,
        "temperature",
        POSITIVE[:5],
        args=lambda: (np.eye(2), 0.1),
    )
    yield from sweep(
        "heavy_ball_stationary_covariance",
        ng.heavy_ball_stationary_covariance,
        "momentum",
        [(NAN, ValueError), (-0.1, ValueError), (1.0, ValueError), ("x", TypeError)],
        args=lambda: (np.eye(2), np.eye(2), 0.1),
    )
    yield one(
        "least_squares_stationary_covariance-residuals",
        ng.least_squares_stationary_covariance,
        ValueError,
        r"\bresiduals\b",
        fresh(lambda: np.ones((5, 2))),
        fresh(lambda: np.ones(4)),
        0.1,
    )
    yield from sweep(
        "least_squares_stationary_covariance",
        ng.least_squares_stationary_covariance,
        "batch_size",
        COUNT[:3],
        args=lambda: (np.eye(3, 2), np.ones(3), 0.1),
    )
    yield from sweep(
        "predicted_cosine",
        ng.predicted_cosine,
        "rho",
        [(NAN, ValueError), (-1.0, ValueError), ("x", TypeError)],
        kwargs=lambda: {"batch_size": 4},
    )
    yield from sweep("predicted_cosine", ng.predicted_cosine, "batch_size", COUNT[:3], kwargs=lambda: {"rho": 1.0})
    yield one(
        "predicted_cosine-n_examples<batch",
        ng.predicted_cosine,
        ValueError,
        r"\bn_examples\b|\bbatch_size\b",
        1.0,
        8,
        4,
    )
    yield from sweep(
        "effective_temperature",
        ng.effective_temperature,
        "lr",
        POSITIVE[:5],
        kwargs=lambda: {"batch_grad_variance": 1.0, "dim": 2},
    )
    yield from sweep(
        "effective_temperature",
        ng.effective_temperature,
        "dim",
        COUNT[:3],
        kwargs=lambda: {"lr": 0.1, "batch_grad_variance": 1.0},
    )
    yield from sweep("NoiseScaleMeter", ng.NoiseScaleMeter, "b_small", COUNT[:3], kwargs=lambda: {"b_big": 8})
    yield one("NoiseScaleMeter-b_big<=b_small", ng.NoiseScaleMeter, ValueError, r"\bb_big\b", 8, 4)
    yield one(
        "NoiseScaleMeter-n_examples<b_big",
        ng.NoiseScaleMeter,
        ValueError,
        r"\bb_big\b|\bn_examples\b",
        2,
        8,
        n_examples=4,
    )
    yield from sweep(
        "NoiseScaleMeter",
        ng.NoiseScaleMeter,
        "ema",
        [(0.0, ValueError), (1.5, ValueError), (NAN, ValueError)],
        args=lambda: (2, 8),
    )
    grads = lambda: torch.randn(10, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # noqa: E731
    yield from sweep(
        "monte_carlo_cosine",
        ng.monte_carlo_cosine,
        "generator",
        [(None, TypeError), (0, TypeError)],
        args=lambda: (grads(), 4),
        kwargs=lambda: {"draws": 10},
    )
    yield from sweep(
        "monte_carlo_cosine",
        ng.monte_carlo_cosine,
        "draws",
        [(1, ValueError), (0, ValueError)],
        args=lambda: (grads(), 4),
        kwargs=lambda: {"generator": torch.Generator()},
    )
    yield from sweep(
        "monte_carlo_cosine",
        ng.monte_carlo_cosine,
        "batch_size",
        [(0, ValueError), (11, ValueError)],
        args=lambda: (grads(),),
        kwargs=lambda: {"draws": 10, "generator": torch.Generator()},
    )
    yield from sweep(
        "hill_tail_index",
        ng.hill_tail_index,
        "fraction",
        [(0.0, ValueError), (1.5, ValueError), (NAN, ValueError)],
        args=lambda: (np.arange(1.0, 1001.0),),
    )
    yield one(
        "hill_tail_index-samples-nan",
        ng.hill_tail_index,
        ValueError,
        r"\bsamples\b",
        fresh(lambda: np.array([1.0, NAN] * 500)),
    )
    yield from sweep("kesten_tail_index", ng.kesten_tail_index, "lr", POSITIVE[:5])
    yield from sweep("kesten_tail_index", ng.kesten_tail_index, "batch_size", COUNT[:3], kwargs=lambda: {"lr": 0.1})
    yield from sweep(
        "first_passage_times",
        ng.first_passage_times,
        "max_steps",
        COUNT[:4],
        args=lambda: (lambda x, t: x, torch.zeros(4, dtype=torch.float64), lambda x, t: x > 1),
    )
    quadratic = lambda: lambda p: (p**2).sum()  # noqa: E731
    yield from sweep(
        "top_hessian_eigenvalue",
        ng.top_hessian_eigenvalue,
        "generator",
        [(None, TypeError), (3, TypeError)],
        args=lambda: (quadratic(), torch.ones(3, dtype=torch.float64), 10),
    )
    yield from sweep(
        "top_hessian_eigenvalue",
        ng.top_hessian_eigenvalue,
        "iterations",
        COUNT[:3],
        args=lambda: (quadratic(), torch.ones(3, dtype=torch.float64)),
        kwargs=lambda: {"generator": torch.Generator()},
    )
    yield from sweep(
        "top_hessian_eigenvalue",
        ng.top_hessian_eigenvalue,
        "rtol",
        [(-1.0, ValueError), (NAN, ValueError)],
        args=lambda: (quadratic(), torch.ones(3, dtype=torch.float64), 10, torch.Generator()),
    )
    yield one(
        "mean_first_passage_time-potential", ng.mean_first_passage_time, TypeError, r"\bpotential\b", 3, 0.0, 1.0, 1.0
    )
    yield one(
        "mean_first_passage_time-end<start",
        ng.mean_first_passage_time,
        ValueError,
        r"\bend\b",
        lambda x: x * x,
        1.0,
        0.0,
        1.0,
    )
    yield from sweep(
        "mean_first_passage_time",
        ng.mean_first_passage_time,
        "temperature",
        POSITIVE[:5],
        args=lambda: (lambda x: x * x, -1.0, 0.0),
    )
    yield from sweep(
        "langer_escape_time",
        ng.langer_escape_time,
        "temperature",
        POSITIVE[:5],
        args=lambda: (np.eye(2), np.diag([-1.0, 1.0]), 1.0),
    )
    yield from sweep(
        "adascale_gain",
        ng.adascale_gain,
        "base_batch_size",
        COUNT[:3],
        kwargs=lambda: {"noise_scale": 10.0, "batch_size": 8},
    )
    yield from sweep(
        "adascale_gain",
        ng.adascale_gain,
        "noise_scale",
        [(NAN, ValueError)],  # < 0 counts as 0
        kwargs=lambda: {"base_batch_size": 4, "batch_size": 8},
    )
    yield from sweep("adam_expected_step", ng.adam_expected_step, "lr", POSITIVE[:5], args=lambda: (1.0,))
    # other entry points
    yield from sweep("spawn_seeds", ng.spawn_seeds, "n", COUNT_OR_ZERO, kwargs=lambda: {"seed": 0})
    yield from sweep("spawn_seeds", ng.spawn_seeds, "seed", SEED, kwargs=lambda: {"n": 2})
    yield one("sweep-task=3", ng.sweep, TypeError, r"\btask\b", 3, [1, 2])
    yield one("sweep-executor", ng.sweep, ValueError, r"\bexecutor\b", abs, [1, 2], "cluster")
    yield from sweep("sweep", ng.sweep, "workers", COUNT[:3], args=lambda: (abs, [1, 2], "thread"))
    yield from sweep(
        "minimize_lbfgs",
        ng.minimize_lbfgs,
        "batch_size",
        [*COUNT[:3], (25, ValueError)],
        args=lambda: (_glm(), _x0()),
        kwargs=lambda: {"steps": 2},
    )
    yield from sweep(
        "minimize_lbfgs",
        ng.minimize_lbfgs,
        "steps",
        COUNT[:3],
        args=lambda: (_glm(), _x0()),
        kwargs=lambda: {"batch_size": 4},
    )
    yield from sweep(
        "minimize_lbfgs",
        ng.minimize_lbfgs,
        "seed",
        [*SEED, (None, TypeError)],
        args=lambda: (_glm(), _x0()),
        kwargs=lambda: {"batch_size": 4, "steps": 2},
    )
    yield from sweep("LBFGS", ng.LBFGS, "lr", POSITIVE[:5], args=lambda: ([torch.zeros(2, requires_grad=True)],))
    yield from sweep("LBFGS", ng.LBFGS, "history_size", COUNT[:3], args=lambda: ([torch.zeros(2, requires_grad=True)],))
    yield from sweep("StochasticArmijo", ng.StochasticArmijo, "max_step", POSITIVE[:5])
    yield from sweep(
        "StochasticArmijo", ng.StochasticArmijo, "c", [(0.0, ValueError), (1.0, ValueError), (NAN, ValueError)]
    )
    yield from sweep("StochasticArmijo", ng.StochasticArmijo, "beta", [(0.0, ValueError), (1.0, ValueError)])
    yield from sweep("StochasticArmijo", ng.StochasticArmijo, "reset", [("sometimes", ValueError)])
    yield from sweep("StochasticArmijo", ng.StochasticArmijo, "max_backtracks", COUNT_OR_ZERO[:3])
    yield from sweep("lennard_jones", ng.lennard_jones, "n_atoms", [(1, ValueError), (0, ValueError), (2.5, TypeError)])
    yield from sweep("lennard_jones", ng.lennard_jones, "epsilon", POSITIVE[:5], args=lambda: (3,))
    yield from sweep("lennard_jones", ng.lennard_jones, "sigma", POSITIVE[:5], args=lambda: (3,))
    yield from sweep("icosahedron", ng.icosahedron, "radius", POSITIVE[:5])
    yield from sweep("perturbed_icosahedron", ng.perturbed_icosahedron, "rng", [(None, TypeError), (3, TypeError)])
    yield from sweep(
        "perturbed_icosahedron",
        ng.perturbed_icosahedron,
        "noise",
        [(NAN, ValueError), (-1.0, ValueError)],
        args=lambda: (np.random.default_rng(0),),
    )
    yield one(
        "cluster_energy-positions-shape",
        ng.cluster_energy,
        ValueError,
        r"\bpositions\b",
        fresh(lambda: torch.zeros(4, 2, dtype=torch.float64)),
    )
    yield from sweep(
        "Thermostat",
        ng.Thermostat,
        "temperature",
        POSITIVE[:5],
        args=lambda: (_noisy_batches(),),
        kwargs=lambda: {"lr": 0.1},
    )
    yield from sweep("Thermostat", ng.Thermostat, "lr", POSITIVE[:5], args=lambda: (_noisy_batches(), 1.0))
    yield from sweep(
        "Thermostat",
        ng.Thermostat,
        "control",
        [("temperature-ish", ValueError)],
        args=lambda: (_noisy_batches(), 1.0),
        kwargs=lambda: {"lr": 0.1},
    )
    yield from sweep(
        "Thermostat",
        ng.Thermostat,
        "smoothing",
        [(1.5, ValueError), (-0.1, ValueError)],
        args=lambda: (_noisy_batches(), 1.0),
        kwargs=lambda: {"lr": 0.1},
    )
    yield one(
        "Thermostat-estimator=FullBatch",
        ng.Thermostat,
        TypeError,
        r"\bestimator\b",
        fresh(lambda: ng.FullBatch(_glm())),
        1.0,
        lr=0.1,
    )
    yield from sweep(
        "TorchSGD",
        ng.TorchSGD,
        "lr",
        [(NAN, ValueError), (-1.0, ValueError), ("x", TypeError)],
        args=lambda: ([torch.nn.Parameter(torch.zeros(2))],),
    )
    yield from sweep(
        "TorchAdam",
        ng.TorchAdam,
        "betas",
        [((1.5, 0.9), ValueError)],
        args=lambda: ([torch.nn.Parameter(torch.zeros(2))],),
    )
    yield one(
        "TorchOptimizer-optimizer=3",
        ng.TorchOptimizer,
        TypeError,
        r"\boptimizer\b",
        fresh(lambda: [torch.nn.Parameter(torch.zeros(2))]),
        3,
    )
    yield from sweep("Minimizer", ng.Minimizer, "maxiter", COUNT[:3], args=lambda: (ng.SGD(0.1),))
    yield one("Minimizer-optimizer=3", ng.Minimizer, TypeError, r"\boptimizer\b", 3)
    yield one(
        "batch_noise-method",
        ng.batch_noise,
        ValueError,
        r"\bmethod\b",
        fresh(_finite_sum),
        fresh(_x0),
        fresh(lambda: torch.arange(4)),
        method="exact",
    )
    yield one(
        "batch_noise-indices-one",
        ng.batch_noise,
        ValueError,
        r"\bindices\b",
        fresh(_finite_sum),
        fresh(_x0),
        fresh(lambda: torch.arange(1)),
    )
    yield one(
        "batch_noise-probe-generator=None",
        ng.batch_noise,
        TypeError,
        r"\bgenerator\b",
        fresh(_finite_sum),
        fresh(_x0),
        fresh(lambda: torch.arange(4)),
        method="probe",
    )
    yield from sweep("gradient_noise", ng.gradient_noise, "chunk_size", COUNT[:3], args=lambda: (_finite_sum(), _x0()))
    yield one(
        "gradient_noise-indices-2d",
        ng.gradient_noise,
        ValueError,
        r"\bindices\b",
        fresh(_finite_sum),
        fresh(_x0),
        fresh(lambda: torch.zeros(2, 2, dtype=torch.int64)),
    )
    yield from sweep("AdaptiveBatch", ng.AdaptiveBatch, "batch_size", COUNT[:3], kwargs=lambda: {"max_batch_size": 64})
    yield one("AdaptiveBatch-max<batch", ng.AdaptiveBatch, ValueError, r"\bmax_batch_size\b", 64, 8)


# ================================================================================================ dsp


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a package missing here skips its cases)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def dsp_cases() -> Iterator[Case]:
    if not _installed("noisygrad.dsp"):
        return
    import noisygrad.dsp as dsp

    for cls in (dsp.LMS, dsp.NLMS, dsp.LMF, dsp.SSLMS, dsp.NSSLMS, dsp.GNGD):
        name = cls.__name__
        yield from sweep(name, cls, "taps", COUNT[:4], kwargs=lambda: {"mu": 0.01})
        yield from sweep(
            name,
            cls,
            "mu",
            [(NAN, ValueError), (-0.1, ValueError), (0.0, ValueError), ("0.1", TypeError)],
            args=lambda: (4,),
        )
        yield one(f"{name}-w0-length", cls, ValueError, r"\bw0\b", 4, 0.01, w0=fresh(lambda: np.zeros(3)))
        yield one(f"{name}-w0-nan", cls, ValueError, r"\bw0\b", 4, 0.01, w0=fresh(lambda: np.full(4, NAN)))
        yield one(f"{name}-dtype", cls, (TypeError, ValueError), r"\bdtype\b", 4, 0.01, dtype="int32")
    for cls in (dsp.LMS, dsp.NLMS, dsp.RLS):
        name = cls.__name__
        make = (lambda cls=cls: cls(4, 0.01)) if cls is not dsp.RLS else (lambda: dsp.RLS(4, 0.99))
        yield one(
            f"{name}.run-x-nan",
            lambda f, x, d: f.run(x, d=d),
            ValueError,
            r"\bx\b",
            fresh(make),
            fresh(lambda: np.array([1.0, NAN] * 8)),
            fresh(lambda: np.zeros(16)),
        )
        yield one(
            f"{name}.run-d-nan",
            lambda f, x, d: f.run(x, d=d),
            ValueError,
            r"\bd\b",
            fresh(make),
            fresh(lambda: np.ones(16)),
            fresh(lambda: np.array([0.0, INF] * 8)),
        )
        yield one(
            f"{name}.run-d-length",
            lambda f, x, d: f.run(x, d=d),
            ValueError,
            r"\bd\b",
            fresh(make),
            fresh(lambda: np.ones(16)),
            fresh(lambda: np.zeros(15)),
        )
        yield one(
            f"{name}.run-x-text",
            lambda f, x, d: f.run(x, d=d),
            TypeError,
            r"\bx\b",
            fresh(make),
            "signal",
            fresh(lambda: np.zeros(6)),
        )
        yield one(
            f"{name}.run-x-3d",
            lambda f, x, d: f.run(x, d=d),
            ValueError,
            r"\bx\b",
            fresh(make),
            fresh(lambda: np.ones((2, 2, 4))),
            fresh(lambda: np.zeros((2, 2, 4))),
        )
    yield from sweep(
        "RLS",
        dsp.RLS,
        "lam",
        [(0.0, ValueError), (1.5, ValueError), (NAN, ValueError), ("x", TypeError)],
        args=lambda: (4,),
    )
    yield from sweep("RLS", dsp.RLS, "delta", POSITIVE[:5], args=lambda: (4,))
    yield from sweep("RLS", dsp.RLS, "taps", COUNT[:3])
    yield one(
        "RLS-P0-indefinite",
        dsp.RLS,
        ValueError,
        r"\bP0\b",
        2,
        0.99,
        P0=fresh(lambda: np.array([[1.0, 2.0], [2.0, 1.0]])),
    )
    yield one("RLS-P0-shape", dsp.RLS, ValueError, r"\bP0\b", 2, 0.99, P0=fresh(lambda: np.eye(3)))
    yield from sweep(
        "NLMS", dsp.NLMS, "eps", [(-1.0, ValueError), (NAN, ValueError), ("x", TypeError)], args=lambda: (4,)
    )
    yield one(
        "LMS.run-d-missing",
        lambda f, x: f.run(x),
        TypeError,
        r"\bd\b",
        fresh(lambda: dsp.LMS(4, 0.01)),
        fresh(lambda: np.ones(8)),
    )
    yield one("LMS-w0-2d", dsp.LMS, ValueError, r"\bw0\b", 4, 0.01, w0=fresh(lambda: np.zeros((2, 2, 4))))
    yield from sweep("AP", dsp.AP, "order", COUNT[:3], args=lambda: (4, 0.1))
    yield from sweep("OCNLMS", dsp.OCNLMS, "mem", COUNT[:3], args=lambda: (4,))
    yield from sweep("tapped_delay_line", dsp.tapped_delay_line, "taps", COUNT[:4], args=lambda: (np.ones(8),))
    kalman = lambda **changes: {  # noqa: E731
        "F": np.eye(2),
        "H": np.ones((1, 2)),
        "Q": 0.01 * np.eye(2),
        "R": np.eye(1),
        "x0": np.zeros(2),
        "P0": np.eye(2),
        **changes,
    }
    for key, value, error in (
        ("F", np.ones((2, 3)), ValueError),
        ("F", np.full((2, 2), NAN), ValueError),
        ("H", np.ones((1, 3)), ValueError),
        ("Q", np.ones((3, 3)), ValueError),
        ("Q", -np.eye(2), ValueError),
        ("R", np.ones((2, 2)), ValueError),
        ("R", -np.eye(1), ValueError),
        ("x0", np.zeros(3), ValueError),
        ("x0", np.array([0.0, NAN]), ValueError),
        ("P0", np.ones((3, 3)), ValueError),
        ("P0", -np.eye(2), ValueError),
        ("F", "identity", TypeError),
    ):
        yield Case(
            f"Kalman-{key}={np.asarray(value).tolist() if not isinstance(value, str) else value}",
            lambda key=key, value=value: (
                dsp.Kalman,
                (),
                kalman(**{key: np.array(value) if not isinstance(value, str) else value}),
            ),
            error,
            rf"\b{key}\b",
        )
    yield Case("Kalman-inflation<1", lambda: (dsp.Kalman, (), kalman(inflation=0.5)), ValueError, r"\binflation\b")
    yield Case("Kalman-inflation=nan", lambda: (dsp.Kalman, (), kalman(inflation=NAN)), ValueError, r"\binflation\b")
    yield Case("Kalman-form", lambda: (dsp.Kalman, (), kalman(form="cholesky-ish")), ValueError, r"\bform\b")
    # NaN marks a missing measurement (documented); Inf is refused
    yield one(
        "Kalman.batch_filter-zs-inf",
        lambda k, z: k.batch_filter(z),
        ValueError,
        r"\bzs\b",
        fresh(lambda: dsp.Kalman(**kalman())),
        fresh(lambda: np.array([[1.0], [INF]])),
    )
    yield one(
        "Kalman.batch_filter-zs-shape",
        lambda k, z: k.batch_filter(z),
        ValueError,
        r"\bzs\b",
        fresh(lambda: dsp.Kalman(**kalman())),
        fresh(lambda: np.ones((3, 2))),
    )
    yield one(
        "Kalman.update-z-shape",
        lambda k, z: k.update(z),
        ValueError,
        r"\bz\b",
        fresh(lambda: dsp.Kalman(**kalman())),
        fresh(lambda: np.ones(3)),
    )
    theory = dsp.theory
    yield from sweep("lms_misadjustment", theory.lms_misadjustment, "mu", POSITIVE[:5], kwargs=lambda: {"R": np.eye(2)})
    yield one(
        "lms_misadjustment-R-nonsquare",
        theory.lms_misadjustment,
        ValueError,
        r"\bR\b",
        0.1,
        fresh(lambda: np.ones((2, 3))),
    )
    yield one(
        "lms_misadjustment-form",
        theory.lms_misadjustment,
        ValueError,
        r"\bform\b",
        0.1,
        fresh(lambda: np.eye(2)),
        form="approximate-ish",
    )
    yield from sweep(
        "lms_stability_bound", theory.lms_stability_bound, "kind", [("loose", ValueError)], args=lambda: (np.eye(2),)
    )
    yield from sweep(
        "rls_tracking_emse",
        theory.rls_tracking_emse,
        "lam",
        [(0.0, ValueError), (1.5, ValueError)],
        kwargs=lambda: {"taps": 4, "noise_var": 1.0, "trace_rq": 0.1},
    )
    yield from sweep(
        "lms_tracking_emse",
        theory.lms_tracking_emse,
        "noise_var",
        NON_NEGATIVE[:3],
        kwargs=lambda: {"mu": 0.01, "trace_r": 1.0, "trace_q": 0.1},
    )


# ================================================================================================ bio


def bio_cases() -> Iterator[Case]:
    if not _installed("noisygrad.bio"):
        return
    import noisygrad.bio as bio

    good = {"w0": 1.0, "theta": 0.0, "eta": 0.1, "kappa": 1.0, "sigma": 1.0}
    for name, values in (
        ("w0", REAL),
        ("theta", [*REAL, (2.0, ValueError)]),
        ("eta", POSITIVE[:5]),
        ("kappa", POSITIVE[:5]),
        ("sigma", NON_NEGATIVE),
    ):
        yield from sweep("PruningModel", bio.PruningModel, name, values, kwargs=lambda: dict(good))
    model = lambda: bio.PruningModel(**good)  # noqa: E731
    walk = lambda m, *a, **k: m.simulate_walk(*a, **k)  # noqa: E731
    yield from sweep(
        "PruningModel.simulate_walk",
        walk,
        "n_synapses",
        COUNT[:4],
        args=lambda: (model(),),
        kwargs=lambda: {"rng": np.random.default_rng(0)},
    )
    yield from sweep(
        "PruningModel.simulate_walk", walk, "rng", [(None, TypeError), (0, TypeError)], args=lambda: (model(), 5)
    )
    yield from sweep(
        "PruningModel.simulate_walk",
        walk,
        "max_steps",
        [*COUNT[:3], (10**12, ValueError)],
        args=lambda: (model(), 5, np.random.default_rng(0)),
    )
    yield one(
        "PruningModel.simulate_walk-never-ends",
        walk,
        ValueError,
        r"\bmax_steps\b",
        fresh(lambda: bio.PruningModel(w0=1.0, theta=0.0, eta=1e-12, kappa=1e-12, sigma=0.0)),
        10,
        fresh(lambda: np.random.default_rng(0)),
    )
    sde = lambda m, *a, **k: m.simulate_sde(*a, **k)  # noqa: E731
    yield from sweep(
        "PruningModel.simulate_sde",
        sde,
        "method",
        [("euler", ValueError)],
        args=lambda: (model(), 5, np.random.default_rng(0)),
    )
    yield from sweep(
        "PruningModel.simulate_sde",
        sde,
        "dt",
        POSITIVE[:5],
        args=lambda: (model(), 5, np.random.default_rng(0)),
        kwargs=lambda: {"method": "bridge"},
    )
    yield from sweep(
        "PruningModel.simulate_sde", sde, "max_time", POSITIVE[:4], args=lambda: (model(), 5, np.random.default_rng(0))
    )
    yield one(
        "PruningModel.simulate_sde-sigma=0",
        sde,
        ValueError,
        r"\bsigma\b",
        fresh(lambda: bio.PruningModel(**{**good, "sigma": 0.0})),
        5,
        fresh(lambda: np.random.default_rng(0)),
    )
    yield from sweep(
        "ExponentialGradient", bio.ExponentialGradient, "c0", POSITIVE[:5], kwargs=lambda: {"decay_length": 0.2}
    )
    yield from sweep(
        "ExponentialGradient", bio.ExponentialGradient, "decay_length", POSITIVE[:5], kwargs=lambda: {"c0": 100.0}
    )
    yield from sweep(
        "ExponentialGradient",
        bio.ExponentialGradient,
        "exposure",
        POSITIVE[:5],
        kwargs=lambda: {"c0": 100.0, "decay_length": 0.2},
    )
    positional = {"count_at_reference": 100.0, "reference_decay_length": 0.2}
    yield from sweep(
        "positional_error",
        bio.positional_error,
        "constraint",
        [("energy", ValueError)],
        args=lambda: (0.5, 0.2),
        kwargs=lambda: dict(positional),
    )
    yield from sweep(
        "positional_error",
        bio.positional_error,
        "count_at_reference",
        POSITIVE[:5],
        args=lambda: (0.5, 0.2),
        kwargs=lambda: {"reference_decay_length": 0.2},
    )
    yield from sweep(
        "positional_error",
        bio.positional_error,
        "cv_amplitude",
        NON_NEGATIVE[:3],
        args=lambda: (0.5, 0.2),
        kwargs=lambda: dict(positional),
    )
    yield from sweep(
        "optimal_decay_length", bio.optimal_decay_length, "constraint", [("energy", ValueError)], args=lambda: (0.5,)
    )
    yield from sweep(
        "optimal_decay_length",
        bio.optimal_decay_length,
        "x_target",
        [(NAN, ValueError), (-0.5, ValueError)],
        kwargs=lambda: {},
    )
    landscape = lambda: bio.RuggedLandscape(dim=2)  # noqa: E731
    yield from sweep("RuggedLandscape", bio.RuggedLandscape, "dim", COUNT[:3])
    yield from sweep("RuggedLandscape", bio.RuggedLandscape, "width", POSITIVE[:5])
    yield from sweep("RuggedLandscape", bio.RuggedLandscape, "period", POSITIVE[:4])
    yield from sweep(
        "WrightFisher",
        bio.WrightFisher,
        "population_size",
        COUNT[:4],
        kwargs=lambda: {"landscape": landscape(), "selection": 0.5, "mutation_sd": 0.1},
    )
    yield from sweep(
        "WrightFisher",
        bio.WrightFisher,
        "selection",
        [(NAN, ValueError), (-0.5, ValueError), ("x", TypeError)],
        kwargs=lambda: {"landscape": landscape(), "population_size": 10, "mutation_sd": 0.1},
    )
    yield from sweep(
        "WrightFisher",
        bio.WrightFisher,
        "mutation_sd",
        NON_NEGATIVE[:3],
        kwargs=lambda: {"landscape": landscape(), "population_size": 10, "selection": 0.5},
    )
    yield one("WrightFisher-landscape=3", bio.WrightFisher, TypeError, r"\blandscape\b", 3, 10, 0.5, 0.1)
    search = {"iterations": 5, "population_size": 10, "rng": None}
    yield from sweep(
        "compare_searches",
        bio.compare_searches,
        "iterations",
        COUNT[:3],
        args=lambda: (landscape(), np.zeros(2)),
        kwargs=lambda: {"rng": np.random.default_rng(0)},
    )
    yield from sweep(
        "compare_searches",
        bio.compare_searches,
        "lr",
        POSITIVE[:4],
        args=lambda: (landscape(), np.zeros(2)),
        kwargs=lambda: {"iterations": 3, "rng": np.random.default_rng(0)},
    )
    yield from sweep(
        "compare_searches",
        bio.compare_searches,
        "rng",
        [(None, TypeError)],
        args=lambda: (landscape(), np.zeros(2)),
        kwargs=lambda: {"iterations": 3},
    )
    yield one(
        "compare_searches-start-nan",
        bio.compare_searches,
        ValueError,
        r"\bstart\b",
        fresh(landscape),
        fresh(lambda: np.array([0.0, NAN])),
        iterations=3,
        rng=fresh(lambda: np.random.default_rng(0)),
    )
    yield one(
        "compare_searches-start-length",
        bio.compare_searches,
        ValueError,
        r"\bstart\b",
        fresh(landscape),
        fresh(lambda: np.zeros(3)),
        iterations=3,
        rng=fresh(lambda: np.random.default_rng(0)),
    )
    del search
    yield from sweep(
        "input_covariance",
        bio.input_covariance,
        "correlation",
        [(1.5, ValueError), (NAN, ValueError), (-1.5, ValueError)],
        kwargs=lambda: {"n_correlated": 2, "n_uncorrelated": 2},
    )
    yield from sweep(
        "input_covariance",
        bio.input_covariance,
        "n_correlated",
        COUNT_OR_ZERO[:3],
        kwargs=lambda: {"n_uncorrelated": 2, "correlation": 0.5},
    )
    yield one(
        "oja_drift-weights-shape",
        bio.oja_drift,
        ValueError,
        r"\bweights\b",
        fresh(lambda: np.ones(3)),
        fresh(lambda: np.eye(4)),
    )
    yield one(
        "oja_drift-covariance-nonsquare",
        bio.oja_drift,
        ValueError,
        r"\bcovariance\b",
        fresh(lambda: np.ones(3)),
        fresh(lambda: np.ones((3, 4))),
    )
    competition = {"correlation": 0.5, "steps": 10}
    yield from sweep(
        "simulate_competition",
        bio.simulate_competition,
        "n_neurons",
        COUNT[:3],
        args=lambda: (),
        kwargs=lambda: {"n_correlated": 2, "n_uncorrelated": 2, "rng": np.random.default_rng(0), **competition},
    )
    yield from sweep(
        "simulate_competition",
        bio.simulate_competition,
        "steps",
        COUNT[:3],
        kwargs=lambda: {"n_neurons": 2, "n_correlated": 2, "n_uncorrelated": 2, "rng": np.random.default_rng(0)},
    )
    yield from sweep(
        "simulate_competition",
        bio.simulate_competition,
        "rng",
        [(None, TypeError)],
        kwargs=lambda: {"n_neurons": 2, "n_correlated": 2, "n_uncorrelated": 2},
    )
    yield from sweep(
        "simulate_competition",
        bio.simulate_competition,
        "eta",
        POSITIVE[:5],
        kwargs=lambda: {"n_neurons": 2, "n_correlated": 2, "n_uncorrelated": 2, "rng": np.random.default_rng(0)},
    )
    gradient = lambda: bio.ExponentialGradient(100.0, 0.2)  # noqa: E731
    yield from sweep(
        "simulate_boundary",
        bio.simulate_boundary,
        "n_embryos",
        COUNT[:3],
        args=lambda: (gradient(), 0.5),
        kwargs=lambda: {"rng": np.random.default_rng(0)},
    )
    yield from sweep(
        "simulate_boundary",
        bio.simulate_boundary,
        "spacing",
        POSITIVE[:5],
        args=lambda: (gradient(), 0.5),
        kwargs=lambda: {"n_embryos": 3, "rng": np.random.default_rng(0)},
    )
    yield from sweep(
        "simulate_boundary",
        bio.simulate_boundary,
        "rng",
        [(None, TypeError)],
        args=lambda: (gradient(), 0.5),
        kwargs=lambda: {"n_embryos": 3},
    )
    yield from sweep(
        "fit_optimum",
        bio.fit_optimum,
        "degree",
        COUNT[:3],
        args=lambda: (np.linspace(0.1, 0.3, 9), np.linspace(1.0, 2.0, 9)),
    )
    yield one(
        "fit_optimum-errors-length",
        bio.fit_optimum,
        ValueError,
        r"\berrors\b",
        fresh(lambda: np.linspace(0.1, 0.3, 9)),
        fresh(lambda: np.ones(8)),
    )


# ================================================================================================ quantum


def quantum_cases() -> Iterator[Case]:
    if not (_installed("noisygrad.quantum") and _installed("qiskit") and _installed("qiskit_aer")):
        return
    q = "noisygrad.quantum"
    shot_estimator = lazy(q, "shot_estimator")
    yield from sweep("shot_estimator", shot_estimator, "shots", [*COUNT[:4], (10**19, ValueError)])
    yield from sweep("shot_estimator", shot_estimator, "seed", [("x", TypeError), (-1, ValueError)])
    yield from sweep("shot_estimator", shot_estimator, "noise", [("thermal", ValueError)])
    yield from sweep("shot_estimator", shot_estimator, "backend", [("quantum-computer", ValueError)])
    yield from sweep(
        "shot_estimator",
        shot_estimator,
        "default_precision",
        [(0.0, ValueError), (-1.0, ValueError), (NAN, ValueError), (1e-10, ValueError)],
    )
    tfim = lazy(q, "tfim")
    yield from sweep("tfim", tfim, "num_qubits", COUNT[:4])
    yield from sweep("tfim", tfim, "coupling", REAL[:3])
    tfim_ansatz = lazy(q, "tfim_ansatz")
    yield from sweep("tfim_ansatz", tfim_ansatz, "layers", COUNT_OR_ZERO[:3])
    spsa = lazy(q, "SPSA")
    yield from sweep("quantum.SPSA", spsa, "maxiter", COUNT[:3])
    yield from sweep("quantum.SPSA", spsa, "resamplings", COUNT[:2])
    allocator = lazy(q, "ShotAllocator")
    yield from sweep("ShotAllocator", allocator, "num_groups", COUNT[:3], kwargs=lambda: {"total": 1000})
    yield from sweep(
        "ShotAllocator", allocator, "min_shots", COUNT[:2], args=lambda: (2,), kwargs=lambda: {"total": 1000}
    )
    yield from sweep(
        "ShotAllocator",
        allocator,
        "decay",
        [(1.5, ValueError), (NAN, ValueError)],
        args=lambda: (2,),
        kwargs=lambda: {"total": 1000},
    )
    vqe = lazy(q, "vqe")

    def problem() -> tuple[Any, Any]:
        import noisygrad.quantum as nq

        return nq.tfim(2), nq.tfim_ansatz(2, 1)

    yield from sweep("vqe", vqe, "shots", COUNT[:3], args=problem)
    yield from sweep("vqe", vqe, "maxiter", COUNT[:3], args=problem)
    yield from sweep("vqe", vqe, "gradient", [("adjoint", ValueError)], args=problem)
    yield from sweep(
        "vqe", vqe, "initial_point", [([0.0], ValueError), ([NAN, 0.0, 0.0, 0.0], ValueError)], args=problem
    )
    objective = lazy(q, "EnergyObjective")
    yield from sweep("EnergyObjective", objective, "shots", COUNT[:3], args=problem)
    yield from sweep("EnergyObjective", objective, "noise", [("thermal", ValueError)], args=problem)
    yield one("EnergyObjective-hamiltonian=3", objective, TypeError, r"\bhamiltonian\b", 3, fresh(lambda: problem()[1]))
    yield one("EnergyObjective-ansatz=3", objective, TypeError, r"\bansatz\b", fresh(lambda: problem()[0]), 3)
    yield one("exact_ground_energy-hamiltonian=3", lazy(q, "exact_ground_energy"), TypeError, r"\bhamiltonian\b", 3)
    yield one("ParameterShift-objective=3", lazy(q, "ParameterShift"), TypeError, r"\bobjective\b", 3)


# ================================================================================================ pinn


def pinn_cases() -> Iterator[Case]:
    if not (_installed("noisygrad.pinn") and _installed("deepxde")):
        return
    p = "noisygrad.pinn"
    yield from sweep("Plateau", lazy(p, "Plateau"), "window", COUNT[:3])
    yield from sweep(
        "Plateau",
        lazy(p, "Plateau"),
        "rel_tol",
        [(NAN, ValueError), (-0.1, ValueError), ("x", TypeError)],
    )
    predicted = lazy(p, "predicted_cosine")
    yield from sweep(
        "pinn.predicted_cosine",
        predicted,
        "rho",
        [(NAN, ValueError), (-1.0, ValueError)],
        kwargs=lambda: {"batch_size": 4, "pool": 100},
    )
    yield from sweep(
        "pinn.predicted_cosine",
        predicted,
        "batch_size",
        [*COUNT[:3], (200, ValueError)],
        kwargs=lambda: {"rho": 1.0, "pool": 100},
    )
    lbfgs = lazy(p, "lbfgs")
    yield from sweep(
        "pinn.lbfgs",
        lbfgs,
        "max_iter",
        COUNT[:3],
        args=lambda: ([torch.zeros(2, requires_grad=True)],),
    )
    yield from sweep(
        "pinn.lbfgs",
        lbfgs,
        "lr",
        POSITIVE[:4],
        args=lambda: ([torch.zeros(2, requires_grad=True)],),
        kwargs=lambda: {"max_iter": 5},
    )
    yield from sweep(
        "pinn.lbfgs",
        lbfgs,
        "history_size",
        COUNT[:2],
        args=lambda: ([torch.zeros(2, requires_grad=True)],),
        kwargs=lambda: {"max_iter": 5},
    )
    yield one("pinn.lbfgs-params=[]", lbfgs, ValueError, r"\bparams\b", [], max_iter=5)
    yield one("pinn.train-model=3", lazy(p, "train"), TypeError, r"\bmodel\b", 3)
    yield one(
        "pinn.check_model-model=3",
        lazy(p, "check_model"),
        TypeError,
        r"\bmodel\b",
        3,
    )
    yield one("pinn.pool_size-data=3", lazy(p, "pool_size"), TypeError, r"\bdata\b", 3)
    yield one(
        "pinn.CollocationBatches-data=3",
        lazy(p, "CollocationBatches"),
        TypeError,
        r"\bdata\b",
        3,
        4,
        generator=fresh(torch.Generator),
    )


CASES = {
    "core": list(core_cases()),
    "dsp": list(dsp_cases()),
    "bio": list(bio_cases()),
    "quantum": list(quantum_cases()),
    "pinn": list(pinn_cases()),
}


def test_the_matrix_has_at_least_300_cases_across_the_five_packages():
    assert sum(len(cases) for cases in CASES.values()) >= 300
    installed = {
        "core": True,
        "dsp": _installed("noisygrad.dsp"),
        "bio": _installed("noisygrad.bio"),
        "quantum": _installed("noisygrad.quantum"),
        "pinn": _installed("noisygrad.pinn"),
    }
    assert all(len(cases) >= 10 for name, cases in CASES.items() if installed[name])
    ids = [case.id for cases in CASES.values() for case in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"


@pytest.mark.parametrize("case", _params(CASES["core"]))
def test_core(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", _params(CASES["dsp"]))
def test_dsp(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", _params(CASES["bio"]))
def test_bio(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", _params(CASES["quantum"]))
def test_quantum(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", _params(CASES["pinn"]))
def test_pinn(case: Case) -> None:
    check(case)
