"""Tests that close the mutation-testing gaps of the pinn plugin's ``training``, ``inverse``, ``problems``,
``distributed``, ``experiments`` and ``inverse_experiment`` modules (issue 18).

Every model is a tiny real DeepXDE model (``conftest.tiny_poisson``: 24 + 2 points, FNN 1-10-10-1, or the inverse
problem with a 1-5-1 network; a handful of steps). The experiments run for real at tiny sizes: their budgets are cut
(``problems.solve`` wrapped with a few iterations, ``inverse_experiment`` with a 1-4-1 network and a few evaluations)
and, where a size is only checked, the full-grid Burgers quadrature (seconds) is replaced by a closed-form stand-in;
the quadrature itself is tested on its own. The checks are exact: counts, documented defaults and constants, closed
forms (the plateau rule's window means, the shard noise scale, the mean of the shard gradients, the PDE residuals at
known functions, the findings against the runs they report), bit-for-bit reproducibility from the seed; where float
rounding enters, the tolerance is a few ulps of float64 (float32 for a float32 network) and says so. No statistical
claim is made, so there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import itertools
import math
import time
import types
import warnings

import numpy as np
import pytest
import torch

import noisygrad.pinn as ngp
from noisygrad.pinn import distributed as dist
from noisygrad.pinn import experiments, problems
from noisygrad.pinn import inverse as inv
from noisygrad.pinn import inverse_experiment as ie
from noisygrad.pinn import training as tr
from noisygrad.pinn._deepxde import deepxde, quiet
from noisygrad.pinn.noise import predicted_cosine
from noisygrad.pinn.problems import default_float

from .conftest import params_of, same, tiny_poisson

# ---------------------------------------------------------------------------------------------------- training


def test_plateau_defaults_and_its_window_means_at_the_boundary():
    rule = tr.Plateau()
    assert (rule.window, rule.rel_tol) == (500, 0.05)
    w = 4
    rule = tr.Plateau(window=w, rel_tol=0.25)
    # geometric means of the two windows: 1 then 0.75 exactly -> ratio 0.75 = 1 - rel_tol: not a plateau (">")
    assert not rule([1.0] * w + [0.75] * w)
    assert rule([1.0] * w + [0.76] * w)  # ratio 0.76 > 0.75: the loss fell by less than rel_tol
    assert not rule([1.0] * w + [0.74] * w)
    # only the last two windows count, and only at a multiple of the window
    assert rule([0.001] * w + [1.0] * w + [1.0] * w)
    assert not rule([1.0] * (2 * w + 1))
    assert not rule([1.0] * (2 * w - 1))
    # zeros are floored at the smallest normal float64 (no log(0)): two windows of zeros are a plateau
    assert rule([0.0] * (2 * w))
    assert not rule([1.0] * w + [0.0] * w)
    # a geometric, not arithmetic, mean: both windows have the arithmetic mean 1
    assert not tr.Plateau(window=2, rel_tol=0.5)([1.0, 1.0, 1.99, 0.01])  # geometric mean 0.141 < 0.5
    assert tr.Plateau(window=1, rel_tol=0.999)([1.0, 0.0011])  # ratio 1.1e-3 > 1e-3
    for bad in (0.0, 1.0):  # rel_tol lies in (0, 1)
        with pytest.raises(ValueError, match="rel_tol"):
            tr.Plateau(rel_tol=bad)


def test_train_result_defaults_and_shard_noise_scale():
    r = tr.TrainResult("adam")
    assert (r.iterations, r.evaluations, r.stopped, r.batch_size, r.batch_draws, r.world) == (
        0, 0, "iterations", None, 0, 1,
    )  # fmt: skip
    assert math.isnan(r.final_loss)
    assert r.seconds == 0.0
    assert r.losses.size == 0
    assert r.noise == []
    assert r.state is None
    assert r.shards is None
    assert (r.skipped_pairs, r.pairs_tried, r.resets) == (None, None, None)
    with pytest.raises(ValueError, match="no shard noise"):
        r.shard_noise_scale()
    r.trace_cov = np.array([8.0, -1.0, 3.0])
    r.grad_norm_sq = np.array([1.0, 2.0, 4.0])
    assert r.shard_noise_scale() == pytest.approx((10 / 3) / (7 / 3), rel=1e-15)
    assert r.shard_noise_scale(last=2) == pytest.approx(1.0 / 3.0, rel=1e-15)
    assert r.shard_noise_scale(last=1) == 0.75
    r.trace_cov = np.array([-2.0, -4.0])
    r.grad_norm_sq = np.array([1.0, 1.0])
    assert r.shard_noise_scale() == 0.0  # a negative mean trace is clipped at 0
    r.grad_norm_sq = np.array([1.0, -1.0])
    assert r.shard_noise_scale() == math.inf  # mean |G|^2 = 0
    r.grad_norm_sq = np.array([0.5, -1.0])
    assert r.shard_noise_scale() == math.inf
    with pytest.raises(ValueError, match="last"):
        r.shard_noise_scale(last=0)


def test_schedule_result_reads_its_last_phase_and_sums_seconds():
    a, b = tr.TrainResult("adam", final_loss=3.0, seconds=1.5), tr.TrainResult("lbfgs", final_loss=2.0, seconds=0.25)
    s = tr.ScheduleResult([a, b], 7, "plateau")
    assert s.final_loss == 2.0
    assert s.seconds == 1.75
    three = tr.ScheduleResult([a, b, tr.TrainResult("sgd", final_loss=0.5, seconds=0.25)], 7, "plateau")
    assert three.final_loss == 0.5  # the last phase's, however many
    assert three.seconds == 2.0


def test_run_generator_takes_a_generator_as_is_and_an_int_as_its_stream():
    gen = torch.Generator().manual_seed(5)
    assert tr._run_generator(gen) is gen
    a, b = tr._run_generator(3), tr._run_generator(np.int64(3))
    assert torch.equal(a.get_state(), b.get_state())
    assert not torch.equal(a.get_state(), tr._run_generator(4).get_state())
    for bad in (True, 1.0, "1", None):
        with pytest.raises(TypeError, match="seed"):
            tr._run_generator(bad)
    run, noise = tr._generators(7)
    assert not torch.equal(run.get_state(), tr._run_generator(7).get_state())  # the spawn moved it on
    assert not torch.equal(run.get_state(), noise.get_state())


def test_train_adam_counts_losses_and_final_loss_exactly(model):
    result = ngp.train(model, "adam", lr=1e-3, iterations=7, verbose=0)
    assert result.optimizer == "adam"
    assert (result.iterations, result.evaluations, result.stopped) == (7, 7, "iterations")
    assert result.losses.shape == (7,)
    assert result.losses.dtype == np.float64
    assert result.batch_size is None
    assert result.batch_draws == 0
    assert result.noise == []
    assert result.final_loss == ngp.training_loss(model)
    inputs, targets, aux = tr._full_rows(model)
    assert aux is None
    assert result.final_loss == float(torch.sum(model.outputs_losses_train(inputs, targets, aux)[1]).detach())
    assert model.train_state.step == 7
    assert model.train_step is not None
    assert not isinstance(model.train_step, tr._Stepper)
    assert result.seconds > 0.0
    assert result.state is not None
    # the recorded losses are each step's loss before its update: the first is the initial training loss
    first = ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=1, verbose=0)
    assert first.losses[0] == result.losses[0]


def test_minibatches_are_reproducible_from_the_seed_and_drawn_every_batch_every(model):
    a = ngp.train(model, "adam", lr=1e-3, iterations=6, batch_size=8, batch_every=2, seed=4, verbose=0)
    assert a.batch_size == 8
    assert a.batch_draws == 3  # a fresh batch every 2 of the 6 steps
    b_model = tiny_poisson(0)
    b = ngp.train(b_model, "adam", lr=1e-3, iterations=6, batch_size=8, batch_every=2, seed=4, verbose=0)
    assert np.array_equal(a.losses, b.losses)
    assert same(params_of(model), params_of(b_model))
    c = ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=6, batch_size=8, batch_every=2, seed=5, verbose=0)
    assert not np.array_equal(a.losses, c.losses)
    # a generator goes on: two phases on one generator are one phase of the sum
    gen = torch.Generator().manual_seed(11)
    one = tiny_poisson(0)
    ngp.train(one, "adam", lr=1e-3, iterations=3, batch_size=8, seed=gen, verbose=0)
    ngp.train(one, "adam", lr=1e-3, iterations=3, batch_size=8, seed=gen, verbose=0)
    gen2 = torch.Generator().manual_seed(11)
    two = tiny_poisson(0)
    ngp.train(two, "adam", lr=1e-3, iterations=3, batch_size=8, seed=gen2, verbose=0)
    ngp.train(two, "adam", lr=1e-3, iterations=3, batch_size=8, seed=torch.Generator().manual_seed(11), verbose=0)
    assert not same(params_of(one), params_of(two))


def test_noise_every_measures_at_the_right_steps(model):
    result = ngp.train(model, "adam", lr=1e-3, iterations=5, noise_every=2, noise_groups=4, verbose=0)
    assert [step for step, _ in result.noise] == [2, 4]
    again = ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=5, noise_every=2, noise_groups=4, verbose=0)
    assert [n.grad_norm_sq for _, n in result.noise] == [n.grad_norm_sq for _, n in again.noise]
    assert [n.trace_cov for _, n in result.noise] == [n.trace_cov for _, n in again.noise]


def test_noise_estimates_use_the_phase_batch_size_and_learning_rate(model):
    full = ngp.train(model, "adam", lr=1e-3, iterations=2, noise_every=2, noise_groups=2, verbose=0)
    ((_, n),) = full.noise
    assert (n.pool, n.batch_size) == (26, 26)  # on the full set, b is the pool N
    assert n.temperature == pytest.approx(1e-3 * n.batch_variance / (2 * n.dim), rel=1e-12)
    mini = ngp.train(model, "adam", lr=2e-3, iterations=1, batch_size=8, noise_every=1, noise_groups=2, verbose=0)
    ((_, m),) = mini.noise
    assert m.batch_size == 8
    assert m.temperature == pytest.approx(2e-3 * m.batch_variance / (2 * m.dim), rel=1e-12)
    robust = ngp.train(model, "lbfgs", iterations=1, batch_size=8, noise_every=1, noise_groups=2, verbose=0)
    assert math.isnan(robust.noise[0][1].temperature)  # a second-order method has no learning rate


@pytest.mark.filterwarnings("ignore:L-BFGS in float32:noisygrad.pinn.PinnWarning")
def test_full_set_lbfgs_that_makes_at_most_one_iteration_has_converged(model):
    params = list(model.net.parameters())
    none = ngp.train(model, torch.optim.LBFGS(params, max_iter=5, tolerance_grad=1e10), iterations=50, verbose=0)
    assert (none.iterations, none.stopped) == (0, "converged")  # the first gradient already passes the test
    one = ngp.train(model, torch.optim.LBFGS(params, max_iter=5, tolerance_change=1e10), iterations=50, verbose=0)
    assert (one.iterations, one.stopped) == (1, "converged")  # one iteration in a call: DeepXDE's rule
    two = ngp.train(model, torch.optim.LBFGS(params, max_iter=1), iterations=3, verbose=0)
    assert (two.iterations, two.stopped) == (3, "iterations")  # max_iter 1: one iteration per call is no sign
    fresh = tiny_poisson(0)
    pairs = ngp.train(
        fresh, torch.optim.LBFGS(list(fresh.net.parameters()), max_iter=2, max_eval=10), iterations=4, verbose=0
    )
    assert (pairs.iterations, pairs.stopped) == (4, "iterations")  # two iterations a call: not converged


def test_a_callback_that_stops_training_is_reported():
    dde = deepxde()

    class StopAt(dde.callbacks.Callback):
        def on_batch_end(self):
            if self.model.train_state.step >= 3:
                self.model.stop_training = True

    model = tiny_poisson(0)
    result = ngp.train(model, "adam", lr=1e-3, iterations=10, callbacks=[StopAt()], verbose=0)
    assert (result.iterations, result.stopped) == (3, "callback")
    assert result.losses.shape == (3,)


def test_a_stop_rule_ends_the_phase_as_a_plateau(model):
    result = ngp.train(model, "adam", lr=1e-9, iterations=50, stop=tr.Plateau(window=3, rel_tol=0.5), verbose=0)
    assert (result.iterations, result.stopped) == (6, "plateau")


@pytest.mark.filterwarnings("ignore:L-BFGS in float32:noisygrad.pinn.PinnWarning")
def test_full_set_lbfgs_counts_inner_iterations_and_its_line_search_budget(model):
    ngp.train(model, "adam", lr=1e-3, iterations=3, verbose=0)
    result = ngp.train(model, "lbfgs", iterations=7, lbfgs_chunk=3, verbose=0)
    group = model.opt.param_groups[0]
    assert result.iterations == 7
    assert group["max_iter"] == 1  # the last chunk is the budget's remainder: 3 + 3 + 1
    assert group["max_eval"] == 25  # max(max_iter * 5 // 4, 25)
    state = model.opt.state[group["params"][0]]
    assert result.evaluations == state["func_evals"]
    assert model.train_state.step == 3 + 7  # DeepXDE's step counts L-BFGS's inner iterations
    assert model.train_state.iteration == 3 + 7
    assert result.losses.shape == (3,)  # one loss per DeepXDE step (chunk)
    assert result.stopped == "iterations"
    big_model = tiny_poisson(0)
    big = ngp.train(big_model, "lbfgs", iterations=24, lbfgs_chunk=24, verbose=0)
    group = big_model.opt.param_groups[0]
    # one chunk of 24 iterations: max_eval = 24 * 5 // 4 = 30 (above DeepXDE's floor of 25)
    assert (big.iterations, big.losses.shape, group["max_iter"], group["max_eval"]) == (24, (1,), 24, 30)


def test_adam_then_lbfgs_runs_both_phases_on_one_generator():
    with pytest.raises(TypeError, match="resume"):
        ngp.adam_then_lbfgs(tiny_poisson(0), resume={})
    model = tiny_poisson(0)
    with pytest.warns(ngp.PinnWarning, match="float32"):
        sched = ngp.adam_then_lbfgs(
            model, lr=1e-2, iterations=4, lbfgs_iterations=3, batch_size=8, lbfgs_batch_size=None, seed=2, verbose=0
        )
    adam, lbfgs = sched.phases
    assert (sched.switched_at, sched.switch_reason) == (4, "iterations")
    assert (adam.optimizer, lbfgs.optimizer) == ("adam", "lbfgs")
    assert adam.batch_size == 8
    assert lbfgs.batch_size is None
    batched = ngp.adam_then_lbfgs(  # each phase its own batches (mini-batched L-BFGS does not warn about float32)
        tiny_poisson(0), lr=1e-2, iterations=2, lbfgs_iterations=2, batch_size=8, lbfgs_batch_size=6, seed=2, verbose=0
    )
    assert [phase.batch_size for phase in batched.phases] == [8, 6]
    assert model.lr_scheduler is None
    # the first phase is train(..., seed=seed) at lr
    ref = tiny_poisson(0)
    one = ngp.train(ref, "adam", lr=1e-2, iterations=4, batch_size=8, seed=2, verbose=0)
    assert np.array_equal(one.losses, adam.losses)
    assert adam.final_loss == one.final_loss


# ----------------------------------------------------------------------------------------------------- inverse


def test_relative_noise_shapes_and_copies():
    u = np.array([[3.0], [-4.0]])
    kept = u.copy()
    out = inv.relative_noise(u, 0.5, np.array([[2.0], [0.0]]))
    np.testing.assert_array_equal(u, kept)  # the user's array is not changed
    assert out.shape == (2, 1)
    assert out[0, 0] == 3.0 + 0.5 * math.sqrt(12.5) * 2.0
    assert out[1, 0] == -4.0
    assert inv.relative_noise(2.0, 0.25, -1.0) == 2.0 - 0.25 * 2.0  # 0-d: rms |u|
    for bad in ({"values": np.ones((1, 1, 2)), "normal": np.ones((1, 1, 2))}, {"values": [1.0], "normal": 0.0}):
        with pytest.raises(ValueError):
            inv.relative_noise(bad["values"], 0.1, bad["normal"])


def test_least_squares_coefficient_refuses_what_no_positive_coefficient_fits():
    with pytest.raises(ValueError, match="correlate"):
        inv.least_squares_coefficient([0.5], [0.0])  # a zero projection: C would be infinite
    for bad_x, bad_y in ((0.5, 1.0), (np.ones((1, 1, 1)), np.ones((1, 1, 1)))):
        with pytest.raises(ValueError):
            inv.least_squares_coefficient(bad_x, bad_y)
    # sum s^2 / sum y s, exactly: s = sin(pi / 2) = 1 and sin(pi / 6)
    x, y = np.array([0.5, 1.0 / 6.0]), np.array([2.0, 4.0])
    s = np.sin(np.pi * x)
    assert inv.least_squares_coefficient(x, y) == float(s @ s) / float(y @ s)


def test_noise_limited_sd_closed_form_and_its_zero_level():
    assert inv.noise_limited_sd(2.0, 0.3, 9) == 2.0 * 0.3 / 3.0
    assert inv.noise_limited_sd(1.5, 0.0, 4) == 0.0
    with pytest.raises(ValueError, match="coefficient"):
        inv.noise_limited_sd(0.0, 0.1, 4)
    with pytest.raises(ValueError, match="level"):
        inv.noise_limited_sd(1.0, -0.1, 4)


def test_poisson_inverse_defaults_and_its_pde_residual():
    with default_float("float64"):
        p = inv.poisson_inverse()  # level 0 needs no generator
        assert p.observe_x.shape == (10, 1)
        assert p.observe_y.shape == (10, 1)
        np.testing.assert_array_equal(p.observe_x[:, 0], np.arange(1, 11) / 11)
        np.testing.assert_array_equal(p.observe_exact, np.sin(np.pi * p.observe_x))
        assert (p.value, p.true_value, p.level, p.noise_limited_sd) == (2.0, 1.0, 0.0, 0.0)
        assert p.error() == 1.0
        assert [layer.out_features for layer in p.model.net.linears] == [20, 20, 20, 1]
        assert len(p.model.data.train_x_all) == 32 + 2 + 10  # Hammersley points, the two ends, the anchors
        # the measurement points are anchors (collocation points too)
        assert all(np.isclose(p.model.data.train_x, xo).any() for xo in p.observe_x[:, 0])
        q = inv.poisson_inverse(
            true_value=4.0, initial_guess=3.0, observations=3, num_domain=5, layers=(4,), init_seed=2**63 - 1
        )
        assert (q.value, q.true_value, q.error()) == (3.0, 4.0, 0.25)
        np.testing.assert_array_equal(q.observe_exact, np.sin(np.pi * q.observe_x) / 4.0)
        assert q.least_squares == pytest.approx(4.0, rel=1e-14)
        assert [layer.out_features for layer in q.model.net.linears] == [4, 1]
        # -C u'' - pi^2 sin(pi x) at u = sin(pi x) / C*: zero at C = C*, (C / C* - 1) pi^2 sin(pi x) otherwise
        x = torch.linspace(0.1, 0.9, 5, dtype=torch.float64).reshape(-1, 1).requires_grad_(True)
        u = torch.sin(math.pi * x) / 4.0
        residual = q.model.data.pde(x, u)
        expected = (3.0 / 4.0 - 1.0) * math.pi**2 * torch.sin(math.pi * x)
        torch.testing.assert_close(residual, expected, rtol=1e-12, atol=1e-12)
        assert inv.poisson_inverse(init_seed=np.int64(5), num_domain=3, layers=(2,)).value == 2.0
    for bad in (2**63, True, 1.5):
        with pytest.raises(ValueError, match="init_seed"):
            inv.poisson_inverse(init_seed=bad)


def test_poisson_inverse_draws_its_noise_at_level_zero_too():
    rng = np.random.default_rng(3)
    with default_float("float64"):
        p = inv.poisson_inverse(level=0.0, rng=rng, observations=4, num_domain=3, layers=(2,))
        np.testing.assert_array_equal(p.observe_y, p.observe_exact)
        q = inv.poisson_inverse(level=0.2, rng=np.random.default_rng(3), observations=4, num_domain=3, layers=(2,))
    # the four draws were taken: the generator moved on by them
    after = np.random.default_rng(3)
    normal = after.standard_normal((4, 1))
    assert rng.standard_normal() == after.standard_normal()
    np.testing.assert_allclose(q.observe_y, inv.relative_noise(q.observe_exact, 0.2, normal), rtol=1e-15)
    assert q.level == 0.2


def test_evaluations_to_boundaries():
    assert inv.evaluations_to([3, 5], [1.5, 1.25], 1.0, 0.25) == 5.0  # |1.25 - 1| <= 0.25 counts as inside
    assert inv.evaluations_to([3, 5], [1.25, 0.75], 1.0, 0.25) == 3.0
    assert inv.evaluations_to([], [], 1.0, 0.1) == math.inf
    assert inv.evaluations_to([2, 4, 6], [1.0, 1.5, 1.0], 1.0, 0.1) == 6.0
    with pytest.raises(ValueError):
        inv.evaluations_to([[1.0]], [[1.0]], 1.0, 0.1)


def test_fit_records_its_trace_and_uses_its_documented_defaults():
    def tiny():
        return inv.poisson_inverse(init_seed=3, num_domain=6, layers=(5,), observations=4)

    with default_float("float64"):
        run = inv.fit(tiny(), "adam", evaluations=4)
        ref = tiny()
        phase = ngp.train(
            ref.model, "adam", lr=1e-2, iterations=4, external_trainable_variables=ref.variable, verbose=0
        )
        lb = inv.fit(tiny(), "lbfgs", evaluations=12)
        pilot = inv.fit(tiny(), "lbfgs", evaluations=30, lbfgs_chunk=1)
        exact_budget = int(pilot.trace_evaluations[2])  # the total after the third one-iteration chunk
        at_budget = inv.fit(tiny(), "lbfgs", evaluations=exact_budget, lbfgs_chunk=1)
        with pytest.raises(ValueError, match="warmup"):
            inv.fit(tiny(), "adam+lbfgs", evaluations=500)  # the default warmup is 500 Adam steps
        warm = inv.fit(tiny(), "adam+lbfgs", evaluations=501)  # ... so one more evaluation leaves L-BFGS a turn
    assert warm.phases[0].iterations == 500
    assert len(warm.phases) == 2
    # the run stops at the end of the first chunk whose total reaches the budget (here: equals it)
    np.testing.assert_array_equal(at_budget.trace_evaluations, pilot.trace_evaluations[:3])
    assert at_budget.evaluations == exact_budget
    assert run.method == "adam"
    assert run.value == ref.value != 2.0  # lr 1e-2 by default
    assert run.trace_values[-1] == run.value
    assert run.trace_values.dtype == np.float64
    assert run.trace_evaluations.dtype == np.int64
    assert run.evaluations == 4
    assert run.final_loss == run.phases[-1].final_loss == phase.final_loss
    assert run.seconds > 0
    assert lb.trace_evaluations.size == len(lb.phases[0].losses)  # one record per chunk of 10 L-BFGS iterations
    assert lb.phases[0].iterations <= 10 * lb.trace_evaluations.size
    assert lb.phases[0].iterations > 10 * (lb.trace_evaluations.size - 1)


# ---------------------------------------------------------------------------------------------------- problems

_SIZES = {  # (quick, full): domain, boundary, initial points; hidden widths; activation; test grid; recipe
    "poisson1d": (
        (64, 2, None, [20, 20, 20], (1001, 1), {"lr": 1e-3, "iterations": 500, "lbfgs_iterations": 500}),
        (64, 2, None, [20, 20, 20], (1001, 1), {"lr": 1e-3, "iterations": 2000, "lbfgs_iterations": 3000}),
    ),
    "helmholtz2d": (
        (100, 40, None, [30, 30, 30], (101 * 101, 2), {"lr": 1e-3, "iterations": 300, "lbfgs_iterations": 500}),
        (400, 80, None, [50, 50, 50], (101 * 101, 2), {"lr": 1e-3, "iterations": 1000, "lbfgs_iterations": 3000}),
    ),
    "burgers": (
        (640, 40, 80, [20, 20, 20], (128 * 50, 2), {"lr": 1e-3, "iterations": 500, "lbfgs_iterations": 500}),
        (2540, 80, 160, [20, 20, 20], (256 * 100, 2), {"lr": 1e-3, "iterations": 2000, "lbfgs_iterations": 8000}),
    ),
}


def _grid_reference(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A stand-in for the Cole-Hopf quadrature (seconds at the full grid; tested on its own above): ``100 t + x``."""
    return 100.0 * np.asarray(t)[:, None] + np.asarray(x)[None, :]


@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize("name", problems.NAMES)
def test_each_problem_has_its_documented_size(name, quick, monkeypatch):
    monkeypatch.setattr(problems, "burgers_reference", _grid_reference)
    domain, boundary, initial, widths, grid, recipe = _SIZES[name][0 if quick else 1]
    problem = problems.build(name, seed=0, quick=quick)
    data = problem.model.data
    assert problem.name == name
    assert (data.num_domain, data.num_boundary) == (domain, boundary)
    assert getattr(data, "num_initial", None) == initial
    assert [layer.out_features for layer in problem.model.net.linears] == [*widths, 1]
    assert problem.x_test.shape == grid
    assert problem.u_test.shape == (grid[0], 1)
    assert problem.recipe == recipe


def test_exact_solutions_on_their_grids_and_the_pde_residuals(monkeypatch):
    monkeypatch.setattr(problems, "burgers_reference", _grid_reference)
    with problems.default_float("float64"):
        p = problems.build("poisson1d")
        assert (p.model.data.geom.l, p.model.data.geom.r) == (0.0, 1.0)
        assert p.recipe == _SIZES["poisson1d"][1][5]  # build's default is the full recipe (quick=False)
        np.testing.assert_array_equal(p.x_test[:, 0], np.linspace(0.0, 1.0, 1001))
        np.testing.assert_array_equal(p.u_test, np.sin(np.pi * p.x_test))
        x = torch.linspace(0.1, 0.9, 5, dtype=torch.float64).reshape(-1, 1).requires_grad_(True)
        torch.testing.assert_close(p.model.data.pde(x, torch.sin(math.pi * x)), torch.zeros_like(x), atol=1e-12, rtol=0)
        for quick, k0 in ((True, 2 * math.pi), (False, 4 * math.pi)):
            h = problems.build("helmholtz2d", quick=quick)
            np.testing.assert_allclose(
                h.u_test[:, 0], np.sin(k0 * h.x_test[:, 0]) * np.sin(k0 * h.x_test[:, 1]), rtol=0, atol=1e-15
            )
            np.testing.assert_array_equal(np.unique(h.x_test[:, 0]), np.linspace(0.0, 1.0, 101))
            xy = torch.tensor([[0.1, 0.3], [0.45, 0.8]], dtype=torch.float64, requires_grad=True)
            exact = torch.sin(k0 * xy[:, 0:1]) * torch.sin(k0 * xy[:, 1:2])
            torch.testing.assert_close(
                h.model.data.pde(xy, exact), torch.zeros(2, 1, dtype=torch.float64), atol=1e-9, rtol=0
            )
            # the hard boundary: the network's output is x (1 - x) y (1 - y) times its raw output
            raw = torch.tensor([[2.0], [-3.0]], dtype=torch.float64)
            expected = (xy[:, 0] * (1 - xy[:, 0]) * xy[:, 1] * (1 - xy[:, 1])).reshape(-1, 1) * raw
            torch.testing.assert_close(h.model.net._output_transform(xy, raw), expected, rtol=1e-15, atol=0)
            assert (h.model.data.geom.xmin.tolist(), h.model.data.geom.xmax.tolist()) == ([0.0, 0.0], [1.0, 1.0])
        for quick, t_end, nx in ((True, 0.25, 128), (False, 0.99, 256)):
            b = problems.build("burgers", quick=quick)
            assert b.x_test[:, 1].max() == t_end
            assert b.x_test[:, 0].min() == -1.0
            np.testing.assert_array_equal(b.x_test[:nx, 0], np.linspace(-1.0, 1.0, nx))  # x runs fastest
            np.testing.assert_array_equal(b.u_test[:, 0], 100.0 * b.x_test[:, 1] + b.x_test[:, 0])  # u(x, t) rows
            assert (b.model.data.geom.timedomain.t0, b.model.data.geom.timedomain.t1) == (0.0, t_end)
            assert (b.model.data.geom.geometry.l, b.model.data.geom.geometry.r) == (-1.0, 1.0)
            # the initial condition u(x, 0) = -sin(pi x), read at x = 0.3 and -0.5
            initial = b.model.data.bcs[1].func(np.array([[0.3, 0.0], [-0.5, 0.0]]), 0, 2, None)
            np.testing.assert_allclose(np.asarray(initial)[:, 0], -np.sin(np.pi * np.array([0.3, -0.5])), rtol=1e-15)
        # u = x t: u_t + u u_x - nu u_xx = x + x t^2
        xt = torch.tensor([[0.3, 0.2], [-0.5, 0.1]], dtype=torch.float64, requires_grad=True)
        u = xt[:, 0:1] * xt[:, 1:2]
        residual = b.model.data.pde(xt, u)
        torch.testing.assert_close(residual, xt[:, 0:1] * (1 + xt[:, 1:2] ** 2), rtol=1e-14, atol=1e-15)
        # u = x^2 t: u_t + u u_x - nu u_xx = x^2 + 2 x^3 t^2 - 2 nu t (the viscous term with its sign)
        x, t = xt[:, 0:1], xt[:, 1:2]
        residual = b.model.data.pde(xt, x * x * t)
        expected = x * x + 2 * x**3 * t * t - 2 * problems.BURGERS_NU * t
        torch.testing.assert_close(residual, expected, rtol=1e-14, atol=1e-15)


def test_burgers_reference_defaults_and_its_initial_time():
    x = np.array([-0.5, 0.25])
    out = problems.burgers_reference(x, [0.0, 0.3])
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out[0], -np.sin(np.pi * x))
    assert 0.01 / math.pi == problems.BURGERS_NU
    x32 = np.array([0.3, -0.7], dtype=np.float32)  # float32 points are computed in float64
    np.testing.assert_array_equal(problems.burgers_reference(x32, [0.0])[0], -np.sin(np.pi * x32.astype(np.float64)))
    same_nodes = problems.burgers_reference(x, [0.3], nu=problems.BURGERS_NU, nodes=3001)
    np.testing.assert_array_equal(out[1:], same_nodes)
    assert not np.array_equal(problems.burgers_reference(x, [0.3], nodes=3002), same_nodes)
    assert not np.array_equal(problems.burgers_reference(x, [0.3], nu=0.02), same_nodes)
    # float32 times are read in float64 too: nu t is not rounded to float32 (0.25 and 0.5 are exact in both)
    t32 = np.array([0.25, 0.5], dtype=np.float32)
    np.testing.assert_array_equal(problems.burgers_reference(x, t32), problems.burgers_reference(x, [0.25, 0.5]))


def test_problem_error_is_the_relative_l2_error_of_the_net():
    p = problems.build("poisson1d", seed=1, quick=True)
    x = np.array([[0.2], [0.7]])  # float64 test points for a float32 net
    with torch.no_grad():
        pred = p.model.net(torch.as_tensor(x, dtype=torch.float32)).numpy()
    p.x_test, p.u_test = x, 2.0 * pred
    assert p.error() == pytest.approx(0.5, rel=1e-7)  # float32 rounding of the prediction
    p.u_test = -pred
    assert p.error() == pytest.approx(2.0, rel=1e-7)


def test_build_seeds_the_weights_and_default_float_restores_the_precision():
    a, b, c = (problems.build("poisson1d", seed=s, quick=True) for s in (3, 3, 4))
    assert same(params_of(a.model), params_of(b.model))
    assert not same(params_of(a.model), params_of(c.model))
    with pytest.raises(TypeError, match="seed"):
        problems.build("poisson1d", seed=True)
    dde = deepxde()
    with problems.default_float("float64"):
        assert dde.config.real.precision == 64
        assert torch.get_default_dtype() == torch.float64
        with problems.default_float("float32"):
            assert dde.config.real.precision == 32
            assert torch.get_default_dtype() == torch.float32
        assert dde.config.real.precision == 64
        assert torch.get_default_dtype() == torch.float64
    assert dde.config.real.precision == 32
    assert torch.get_default_dtype() == torch.float32


def test_solve_defaults_overrides_and_the_deepxde_recipe(capsys):
    before = time.perf_counter()
    solved = problems.solve("poisson1d", seed=2, quick=True, iterations=3, lbfgs_iterations=2)
    wall = time.perf_counter() - before
    assert (solved.name, solved.seed) == ("poisson1d", 2)
    adam, lbfgs = solved.result.phases
    assert (adam.iterations, lbfgs.optimizer) == (3, "lbfgs")
    assert 0 < lbfgs.iterations <= 2
    assert 0 < solved.seconds <= wall  # the training's own time, within the call's
    assert capsys.readouterr().out == ""
    ref = problems.build("poisson1d", seed=2, quick=True)
    assert solved.error != ref.error()
    loud = problems.solve("poisson1d", seed=2, quick=True, iterations=2, lbfgs_iterations=1, verbose=1)
    assert "Training model" in capsys.readouterr().out
    assert loud.result.phases[0].iterations == 2
    f64 = problems.solve("poisson1d", seed=2, quick=True, precision="float64", iterations=2, lbfgs_iterations=2)
    assert f64.result.phases[1].iterations == 2  # float64: the whole L-BFGS budget
    with pytest.raises(ValueError, match="lbfgs_iterations"):  # checked before any training
        problems.solve("poisson1d", quick=True, method="deepxde", iterations=1, lbfgs_iterations=0)


def test_solve_with_deepxdes_own_recipe_is_deepxde_by_hand(monkeypatch):
    """``method="deepxde"``: compile("adam", lr), train, compile("L-BFGS") with ``maxiter``, train; seed 0 by
    default. (DeepXDE's torch L-BFGS checks ``maxiter`` only between steps of 1000 iterations: here its first
    step runs to its own convergence test, about 160 iterations, whatever the budget below 1000.)"""
    dde = deepxde()
    compiled = []
    real_compile = dde.Model.compile

    def recorded_compile(self, optimizer, *args, **kwargs):
        compiled.append((optimizer, kwargs.get("lr"), dde.optimizers.LBFGS_options["maxiter"]))
        return real_compile(self, optimizer, *args, **kwargs)

    monkeypatch.setattr(dde.Model, "compile", recorded_compile)
    theirs = problems.solve("poisson1d", quick=True, method="deepxde", iterations=3, lbfgs_iterations=2, lr=5e-3)
    assert compiled == [("adam", 5e-3, 15000), ("L-BFGS", None, 2)]  # the recipe's lr and L-BFGS budget
    monkeypatch.undo()
    assert theirs.seed == 0
    assert dde.optimizers.LBFGS_options["maxiter"] == 15000  # DeepXDE's default put back
    with problems.default_float("float32"):
        ref = problems.build("poisson1d", seed=0, quick=True)
        with quiet():
            ref.model.compile("adam", lr=5e-3)
            ref.model.train(iterations=3, verbose=0)
            dde.optimizers.set_LBFGS_options(maxiter=2)
            try:
                ref.model.compile("L-BFGS")
                ref.model.train(verbose=0)
            finally:
                dde.optimizers.set_LBFGS_options()
    assert theirs.error == ref.error()
    assert theirs.result.iteration == ref.model.train_state.iteration > 3 + 2  # the L-BFGS step ran past 2


# ------------------------------------------------------------------------------------------------- distributed


def test_layout_local_ranges_fingerprint_and_take():
    assert dist.Layout(4, 1, 8).local == range(2, 4)
    assert dist.Layout(2, 0, 6).local == range(0, 3)
    assert dist.Layout(1, 0, 3).local == range(0, 3)
    assert dist._fingerprint(np.array([[1.0, 2.0], [3.0, 4.0]])) == 1 * 3.0 + 2 * 7.0
    # a float64 sum, also of float32 rows: 1e8 + 1 - 1e8 is 1 in float64 and 0 in float32
    assert dist._fingerprint(np.array([[1e8, 1.0, -1e8]], dtype=np.float32)) == 1.0
    x, y, aux = dist._take((np.arange(4.0), None, None), np.array([2, 0]))
    assert x.tolist() == [2.0, 0.0]
    assert y is None
    assert aux is None
    x, y, aux = dist._take((np.arange(4.0), np.arange(4.0) + 10, np.arange(4.0) + 20), np.array([3]))
    assert (x.tolist(), y.tolist(), aux.tolist()) == ([3.0], [13.0], [23.0])


def test_layout_checks_the_split(model):
    assert dist.layout(model, False, None, None) is None
    assert dist.layout(model, False, None, 8) is None
    assert dist.layout(model, False, 2, None) == dist.Layout(1, 0, 2)  # N = 24 + 2 = 26 PDE points, even
    assert dist.layout(model, False, 4, 8) == dist.Layout(1, 0, 4)
    assert dist._pde_points(model) == 26
    with pytest.raises(ValueError, match="batch_size must be a multiple of the 4 shards"):
        dist.layout(model, False, 4, 10)
    with pytest.raises(ValueError, match="N=26"):
        dist.layout(model, False, 4, None)
    with pytest.raises(ValueError, match="shards"):
        dist.layout(model, False, 0, None)
    with pytest.raises(TypeError, match="distributed"):
        dist.layout(model, 1, None, None)


def _shard_by_hand(model, rows, n_bc: int, k: int, b: int) -> tuple[float, torch.Tensor]:
    """The loss and flat gradient of shard ``k``: the boundary rows and PDE rows ``k b .. (k + 1) b - 1``."""
    index = np.concatenate([np.arange(n_bc), n_bc + np.arange(k * b, (k + 1) * b)])
    shard = dist._take(rows, index)
    data = model.data
    full = (data.train_x, data.train_y, data.train_aux_vars)
    data.train_x, data.train_y, data.train_aux_vars = shard
    try:
        model.net.zero_grad(set_to_none=True)
        total = torch.sum(model.outputs_losses_train(*shard)[1])
        total.backward()
    finally:
        data.train_x, data.train_y, data.train_aux_vars = full
    return float(total.detach()), torch.cat([p.grad.reshape(-1) for p in model.net.parameters()])


def test_sharded_gradient_is_the_mean_of_the_shards_and_records_one_estimate_per_step():
    from noisygrad.distributed.estimates import two_batch_estimates

    with default_float("float64"):
        model = tiny_poisson(0)
        ngp.train(model, "adam", lr=1e-3, iterations=1, verbose=0)
        rows = tr._full_rows(model)
        n_bc = int(sum(model.data.num_bcs))
        points = len(rows[0]) - n_bc
        params = list(model.net.parameters())
        extra = torch.zeros(3, requires_grad=True)  # a tensor the loss does not reach keeps .grad = None
        sharded = dist.ShardedGradient(model, [*params, extra], dist.Layout(1, 0, 2))
        assert sharded.verify is True  # the ranks' draws are checked unless asked not to
        assert sharded.n_bc == n_bc == 2
        assert points == 26
        parts = [_shard_by_hand(model, rows, n_bc, k, points // 2) for k in range(2)]
        sharded.begin_step()
        loss = sharded.evaluate(rows)
        assert loss.dtype == torch.float64
        assert float(loss) == (parts[0][0] + parts[1][0]) / 2
        grad = torch.cat([p.grad.reshape(-1) for p in params])
        assert torch.equal(grad, (parts[0][1] + parts[1][1]) / 2)
        assert extra.grad is None
        small = (float(parts[0][1].pow(2).sum()) + float(parts[1][1].pow(2).sum())) / 2
        (estimate,) = sharded.estimates
        expected = two_batch_estimates(small, float(grad.pow(2).sum()), 13, 26, 26)
        assert estimate.trace_cov == pytest.approx(expected.trace_cov, rel=1e-12)
        assert estimate.grad_sq == pytest.approx(expected.grad_sq, rel=1e-12)
        sharded.evaluate(rows)  # a second evaluation in the same step (a line search) records nothing
        assert len(sharded.estimates) == 1
        sharded.begin_step()
        sharded.closure_for(rows)()
        assert len(sharded.estimates) == 2
        unstarted = dist.ShardedGradient(model, params, dist.Layout(1, 0, 2))
        unstarted.evaluate(rows)  # no begin_step: nothing is recorded
        assert unstarted.estimates == []
        one = dist.ShardedGradient(model, params, dist.Layout(1, 0, 1))
        one.begin_step()
        one.evaluate(rows)
        assert one.estimates == []  # one shard: no two batch sizes
        with pytest.raises(RuntimeError, match="equal shards"):
            dist.ShardedGradient(model, params, dist.Layout(1, 0, 4)).evaluate(rows)
        # on the full set the generator's random order of the pool is applied before the split
        gen = torch.Generator().manual_seed(3)
        ordered = dist.ShardedGradient(model, params, dist.Layout(1, 0, 2), generator=gen)
        ordered.begin_step()
        shuffled_loss = ordered.evaluate(rows)
        order = torch.randperm(26, generator=torch.Generator().manual_seed(3)).numpy()
        assert order.size == 26
        permuted = dist._take(rows, np.concatenate([np.arange(n_bc), n_bc + order]))
        plain = dist.ShardedGradient(model, params, dist.Layout(1, 0, 2))
        plain.begin_step()
        assert float(shuffled_loss) == float(plain.evaluate(permuted))
        # the loss is a mean over every point either way; the shard noise shows which points each shard got
        (shuffled,) = ordered.estimates
        assert shuffled.trace_cov == plain.estimates[0].trace_cov
        assert shuffled.trace_cov != pytest.approx(estimate.trace_cov, rel=1e-6)  # the pool's own order splits apart
    # the loss comes back in the model's dtype, not torch's default: a float32 model while the default is float64
    model32 = tiny_poisson(0)
    ngp.train(model32, "adam", lr=1e-3, iterations=1, verbose=0)
    sharded32 = dist.ShardedGradient(model32, list(model32.net.parameters()), dist.Layout(1, 0, 2))
    rows32 = tr._full_rows(model32)
    torch.set_default_dtype(torch.float64)
    try:
        loss32 = sharded32.evaluate(rows32)
    finally:
        torch.set_default_dtype(torch.float32)
    assert loss32.dtype == torch.float32


# ------------------------------------------------------------------------------------------------- experiments


def test_adam_identity_is_exactly_zero_and_says_its_steps(monkeypatch):
    assert experiments.adam_identity.parameters[0].default == 200
    assert experiments.adam_identity.parameters[0].full == 2000
    # one step is the smallest run; the wall time is kept to a hundredth (a clock reading 1.2345 s)
    monkeypatch.setattr(experiments, "time", types.SimpleNamespace(perf_counter=iter([100.0, 101.2345]).__next__))
    (single,) = experiments.adam_identity(seed=1, steps=1)
    assert (single.measured, single.details["steps"], single.details["seconds"]) == (0.0, 1, 1.23)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="steps"):
        experiments.adam_identity(steps=100_001)  # at most 100 000 steps
    (finding,) = experiments.adam_identity(seed=1, steps=2)
    assert finding.uncertainty == 0.0
    assert (finding.experiment, finding.predicted, finding.measured, finding.tolerance) == (
        "pinn.adam-identity", 0.0, 0.0, 0.0,
    )  # fmt: skip
    assert finding.passed
    assert finding.details["steps"] == 2
    assert finding.details["problem"] == "poisson1d"
    assert finding.details["seconds"] >= 0.0


def test_collocation_noise_finding_is_the_predicted_cosine_at_its_batch(monkeypatch, capsys):
    """The finding against the gradients the run computed (recorded on their way, not replaced)."""
    grads, stats, built = [], [], []
    real_build = experiments.problems.build
    monkeypatch.setattr(experiments.problems, "build", lambda name, **k: built.append(k) or real_build(name, **k))
    real_flat, real_stats = experiments._flat_grad, experiments.noise_stats_from_grads

    def flat_grad(*args):
        grads.append(real_flat(*args).double())
        return grads[-1]

    def noise_stats(*args):
        stats.append(real_stats(*args))
        return stats[-1]

    monkeypatch.setattr(experiments, "_flat_grad", flat_grad)
    monkeypatch.setattr(experiments, "noise_stats_from_grads", noise_stats)
    streams = []  # the run's one generator: the training phase, then the Monte-Carlo batches, go on from it
    real_train, real_batches = experiments.train, experiments.CollocationBatches
    budgets = []
    monkeypatch.setattr(
        experiments,
        "train",
        lambda *a, **k: streams.append(k["seed"]) or budgets.append(k["iterations"]) or real_train(*a, **k),
    )
    monkeypatch.setattr(
        experiments, "CollocationBatches", lambda *a, **k: streams.append(k["generator"]) or real_batches(*a, **k)
    )
    with pytest.raises(ValueError, match="draws"):
        experiments.collocation_noise(draws=100_001)  # at most 100 000 draws
    with pytest.raises(ValueError, match="batch"):
        experiments.collocation_noise(batch=49)  # at most 48 of the 64 points
    batch = experiments.collocation_noise.parameters[0]
    assert (batch.name, batch.default, batch.low, batch.high) == ("batch", 16, 2, 48)  # b = 2 is the smallest
    draws = experiments.collocation_noise.parameters[1]
    assert (draws.name, draws.default, draws.full, draws.low, draws.high) == ("draws", 300, 3000, 50, 100_000)
    (finding,) = experiments.collocation_noise(seed=1, batch=4, draws=50)
    assert built == [{"seed": 1}]  # the problem's network and points from the run's seed
    assert capsys.readouterr().out == ""  # the training phase is quiet
    d = finding.details
    assert len(grads) == 50

    def cosine_and_relative_variance() -> tuple[float, float]:
        g, gg = stats[-1].grad, stats[-1].grad_norm_sq
        dots = np.array([float(gb @ g) for gb in grads])
        norms = np.array([float(gb @ gb) for gb in grads])
        # the delta-method variance of a ratio of means: var(a) + var(b) - 2 cov(a, b), a = dots / mean,
        # b = norms / (2 mean), sample (co)variances with n - 1
        a, b = dots / dots.mean(), norms / (2 * norms.mean())
        var = a.var(ddof=1) + b.var(ddof=1) - 2 * np.sum((a - a.mean()) * (b - b.mean())) / (len(grads) - 1)
        return dots.mean() / math.sqrt(gg * norms.mean()), var

    measured, var = cosine_and_relative_variance()
    assert finding.measured == pytest.approx(measured, rel=1e-12)
    assert finding.uncertainty == pytest.approx(measured * math.sqrt(max(var, 0.0) / 50), rel=1e-9)
    assert (finding.experiment, d["b"], d["N"], d["draws"]) == ("pinn.collocation-noise", 4, 66, 50)
    assert finding.predicted == predicted_cosine(d["rho"], 4, 66)
    assert 0.0 < finding.measured <= 1.0
    assert finding.uncertainty > 0.0
    assert finding.tolerance == 4.0 * finding.uncertainty  # TOLERANCE_Z standard errors
    assert d["tolerance"] == "4 standard errors"
    assert len(streams) == 2
    assert budgets == [200]  # the experiment trains 200 Adam steps before it measures the gradients
    assert isinstance(streams[0], torch.Generator)
    assert streams[0] is streams[1]
    # at b = 32 the relative variance is below 1 (about 0.2, where b = 4 gives about 1.4): the standard error is
    # still the delta method's own, with no floor but 0 under the variance
    grads.clear()
    (wide,) = experiments.collocation_noise(seed=1, batch=32, draws=50)
    measured, var = cosine_and_relative_variance()
    assert 0.0 < var < 1.0
    assert wide.uncertainty == pytest.approx(measured * math.sqrt(var / 50), rel=1e-9)


def test_accuracy_findings_read_the_solved_run(monkeypatch):
    calls = []
    real_solve = problems.solve

    def tiny_solve(name, *, seed, quick):  # the recipe's budgets cut to a few steps (the recipes take minutes)
        calls.append((name, seed, quick))
        return real_solve(name, seed=seed, quick=True, iterations=2, lbfgs_iterations=1)

    monkeypatch.setattr(problems, "solve", tiny_solve)
    monkeypatch.setattr(problems, "burgers_reference", _grid_reference)
    assert experiments.BOUNDS == {"poisson1d": (1e-5, 2e-4), "helmholtz2d": (1e-3, 1e-3), "burgers": (4e-2, 4e-2)}
    for name in problems.NAMES:
        (quick,) = getattr(experiments, name)(seed=3, quick=True)
        assert calls[-1] == (name, 3, True)
        assert (quick.experiment, quick.tolerance, quick.predicted) == (
            f"pinn.{name}",
            experiments.BOUNDS[name][1],
            0.0,
        )
        assert quick.details["size"] == "quick"
        assert quick.details["seconds"] >= 0.0
        assert quick.details["adam_iterations"] == 2
        assert quick.details["lbfgs_iterations"] <= 1
        assert quick.measured > 0
    for name in problems.NAMES:
        getattr(experiments, name)()
        assert calls[-1] == (name, 0, True)  # seed 0 and the quick size by default
    (full,) = experiments.poisson1d(seed=4, quick=False)
    assert calls[-1] == ("poisson1d", 4, False)
    assert full.tolerance == 1e-5
    assert full.details["size"] == "full"
    again = real_solve("poisson1d", seed=4, quick=True, iterations=2, lbfgs_iterations=1)
    assert full.measured == again.error


# ----------------------------------------------------------------------------------------- inverse_experiment


def test_inverse_experiment_constants():
    assert (ie.EXPERIMENT, ie.ADAM_LR, ie.WARMUP, ie.OBSERVATIONS) == ("pinn.inverse-noisy-data", 1e-2, 500, 10)
    assert ie.QUICK == {"levels": (0.0, 0.1), "adam": 2500, "lbfgs": 500, "adam+lbfgs": 1000}
    assert ie.FULL == {"levels": (0.0, 0.01, 0.05, 0.1), "adam": 4000, "lbfgs": 800, "adam+lbfgs": 1300}
    assert (ie.SETTLE, ie.SPEED_RATIO, ie.INEFFICIENCY, ie.AGREEMENT) == (1e-2, 0.25, 1.25, 0.3)
    assert ie.EXACT_BOUNDS == {"lbfgs": 1e-3, "adam+lbfgs": 1e-4, "adam": 1e-2}


def test_inverse_experiment_findings_on_a_tiny_run(monkeypatch):
    """The whole experiment at a tiny size (a 1-4-1 network, a few evaluations): each finding against the runs."""
    built, fits = [], []
    real_problem, real_fit = ie.poisson_inverse, ie.fit

    def small_problem(**kwargs):
        built.append(kwargs)
        return real_problem(**kwargs, num_domain=6, layers=(4,))

    def recorded_fit(problem, method, **kwargs):
        fits.append((problem, method, kwargs, real_fit(problem, method, **kwargs)))
        return fits[-1][3]

    monkeypatch.setattr(ie, "poisson_inverse", small_problem)
    monkeypatch.setattr(ie, "fit", recorded_fit)
    monkeypatch.setattr(ie, "WARMUP", 3)
    settles = []
    real_settle = ie.evaluations_to

    def recorded_settle(counts, values, target, tolerance):
        settles.append((target, tolerance))
        return real_settle(counts, values, target, tolerance)

    monkeypatch.setattr(ie, "evaluations_to", recorded_settle)
    # a clock that reads 12.3456 s of wall time and 3.2199 s of CPU time over each run of the experiment
    clock = types.SimpleNamespace(
        perf_counter=itertools.cycle([100.0, 112.3456]).__next__,
        process_time=itertools.cycle([50.0, 53.2199]).__next__,
    )
    monkeypatch.setattr(ie, "time", clock)
    size = {"levels": (0.0, 0.1), "adam": 6, "lbfgs": 5, "adam+lbfgs": 8}
    threads = torch.get_num_threads()
    findings = ie._findings(2, size, True)
    assert torch.get_num_threads() == threads
    seed0 = int(ie.numpy_stream(2, 0).integers(2**62))
    assert [b["init_seed"] for b in built] == [seed0] * 6
    assert [b["level"] for b in built] == [0.0] * 3 + [0.1] * 3
    assert all(b["observations"] == 10 for b in built)
    assert [m for _, m, _, _ in fits] == ["adam", "lbfgs", "adam+lbfgs"] * 2
    assert [k["evaluations"] for _, _, k, _ in fits] == [6, 5, 8] * 2
    assert all((k["lr"], k["warmup"], k["warmup_lr"]) == (1e-2, 3, 1e-3) for _, _, k, _ in fits)
    noise = ie.numpy_stream(2, 1).standard_normal((10, 1))  # the same draws at every level
    np.testing.assert_array_equal(fits[3][0].observe_y, inv.relative_noise(fits[3][0].observe_exact, 0.1, noise))
    runs = {(lv, m): (p, f) for p, m, _, f in fits for lv in [p.level]}
    assert len(findings) == 1 + 3 + 3 + 1
    speed, exact, noisy, agreement = findings[0], findings[1:4], findings[4:7], findings[7]
    # speed: L-BFGS's evaluations to settle within 1% over Adam's (Adam's budget when it never settled)
    lb, ad = runs[0.0, "lbfgs"][1], runs[0.0, "adam"][1]
    n_lb = inv.evaluations_to(lb.trace_evaluations, lb.trace_values, 1.0, 0.01)
    n_ad = inv.evaluations_to(ad.trace_evaluations, ad.trace_values, 1.0, 0.01)
    assert speed.details["adam_censored_at_budget"] == math.isinf(n_ad)
    assert speed.measured == n_lb / (ad.evaluations if math.isinf(n_ad) else n_ad)
    assert speed.tolerance == 0.25
    assert speed.details["lbfgs_evaluations_to_settle"] == n_lb
    assert speed.details["budgets"] == {"adam": 6, "lbfgs": 5, "adam+lbfgs": 8}
    assert speed.details["size"] == "quick"
    assert (speed.details["seconds"], speed.details["cpu_seconds"]) == (12.3, 3.2)  # elapsed, to a tenth
    for finding, method in zip(exact, ("adam", "lbfgs", "adam+lbfgs"), strict=True):
        assert finding.measured == abs(runs[0.0, method][1].value - 1.0)
        assert finding.tolerance == ie.EXACT_BOUNDS[method]
        assert finding.unit == "relative error"
        assert finding.details["evaluations"] == runs[0.0, method][1].evaluations
        assert finding.details["final_loss"] == runs[0.0, method][1].final_loss
        assert finding.details["adam_lr"] == 1e-2
    for finding, method in zip(noisy, ("adam", "lbfgs", "adam+lbfgs"), strict=True):
        problem, run = runs[0.1, method]
        assert (finding.predicted, finding.measured) == (1.0, run.value)
        assert finding.uncertainty == 1.25 * problem.noise_limited_sd
        assert finding.tolerance == 4.0 * finding.uncertainty
        assert finding.details["level"] == 0.1
        assert finding.curve is not None
        assert list(finding.curve.x) == [0.0, 0.1]
        assert list(finding.curve.measured) == [runs[lv, method][1].value - 1.0 for lv in (0.0, 0.1)]
        assert list(finding.curve.predicted) == [runs[lv, method][0].least_squares - 1.0 for lv in (0.0, 0.1)]
        assert list(finding.curve.uncertainty) == [1.25 * runs[lv, method][0].noise_limited_sd for lv in (0.0, 0.1)]
        d = finding.details
        assert (d["least_squares"], d["noise_limited_sd"]) == (problem.least_squares, problem.noise_limited_sd)
        assert d["gap_to_least_squares_in_sd"] == (run.value - problem.least_squares) / problem.noise_limited_sd
        assert d["evaluations"] == run.evaluations
        assert d["tolerance"].startswith("4 standard errors; standard error = 1.25 x the least-squares sd")
    sd = runs[0.1, "lbfgs"][0].noise_limited_sd
    assert agreement.measured == abs(runs[0.1, "adam"][1].value - runs[0.1, "lbfgs"][1].value) / sd
    assert agreement.tolerance == 0.3
    assert agreement.unit == "noise-limited sd"
    assert agreement.details["tolerance"].startswith("a bound on Adam's own optimisation error at its budget")
    assert agreement.details["level"] == 0.1
    ad10, lb10, both10 = (runs[0.1, m][1] for m in ("adam", "lbfgs", "adam+lbfgs"))
    d = agreement.details
    assert (d["adam"], d["lbfgs"], d["adam+lbfgs"]) == (ad10.value, lb10.value, both10.value)
    assert d["adam+lbfgs_vs_lbfgs_in_sd"] == abs(both10.value - lb10.value) / sd
    assert d["lbfgs_evaluations_to_settle_within_0.1_sd"] == inv.evaluations_to(
        lb10.trace_evaluations, lb10.trace_values, lb10.value, 0.1 * sd
    )
    assert d["adam_evaluations_to_settle_within_0.1_sd_of_lbfgs"] == inv.evaluations_to(
        ad10.trace_evaluations, ad10.trace_values, lb10.value, 0.1 * sd
    )
    assert settles.count((lb10.value, 0.1 * sd)) == 2  # both settle counts are within 0.1 sd of L-BFGS's C
    both0 = runs[0.0, "adam+lbfgs"][1]
    assert speed.details["adam+lbfgs_evaluations_to_settle"] == inv.evaluations_to(
        both0.trace_evaluations, both0.trace_values, 1.0, 0.01
    )
    assert speed.details["adam_evaluations_to_settle"] == n_ad
    full = ie._findings(2, {**size, "levels": (0.0, 0.1)}, False)
    assert full[0].details["size"] == "full"


def test_resume_continues_the_run_bit_for_bit():
    args = {"lr": 1e-3, "batch_size": 8, "noise_every": 2, "noise_groups": 2, "verbose": 0}
    whole_model = tiny_poisson(0)
    whole = ngp.train(whole_model, "adam", iterations=5, seed=6, **args)
    split_model = tiny_poisson(0)
    first = ngp.train(split_model, "adam", iterations=2, seed=6, **args)
    rest = ngp.train(tiny_poisson(1), "adam", iterations=3, seed=6, resume=first.state, **args)
    assert np.array_equal(np.concatenate([first.losses, rest.losses]), whole.losses)
    assert rest.losses.shape == (3,)
    assert [s for s, _ in rest.noise] == [2]  # steps 4 of the whole run: the noise clock goes on
    assert rest.noise[0][1].trace_cov == whole.noise[1][1].trace_cov
    assert rest.batch_draws == 3


def test_noise_estimates_come_from_a_substream_of_the_seed():
    """On the full set Adam draws nothing, so two seeds train alike; only the noise estimates' draws differ."""
    a_model, b_model = tiny_poisson(0), tiny_poisson(0)
    a = ngp.train(a_model, "adam", lr=1e-3, iterations=2, noise_every=2, noise_groups=2, seed=1, verbose=0)
    b = ngp.train(b_model, "adam", lr=1e-3, iterations=2, noise_every=2, noise_groups=2, seed=2, verbose=0)
    assert same(params_of(a_model), params_of(b_model))
    assert a.noise[0][1].trace_cov != b.noise[0][1].trace_cov


@pytest.mark.filterwarnings("ignore:L-BFGS in float32:noisygrad.pinn.PinnWarning")
def test_torch_lbfgs_one_iteration_per_step_counts_the_pairs_it_drops(model):
    """A step of 1e-12 gives s.y ~ 1e-24 |g|^2, far below torch's 1e-10: every pair after the first step is dropped."""
    opt = torch.optim.LBFGS(list(model.net.parameters()), lr=1e-12, max_iter=1)
    result = ngp.train(model, opt, iterations=4, verbose=0)
    assert (result.iterations, result.pairs_tried, result.skipped_pairs) == (4, 3, 3)


def test_one_process_shards_record_the_shard_noise(model):
    result = ngp.train(model, "adam", lr=1e-3, iterations=3, shards=2, verbose=1, display_every=10)
    assert (result.shards, result.world) == (2, 1)
    assert result.trace_cov.shape == result.grad_norm_sq.shape == (3,)
    assert result.trace_cov.dtype == np.float64


def test_a_decay_given_again_is_not_reported_as_dropped():
    model = tiny_poisson(0)
    with quiet():
        model.compile("adam", lr=1e-3, decay=("step", 10, 0.5), verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the decay is rebuilt for the new optimizer: no PinnWarning
        ngp.train(model, "adam", lr=1e-3, iterations=2, decay=("step", 10, 0.5), verbose=0)
    assert model.lr_scheduler is not None
    with pytest.warns(ngp.PinnWarning, match="decay"):
        ngp.train(model, "adam", lr=1e-3, iterations=1, loss_weights=[1.0, 1.0], verbose=0)


@pytest.mark.parametrize(
    ("column", "verify", "refused"),
    [(None, True, False), (1, True, True), (2, True, True), (1, False, False)],
    ids=["same", "other-points", "other-parameters", "unchecked"],
)
def test_sharded_gradient_verifies_the_ranks_draws_and_parameters(monkeypatch, column, verify, refused):
    """Two ranks (a stand-in for the gather: rank 1's rows are rank 0's, its fingerprint of the drawn points
    (column 1 of the gathered metadata) or of the parameters (column 2) changed where asked): a run refuses
    either difference before it averages anything, unless ``verify=False``."""
    with default_float("float64"):
        model = tiny_poisson(0)
        ngp.train(model, "adam", lr=1e-3, iterations=1, verbose=0)  # compiled, as train() leaves it
        rows = tr._full_rows(model)
        calls = []

        def gather(rows_here, world):
            assert world == 2
            calls.append(rows_here.shape)
            other = rows_here.clone()
            if len(calls) == 2 and column is not None:  # the second gather is the metadata
                other[:, column] += 1.0
            return torch.cat([rows_here, other])

        monkeypatch.setattr(dist, "gather_rows", gather)
        sharded = dist.ShardedGradient(model, list(model.net.parameters()), dist.Layout(2, 0, 2), verify=verify)
        sharded.begin_step()
        if refused:
            with pytest.raises(RuntimeError, match="drew different collocation points or hold different parameters"):
                sharded.evaluate(rows)
        else:
            sharded.evaluate(rows)
        assert [shape[1] for shape in calls] == [sum(p.numel() for p in model.net.parameters()), 3]


def test_sharded_gradient_refuses_data_without_collocation_points_when_built():
    """Sharding splits a ``dde.data.PDE``'s collocation points: other data is refused by the constructor, before any
    step, naming what it needs."""
    from types import SimpleNamespace

    model = SimpleNamespace(data=SimpleNamespace(num_bcs=[1]))
    with pytest.raises(TypeError, match=r"need a dde\.data\.PDE or dde\.data\.TimePDE"):
        dist.ShardedGradient(model, [], dist.Layout(1, 0, 1))


def test_train_defaults_seen_from_outside():
    """The noise estimate's default 8 groups; the float32 L-BFGS warning names the caller's line; a frozen Plateau."""
    by_default = ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=2, noise_every=2, verbose=0)
    eight = ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=2, noise_every=2, noise_groups=8, verbose=0)
    nine = ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=2, noise_every=2, noise_groups=9, verbose=0)
    assert by_default.noise[0][1].trace_cov == eight.noise[0][1].trace_cov != nine.noise[0][1].trace_cov
    with pytest.warns(ngp.PinnWarning, match="float32") as caught:
        ngp.train(tiny_poisson(0), "lbfgs", iterations=1, verbose=0)
    assert caught[0].filename == __file__
    plateau = tr.Plateau()
    with pytest.raises(AttributeError):
        plateau.window = 3  # type: ignore[misc]
