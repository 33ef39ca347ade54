"""Property tests of the core (issue #17), with hypothesis: claims that must hold for any data, size and seed.

* Unbiasedness: the mean of many mini-batch (with and without replacement) and SPSA estimates is the exact
  gradient, within 5 Monte-Carlo standard errors computed from the estimators' *exact* covariances (a component
  outside 5 standard errors has probability 5.7e-7 under a normal law; with the few components and examples run
  here, a false alarm per run has probability below 1e-4, and the runs are derandomised besides).
* State round-trip: an estimator's ``state_dict`` through ``torch.save`` / ``torch.load(weights_only=True)`` into a
  fresh estimator continues with the very same estimates.
* Determinism under a seed: two runs of ``minimize`` with one seed are equal bit for bit.
* Invariance to the order of the examples: a full-batch run on permuted data is the same run (to rounding: the
  sums change order).
* Bounded fuzzing of the constructors that take user data (schedules, objectives, estimators, ``noise_ball``):
  any input either builds an object that behaves (finite rates, a non-negative noise ball) or raises ``TypeError``
  or ``ValueError`` naming the argument, and never changes what was passed in.

Every test is ``derandomize=True`` with a small ``max_examples`` and no deadline, so the file runs in seconds and
the same examples every time.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import noisygrad as ng  # noqa: E402
from noisygrad.noise.theory import noise_ball  # noqa: E402

FAST = settings(max_examples=12, deadline=None, derandomize=True, database=None)
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None)
SIGMAS = 5.0


def _reload(obj: Any) -> Any:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@st.composite
def regressions(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A least-squares data set ``(X, y)`` of a drawn size and a seed for everything random after it."""
    n = draw(st.integers(4, 30))
    d = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([1e-2, 1.0, 1e2]))
    X = scale * torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    return X, y, seed


def _objective(X: torch.Tensor, y: torch.Tensor) -> ng.FiniteSum:
    return ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))


# ---------------------------------------------------------------- unbiasedness


@FAST
@given(data=regressions(), fraction=st.floats(0.05, 1.0), replace=st.booleans())
def test_the_mini_batch_gradient_is_unbiased(
    data: tuple[torch.Tensor, torch.Tensor, int], fraction: float, replace: bool
) -> None:
    X, y, seed = data
    n, d = X.shape
    batch = max(1, round(fraction * n))
    objective = ng.GLM(X, y, loss="squared")  # closed-form batch gradients: 300 draws in well under a second
    estimator = ng.MiniBatch(objective, batch, replace=replace)
    w = torch.linspace(-1.0, 1.0, d, dtype=torch.float64)
    per_example = objective.per_example_grads(w, torch.arange(n))  # (n, d): the exact law of one draw
    exact = per_example.mean(0)
    # The exact variance of a batch mean, per component: with replacement S_pop / b; without, (S / b)(1 - b / N)
    # (S the (N-1)-normalised, S_pop the N-normalised per-example variance).
    if replace:
        variance = per_example.var(0, unbiased=False) / batch
    else:
        variance = per_example.var(0, unbiased=True) / batch * (1.0 - batch / n)
    draws = 300
    gen = torch.Generator().manual_seed(seed)
    mean = torch.stack([estimator.estimate(w, gen).grad for _ in range(draws)]).mean(0)
    stderr = (variance / draws).sqrt()
    tolerance = SIGMAS * stderr + 1e-12 * (1.0 + exact.abs())  # rounding where the variance is 0 (b = N)
    assert bool(((mean - exact).abs() <= tolerance).all()), (mean - exact) / stderr


@FAST
@given(
    d=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    c=st.floats(1e-3, 1.0),
    noise=st.sampled_from([0.0, 0.01, 0.1]),
)
def test_spsa_is_unbiased_on_a_quadratic(d: int, seed: int, c: float, noise: float) -> None:
    """On a quadratic SPSA's bias (third derivatives) is 0: ``E g = grad f`` exactly, for any ``c``.

    One estimate averages ``S`` perturbations (``resamplings``); per component its variance is
    ``(sum_{j != i} g_j^2 + sigma^2 / (2 c^2)) / S`` (the estimator's docstring), the Monte-Carlo error used here.
    """
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(d, d, generator=gen, dtype=torch.float64)
    A = M @ M.T / d + torch.eye(d, dtype=torch.float64)
    b = torch.randn(d, generator=gen, dtype=torch.float64)

    def f(points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        values = 0.5 * ((points @ A) * points).sum(1) + points @ b
        return values + noise * torch.randn(points.shape[0], generator=generator, dtype=points.dtype)

    x = torch.randn(d, generator=gen, dtype=torch.float64)
    exact = A @ x + b
    S = 4000
    estimator = ng.SPSA(ng.NoisyBlackBox(f), c=c, gamma=0.0, resamplings=S)
    g = estimator.estimate(x, gen).grad
    variance = ((exact**2).sum() - exact**2 + noise**2 / (2 * c**2)) / S
    tolerance = SIGMAS * variance.sqrt() + 1e-10 * (1.0 + exact.abs())
    assert bool(((g - exact).abs() <= tolerance).all()), (g - exact) / variance.sqrt()


# ---------------------------------------------------------------- state round-trip and determinism


def _stateful(name: str, X: torch.Tensor, y: torch.Tensor, batch: int) -> Any:
    objective = ng.GLM(X, y, loss="squared", l2=1e-3) if name.endswith("glm") else _objective(X, y)
    return {
        "svrg-glm": lambda: ng.SVRG(objective, batch, refresh=3),
        "svrg": lambda: ng.SVRG(objective, batch, refresh=3),
        "saga-glm": lambda: ng.SAGA(objective, batch),
        "saga": lambda: ng.SAGA(objective, batch),
        "storm-glm": lambda: ng.STORM(objective, batch, momentum=0.5),
    }[name]()


@FAST
@given(
    data=regressions(),
    name=st.sampled_from(["svrg-glm", "svrg", "saga-glm", "saga", "storm-glm"]),
    warm=st.integers(0, 7),
)
def test_an_estimator_state_round_trips_to_the_same_estimates(
    data: tuple[torch.Tensor, torch.Tensor, int], name: str, warm: int
) -> None:
    X, y, seed = data
    batch = max(1, X.shape[0] // 4)
    estimator = _stateful(name, X, y, batch)
    gen = torch.Generator().manual_seed(seed)
    w = torch.full((X.shape[1],), 0.3, dtype=torch.float64)
    for _ in range(warm):
        estimator.estimate(w, gen)
        w = w * 0.9
    twin = _stateful(name, X, y, batch)
    twin.load_state_dict(_reload(estimator.state_dict()))
    twin_gen = torch.Generator()
    twin_gen.set_state(gen.get_state())
    for _ in range(4):
        a, b = estimator.estimate(w, gen), twin.estimate(w, twin_gen)
        assert torch.equal(a.grad, b.grad)
        assert (a.value, a.cost) == (b.value, b.cost)
        w = w - 0.1 * a.grad


@FAST
@given(data=regressions(), seed=st.integers(0, 2**63 - 1), sampler=st.booleans(), steps=st.integers(1, 30))
def test_minimize_is_deterministic_under_a_seed(
    data: tuple[torch.Tensor, torch.Tensor, int], seed: int, sampler: bool, steps: int
) -> None:
    X, y, _ = data
    batch = max(1, X.shape[0] // 3)

    def run() -> ng.MinimizeResult:
        optimizer = ng.SGLD(1e-3, temperature=1e-3) if sampler else ng.Adam(0.01)
        return ng.minimize(
            ng.MiniBatch(_objective(X, y), batch),
            optimizer,
            torch.zeros(X.shape[1], dtype=torch.float64),
            steps=steps,
            seed=seed,
        )

    first, second = run(), run()
    assert torch.equal(first.x, second.x)
    assert first.history == second.history
    assert first.checkpoint["checksum"] == second.checkpoint["checksum"]


@FAST
@given(data=regressions(), order_seed=st.integers(0, 2**31 - 1))
def test_a_full_batch_run_does_not_depend_on_the_order_of_the_examples(
    data: tuple[torch.Tensor, torch.Tensor, int], order_seed: int
) -> None:
    X, y, _ = data
    order = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(order_seed))
    lr = 0.5 / (1.0 + float(torch.linalg.matrix_norm(X, 2)) ** 2 / X.shape[0])  # a stable step
    x0 = torch.zeros(X.shape[1], dtype=torch.float64)
    runs = []
    for data_set in ((X, y), (X[order], y[order])):
        for make in (ng.FullBatch, lambda o: ng.MiniBatch(o, o.n_examples)):  # a batch of all N, without replacement
            runs.append(ng.minimize(make(_objective(*data_set)), ng.SGD(lr), x0, steps=20, seed=0))
    for other in runs[1:]:
        torch.testing.assert_close(other.x, runs[0].x, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(other.fun, runs[0].fun, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- bounded fuzzing of the constructors

ANY_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.just([1.0]),
)


#: What a refusal may raise: a wrong type, a wrong value, or NaN/Inf in the data (the core's NonFiniteGradientError,
#: a FloatingPointError, as for ``x0``).
REFUSALS = (TypeError, ValueError, ng.NonFiniteGradientError)


def _attempt(build: Any) -> tuple[Any, BaseException | None]:
    """``(build(), None)``, or ``(None, the refusal)`` if it raised one of :data:`REFUSALS`."""
    try:
        return build(), None
    except REFUSALS as exc:
        return None, exc


def _names(error: BaseException, *names: str) -> bool:
    return any(re.search(rf"\b{re.escape(n)}\b", str(error)) for n in names)


SCHEDULES = {
    "Constant": (ng.Constant, ("value",)),
    "RobbinsMonro": (ng.RobbinsMonro, ("a", "b", "alpha")),
    "Cosine": (ng.Cosine, ("value", "steps", "final")),
    "StepDecay": (ng.StepDecay, ("value", "every", "factor")),
}


@FUZZ
@given(name=st.sampled_from(sorted(SCHEDULES)), values=st.lists(ANY_NUMBER, min_size=3, max_size=3))
def test_a_schedule_builds_and_gives_finite_rates_or_refuses_naming_the_field(name: str, values: list[Any]) -> None:
    cls, fields = SCHEDULES[name]
    kwargs = dict(zip(fields, values, strict=False))
    schedule, error = _attempt(lambda: cls(**kwargs))
    if error is not None:
        assert _names(error, *fields), str(error)
        return
    for t in (0, 1, 7, 10**6):
        rate = schedule(t)
        assert math.isfinite(rate), (schedule, t, rate)
        assert rate >= 0.0, (schedule, t, rate)


def _array(draw: st.DrawFn, shape: tuple[int, ...]) -> np.ndarray:
    """Data of ``shape``: integers, or floats with the odd NaN or Inf (values whose squares overflow are left out:
    a GLM on them is valid and its loss is Inf, which ``minimize`` reports at ``x0``)."""
    size = math.prod(shape)
    if draw(st.booleans()):
        integers = draw(st.lists(st.integers(-5, 5), min_size=size, max_size=size))
        return np.asarray(integers, dtype=np.int64).reshape(shape)
    special = st.sampled_from([0.0, 1.0, -1.0, float("nan"), float("inf"), -float("inf")])
    values = draw(st.lists(st.one_of(st.floats(-1e3, 1e3), special), min_size=size, max_size=size))
    return np.asarray(values, dtype=draw(st.sampled_from([np.float64, np.float32]))).reshape(shape)


@st.composite
def glm_arguments(draw: st.DrawFn) -> dict[str, Any]:
    n, d = draw(st.integers(0, 5)), draw(st.integers(0, 3))
    X = _array(draw, (n, d)) if draw(st.booleans()) else _array(draw, (n,))
    y = _array(draw, (draw(st.sampled_from([n, n + 1])),))
    if draw(st.booleans()):
        y = np.sign(y)  # labels for the logistic loss, sometimes
    return {
        "X": draw(st.sampled_from([X, torch.from_numpy(X), X.tolist(), "X"])),
        "y": y,
        "loss": draw(st.sampled_from(["squared", "logistic", "hinge", 3])),
        "l2": draw(st.one_of(st.sampled_from([0.0, 1e-3, -1.0, float("nan")]), ANY_NUMBER)),
    }


def _frozen(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return ("A", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, torch.Tensor):
        return ("T", str(value.dtype), tuple(value.shape), value.numpy().tobytes())
    if isinstance(value, list):
        return ("L", repr(value))
    return ("V", repr(value))


@FUZZ
@given(arguments=glm_arguments())
def test_a_glm_builds_from_any_data_or_refuses_naming_the_argument(arguments: dict[str, Any]) -> None:
    before = {k: _frozen(v) for k, v in arguments.items()}
    glm, error = _attempt(lambda: ng.GLM(arguments["X"], arguments["y"], loss=arguments["loss"], l2=arguments["l2"]))
    if error is not None:
        assert _names(error, "X", "y", "loss", "l2"), str(error)
    else:
        value, grad = glm.value_and_grad(torch.zeros(glm.n_features, dtype=glm.X.dtype))
        assert math.isfinite(value)
        assert bool(torch.isfinite(grad).all())
    assert {k: _frozen(v) for k, v in arguments.items()} == before, "the call changed what it was given"


@FUZZ
@given(
    batch_size=ANY_NUMBER,
    replace=st.booleans(),
    c=ANY_NUMBER,
    gamma=ANY_NUMBER,
    resamplings=ANY_NUMBER,
)
def test_estimators_build_or_refuse_naming_the_argument(
    batch_size: Any, replace: bool, c: Any, gamma: Any, resamplings: Any
) -> None:
    glm = ng.GLM(torch.eye(4, 2, dtype=torch.float64), torch.ones(4, dtype=torch.float64), loss="squared")
    for build, names in (
        (lambda: ng.MiniBatch(glm, batch_size, replace=replace), ("batch_size",)),
        (lambda: ng.SVRG(glm, batch_size), ("batch_size",)),
        (lambda: ng.SAGA(glm, batch_size), ("batch_size",)),
        (
            lambda: ng.SPSA(ng.Energy(lambda x: (x**2).sum()), c=c, gamma=gamma, resamplings=resamplings),
            ("c", "gamma", "resamplings"),
        ),
    ):
        estimator, error = _attempt(build)
        if error is not None:
            assert _names(error, *names), str(error)
        elif not isinstance(estimator, ng.SPSA):
            est = estimator.estimate(torch.zeros(2, dtype=torch.float64), torch.Generator().manual_seed(0))
            assert bool(torch.isfinite(est.grad).all())


@st.composite
def symmetric_matrices(draw: st.DrawFn) -> np.ndarray:
    k = draw(st.integers(1, 3))
    entries = draw(st.lists(st.floats(-10.0, 10.0), min_size=k * k, max_size=k * k))
    m = np.asarray(entries).reshape(k, k)
    return m @ m.T if draw(st.booleans()) else (m + m.T) / 2  # positive semi-definite, or anything symmetric


@FUZZ
@given(hessian=symmetric_matrices(), noise=symmetric_matrices(), lr=ANY_NUMBER, batch=ANY_NUMBER)
def test_the_noise_ball_is_never_negative_or_refused_naming_the_argument(
    hessian: np.ndarray, noise: np.ndarray, lr: Any, batch: Any
) -> None:
    before = (hessian.copy(), noise.copy())
    ball, error = _attempt(lambda: noise_ball(hessian, noise, lr, batch))
    if error is not None:
        assert _names(error, "hessian", "noise_cov", "lr", "batch_size"), str(error)
    else:
        assert ball.mean_square_distance >= 0.0
        assert ball.excess_loss >= 0.0
        assert ball.radius >= 0.0
        assert math.isfinite(ball.mean_square_distance)
    assert np.array_equal(hessian, before[0])
    assert np.array_equal(noise, before[1])
