"""``ng.minimize``'s checks before and during a run, and its result's scipy-style fields (issue 15).

Each defect of the issue that concerns ``minimize`` has a test named after it: ``x0`` never checked against the
objective, NaN in the data reported as "lower the learning rate", float16 Adam returning NaN, a complex gradient
turning float64 parameters complex, and a result without ``success`` / ``nfev``.
"""

import math

import numpy as np
import pytest
import torch

import noisygrad as ng
from noisygrad.estimators.base import Cost, Estimate, Stateless
from noisygrad.loop import MinimizeResult


def least_squares(n=20, d=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    y = X @ torch.arange(1.0, d + 1, dtype=dtype) + 0.1 * torch.randn(n, generator=g, dtype=dtype)
    return X, y


def user_loss(w, X, y):
    return 0.5 * ((X @ w - y) ** 2).mean()


# ---------------------------------------------------------------- x0 against the objective


def test_defect_x0_wrong_length_is_named_before_the_first_step_glm():
    X, y = least_squares()
    with pytest.raises(ValueError, match=r"x0 must have 3 entries, one per parameter \(the GLM's columns of X\)"):
        ng.minimize(
            ng.FullBatch(ng.GLM(X, y, loss="squared")), ng.SGD(0.1), torch.zeros(4, dtype=torch.float64), steps=1
        )


def test_defect_float32_x0_is_named_for_a_float64_glm():
    X, y = least_squares()
    with pytest.raises(TypeError, match=r"x0 must be torch.float64 on cpu.*got torch.float32"):
        ng.minimize(ng.FullBatch(ng.GLM(X, y, loss="squared")), ng.SGD(0.1), torch.zeros(3), steps=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU: a second device is needed")
def test_x0_on_another_device_than_a_glm_is_named_before_the_first_step():
    X, y = least_squares()
    with pytest.raises(TypeError, match=r"x0 must be torch.float64 on cpu.*got torch.float64 on cuda"):
        ng.minimize(
            ng.FullBatch(ng.GLM(X, y, loss="squared")),
            ng.SGD(0.1),
            torch.zeros(3, dtype=X.dtype, device="cuda"),
            steps=1,
        )
    X, y = X.cuda(), y.cuda()
    with pytest.raises(TypeError, match=r"x0 must be torch.float64 on cuda:0.*got torch.float64 on cpu"):
        ng.minimize(ng.FullBatch(ng.GLM(X, y, loss="squared")), ng.SGD(0.1), torch.zeros(3, dtype=X.dtype), steps=1)


def test_x0_wrong_length_is_named_for_a_module_loss():
    X, y = least_squares()
    net = torch.nn.Linear(3, 1).double()
    objective = ng.FiniteSum.from_module(net, lambda out, t: 0.5 * (out.squeeze(-1) - t) ** 2, (X, y))
    with pytest.raises(ValueError, match=r"x0 must have 4 entries.*ModuleLoss.n_params.*got shape \(3,\)"):
        ng.minimize(ng.FullBatch(objective), ng.SGD(0.1), torch.zeros(3, dtype=torch.float64), steps=1)


def test_x0_wrong_length_is_named_for_an_objective_that_states_num_parameters():
    """The quantum plugin's EnergyObjective states ``num_parameters`` (its ansatz's); any black box may."""

    class Stated(ng.NoisyBlackBox):
        num_parameters = 2

    box = Stated(lambda points, generator: (points**2).sum(1))
    with pytest.raises(ValueError, match=r"x0 must have 2 entries.*num_parameters"):
        ng.minimize(ng.CentralDifference(box), ng.SGD(0.1), [0.0, 0.0, 0.0], steps=1)
    assert ng.minimize(ng.CentralDifference(box), ng.SGD(0.1), [1.0, 1.0], steps=1).nit == 1


def test_defect_x0_wrong_length_in_a_user_loss_gets_a_note_naming_x0():
    """A user's own loss states no dimension: the torch error keeps its type and gains a note comparing x0 and
    the data (pytest's ``match`` reads the notes too)."""
    X, y = least_squares()
    with pytest.raises(RuntimeError) as info:
        ng.minimize(
            ng.FullBatch(ng.FiniteSum(user_loss, (X, y))), ng.SGD(0.1), torch.zeros(4, dtype=torch.float64), steps=1
        )
    note = " ".join(getattr(info.value, "__notes__", []))
    assert "first gradient estimate, at x0 (shape (4,), torch.float64 on cpu)" in note
    assert "data[0] shape (20, 3), torch.float64 on cpu" in note
    assert "does not state its number of parameters" in note


def test_defect_float32_x0_in_a_user_loss_gets_a_note_naming_the_dtypes():
    X, y = least_squares()
    with pytest.raises(RuntimeError, match=r"x0 is torch.float32 but the data are torch.float64"):
        ng.minimize(ng.FullBatch(ng.FiniteSum(user_loss, (X, y))), ng.SGD(0.1), torch.zeros(3), steps=1)


def test_a_matching_x0_runs_unchanged():
    X, y = least_squares()
    result = ng.minimize(
        ng.FullBatch(ng.FiniteSum(user_loss, (X, y))), ng.SGD(0.5), torch.zeros(3, dtype=X.dtype), steps=200
    )
    expected = torch.linalg.lstsq(X, y).solution
    torch.testing.assert_close(result.x, expected, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- dtype policy


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_defect_float16_adam_nan_is_refused_before_the_first_step(dtype):
    """Half-precision Adam turned NaN; the policy is to refuse half-precision x0 with the reason and the fix."""
    energy = ng.Energy(lambda x: (x.float() ** 2).sum())
    with pytest.raises(TypeError, match=rf"x0 is {dtype}: .* pass x0.float\(\)"):
        ng.minimize(ng.FullBatch(energy), ng.Adam(0.1), torch.ones(3, dtype=dtype), steps=1)


def test_float32_x0_is_kept_in_float32():
    energy = ng.Energy(lambda x: ((x - 1) ** 2).sum())
    result = ng.minimize(ng.FullBatch(energy), ng.Adam(0.1), torch.zeros(3), steps=200)
    assert result.x.dtype == torch.float32
    torch.testing.assert_close(result.x, torch.ones(3), atol=1e-2, rtol=0)


@pytest.mark.parametrize(
    "x0", [torch.zeros(2, dtype=torch.complex128), np.zeros(2, dtype=np.complex128), [1 + 1j, 0.0]], ids=str
)
def test_complex_x0_is_refused(x0):
    energy = ng.Energy(lambda x: (x.abs() ** 2).sum())
    with pytest.raises(TypeError, match="x0 must be real"):
        ng.minimize(ng.FullBatch(energy), ng.SGD(0.1), x0, steps=1)


class ComplexGradient(Stateless):
    """An estimator that returns a complex gradient (as autograd does for a complex intermediate left in)."""

    def __init__(self):
        self.objective = ng.Energy(lambda x: (x**2).sum())

    def estimate(self, params, generator):
        return Estimate(params.to(torch.complex128) * (1 + 1j), None, Cost())


def test_defect_complex_gradient_on_float64_parameters_is_refused_naming_the_estimator():
    x0 = torch.ones(2, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"ComplexGradient returned a complex gradient \(torch.complex128\)"):
        ng.minimize(ComplexGradient(), ng.SGD(0.1), x0, steps=1)


# ---------------------------------------------------------------- where a NaN came from


def test_defect_nan_in_the_data_is_reported_at_x0_not_as_a_learning_rate_problem():
    X, y = least_squares()
    X[4, 1] = math.nan
    with pytest.raises(ng.NonFiniteGradientError) as info:
        ng.minimize(ng.FullBatch(ng.FiniteSum(user_loss, (X, y))), ng.SGD(0.1), torch.zeros(3, dtype=X.dtype), steps=5)
    message = str(info.value)
    assert "the objective/data give NaN at x0, before any step" in message
    assert "data[0] has 1 of 60 non-finite entries" in message
    assert "lower the learning rate" not in message


def test_defect_nan_in_the_data_drawn_by_a_later_mini_batch_is_not_called_divergence():
    X, y = least_squares(n=20)
    y[7] = math.nan
    objective = ng.FiniteSum(user_loss, (X, y))
    estimator = ng.MiniBatch(objective, batch_size=1)
    # seed 0 first draws example 7 after 22 steps (x0 and the steps before are clean)
    with pytest.raises(ng.NonFiniteGradientError) as info:
        ng.minimize(estimator, ng.SGD(0.01), torch.zeros(3, dtype=X.dtype), steps=100, seed=0)
    message = str(info.value)
    assert message.startswith("non-finite values at step 22:")
    assert "data[1] has 1 of 20" in message
    assert "clean the data" in message
    assert "diverged" not in message
    assert isinstance(info.value.__cause__, ng.NonFiniteGradientError)  # the estimator's own finding is kept


def test_a_non_finite_value_at_x0_with_a_finite_gradient_is_refused():
    energy = ng.Energy(lambda x: x.sum() + torch.log(torch.zeros(())))  # value -inf, gradient 1
    with pytest.raises(ng.NonFiniteGradientError, match=r"NaN at x0.*value at x0 is -inf"):
        ng.minimize(ng.FullBatch(energy), ng.SGD(0.1), [0.0], steps=1)


def test_divergence_is_reported_with_its_step():
    """SGD with lr 1 on ``50 x^2`` multiplies x by -99 a step; the gradient ``100 x`` passes float64's 1.8e308
    when ``100 * 99^t`` does, first at t = 154 (log10: 2 + 1.9956 t > 308.25)."""
    energy = ng.Energy(lambda x: 50 * (x**2).sum())
    with pytest.raises(ng.NonFiniteGradientError) as info:
        ng.minimize(ng.FullBatch(energy), ng.SGD(1.0), [1.0], steps=1000)
    message = str(info.value)
    assert message.startswith("diverged at step 154: gradient has 1 non-finite entry")
    assert "lower the learning rate" in message


def test_black_box_nan_at_x0_under_blocking_is_reported_at_x0():
    box = ng.NoisyBlackBox(lambda points, generator: torch.full((len(points),), math.nan, dtype=points.dtype))
    with pytest.raises(ng.NonFiniteGradientError, match="NaN at x0, before any step: black-box values"):
        ng.minimize(ng.CentralDifference(box), ng.SGD(0.1), [0.0], steps=1, blocking=ng.Blocking(allowed_increase=0))


def test_a_resumed_run_reports_divergence_not_x0():
    energy = ng.Energy(lambda x: 50 * (x**2).sum())
    first = ng.minimize(ng.FullBatch(energy), ng.SGD(1.0), [1.0], steps=100)
    with pytest.raises(ng.NonFiniteGradientError, match=r"^diverged at step 1[5-6]\d"):
        ng.minimize(ng.FullBatch(energy), ng.SGD(1.0), steps=100, resume=first.checkpoint)


# ---------------------------------------------------------------- the result's scipy-style fields


def test_defect_minimize_result_has_success_status_message_and_nfev_finite_sum():
    X, y = least_squares()
    result = ng.minimize(
        ng.MiniBatch(ng.FiniteSum(user_loss, (X, y)), 5), ng.SGD(0.1), torch.zeros(3, dtype=X.dtype), steps=7
    )
    assert (result.status, result.success, result.message) == (0, True, "took all 7 steps asked for")
    assert result.nfev == 7  # one loss-and-gradient evaluation per step ...
    assert result.cost.examples == 35  # ... reading 5 examples each


def test_nfev_of_a_black_box_is_its_evaluations():
    box = ng.NoisyBlackBox(lambda points, generator: ((points - 1) ** 2).sum(1))
    result = ng.minimize(ng.CentralDifference(box), ng.SGD(0.1), [0.0, 0.0], steps=4, final=ng.FinalEstimate())
    assert result.nfev == result.cost.evaluations == 4 * 2 * 2 + 1


def test_nfev_of_an_energy_counts_autograd_steps_and_measurements():
    energy = ng.Energy(lambda x: ((x - 1) ** 2).sum())
    result = ng.minimize(ng.FullBatch(energy), ng.SGD(0.1), [0.0], steps=6, final=ng.FinalEstimate(repeats=3))
    assert result.nfev == 6 + 3


def test_a_callback_stop_is_status_1_and_success():
    energy = ng.Energy(lambda x: ((x - 1) ** 2).sum())
    result = ng.minimize(ng.FullBatch(energy), ng.SGD(0.1), [0.0], steps=10, callbacks=[lambda info: info.step == 4])
    assert (result.nit, result.status, result.success) == (4, 1, True)
    assert result.message == "a callback stopped the run after 4 of 10 steps"


def test_a_non_finite_value_at_the_returned_point_is_status_2():
    energy = ng.Energy(lambda x: -x.sum() + torch.where(x > 0.5, math.inf, 0.0).sum())  # gradient -1 everywhere
    result = ng.minimize(ng.FullBatch(energy), ng.SGD(0.2), [0.0], steps=5)
    assert result.fun == math.inf
    assert (result.status, result.success) == (2, False)
    assert result.message == "the value at the returned point is inf (not finite)"


def test_nfev_counts_across_a_resumed_run():
    energy = ng.Energy(lambda x: ((x - 1) ** 2).sum())
    whole = ng.minimize(ng.FullBatch(energy), ng.SGD(0.1), [0.0], steps=5)
    first = ng.minimize(ng.FullBatch(energy), ng.SGD(0.1), [0.0], steps=3)
    rest = ng.minimize(ng.FullBatch(energy), ng.SGD(0.1), steps=2, resume=first.checkpoint)
    assert rest.nfev == whole.nfev == 5
    assert torch.equal(rest.x, whole.x)


def test_minimize_result_positional_construction_still_works():
    result = MinimizeResult(torch.zeros(1), 0.0, 1, ng.Cost(), [], False, {})
    assert (result.nfev, result.status, result.success, result.message) == (0, 0, True, "")


@pytest.mark.parametrize("bad", [math.nan, -0.1], ids=["nan", "negative"])
def test_a_schedule_that_turns_nan_midway_raises_through_the_loop_unchanged(bad):
    """The rule checks a non-constant schedule at every step (``Rule.update``); the loop passes that error on as
    it is (a ValueError naming the step), not as a NaN gradient, a divergence or a silent climb (negative)."""
    energy = ng.Energy(lambda x: ((x - 1) ** 2).sum())
    seen = []
    with pytest.raises(ValueError, match=r"lr\(3\) must be a finite number >= 0"):
        ng.minimize(
            ng.FullBatch(energy),
            ng.SGD(lambda t: 0.1 if t < 3 else bad),
            [0.0],
            steps=10,
            callbacks=[lambda info: seen.append(info.step)],
        )
    assert seen == [1, 2, 3]
