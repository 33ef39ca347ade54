"""BFGS, SSBFGS, SSBroyden and the energy natural gradient inside DeepXDE through ``ngp.train``.

A tiny Poisson problem in float64 (24 + 2 points, FNN [1, 10, 10, 1], 200 Adam steps at lr 1e-2 first).
Deterministic: relative L2 error 1.1e-2 after Adam; then, after 100 iterations of each method (measured here):
L-BFGS 4.1e-3, BFGS 8.4e-4, SSBFGS 1.9e-4, SSBroyden 4.0e-5 (1.4e-5 training sqrt(L)), ENGD 3.6e-6. The tests
hold bounds about 3-4x above those.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import noisygrad.pinn as ngp
from noisygrad.optim.natural_gradient import EnergyNaturalGradient
from noisygrad.optim.quasi_newton import BFGS, SSBFGS, SSBroyden
from noisygrad.pinn import problems
from noisygrad.pinn._deepxde import deepxde, quiet
from noisygrad.pinn.engd import PinnEnergyNaturalGradient, pinn_residuals
from noisygrad.pinn.optimizers import quasi_newton

from .conftest import tiny_poisson

ITERATIONS = 100


def _error(model) -> float:
    x = np.linspace(0.0, 1.0, 201).reshape(-1, 1)
    with torch.no_grad():
        u = model.net(torch.as_tensor(x)).numpy()
    exact = np.sin(np.pi * x)
    return float(np.linalg.norm(u - exact) / np.linalg.norm(exact))


def _warm(seed: int = 0):
    """The tiny problem in float64 after 200 Adam steps (call inside ``problems.default_float('float64')``)."""
    model = tiny_poisson(seed)
    ngp.train(model, "adam", lr=1e-2, iterations=200, verbose=0)
    return model


@pytest.mark.parametrize(("name", "cls", "bound"), [
    ("bfgs", BFGS, 3e-3), ("ssbfgs", SSBFGS, 6e-4), ("ssbroyden", SSBroyden, 1.5e-4),
    ("engd", PinnEnergyNaturalGradient, 1.5e-5),
])  # fmt: skip
def test_named_optimizers_train_through_ngp_train(name: str, cls: type, bound: float) -> None:
    with problems.default_float("float64"):
        model = _warm()
        adam_error = _error(model)
        result = ngp.train(model, name, iterations=ITERATIONS, lbfgs_chunk=ITERATIONS // 2, verbose=0)
        assert isinstance(model.opt, cls)
        assert result.optimizer == name
        assert result.iterations == ITERATIONS  # the chunks divide the budget: exactly the iterations asked for
        assert result.evaluations > ITERATIONS
        assert result.stopped == "iterations"
        assert model.train_state.step == 200 + ITERATIONS  # DeepXDE's step counts the inner iterations
        assert math.isfinite(result.final_loss)
        error = _error(model)
        assert error < bound < adam_error
        report = model.opt.report()
        if name != "engd":
            assert report["wolfe_failures"] == 0
            assert report["skipped"] == 0


def test_self_scaled_methods_beat_lbfgs_at_the_same_iterations() -> None:
    # measured at 100 iterations: L-BFGS 4.1e-3 (history 100, strong Wolfe), SSBFGS 1.9e-4, SSBroyden 4.0e-5
    errors = {}
    with problems.default_float("float64"):
        for name in ("lbfgs", "ssbfgs", "ssbroyden"):
            model = _warm()
            ngp.train(model, name, iterations=ITERATIONS, lbfgs_chunk=ITERATIONS, verbose=0)
            errors[name] = _error(model)
    assert errors["ssbfgs"] < errors["lbfgs"] / 5
    assert errors["ssbroyden"] < errors["lbfgs"] / 5


def test_an_instance_with_options_and_a_loss_transform() -> None:
    with problems.default_float("float64"):
        model = _warm()
        opt = quasi_newton(model, "ssbroyden", loss_transform="sqrt", max_iter=50)
        result = ngp.train(model, opt, iterations=ITERATIONS, verbose=0)
        assert model.opt is opt
        assert result.optimizer == "SSBroyden"
        assert result.iterations == ITERATIONS
        assert _error(model) < 6e-5
        # a second call goes on with the same curvature (the instance keeps its state)
        before = opt.report()["n_iter"]
        ngp.train(model, opt, iterations=50, verbose=0)
        assert opt.report()["n_iter"] == before + 50


def test_float32_models_warn_at_the_users_line() -> None:
    model = tiny_poisson(0)  # DeepXDE's default float32
    with pytest.warns(ngp.PinnWarning, match="float32") as record:
        ngp.train(model, "ssbfgs", iterations=5, lbfgs_chunk=5, verbose=0)
    assert record[0].filename == __file__
    with pytest.warns(ngp.PinnWarning, match="float32"):
        ngp.train(model, "engd", iterations=2, lbfgs_chunk=2, verbose=0)


def test_unsupported_settings_are_refused_before_training() -> None:
    with problems.default_float("float64"):
        model = tiny_poisson(0)
        for name in ("ssbfgs", "engd"):
            with pytest.raises(ValueError, match="full collocation set"):
                ngp.train(model, name, iterations=5, batch_size=8, verbose=0)
        with pytest.raises(ValueError, match="lr must be None for 'engd'"):
            ngp.train(model, "engd", lr=0.1, iterations=5, verbose=0)
        with pytest.raises(ValueError, match="'bfgs', 'ssbfgs', 'ssbroyden'"):
            quasi_newton(model, "dfp")
        with pytest.raises(TypeError, match="PinnEnergyNaturalGradient"):
            ngp.train(model, EnergyNaturalGradient(list(model.net.parameters())), iterations=5, verbose=0)
        model.net.regularizer = ("l2", 1e-4)
        for name in ("ssbroyden", "engd"):
            with pytest.raises(ValueError, match="weight decay"):
                ngp.train(model, name, iterations=5, verbose=0)
        with pytest.raises(ValueError, match="weight decay"):
            quasi_newton(model, "bfgs")


def _brute_force_rows(model, rows, r_index: list[int]) -> torch.Tensor:
    """Rows of the weighted residual Jacobian, one reverse pass per residual."""
    from noisygrad.pinn.engd import _terms

    params = list(model.net.parameters()) + list(model.external_trainable_variables or [])
    out = []
    for i in r_index:
        with torch.enable_grad():
            terms = _terms(model, *rows)
            weights = model.loss_weights or [1.0] * len(terms)
            r = torch.cat([(t * math.sqrt(w / t.numel())).reshape(-1) for t, w in zip(terms, weights, strict=True)])
            grads = torch.autograd.grad(r[i], params, allow_unused=True)
        out.append(
            torch.cat(
                [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params, strict=True)]
            )
        )
    return torch.stack(out)


def test_per_point_jacobian_equals_reverse_mode_rows_with_weights_and_an_unknown() -> None:
    dde = deepxde()
    with problems.default_float("float64"):
        unknown = dde.Variable(0.5)
        model = tiny_poisson(0, external=unknown)
        with quiet():
            model.compile("adam", lr=1e-3, loss_weights=[1.0, 3.0], external_trainable_variables=[unknown])
        model.train(iterations=3, verbose=0)
        state = model.train_state
        rows = (state.X_train, state.y_train, state.train_aux_vars)
        r, jac = pinn_residuals(model, *rows, jacobian=True)
        n_params = sum(p.numel() for p in model.net.parameters()) + 1
        assert jac.shape == (r.numel(), n_params)
        loss = float(torch.sum(model.outputs_losses_train(*rows)[1]).detach())
        assert float(r @ r) == pytest.approx(loss, rel=1e-13)
        picks = [0, 1, 7, r.numel() - 2, r.numel() - 1]  # PDE rows and both boundary rows
        torch.testing.assert_close(jac[picks], _brute_force_rows(model, rows, picks), rtol=1e-12, atol=1e-14)
        assert float(jac[:, -1].abs().max()) > 0  # the unknown coefficient enters the PDE residuals


def test_engd_solves_an_inverse_problem_for_its_unknown() -> None:
    # -C u'' = pi^2 sin(pi x) with u observed at 6 points (exact C = 1): ENGD moves C from 0.5 to 1 within 1e-6
    dde = deepxde()
    with problems.default_float("float64"):
        unknown = dde.Variable(0.5)
        model = tiny_poisson(0, external=unknown)
        geom = model.data.geom
        x_obs = np.linspace(0.1, 0.9, 6).reshape(-1, 1)
        observe = dde.icbc.PointSetBC(x_obs, np.sin(np.pi * x_obs))
        data = dde.data.PDE(geom, model.data.pde, [*model.data.bcs, observe], num_domain=24, num_boundary=2,
                            anchors=x_obs)  # fmt: skip
        model = dde.Model(data, model.net)
        ngp.train(model, "adam", lr=1e-2, iterations=200, verbose=0, external_trainable_variables=[unknown])
        ngp.train(model, "engd", iterations=60, lbfgs_chunk=60, verbose=0)
        assert abs(float(unknown.detach()) - 1.0) < 1e-6


def test_engd_refuses_a_loss_that_is_not_mse_and_networks_beyond_linear_layers() -> None:
    dde = deepxde()
    with problems.default_float("float64"):
        model = tiny_poisson(0)
        ngp.train(model, "adam", lr=1e-3, iterations=2, verbose=0, loss="MAE")
        with pytest.raises(ValueError, match="'MSE' loss"):
            ngp.train(model, "engd", iterations=2, lbfgs_chunk=2, verbose=0)
        model = tiny_poisson(0)
        laaf = dde.Model(model.data, dde.nn.FNN([1, 8, 1], "LAAF-5 tanh", "Glorot uniform"))
        with pytest.raises(ValueError, match=r"torch\.nn\.Linear"):
            ngp.train(laaf, "engd", iterations=2, lbfgs_chunk=2, verbose=0)
