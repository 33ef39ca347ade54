"""Bad input at every public entry point raises an error that names the argument."""

import math

import numpy as np
import pytest
import torch

import noisygrad as ng

BAD_RATES = [-1.0, math.nan, math.inf]


@pytest.mark.parametrize("lr", BAD_RATES)
@pytest.mark.parametrize("make", [ng.SGD, ng.Adam, ng.Constant])
def test_negative_or_non_finite_learning_rate(make, lr):
    with pytest.raises(ValueError, match=r"(lr|value) must be a finite number >= 0"):
        make(lr)


@pytest.mark.parametrize("make", [ng.SGD, ng.Adam])
def test_zero_learning_rate_is_allowed_as_in_torch_and_leaves_params(make):
    """torch.optim allows lr = 0 (a frozen group, a warm-up's first step); so does every rule."""
    x = torch.tensor([1.0, -2.0], dtype=torch.float64)
    opt = make(0.0)
    new, _ = opt.update(x, torch.tensor([0.5, 0.5], dtype=torch.float64), opt.init(x))
    assert torch.equal(new, x)


@pytest.mark.parametrize("bad", [math.nan, -0.1, math.inf])
def test_a_schedule_is_checked_at_every_step_not_only_the_first(bad):
    """A schedule that turns NaN or negative after step 0 is refused at that step, naming it and the step."""
    opt = ng.SGD(lambda t: 0.1 if t < 3 else bad)
    x = torch.zeros(2, dtype=torch.float64)
    state = opt.init(x)
    for _ in range(3):
        x, state = opt.update(x, torch.ones(2, dtype=torch.float64), state)
    with pytest.raises(ValueError, match=r"lr\(3\) must be a finite number >= 0"):
        opt.update(x, torch.ones(2, dtype=torch.float64), state)


def test_complex_tensors_are_refused_by_update_with_a_pointer_to_the_adapter():
    opt = ng.Adam(0.1)
    x = torch.zeros(2, dtype=torch.complex128)
    with pytest.raises(TypeError, match="TorchOptimizer"):
        opt.update(x, torch.ones(2, dtype=torch.complex128), opt.init(torch.zeros(2, dtype=torch.float64)))
    y = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(TypeError, match="real tensors"):
        opt.update(y, torch.ones(2, dtype=torch.complex128), opt.init(y))


def test_learning_rate_must_be_a_number():
    with pytest.raises(TypeError, match="lr must be a real number"):
        ng.SGD("0.1")


def test_schedule_parameters():
    with pytest.raises(ValueError, match="alpha must lie in"):
        ng.RobbinsMonro(1.0, 1.0, alpha=0.5)
    with pytest.raises(ValueError, match="a must be"):
        ng.RobbinsMonro(-1.0)
    with pytest.raises(ValueError, match=r"lr\(0\) must be"):
        ng.SGD(lambda t: math.nan)
    with pytest.raises(ValueError, match="steps must be"):
        ng.Cosine(1.0, steps=0)


def test_optimizer_hyperparameters():
    with pytest.raises(ValueError, match="momentum must lie in"):
        ng.SGD(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="nesterov"):
        ng.SGD(0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas\[1\] must lie in"):
        ng.Adam(0.1, betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="eps must be"):
        ng.Adam(0.1, eps=0.0)
    with pytest.raises(ValueError, match="weight_decay must be"):
        ng.SGD(0.1, weight_decay=-1.0)


def test_update_checks_gradient_shape_and_finiteness():
    opt = ng.SGD(0.1)
    x = torch.zeros(3)
    state = opt.init(x)
    with pytest.raises(ValueError, match=r"grad has shape \(2,\) but params has shape \(3,\)"):
        opt.update(x, torch.zeros(2), state)
    with pytest.raises(ng.NonFiniteGradientError, match="grad has 1 non-finite entry"):
        opt.update(x, torch.tensor([0.0, math.nan, 0.0]), state)
    with pytest.raises(ValueError, match="lr must be"):
        opt.update(x, torch.zeros(3), state, lr=math.nan)


def _objective(n=10):
    X, y = torch.randn(n, 2, dtype=torch.float64), torch.randn(n, dtype=torch.float64)
    return ng.FiniteSum(lambda w, X, y: ((X @ w - y) ** 2).mean(), (X, y))


def test_objectives_check_their_data():
    with pytest.raises(ValueError, match="data tensors must share their length"):
        ng.FiniteSum(lambda w, X, y: X.sum(), (torch.zeros(5, 2), torch.zeros(4)))
    with pytest.raises(TypeError, match="loss must be callable"):
        ng.FiniteSum(3, torch.zeros(5))
    with pytest.raises(ValueError, match="at least one example"):
        ng.FiniteSum(lambda w, X: X.sum(), torch.zeros(0, 2))
    with pytest.raises(ValueError, match="cost_per_evaluation must be"):
        ng.NoisyBlackBox(lambda p, g: p.sum(1), cost_per_evaluation=0)


def test_batch_size_must_fit_the_data():
    objective = _objective(10)
    with pytest.raises(ValueError, match=r"batch_size must be <= the number of examples \(10\)"):
        ng.MiniBatch(objective, 11)
    with pytest.raises(ValueError, match="batch_size must be an integer > 0"):
        ng.MiniBatch(objective, 0)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        ng.MiniBatch(objective, 2.5)
    ng.MiniBatch(objective, 11, replace=True)  # with replacement a batch may exceed N


def test_holistic_energy_refuses_minibatching():
    energy = ng.Energy(lambda x: (x**2).sum())
    with pytest.raises(ng.BatchingNotAllowedError, match="cannot be mini-batched"):
        ng.MiniBatch(energy, 4)


def test_estimators_check_the_objective_kind():
    box = ng.NoisyBlackBox(lambda p, g: p.sum(1))
    with pytest.raises(TypeError, match="FullBatch needs an objective of kind"):
        ng.FullBatch(box)
    with pytest.raises(TypeError, match="CentralDifference needs"):
        ng.CentralDifference(_objective())


def test_black_box_checks_what_fn_returns():
    wrong_shape = ng.NoisyBlackBox(lambda p, g: torch.zeros(1))
    with pytest.raises(ValueError, match="one value per point"):
        ng.CentralDifference(wrong_shape).estimate(torch.zeros(2, dtype=torch.float64), torch.Generator())
    nan_values = ng.NoisyBlackBox(lambda p, g: torch.full((p.shape[0],), math.nan))
    with pytest.raises(ng.NonFiniteGradientError, match="black-box values"):
        ng.CentralDifference(nan_values).estimate(torch.zeros(2, dtype=torch.float64), torch.Generator())


def test_minimize_checks_its_arguments():
    est, opt = ng.FullBatch(_objective()), ng.SGD(0.1)
    with pytest.raises(ValueError, match="steps must be an integer > 0"):
        ng.minimize(est, opt, torch.zeros(2), steps=0)
    with pytest.raises(ValueError, match="x0 must be a non-empty 1-D array"):
        ng.minimize(est, opt, torch.zeros(2, 2), steps=1)
    with pytest.raises(ng.NonFiniteGradientError, match="x0 has 1 non-finite"):
        ng.minimize(est, opt, [0.0, math.inf], steps=1)
    with pytest.raises(ValueError, match="x0 is required"):
        ng.minimize(est, opt, steps=1)
    ckpt = ng.minimize(est, opt, [0.0, 0.0], steps=1).checkpoint
    with pytest.raises(ValueError, match="not both"):
        ng.minimize(est, opt, [0.0, 0.0], steps=1, resume=ckpt)


def test_minimize_checks_its_parts():
    est, opt = ng.FullBatch(_objective()), ng.SGD(0.1)
    with pytest.raises(ValueError, match="last must be an integer > 0"):
        ng.IterateAveraging(0)
    with pytest.raises(ValueError, match="repeats must be an integer > 0"):
        ng.FinalEstimate(repeats=0)
    with pytest.raises(ValueError, match="sigmas must be"):
        ng.Blocking(sigmas=0.0)
    with pytest.raises(ValueError, match="allowed_increase must be"):
        ng.Blocking(allowed_increase=-1.0)
    with pytest.raises(ValueError, match="low <= high"):
        ng.Projection(torch.tensor([0.0, math.nan]), 1.0)
    with pytest.raises(TypeError, match="default measure"):  # a finite sum has no cheap value to measure
        ng.minimize(est, opt, [0.0, 0.0], steps=1, final=ng.FinalEstimate())
    with pytest.raises(TypeError, match="generator must be a torch"):
        ng.minimize(est, opt, [0.0, 0.0], steps=1, generator=np.random.default_rng(0))
    ckpt = ng.minimize(est, opt, [0.0, 0.0], steps=1).checkpoint
    with pytest.raises(ValueError, match="leave generator out"):
        ng.minimize(est, opt, steps=1, resume=ckpt, generator=torch.Generator())


def test_minimize_refuses_a_nan_gradient():
    energy = ng.Energy(lambda x: torch.sqrt(x).sum())  # d/dx sqrt at 0 is inf
    with pytest.raises(ng.NonFiniteGradientError, match="gradient"):
        ng.minimize(ng.FullBatch(energy), ng.SGD(0.1), [0.0], steps=1)


def test_minimizer_checks_its_arguments():
    with pytest.raises(ValueError, match="maxiter must be an integer > 0"):
        ng.Minimizer(ng.SGD(0.1), maxiter=0)
    with pytest.raises(TypeError, match="optimizer must be a noisygrad optimizer"):
        ng.Minimizer(torch.optim.SGD)
    minimizer = ng.Minimizer(ng.SGD(0.1), maxiter=2)
    with pytest.raises(TypeError, match="fun must be callable"):
        minimizer(None, [0.0])
    with pytest.raises(ValueError, match="bounds must give one"):
        minimizer(lambda x: 0.0, [0.0, 0.0], bounds=[(0, 1)])
    with pytest.raises(ValueError, match="low <= high"):
        minimizer(lambda x: 0.0, [0.0], bounds=[(1, 0)])
    with pytest.raises(ValueError, match="jac returned shape"):
        minimizer(lambda x: 0.0, [0.0, 0.0], jac=lambda x: np.zeros(3))
    with pytest.raises(ng.NonFiniteGradientError, match="gradient"):
        minimizer(lambda x: 0.0, [0.0], jac=lambda x: np.array([math.nan]))


def test_torch_optimizer_needs_a_noisygrad_rule():
    with pytest.raises(TypeError, match="optimizer must be a noisygrad optimizer"):
        ng.TorchOptimizer([torch.nn.Parameter(torch.zeros(2))], torch.optim.SGD)
    with pytest.raises(ValueError, match="lr must be"):
        ng.TorchOptimizer([torch.nn.Parameter(torch.zeros(2))], ng.SGD(-0.1))


def test_check_finite_passes_finite_entries_whose_sum_overflows():
    from noisygrad.checks import check_finite

    huge = torch.tensor([1e308, 1e308], dtype=torch.float64)
    assert check_finite("g", huge) is huge
    with pytest.raises(ng.NonFiniteGradientError, match="1 non-finite entry"):
        check_finite("g", torch.tensor([1e308, float("nan")], dtype=torch.float64))
