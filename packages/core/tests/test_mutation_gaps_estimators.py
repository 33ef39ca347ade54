"""SPSA, Gaussian smoothing, their calibration and the batch estimators: the behaviours mutation testing
found unchecked (tools/mutation.py, issue 18).

Every estimate is checked against its closed form recomputed from a clone of the run's generator, so an
estimator that drew from anything but that generator, or scaled, signed or averaged differently, fails
exactly (no statistical tolerance: on a quadratic the central difference along a direction is exact).
"""

from __future__ import annotations

import math

import pytest
import torch

import noisygrad as ng
from noisygrad.estimators.zeroth_order import SPSA, GaussianSmoothing, spsa_calibrate

B = torch.tensor([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]], dtype=torch.float64)


def _quadratic_energy() -> ng.Energy:
    """``f(X) = <B, X> + |X|^2 / 2`` over a 2 x 3 matrix parameter, returned as a Python float."""
    return ng.Energy(lambda x: float((B * x).sum() + 0.5 * (x * x).sum()))


def _clone(gen: torch.Generator) -> torch.Generator:
    twin = torch.Generator()
    twin.set_state(gen.get_state())
    return twin


def _values(f: ng.Energy, points: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return torch.tensor([f.fn(p.reshape(shape)) for p in points], dtype=torch.float64)


def test_spsa_on_a_matrix_parameter_is_its_closed_form_from_the_runs_generator():
    f, x = _quadratic_energy(), torch.full((2, 3), 0.3, dtype=torch.float64)
    est = SPSA(f, c=0.2, gamma=0.5, resamplings=3)
    gen = torch.Generator().manual_seed(11)
    for k in range(3):
        twin = _clone(gen)
        ck = 0.2 / (k + 1) ** 0.5
        deltas = (2 * torch.randint(0, 2, (3, 6), generator=twin) - 1).to(torch.float64)
        flat = x.reshape(1, -1)
        values = _values(f, torch.cat([flat + ck * deltas, flat - ck * deltas]), x.shape)
        per_draw = ((values[:3] - values[3:]) / (2 * ck)).unsqueeze(1) * deltas
        out = est.estimate(x, gen)
        assert out.grad.shape == (2, 3)
        torch.testing.assert_close(out.grad, per_draw.mean(0).reshape(2, 3), rtol=1e-12, atol=1e-12)
        # a quadratic's central difference is exact: each draw is (grad . Delta) Delta
        exact = ((B + x).reshape(-1) @ deltas.T).unsqueeze(1) * deltas
        torch.testing.assert_close(per_draw, exact, rtol=1e-9, atol=1e-9)
        assert out.value == pytest.approx(float(values.mean()), rel=1e-15)
        assert out.cost == ng.Cost(evaluations=6)
        assert out.stats["c_k"] == pytest.approx(ck, rel=1e-15)
        assert out.stats["k"] == float(k)
        trace = float(per_draw.var(0, unbiased=True).sum())
        assert out.stats["trace_cov"] == pytest.approx(trace, rel=1e-12)
        assert out.stats["grad_variance"] == pytest.approx(trace / 3, rel=1e-12)
    assert est.state_dict() == {"k": 3}


def test_spsa_defaults_and_one_resampling_reports_no_variance():
    f, x = _quadratic_energy(), torch.zeros(2, 3, dtype=torch.float64)
    est = SPSA(f)
    assert (est.c, est.gamma, est.resamplings, est.perturbation, est.k) == (0.1, 0.101, 1, "rademacher", 0)
    assert est.perturbation_size(0) == 0.1
    assert est.perturbation_size(4) == pytest.approx(0.1 / 5**0.101, rel=1e-15)
    out = est.estimate(x, torch.Generator().manual_seed(0))
    assert set(out.stats) == {"c_k", "k"}
    assert out.cost == ng.Cost(evaluations=2)
    with pytest.raises(ValueError, match="perturbation"):
        SPSA(f, perturbation="gaussian")
    with pytest.raises(ValueError, match="gamma"):
        SPSA(f, gamma=1.01)
    assert SPSA(f, gamma=1.0).gamma == 1.0
    assert SPSA(f, gamma=0.0).gamma == 0.0


def test_spsa_state_round_trips_and_rejects_other_keys():
    est = SPSA(_quadratic_energy())
    est.load_state_dict({"k": 5})
    assert est.k == 5
    assert est.state_dict() == {"k": 5}
    with pytest.raises(ValueError):
        est.load_state_dict({"k": 1, "c": 0.1})
    with pytest.raises(ValueError):
        est.load_state_dict({"k": -1})


def test_spsa_in_float32_stays_float32():
    f = ng.Energy(lambda x: float((x * x).sum()))
    out = SPSA(f).estimate(torch.ones(4, dtype=torch.float32), torch.Generator().manual_seed(0))
    assert out.grad.dtype == torch.float32


def test_gaussian_smoothing_is_its_closed_form_from_the_runs_generator():
    f, x = _quadratic_energy(), torch.full((2, 3), -0.2, dtype=torch.float64)
    est = GaussianSmoothing(f, sigma=0.3, samples=4)
    gen = torch.Generator().manual_seed(5)
    twin = _clone(gen)
    u = torch.randn(4, 6, generator=twin, dtype=torch.float64)
    flat = x.reshape(1, -1)
    values = _values(f, torch.cat([flat + 0.3 * u, flat - 0.3 * u]), x.shape)
    per_draw = ((values[:4] - values[4:]) / 0.6).unsqueeze(1) * u
    out = est.estimate(x, gen)
    torch.testing.assert_close(out.grad, per_draw.mean(0).reshape(2, 3), rtol=1e-12, atol=1e-12)
    exact = ((B + x).reshape(-1) @ u.T).unsqueeze(1) * u
    torch.testing.assert_close(per_draw, exact, rtol=1e-9, atol=1e-9)
    assert out.value == pytest.approx(float(values.mean()), rel=1e-15)
    assert out.cost == ng.Cost(evaluations=8)
    trace = float(per_draw.var(0, unbiased=True).sum())
    assert out.stats == pytest.approx({"trace_cov": trace, "grad_variance": trace / 4}, rel=1e-12)
    # the same generator state gives the same estimate; the generator's next state another
    again = est.estimate(x, _clone(_clone(torch.Generator().manual_seed(5))))
    torch.testing.assert_close(again.grad, out.grad, rtol=0, atol=0)
    assert not torch.equal(est.estimate(x, gen).grad, out.grad)


def test_gaussian_smoothing_defaults_and_state():
    est = GaussianSmoothing(_quadratic_energy())
    assert (est.sigma, est.samples) == (0.1, 1)
    out = est.estimate(torch.zeros(2, 3, dtype=torch.float64), torch.Generator().manual_seed(0))
    assert out.stats == {}
    assert out.cost == ng.Cost(evaluations=2)
    assert est.state_dict() == {}
    est.load_state_dict({})
    with pytest.raises(ValueError):
        est.load_state_dict({"k": 1})


def _noisy_linear(b: torch.Tensor, sigma: float) -> ng.NoisyBlackBox:
    def fn(points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return points @ b + sigma * torch.randn(points.shape[0], generator=generator, dtype=points.dtype)

    return ng.NoisyBlackBox(fn, cost_per_evaluation=10, cost_unit="shots")


def test_a_black_box_estimate_is_reproducible_from_the_runs_generator():
    box = _noisy_linear(torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64), 0.5)
    x = torch.zeros(3, dtype=torch.float64)
    for make in (lambda: SPSA(box, resamplings=2), lambda: GaussianSmoothing(box, samples=2)):
        first = make().estimate(x, torch.Generator().manual_seed(9))
        second = make().estimate(x, torch.Generator().manual_seed(9))
        torch.testing.assert_close(first.grad, second.grad, rtol=0, atol=0)
        assert first.value == second.value
        assert first.cost == ng.Cost(evaluations=4, shots=40)


def test_spsa_calibrate_closed_form_with_its_defaults():
    b = torch.tensor([1.0, 1.0, -0.5], dtype=torch.float64)
    f = ng.Energy(lambda x: float(x @ b))
    x0 = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    twin = _clone(gen)
    deltas = (2 * torch.randint(0, 2, (25, 3), generator=twin) - 1).to(torch.float64)
    magnitude = float((deltas @ b).abs().mean())  # |f(x + c D) - f(x - c D)| / (2c) on a linear f
    out = spsa_calibrate(f, x0, generator=gen)
    a = (2 * math.pi / 10) * 1.0**0.602 / magnitude
    assert out.mean_magnitude == pytest.approx(magnitude, rel=1e-12)
    assert out.a == pytest.approx(a, rel=1e-12)
    assert out.learning_rate == ng.RobbinsMonro(out.a, 1.0, 0.602)
    assert out.cost == ng.Cost(evaluations=50)
    assert out.evaluations == 50
    assert torch.equal(x0, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))


def test_spsa_calibrate_with_every_setting():
    b = torch.tensor([2.0, -1.0], dtype=torch.float64)
    f = ng.Energy(lambda x: float(x @ b + 3.0 * (x * x).sum()))
    gen = torch.Generator().manual_seed(4)
    twin = _clone(gen)
    x0 = torch.tensor([0.5, -0.5], dtype=torch.float64)
    deltas = (2 * torch.randint(0, 2, (7, 2), generator=twin) - 1).to(torch.float64)
    magnitude = float((deltas @ (b + 6.0 * x0)).abs().mean())  # a quadratic's central difference is exact
    out = spsa_calibrate(f, x0, generator=gen, c=0.3, target_step=0.2, alpha=0.7, stability=4.0, samples=7)
    assert out.mean_magnitude == pytest.approx(magnitude, rel=1e-9)
    assert out.a == pytest.approx(0.2 * 5.0**0.7 / magnitude, rel=1e-9)
    assert out.learning_rate == ng.RobbinsMonro(out.a, 5.0, 0.7)
    assert out.learning_rate(0) * magnitude == pytest.approx(0.2, rel=1e-9)  # the first step is target_step
    assert out.evaluations == 14


def test_spsa_calibrate_refuses_a_flat_objective_and_bad_settings():
    f = ng.Energy(lambda x: 1.0)
    x0 = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="zero change"):
        spsa_calibrate(f, x0, generator=torch.Generator())
    g = ng.Energy(lambda x: float(x.sum()))
    with pytest.raises(TypeError, match="generator"):
        spsa_calibrate(g, x0, generator=0)  # type: ignore[arg-type]
    calls: list[int] = []
    counted = ng.Energy(lambda x: calls.append(1) or float(x.sum()))
    with pytest.raises(ValueError, match="alpha"):
        spsa_calibrate(counted, x0, generator=torch.Generator(), alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        spsa_calibrate(counted, x0, generator=torch.Generator(), alpha=1.5)  # (1/2, 1] closed at 1 only
    assert calls == []  # refused before any evaluation
    assert spsa_calibrate(g, x0, generator=torch.Generator(), alpha=1.0).learning_rate.alpha == 1.0


def _least_squares(n: int) -> ng.FiniteSum:
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    return ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))


def test_full_batch_value_cost_and_stats():
    objective = _least_squares(40)
    w = torch.ones(3, dtype=torch.float64)
    value, grad = objective.value_and_grad(w)
    out = ng.FullBatch(objective).estimate(w, torch.Generator())
    assert out.value == value
    torch.testing.assert_close(out.grad, grad, rtol=0, atol=0)
    assert out.cost == ng.Cost(examples=40)
    assert out.stats == {"grad_variance": 0.0}
    tensor_energy = ng.Energy(lambda x: (B * x).sum() + 0.5 * (x * x).sum())
    energy = ng.FullBatch(tensor_energy).estimate(torch.zeros(2, 3, dtype=torch.float64), torch.Generator())
    assert energy.cost == ng.Cost(examples=0)
    assert energy.value == 0.0
    torch.testing.assert_close(energy.grad, B, rtol=0, atol=0)


@pytest.mark.parametrize("replace", [False, True])
def test_minibatch_draws_from_the_runs_generator(replace):
    objective = _least_squares(30)
    est = ng.MiniBatch(objective, 8, replace=replace)
    gen = torch.Generator().manual_seed(6)
    twin = _clone(gen)
    idx = torch.randint(30, (8,), generator=twin) if replace else torch.randperm(30, generator=twin)[:8]
    w = torch.zeros(3, dtype=torch.float64)
    value, grad = objective.value_and_grad(w, idx)
    out = est.estimate(w, gen)
    torch.testing.assert_close(out.grad, grad, rtol=0, atol=0)
    assert out.value == value
    assert out.cost == ng.Cost(examples=8)
    assert out.stats == {}
    assert est.replace is replace


@pytest.mark.parametrize("replace", [False, True])
def test_minibatch_noise_stats_use_the_finite_population_factor(replace):
    est = ng.MiniBatch(_least_squares(30), 6, replace=replace, noise_stats=True)
    assert est.noise_method == "vmap"
    assert est.noise_stats is True
    out = est.estimate(torch.zeros(3, dtype=torch.float64), torch.Generator().manual_seed(0))
    factor = 1.0 if replace else 1.0 - 6 / 30
    assert out.stats["grad_variance"] == pytest.approx(out.stats["trace_cov"] / 6 * factor, rel=1e-15)


def test_minibatch_settings():
    objective = _least_squares(10)
    assert ng.MiniBatch(objective, 20, replace=True).batch_size == 20  # more than N only with replacement
    with pytest.raises(ValueError, match="batch_size"):
        ng.MiniBatch(objective, 11)
    assert ng.MiniBatch(objective, 10).replace is False
    probe = ng.MiniBatch(objective, 4, noise_stats="probe", probes=3)
    assert probe.probes == 3
    assert probe.noise_method == "probe"
    assert ng.MiniBatch(objective, 4, noise_stats="probe").probes == 1
    assert ng.MiniBatch(objective, 4).noise_stats is False
    assert ng.MiniBatch(objective, 4).noise_method is None
    with pytest.raises(ValueError, match="probes"):
        ng.MiniBatch(objective, 4, noise_stats=True, probes=2)
    with pytest.raises(ValueError, match="noise_stats"):
        ng.MiniBatch(objective, 4, noise_stats="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size >= 2"):
        ng.MiniBatch(objective, 1, noise_stats=True)
    assert ng.MiniBatch(objective, 2, noise_stats=True).batch_size == 2  # two examples give a variance
    with pytest.raises(ng.BatchingNotAllowedError):
        ng.MiniBatch(_quadratic_energy(), 2)  # type: ignore[arg-type]


def test_minibatch_probes_reach_the_probe_statistic():
    """More probes average more sign vectors: the probe's trace estimate changes with ``probes``."""
    objective = _least_squares(30)
    w = torch.ones(3, dtype=torch.float64)
    one = ng.MiniBatch(objective, 6, noise_stats="probe").estimate(w, torch.Generator().manual_seed(1))
    many = ng.MiniBatch(objective, 6, noise_stats="probe", probes=4).estimate(w, torch.Generator().manual_seed(1))
    assert one.stats["trace_cov"] != many.stats["trace_cov"]


# ------------------------------------------------------------------ central differences


def test_central_difference_on_a_matrix_energy_is_exact_for_a_quadratic():
    """A quadratic's central difference is its gradient up to rounding, in the parameter's shape and dtype:
    a step built in another dtype (float32 ``h``) or misapplied would be off far beyond ``1e-9``."""
    f, x = _quadratic_energy(), torch.full((2, 3), 0.7, dtype=torch.float64)
    est = ng.CentralDifference(f, step=1e-3)
    out = est.estimate(x, torch.Generator())
    assert out.grad.shape == (2, 3)
    assert out.grad.dtype == torch.float64
    torch.testing.assert_close(out.grad, B + x, rtol=1e-9, atol=1e-9)
    assert out.cost == ng.Cost(evaluations=12)
    assert out.value is None
    assert est.step == 1e-3
    assert ng.CentralDifference(f).step == 1e-6  # the documented default
    with pytest.raises(ValueError, match="step"):
        ng.CentralDifference(f, step=0.0)


def test_central_difference_of_a_cubic_has_its_h_squared_bias():
    """``f = x^3`` in one coordinate: the central difference is ``3 x^2 + h^2`` exactly, so the step is the one
    given (``h``, not ``h + 1`` nor ``2 h``) and both sides are evaluated (a one-sided difference is ``3x^2 + 3xh +
    h^2``)."""
    f = ng.Energy(lambda v: float((v**3).sum()))
    x = torch.tensor([0.5, -1.5], dtype=torch.float64)
    out = ng.CentralDifference(f, step=0.1).estimate(x, torch.Generator())
    torch.testing.assert_close(out.grad, 3 * x**2 + 0.1**2, rtol=1e-12, atol=1e-12)


def test_central_difference_draws_black_box_noise_from_the_runs_generator():
    def fn(points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return (points**2).sum(1) + 0.01 * torch.randn(points.shape[0], generator=generator, dtype=points.dtype)

    box = ng.NoisyBlackBox(fn)
    x = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    gen = torch.Generator().manual_seed(4)
    twin = _clone(gen)
    noise = 0.01 * torch.randn(6, generator=twin, dtype=torch.float64)
    out = ng.CentralDifference(box, step=0.1).estimate(x, gen)
    torch.testing.assert_close(out.grad, 2 * x + (noise[:3] - noise[3:]) / 0.2, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_central_difference_keeps_the_parameters_device():
    f = ng.Energy(lambda v: (v * v).sum())
    x = torch.tensor([1.0, -2.0], dtype=torch.float64, device="cuda")
    out = ng.CentralDifference(f, step=1e-3).estimate(x, torch.Generator())
    assert out.grad.device == x.device
    torch.testing.assert_close(out.grad.cpu(), 2 * x.cpu(), rtol=1e-9, atol=1e-9)


def test_an_unknown_noise_method_is_refused_with_the_allowed_ones():
    with pytest.raises(ValueError, match=r"one of 'vmap', 'norms', 'probe'; got 'nope'"):
        ng.MiniBatch(_least_squares(10), 4, noise_stats="nope")  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [lambda f: SPSA(f), lambda f: GaussianSmoothing(f)])
@pytest.mark.parametrize(
    "params", [torch.tensor([1, 2]), torch.zeros(0, dtype=torch.float64), [0.5, 0.5]], ids=["int", "empty", "list"]
)
def test_zeroth_order_estimates_refuse_params_that_are_not_a_nonempty_float_tensor(make, params):
    est = make(_quadratic_energy())
    with pytest.raises(TypeError, match="non-empty floating-point tensor"):
        est.estimate(params, torch.Generator().manual_seed(0))


def test_two_draws_already_report_their_spread():
    """The spread statistics need two draws or more: two are enough (``trace / 2``), one gives none."""
    f = ng.Energy(lambda v: float((v**3).sum()))  # not a quadratic: the draws differ
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    for est in (SPSA(f, resamplings=2), GaussianSmoothing(f, samples=2)):
        out = est.estimate(x, torch.Generator().manual_seed(2))
        assert out.stats["grad_variance"] == pytest.approx(out.stats["trace_cov"] / 2, rel=1e-15)
        assert out.stats["trace_cov"] > 0.0
    assert "trace_cov" not in GaussianSmoothing(f, samples=1).estimate(x, torch.Generator().manual_seed(2)).stats


def test_a_calibration_is_frozen():
    import dataclasses

    f = ng.Energy(lambda v: float((v * v).sum()))
    cal = spsa_calibrate(f, torch.ones(3, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cal.a = 2.0  # type: ignore[misc]


def test_spsa_calibrate_perturbs_by_its_default_c():
    """On a cubic the measured magnitude depends on ``c`` (``(f(x + cD) - f(x - cD)) / 2c`` has a ``c^2`` term), so
    the default is visible: the same draws with ``c=0.1`` given explicitly agree, ``c=0.2`` does not."""
    f = ng.Energy(lambda v: float((v**3).sum()))
    x0 = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    default = spsa_calibrate(f, x0, generator=torch.Generator().manual_seed(5))
    explicit = spsa_calibrate(f, x0, generator=torch.Generator().manual_seed(5), c=0.1)
    other = spsa_calibrate(f, x0, generator=torch.Generator().manual_seed(5), c=0.2)
    assert default.mean_magnitude == explicit.mean_magnitude
    assert other.mean_magnitude != pytest.approx(default.mean_magnitude, rel=1e-6)


def test_spsa_state_may_restart_at_zero():
    est = SPSA(_quadratic_energy())
    est.load_state_dict({"k": 4})
    est.load_state_dict({"k": 0})  # the state of a fresh estimator
    assert est.k == 0
