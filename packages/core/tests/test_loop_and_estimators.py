"""The minimize loop, checkpoints, and the foundation estimators."""

import math

import pytest
import torch

import noisygrad as ng


def least_squares(n=300, d=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = X @ torch.arange(1.0, d + 1, dtype=torch.float64) + 0.3 * torch.randn(n, generator=gen, dtype=torch.float64)
    return ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y)), X, y


@pytest.mark.parametrize(
    "make_optimizer",
    [lambda: ng.Adam(0.05), lambda: ng.SGD(ng.RobbinsMonro(0.5, 5.0, 0.75), momentum=0.5, nesterov=True)],
)
def test_checkpoint_resume_is_bit_identical(tmp_path, make_optimizer):
    objective, _, _ = least_squares()
    x0 = torch.zeros(4, dtype=torch.float64)
    whole = ng.minimize(ng.MiniBatch(objective, 16), make_optimizer(), x0, steps=40, seed=7)

    first = ng.minimize(ng.MiniBatch(objective, 16), make_optimizer(), x0, steps=15, seed=7)
    torch.save(first.checkpoint, tmp_path / "run.pt")
    resumed = ng.minimize(
        ng.MiniBatch(objective, 16),
        make_optimizer(),
        steps=25,
        resume=torch.load(tmp_path / "run.pt", weights_only=True),
    )
    assert torch.equal(resumed.x, whole.x)
    assert resumed.nit == whole.nit == 40
    assert first.history + resumed.history == whole.history
    assert resumed.cost == whole.cost == ng.Cost(examples=40 * 16)
    assert torch.equal(x0, torch.zeros(4, dtype=torch.float64))  # x0 untouched


def test_minimize_converges_with_robbins_monro_and_reports_exact_fun():
    objective, X, y = least_squares()
    w_star = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    # lr = 2/(10+t): the transient decays like (10/t)^(2 lambda) and the noise leaves a variance of about
    # a^2 sigma_g^2 / ((2 a lambda - 1) t) ~ 1e-6 per component (sigma_g^2 ~ 0.09/32, lambda ~ 1): 0.01 is 5 s.d.
    result = ng.minimize(
        ng.MiniBatch(objective, 32),
        ng.SGD(ng.RobbinsMonro(2.0, 10.0, 1.0)),
        torch.zeros(4, dtype=torch.float64),
        steps=3000,
        seed=1,
    )
    assert float((result.x - w_star).norm()) < 0.01
    assert result.fun == pytest.approx(objective.value(result.x), abs=0)
    assert len(result.history) == 3000
    assert result.history[-1]["examples"] == 3000 * 32


def test_callbacks_see_every_step_and_can_stop():
    objective, _, _ = least_squares()
    seen = []

    def stop_at_5(info):
        seen.append(info.step)
        return info.step == 5

    result = ng.minimize(
        ng.FullBatch(objective), ng.SGD(0.1), torch.zeros(4, dtype=torch.float64), steps=100, callbacks=[stop_at_5]
    )
    assert seen == [1, 2, 3, 4, 5]
    assert result.stopped_by_callback
    assert result.nit == 5


def test_full_batch_is_the_exact_gradient():
    objective, X, y = least_squares()
    w = torch.ones(4, dtype=torch.float64)
    est = ng.FullBatch(objective).estimate(w, torch.Generator())
    torch.testing.assert_close(est.grad, X.T @ (X @ w - y) / len(y), rtol=1e-12, atol=1e-12)
    assert est.cost == ng.Cost(examples=300)


@pytest.mark.parametrize("replace", [False, True])
def test_minibatch_is_unbiased_and_its_variance_statistic_is_honest(replace):
    objective, _, _ = least_squares(n=120)
    w = torch.zeros(4, dtype=torch.float64)
    true_grad = ng.FullBatch(objective).estimate(w, torch.Generator()).grad
    estimator = ng.MiniBatch(objective, 10, replace=replace, noise_stats=True)
    gen = torch.Generator().manual_seed(3)
    draws = 3000
    estimates = [estimator.estimate(w, gen) for _ in range(draws)]
    grads = torch.stack([e.grad for e in estimates])
    sq_err = (grads - true_grad).pow(2).sum(1)
    reported = torch.tensor([e.stats["grad_variance"] for e in estimates])
    # Unbiased: each component of the mean is within 4 standard errors of the truth.
    se = grads.std(0) / math.sqrt(draws)
    assert bool(((grads.mean(0) - true_grad).abs() < 4 * se).all())
    # The reported variance is an unbiased estimate of E|g_b - g|^2: compare means within 4 combined s.e.
    gap = float(reported.mean() - sq_err.mean())
    combined_se = math.sqrt(float(reported.var() + sq_err.var()) / draws)
    assert abs(gap) < 4 * combined_se


def test_minibatch_without_replacement_draws_distinct_examples():
    objective, _, _ = least_squares(n=20)
    idx = ng.MiniBatch(objective, 20).sample_indices(torch.Generator().manual_seed(0))
    assert sorted(idx.tolist()) == list(range(20))


def test_black_box_central_difference_batches_all_points_and_counts_shots():
    calls = []

    def fn(points, generator):
        calls.append(points.shape)
        return (points**2).sum(1)

    box = ng.NoisyBlackBox(fn, cost_per_evaluation=100, cost_unit="shots")
    est = ng.CentralDifference(box, step=1e-3).estimate(
        torch.tensor([1.0, -2.0], dtype=torch.float64), torch.Generator()
    )
    assert calls == [(4, 2)]
    torch.testing.assert_close(est.grad, torch.tensor([2.0, -4.0], dtype=torch.float64))
    assert est.cost == ng.Cost(evaluations=4, shots=400)


def test_core_headline_experiments_pass():
    from noisygrad.tour.registry import experiments

    for name in ("core.minibatch-variance", "core.noise-ball"):
        findings = experiments()[name].run(seed=0, quick=True)
        assert findings
        for f in findings:
            assert f.passed, f
