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


# ------------------------------------------------------------------ the loop's parts


def noisy_bowl(sigma=0.3):
    """``|x - 1|^2`` plus Gaussian noise of standard deviation ``sigma`` per evaluation (from the run's generator)."""

    def fn(points, generator):
        noise = sigma * torch.randn(points.shape[0], generator=generator, dtype=points.dtype)
        return ((points - 1.0) ** 2).sum(1) + noise

    return ng.NoisyBlackBox(fn)


def bowl_measure(sigma=0.3):
    """The same values as a Measure with their standard errors (``sigma`` each)."""
    box = noisy_bowl(sigma)

    def measure(points, generator):
        values = box.evaluate(points, generator)
        return ng.Measurement(values, torch.full_like(values, sigma), ng.Cost(evaluations=len(values)))

    return measure


def test_projection_keeps_x0_and_every_iterate_in_the_box():
    seen = []
    result = ng.minimize(
        ng.SPSA(noisy_bowl(), c=0.1),
        ng.SGD(0.2),
        [3.0, -3.0, 0.0],
        steps=60,
        projection=ng.Projection(torch.tensor([-1.0, -1.0, -1.0]), torch.tensor([0.5, 2.0, 2.0])),
        callbacks=[lambda info: seen.append(info.x)],
    )
    xs = torch.stack(seen)
    assert bool((xs >= torch.tensor([-1.0, -1.0, -1.0])).all() and (xs <= torch.tensor([0.5, 2.0, 2.0])).all())
    assert result.x[0] == 0.5  # the constrained minimum sits on the face of the box
    with pytest.raises(ValueError, match="low <= high"):
        ng.Projection(1.0, 0.0)


def test_blocking_applies_its_rule_and_counts_what_it_measured():
    sigma = 0.3

    def run(**kwargs):  # SPSA's noise (sigma / 2c = 1.5 per component) makes steps of 0.3 climb now and then
        return ng.minimize(
            ng.SPSA(noisy_bowl(sigma), c=0.1),
            ng.SGD(0.3),
            torch.zeros(3, dtype=torch.float64),
            steps=50,
            seed=2,
            **kwargs,
        )

    free, result = run(), run(blocking=ng.Blocking(bowl_measure(sigma)))
    assert 5 < result.rejected < 45
    assert float(((result.x - 1) ** 2).sum()) < float(((free.x - 1) ** 2).sum()) / 5
    assert result.rejected == sum(not h["accepted"] for h in result.history)
    for h in result.history:  # accept iff the value rose by at most two standard errors of the difference
        assert h["allowed"] == pytest.approx(2 * math.hypot(sigma, sigma))
        assert h["accepted"] == (h["measured"] <= h["reference"] + h["allowed"])
    assert result.cost.evaluations == 50 * 2 + 1 + 50  # SPSA, the reference at x0, one candidate per step
    assert result.checkpoint["optimizer"]["step"] == 50  # a rejected step still advances the gain schedule


def test_blocking_with_a_fixed_allowance_needs_no_standard_errors():
    result = ng.minimize(
        ng.CentralDifference(ng.Energy(lambda x: ((x - 1.0) ** 2).sum())),
        ng.SGD(1.2),  # oscillates with growing amplitude without blocking
        [0.0, 0.0],
        steps=10,
        blocking=ng.Blocking(allowed_increase=0.0),  # the objective's own values: monotone descent
    )
    values = [h["measured"] for h in result.history if h["accepted"]]
    assert values == sorted(values, reverse=True)
    with pytest.raises(ValueError, match="allowed_increase"):
        ng.minimize(
            ng.SPSA(noisy_bowl()), ng.SGD(0.1), [0.0], steps=1, blocking=ng.Blocking()
        )  # no standard errors, no allowance


def test_iterate_averaging_returns_the_mean_of_the_last_iterates():
    seen = []
    result = ng.minimize(
        ng.SPSA(noisy_bowl(), c=0.1),
        ng.SGD(0.05),
        torch.zeros(3, dtype=torch.float64),
        steps=40,
        averaging=ng.IterateAveraging(10),
        callbacks=[lambda info: seen.append(info.x)],
    )
    assert torch.equal(result.x, torch.stack(seen[-10:]).mean(0))
    assert torch.equal(result.checkpoint["x"], seen[-1])  # the run continues from the last iterate
    assert result.fun is None  # a black box: see fun_estimate


def test_final_estimate_reports_a_fresh_value_and_its_standard_error():
    result = ng.minimize(
        ng.SPSA(noisy_bowl(0.3), c=0.1),
        ng.SGD(0.05),
        torch.zeros(2, dtype=torch.float64),
        steps=20,
        final=ng.FinalEstimate(repeats=400),
    )
    exact = float(((result.x - 1.0) ** 2).sum())
    assert result.fun_stderr == pytest.approx(0.3 / 20, rel=0.2)
    assert abs(result.fun_estimate - exact) < 5 * result.fun_stderr
    assert result.cost.evaluations == 20 * 2 + 400
    assert result.checkpoint["cost"]["evaluations"] == 20 * 2  # a continued run makes its own final estimate


def test_checkpoint_resume_with_every_part_is_bit_identical(tmp_path):
    def run(**kwargs):
        return ng.minimize(
            ng.SPSA(noisy_bowl(), c=0.1),
            ng.Adam(0.3),
            steps=kwargs.pop("steps"),
            projection=ng.Projection(-0.5, 0.8),
            blocking=ng.Blocking(bowl_measure(), sigmas=0.5),
            averaging=ng.IterateAveraging(8),
            final=ng.FinalEstimate(repeats=3),
            **kwargs,
        )

    whole = run(x0=torch.zeros(3, dtype=torch.float64), steps=40, seed=5)
    first = run(x0=torch.zeros(3, dtype=torch.float64), steps=15, seed=5)
    torch.save(first.checkpoint, tmp_path / "run.pt")
    resumed = run(steps=25, resume=torch.load(tmp_path / "run.pt", weights_only=True))
    assert whole.rejected > 0  # blocking's state matters
    assert torch.equal(resumed.x, whole.x)
    assert first.history + resumed.history == whole.history
    assert (resumed.rejected, resumed.fun_estimate, resumed.cost) == (whole.rejected, whole.fun_estimate, whole.cost)
    with pytest.raises(ValueError, match="blocking="):
        ng.minimize(ng.SPSA(noisy_bowl(), c=0.1), ng.Adam(0.3), steps=1, resume=first.checkpoint)


def test_a_callers_generator_continues_its_stream():
    def run(**kwargs):
        return ng.minimize(ng.SPSA(noisy_bowl()), ng.SGD(0.1), [0.0, 0.0], steps=10, **kwargs)

    assert torch.equal(run(seed=3).x, run(generator=torch.Generator().manual_seed(3)).x)
    generator = torch.Generator().manual_seed(3)
    torch.rand(1, generator=generator)  # an earlier draw of the caller's (an initial point)
    assert not torch.equal(run(seed=3).x, run(generator=generator).x)
    with pytest.raises(ValueError, match="not both"):
        run(seed=3, generator=torch.Generator())
