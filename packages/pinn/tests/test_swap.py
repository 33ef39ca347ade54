"""Optimizer swapping: noisygrad optimizers inside DeepXDE, bit for bit where the arithmetic is the same."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import noisygrad as ng
import noisygrad.pinn as ngp
from noisygrad.pinn._deepxde import deepxde, quiet

from .conftest import params_of as _params
from .conftest import same as _same
from .conftest import tiny_poisson


def test_adam_through_noisygrad_is_bit_identical_to_compile_adam():
    steps = 60
    ref = tiny_poisson(0)
    with quiet():
        ref.compile("adam", lr=1e-3)
        ref.train(iterations=steps, display_every=20, verbose=0)

    # DeepXDE's own compile with noisygrad's optimizer as a torch.optim.Optimizer
    inst = tiny_poisson(0)
    with quiet():
        inst.compile(ng.TorchOptimizer(inst.net.parameters(), ng.Adam(lr=1e-3)))
        inst.train(iterations=steps, display_every=20, verbose=0)

    # the plugin's train
    ours = tiny_poisson(0)
    result = ngp.train(ours, "adam", lr=1e-3, iterations=steps, display_every=20)

    assert _same(_params(ref), _params(inst))
    assert _same(_params(ref), _params(ours))
    for other in (inst, ours):
        assert np.array_equal(np.asarray(ref.losshistory.loss_train), np.asarray(other.losshistory.loss_train))
        assert ref.losshistory.steps == other.losshistory.steps
    assert result.iterations == steps == ours.train_state.step
    assert len(result.losses) == steps
    # the losses recorded per step are DeepXDE's training loss before each update
    assert result.losses[0] == pytest.approx(float(np.sum(ref.losshistory.loss_train[0])), rel=1e-6)


DECAY = ("step", 15, 0.5)


def _deepxde_with_decay(optimizer: str, decay: tuple = DECAY):
    """DeepXDE's own run: ``compile(optimizer, lr=1e-3, decay=decay)`` and 40 iterations of ``model.train``."""
    ref = tiny_poisson(1)
    with quiet():
        ref.compile(optimizer, lr=1e-3, decay=decay)
        ref.train(iterations=40, verbose=0)
    return ref


def test_cosine_decay_to_zero_with_a_torch_optimizer():
    """DeepXDE's ``decay=("cosine", T, 0)`` drives the rate to exactly 0: allowed, as in torch.optim.Adam."""
    decay = ("cosine", 20, 0.0)
    ref = _deepxde_with_decay("adam", decay)
    ours = tiny_poisson(1)
    with quiet():
        ours.compile(ng.TorchOptimizer(ours.net.parameters(), ng.Adam(1e-3)), decay=decay)
        ours.train(iterations=40, verbose=0)
    assert _same(_params(ref), _params(ours))


def test_sgd_matches_compile_sgd_and_lr_scheduler_still_works():
    ref = _deepxde_with_decay("sgd")
    ours = tiny_poisson(1)
    with quiet():  # DeepXDE's decay wraps the noisygrad optimizer in a torch StepLR, which sets group["lr"]
        ours.compile(ng.TorchOptimizer(ours.net.parameters(), ng.SGD(1e-3)), decay=DECAY)
        ours.train(iterations=40, verbose=0)
    assert _same(_params(ref), _params(ours))


def test_train_with_decay_matches_compile_with_decay():
    """``train(..., decay=...)`` steps DeepXDE's scheduler as ``model.train`` does: the same weights, bit for bit."""
    ref = _deepxde_with_decay("adam")
    ours = tiny_poisson(1)
    ngp.train(ours, "adam", lr=1e-3, iterations=40, decay=DECAY)
    assert _same(_params(ref), _params(ours))
    assert ours.opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**2)


def test_swapping_out_a_decayed_optimizer_says_its_decay_is_dropped():
    model = tiny_poisson(1)
    with quiet():
        model.compile("adam", lr=1e-3, decay=DECAY)
    with pytest.warns(ngp.PinnWarning, match="decay"):
        ngp.train(model, "sgd", lr=1e-3, iterations=5)
    assert model.lr_scheduler is None
    with quiet():
        model.compile("adam", lr=1e-3, decay=DECAY)
    with pytest.warns(ngp.PinnWarning, match="decay"):  # recompiled for other arguments: the decay still goes
        ngp.train(model, "sgd", lr=1e-3, iterations=5, loss_weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="decay"):
        ngp.train(model, "lbfgs", iterations=5, decay=DECAY)


def test_swapping_optimizers_mid_training_keeps_weights_and_history(model):
    first = ngp.train(model, "adam", lr=1e-3, iterations=40, display_every=20)
    after_adam = _params(model)
    loss_adam = first.final_loss
    second = ngp.train(model, ng.SGD(1e-4, momentum=0.9), iterations=20, display_every=20)
    assert model.train_state.step == 60
    assert model.losshistory.steps[-1] == 60
    # SGD continued from Adam's weights: its first recorded loss is Adam's final loss
    assert second.losses[0] == pytest.approx(loss_adam, rel=1e-5)
    assert not _same(after_adam, _params(model))
    assert isinstance(model.opt, ng.TorchOptimizer)
    assert model.opt.rule.momentum == 0.9


def test_lbfgs_name_matches_deepxde_lbfgs_bit_for_bit():
    """Full-set L-BFGS chunks of 1000 with max_eval 1250 are DeepXDE's own settings and closure."""
    ref = tiny_poisson(2)
    with quiet():
        ref.compile("adam", lr=1e-3)
        ref.train(iterations=50, verbose=0)
        ref.compile("L-BFGS")
        ref.train(verbose=0)
    ours = tiny_poisson(2)
    ngp.train(ours, "adam", lr=1e-3, iterations=50)
    with pytest.warns(ngp.PinnWarning, match="float32"):
        result = ngp.train(ours, "lbfgs")
    assert _same(_params(ref), _params(ours))
    assert result.stopped == "converged"
    n_iter = ours.opt.state[ours.opt.param_groups[0]["params"][0]]["n_iter"]
    assert result.iterations == n_iter
    assert ours.train_state.step == 50 + n_iter
    # DeepXDE leaves the final one-iteration chunk out of its count
    assert ref.train_state.step == ours.train_state.step - 1
    assert result.evaluations >= result.iterations > 10


def test_lbfgs_instance_counts_inner_iterations(model):
    """DeepXDE counts one step per LBFGS.step call; the plugin counts the L-BFGS iterations."""
    ngp.train(model, "adam", lr=1e-3, iterations=20)
    opt = torch.optim.LBFGS(model.net.parameters(), max_iter=20, max_eval=40, line_search_fn="strong_wolfe")
    with pytest.warns(ngp.PinnWarning, match="float32"):
        result = ngp.train(model, opt, iterations=60)
    n_iter = opt.state[opt.param_groups[0]["params"][0]]["n_iter"]
    assert result.iterations == n_iter
    assert model.train_state.step == 20 + n_iter
    assert 40 < n_iter <= 60 or result.stopped == "converged"
    assert opt.param_groups[0]["max_iter"] == 20  # the user's optimizer is not changed


def test_regularizer_and_external_variables_are_wired():
    dde = deepxde()
    c = dde.Variable(2.0)
    model = tiny_poisson(0, external=c)
    model.net.regularizer = ("l2", 1e-4)
    built = ngp.build_optimizer(model, "adam")
    assert built.optimizer.rule.weight_decay == 1e-4
    with pytest.warns(ngp.PinnWarning, match="not applied to an optimizer instance"):
        ngp.build_optimizer(model, ng.Adam(1e-3))
    model.net.regularizer = None
    result = ngp.train(model, "adam", lr=1e-2, iterations=20, external_trainable_variables=c)
    held = [p for g in model.opt.param_groups for p in g["params"]]
    assert any(p is c for p in held)
    assert c.detach().item() != 2.0  # the unknown coefficient was trained
    assert result.iterations == 20


def test_train_works_on_data_that_is_not_a_pde():
    """Plain function regression (dde.data.Function): no collocation points, yet Adam through ngp.train runs."""
    import numpy as np

    import noisygrad.pinn as ngp
    from noisygrad.pinn._deepxde import deepxde, quiet

    dde = deepxde()
    with quiet():
        dde.config.set_random_seed(0)  # a test is a run entry
    data = dde.data.Function(dde.geometry.Interval(0.0, 1.0), lambda x: np.sin(np.pi * x), 16, 16)
    model = dde.Model(data, dde.nn.FNN([1, 8, 1], "tanh", "Glorot uniform"))
    result = ngp.train(model, "adam", lr=1e-2, iterations=5, verbose=0)
    assert result.iterations == 5
    assert len(result.losses) == 5
