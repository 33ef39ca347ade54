"""Exact tests that close the mutation-testing gaps of the pinn plugin's ``batches.py``, ``noise.py``,
``optimizers.py``, ``engd.py`` and ``state.py`` (issue 18).

All on tiny real DeepXDE models (the conftest's Poisson problem, 24 + 2 points, or a two-output system with periodic
and one-point conditions, a handful of steps). Every check is exact or to float64 rounding: the batches' row indices
against ``torch.randperm`` on a generator of the same seed, the noise statistics against their formulas recomputed
from the same group gradients (rel 1e-9: only the summation order differs), the optimizers' settings and warnings
at their boundaries (and the line they name), the per-point residual Jacobian against one reverse-mode pass per
residual (rel 1e-12: rounding only), the saved state's schema and each refusal. No statistical claim is made, so
there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import warnings
from typing import Any

import numpy as np
import pytest
import torch

import noisygrad.pinn as ngp
from noisygrad import Adam, CheckpointError
from noisygrad.checks import NonFiniteGradientError
from noisygrad.loop_checkpoint import checkpoint_checksum
from noisygrad.pinn import engd as engd_mod
from noisygrad.pinn import noise as noise_mod
from noisygrad.pinn import optimizers as opt_mod
from noisygrad.pinn import problems
from noisygrad.pinn import state as state_mod
from noisygrad.pinn._deepxde import deepxde, quiet

from .conftest import params_of, same, tiny_poisson

F64 = torch.float64

# ---------------------------------------------------------------------------------------------------- batches


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pool_size_and_pde_data_only() -> None:
    model = tiny_poisson(0)
    data = model.data
    assert sum(data.num_bcs) == 2
    assert ngp.pool_size(data) == 26  # 24 domain + 2 boundary rows, the 2 boundary-condition rows left out
    assert ngp.CollocationBatches(data, 3, generator=_gen(0)).pool == data.train_x.shape[0] - 2 == 26
    with pytest.raises(TypeError, match=r"dde\.data\.PDE"):
        ngp.pool_size(object())
    with pytest.raises(TypeError, match=r"dde\.data\.PDE"):
        ngp.CollocationBatches(object(), 3, generator=_gen(0))


def test_batch_size_bounds_and_the_documented_default_every() -> None:
    data = tiny_poisson(0).data
    whole = ngp.CollocationBatches(data, 26, generator=_gen(0))  # b = N is allowed
    assert whole.batch_size == 26
    assert sorted(whole.indices()[2:].tolist()) == list(range(2, 28))  # every PDE row once
    with pytest.raises(ValueError, match="N=26"):
        ngp.CollocationBatches(data, 27, generator=_gen(0))
    with pytest.raises(ValueError, match="batch_every"):
        ngp.CollocationBatches(data, 4, every=0, generator=_gen(0))
    batches = ngp.CollocationBatches(data, 4, generator=_gen(0))
    assert (batches.every, batches.draws, batches.generator.initial_seed(), batches.data) == (1, 0, 0, data)
    first, second = batches.next(), batches.next()  # every=1 by default: a fresh draw at each step
    assert batches.draws == 2
    assert not np.array_equal(first[0], second[0])


def test_indices_are_the_boundary_rows_then_randperm_of_the_same_generator() -> None:
    data = tiny_poisson(0).data
    batches = ngp.CollocationBatches(data, 5, generator=_gen(11))
    reference = _gen(11)
    for b in (None, 3, 26):
        index = batches.indices(b)
        picked = torch.randperm(26, generator=reference)[: 5 if b is None else b].numpy() + 2
        assert index.tolist() == [0, 1, *picked.tolist()]
    other = ngp.CollocationBatches(data, 5, generator=_gen(12)).indices()
    assert not np.array_equal(other, ngp.CollocationBatches(data, 5, generator=_gen(11)).indices())


def test_rows_take_y_and_aux_where_deepxde_has_them() -> None:
    data = tiny_poisson(0).data
    batches = ngp.CollocationBatches(data, 3, generator=_gen(0))
    index = np.array([0, 1, 5, 9, 2])
    x, y, aux = batches.rows(index)
    assert np.array_equal(x, data.train_x[index])
    assert y is None
    assert aux is None
    data.train_y = np.arange(28.0).reshape(-1, 1)
    data.train_aux_vars = -np.arange(28.0).reshape(-1, 1)
    x, y, aux = batches.rows(index)
    assert y.ravel().tolist() == [0.0, 1.0, 5.0, 9.0, 2.0]
    assert aux.ravel().tolist() == [0.0, -1.0, -5.0, -9.0, -2.0]


def test_next_holds_a_batch_for_every_steps_and_counts_draws() -> None:
    data = tiny_poisson(0).data
    batches = ngp.CollocationBatches(data, 4, every=3, generator=_gen(2))
    reference = ngp.CollocationBatches(data, 4, generator=_gen(2))
    assert batches.state_dict() == {"index": None, "steps_left": 0, "draws": 0}
    seen = []
    for step in range(7):
        rows = batches.next()
        seen.append(rows)
        state = batches.state_dict()
        assert state["steps_left"] == 2 - step % 3
        assert state["draws"] == step // 3 + 1
        if step % 3 == 0:
            expected = reference.indices()
            assert torch.equal(state["index"], torch.as_tensor(expected))
            assert np.array_equal(rows[0], data.train_x[expected])
        else:
            assert rows is seen[-2]
    assert batches.draws == 3
    assert state["index"].dtype == torch.int64
    state["index"][0] = 99  # a copy: the live batch is not changed through the saved state
    assert batches.state_dict()["index"][0] == 0


def test_a_loaded_state_continues_the_same_batch_and_refuses_bad_entries() -> None:
    data = tiny_poisson(0).data
    source = ngp.CollocationBatches(data, 4, every=3, generator=_gen(4))
    first = source.next()
    saved = source.state_dict()
    target = ngp.CollocationBatches(data, 4, every=3, generator=_gen(99))
    target.load_state_dict(saved)
    assert target.state_dict()["steps_left"] == 2
    assert target.draws == 1
    again = target.next()
    assert np.array_equal(again[0], first[0])
    assert target.draws == 1  # the loaded batch was used, not a fresh draw
    saved["index"][2] = 0  # the loaded index is a copy
    assert target.state_dict()["index"][2] != 0

    fresh = ngp.CollocationBatches(data, 4, every=3, generator=_gen(0))
    fresh.load_state_dict({"index": None, "steps_left": 0, "draws": 0})  # the state before any draw
    assert fresh.state_dict() == {"index": None, "steps_left": 0, "draws": 0}
    full = torch.as_tensor(np.array([0, 1, 2, 3, 4, 27]), dtype=torch.int64)  # the last training row is allowed
    fresh.load_state_dict({"index": full, "steps_left": 3, "draws": 5})  # steps_left = every is allowed
    assert fresh.draws == 5
    assert np.array_equal(fresh.next()[0], data.train_x[[0, 1, 2, 3, 4, 27]])
    good = {"index": full, "steps_left": 1, "draws": 1}
    bad = [
        ([1, 2], "must be a dict"),
        ({"index": None, "steps_left": 0}, "must be a dict"),
        ({**good, "extra": 1}, "must be a dict"),
        ({**good, "steps_left": -1}, "steps_left"),
        ({**good, "steps_left": 4}, "steps_left"),
        ({**good, "draws": -1}, "draws"),
        ({**good, "index": full.numpy()}, "1-D int64"),
        ({**good, "index": full.to(torch.int32)}, "1-D int64"),
        ({**good, "index": full.reshape(2, 3)}, "1-D int64"),
        ({**good, "index": full[:5]}, "holds 5"),
        ({**good, "index": torch.as_tensor([0, 1, 2, 3, -1, 4])}, "boundary rows"),
        ({**good, "index": torch.as_tensor([0, 1, 2, 3, 4, 28])}, "boundary rows"),
        ({**good, "draws": 0}, "exactly when"),
        ({"index": None, "steps_left": 0, "draws": 1}, "exactly when"),
    ]
    for state, match in bad:
        with pytest.raises(ValueError, match=match):
            fresh.load_state_dict(state)  # type: ignore[arg-type]


def test_installed_swaps_the_rows_in_and_always_puts_the_full_set_back() -> None:
    data = tiny_poisson(0).data
    full_x = data.train_x
    batches = ngp.CollocationBatches(data, 4, generator=_gen(0))
    rows = batches.rows(np.array([0, 1, 7]))
    with batches.installed(rows) as got:
        assert got is rows
        assert data.train_x is rows[0]
        assert data.train_y is None
        assert data.train_aux_vars is None
    assert data.train_x is full_x
    with pytest.raises(RuntimeError, match="inside"), batches.installed(rows):
        raise RuntimeError("inside")
    assert data.train_x is full_x


def test_a_single_point_pool_without_boundary_conditions() -> None:
    dde = deepxde()
    geom = dde.geometry.Interval(0.0, 1.0)
    data = dde.data.PDE(geom, lambda x, u: u, [], num_domain=1, num_boundary=0)
    assert data.train_x.shape[0] == 1
    batches = ngp.CollocationBatches(data, 1, generator=_gen(0))
    assert batches.indices().tolist() == [0]
    batches.load_state_dict({"index": torch.as_tensor([0]), "steps_left": 1, "draws": 1})
    assert np.array_equal(batches.next()[0], data.train_x)


# ------------------------------------------------------------------------------------------------------ noise


def _compiled(seed: int = 0, **kw: Any) -> Any:
    """The tiny problem in float64 after 5 Adam steps (compiled, off its initial weights)."""
    with problems.default_float("float64"):
        model = tiny_poisson(seed)
        ngp.train(model, "adam", lr=1e-2, iterations=5, verbose=0, **kw)
    return model


def _expected_noise(model: Any, *, seed: int, b: int, groups: int, m: int, lr: float | None) -> dict[str, float]:
    """The statistics recomputed from the group gradients on a generator of the same seed (the formulas)."""
    batches = ngp.CollocationBatches(model.data, b, generator=_gen(seed))
    g = noise_mod.group_gradients(model, batches, groups, m).double()
    n, used = batches.pool, groups * m
    trace = m * float(((g - g.mean(0)) ** 2).sum()) / (groups - 1)
    norm = float((g.mean(0) ** 2).sum()) - trace / used * (1 - used / n)
    rho = trace / norm if norm > 0 else math.inf
    variance = trace * (1 / b - 1 / n)
    dim = sum(p.numel() for p in model.net.parameters())
    temperature = math.nan if lr is None else lr * variance / (2 * dim)
    cosine = 0.0 if math.isinf(rho) else (1 + rho / b * (1 - b / n)) ** -0.5
    return {"pool": n, "batch_size": b, "points": used, "trace_cov": trace, "grad_norm_sq": norm, "rho": rho,
            "predicted_cosine": cosine, "batch_variance": variance, "dim": dim, "temperature": temperature}  # fmt: skip


def _assert_stats(got: dict[str, float], expected: dict[str, float]) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=0.0), key


def test_predicted_cosine_inf_zero_and_refusals() -> None:
    assert ngp.predicted_cosine(math.inf, 8, 26) == 0.0
    assert ngp.predicted_cosine(0.0, 8, 26) == 1.0
    assert ngp.predicted_cosine(3, 8, 26) == pytest.approx((1 + 3 / 8 * (1 - 8 / 26)) ** -0.5, rel=1e-15)
    assert ngp.predicted_cosine(2.0, 26, 26) == 1.0  # the whole pool: no noise
    for bad in (True, "1", None):
        with pytest.raises(TypeError, match="rho"):
            ngp.predicted_cosine(bad, 8, 26)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nan"):
        ngp.predicted_cosine(math.nan, 8, 26)
    with pytest.raises(ValueError):
        ngp.predicted_cosine(-math.inf, 8, 26)


def test_collocation_noise_equals_its_formulas_on_the_same_draws() -> None:
    model = _compiled()
    with problems.default_float("float64"):
        got = ngp.collocation_noise(model, batch_size=8, groups=4, points=18, generator=_gen(3), lr=1e-3)
        _assert_stats(got.as_dict(), _expected_noise(model, seed=3, b=8, groups=4, m=4, lr=1e-3))
        assert got.points == 16
        assert got.rho > 0
        assert 0 < got.predicted_cosine < 1
        # the defaults: 8 groups of min(max(b, 64), N) // 8 = 3 points, no learning rate (temperature nan)
        default = ngp.collocation_noise(model, batch_size=8, generator=_gen(5))
        _assert_stats(default.as_dict(), _expected_noise(model, seed=5, b=8, groups=8, m=3, lr=None))
        # 2 groups: max(b, 16) = 20 points
        two = ngp.collocation_noise(model, batch_size=20, groups=2, generator=_gen(6), lr=0.5)
        _assert_stats(two.as_dict(), _expected_noise(model, seed=6, b=20, groups=2, m=10, lr=0.5))
        again = ngp.collocation_noise(model, batch_size=8, groups=4, points=18, generator=_gen(3), lr=1e-3)
        assert again == got  # same seed, same statistics
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.rho = 0.0  # type: ignore[misc]


def test_collocation_noise_reports_no_signal_as_rho_inf() -> None:
    # two single-point groups at initial weights: |mean|^2 - tr(S)/2 (1 - 2/26) comes out negative for this seed
    with problems.default_float("float64"):
        model = tiny_poisson(0)
        ngp.train(model, "adam", lr=1e-2, iterations=1, verbose=0)
        found = None
        for seed in range(40):
            stats = ngp.collocation_noise(model, batch_size=2, groups=2, points=2, generator=_gen(seed))
            _assert_stats(stats.as_dict(), _expected_noise(model, seed=seed, b=2, groups=2, m=1, lr=None))
            if stats.grad_norm_sq <= 0:
                found = stats
                break
    assert found is not None
    assert found.rho == math.inf
    assert found.predicted_cosine == 0.0


def test_a_zero_loss_has_no_signal_rho_inf_and_cosine_zero() -> None:
    # every loss weight 0: every group gradient is exactly 0, so tr(S) = 0 and |g|^2 = 0.0 exactly (no signal)
    with problems.default_float("float64"):
        model = tiny_poisson(0)
        ngp.train(model, "adam", lr=1e-2, iterations=1, verbose=0, loss_weights=[0.0, 0.0])
        stats = ngp.collocation_noise(model, batch_size=4, groups=2, points=26, generator=_gen(0), lr=1.0)
    assert (stats.trace_cov, stats.grad_norm_sq, stats.rho, stats.predicted_cosine) == (0.0, 0.0, math.inf, 0.0)
    assert (stats.batch_variance, stats.temperature) == (0.0, 0.0)


def test_a_small_signal_still_has_a_finite_rho_and_the_default_point_count() -> None:
    with problems.default_float("float64"):
        model = tiny_poisson(0)
        ngp.train(model, "adam", lr=1e-2, iterations=1, verbose=0, loss_weights=[1e-4, 1e-4])
        # every point in 2 groups: |g|^2 is the exact squared mean (no correction), small but > 0
        stats = ngp.collocation_noise(model, batch_size=4, groups=2, points=26, generator=_gen(0))
        assert 0 < stats.grad_norm_sq < 1
        assert stats.rho == pytest.approx(stats.trace_cov / stats.grad_norm_sq, rel=1e-15)
        # default points: min(max(b, 8 groups), N) = 16 for b = 4 and 2 groups
        assert ngp.collocation_noise(model, batch_size=4, groups=2, generator=_gen(0)).points == 16


def test_collocation_noise_group_bounds() -> None:
    model = _compiled()
    with problems.default_float("float64"):
        assert ngp.collocation_noise(model, batch_size=4, groups=2, points=26, generator=_gen(0)).points == 26
        assert ngp.collocation_noise(model, batch_size=4, groups=2, points=2, generator=_gen(0)).points == 2
        assert ngp.collocation_noise(model, batch_size=4, groups=2, points=3, generator=_gen(0)).points == 2
        for kwargs, match in [
            ({"groups": 1}, "groups must be >= 2"),
            ({"groups": 0}, "groups"),
            ({"groups": 4, "points": 3}, "points must allow"),
            ({"groups": 3, "points": 27}, "points must allow"),
            ({"groups": 2, "lr": 0.0}, "lr"),
        ]:
            with pytest.raises(ValueError, match=match):
                ngp.collocation_noise(model, batch_size=4, generator=_gen(0), **kwargs)


def test_group_gradients_are_the_gradients_of_disjoint_groups() -> None:
    model = _compiled()
    with problems.default_float("float64"):
        batches = ngp.CollocationBatches(model.data, 4, generator=_gen(8))
        g = noise_mod.group_gradients(model, batches, 3, 2)
        index = ngp.CollocationBatches(model.data, 4, generator=_gen(8)).indices(6)
        params = list(model.net.parameters())
        assert g.shape == (3, sum(p.numel() for p in params))
        for j in range(3):
            rows = batches.rows(np.concatenate([index[:2], index[2 + 2 * j : 4 + 2 * j]]))
            with batches.installed(rows):
                loss = torch.sum(model.outputs_losses_train(*rows)[1])
                expected = torch.cat([q.reshape(-1) for q in torch.autograd.grad(loss, params)])
            assert torch.equal(g[j], expected), j


def test_an_unused_external_variable_gets_a_zero_gradient_column() -> None:
    dde = deepxde()
    with problems.default_float("float64"):
        model = tiny_poisson(0)
        unused = dde.Variable(2.0)
        ngp.train(model, "adam", lr=1e-3, iterations=2, verbose=0, external_trainable_variables=[unused])
        batches = ngp.CollocationBatches(model.data, 4, generator=_gen(1))
        g = noise_mod.group_gradients(model, batches, 2, 3)
        n_net = sum(p.numel() for p in model.net.parameters())
        assert g.shape == (2, n_net + 1)
        assert torch.equal(g[:, -1], torch.zeros(2, dtype=F64))
        assert float(g[:, :n_net].abs().max()) > 0
        stats = ngp.collocation_noise(model, batch_size=4, groups=2, points=6, generator=_gen(1), lr=1.0)
        assert stats.dim == n_net + 1


# ------------------------------------------------------------------------------------------------------ state

BATCH = {"batch_size": 8, "batch_every": 1}


def _run(steps: int = 3, **settings: Any) -> tuple[Any, Any]:
    model = tiny_poisson(0)
    result = ngp.train(model, "adam", lr=1e-2, iterations=steps, batch_size=8, seed=3, verbose=0, **settings)
    assert result.state is not None
    return model, result


def _edited(state: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**state, **changes}
    out["checksum"] = checkpoint_checksum(out)
    return out


def test_the_saved_state_holds_its_schema_and_copies() -> None:
    model, result = _run()
    state = result.state
    assert list(state) == list(state_mod._KEYS)
    assert (state["format"], state["version"]) == ("noisygrad.pinn.train", 1)
    assert state["kinds"] == {"optimizer": "TorchOptimizer", "name": "adam"}
    assert state["batch"] == BATCH
    assert state["losses"].dtype == F64
    assert state["losses"].tolist() == list(result.losses)
    assert (state["steps"], state["deepxde_step"], state["lr_scheduler"], state["external"]) == (3, 3, None, [])
    assert state["batches"]["draws"] == 3
    live = model.net.state_dict()
    for key, value in state["net"].items():
        assert torch.equal(value, live[key])
        assert value.data_ptr() != live[key].data_ptr()
    assert state["checksum"] == checkpoint_checksum(state)
    assert state_mod.check_resume(state, model, model.opt, "adam", batch=BATCH, decay=False) is state


def test_check_resume_refuses_each_bad_entry_by_name() -> None:
    model, result = _run()
    state = result.state
    net = dict(state["net"])
    key = next(iter(net))
    cases = [
        (pathlib.Path("run.pt"), "got a path"),
        (b"run.pt", "got a path"),
        (_edited(state, version=True), "'version'"),
        (_edited(state, version=0), "'version'"),
        (_edited(state, version="1"), "'version'"),
        (_edited(state, net=list(net.values())), "'net' holds"),
        (_edited(state, net={**net, "extra": net[key]}), "'net' holds"),
        (_edited(state, net={**net, key: net[key].numpy()}), f"'net' tensor '{key}' is ndarray"),
        (_edited(state, net={**net, key: net[key].double()}), "float64"),
        (_edited(state, net={**net, key: net[key].reshape(-1)}), f"'net' tensor '{key}'"),
        (_edited(state, external={"0": torch.zeros(1)}), "'external' must be a list"),
        (_edited(state, external=[torch.zeros(1)]), "'external' holds"),
        (_edited(state, generator=state["generator"].to(torch.int64)), "'generator' must be"),
        (_edited(state, noise_generator=state["noise_generator"].numpy()), "'noise_generator' must be"),
        (_edited(state, losses=state["losses"].reshape(1, -1)), "'losses' must be a 1-D"),
        (_edited(state, losses=state["losses"].tolist()), "'losses' must be a 1-D"),
        (_edited(state, steps=-1), "'steps' must be"),
        (_edited(state, steps=True), "'steps' must be"),
        (_edited(state, steps=3.0), "'steps' must be"),
        (_edited(state, deepxde_step=-1), "'deepxde_step' must be"),
        (_edited(state, batches=None), "'batches' must be present"),
        (_edited(state, lr_scheduler={"last_epoch": 0}), "'lr_scheduler' holds"),
    ]
    for bad, match in cases:
        with pytest.raises(CheckpointError, match=match):
            state_mod.check_resume(bad, model, model.opt, "adam", batch=BATCH, decay=False)
    with pytest.raises(CheckpointError, match="no learning-rate decay"):
        state_mod.check_resume(state, model, model.opt, "adam", batch=BATCH, decay=True)
    full_batch = {**BATCH, "batch_size": None}
    with pytest.raises(CheckpointError, match="'batches' must be present"):
        state_mod.check_resume(
            _edited(state, batch=full_batch), model, model.opt, "adam", batch=full_batch, decay=False
        )
    with pytest.raises(CheckpointError, match="'kinds'"):
        state_mod.check_resume(state, model, model.opt, "sgd", batch=BATCH, decay=False)
    accepted = _edited(state, steps=np.int64(3), deepxde_step=0, external=(), losses=torch.zeros(0, dtype=F64))
    assert state_mod.check_resume(accepted, model, model.opt, "adam", batch=BATCH, decay=False) is accepted
    ints = _edited(state, net={**net, key: torch.zeros_like(net[key], dtype=torch.int64)})
    with pytest.raises(CheckpointError, match="int64"):  # a dtype mismatch, not a NaN complaint
        state_mod.check_resume(ints, model, model.opt, "adam", batch=BATCH, decay=False)
    inf = _edited(state, net={**net, key: torch.full_like(net[key], math.inf)})
    with pytest.raises(CheckpointError, match="NaN/Inf"):
        state_mod.check_resume(inf, model, model.opt, "adam", batch=BATCH, decay=False)


def test_restore_run_puts_batches_generators_and_optimizer_back() -> None:
    _model, result = _run()
    state = result.state
    other, _ = _run(steps=1)
    batches = ngp.CollocationBatches(other.data, 8, generator=_gen(0))
    generator, noise_generator = _gen(50), _gen(51)
    losses, steps = state_mod.restore_run(
        state, other.opt, generator=generator, noise_generator=noise_generator, batches=batches
    )
    assert losses == list(result.losses)
    assert steps == 3
    assert torch.equal(generator.get_state(), state["generator"])
    assert torch.equal(noise_generator.get_state(), state["noise_generator"])
    assert torch.equal(batches.state_dict()["index"], state["batches"]["index"])
    assert batches.draws == 3
    saved_opt = state["optimizer"]["state"]
    live_opt = other.opt.state_dict()["state"]
    for k in saved_opt:
        for name, value in saved_opt[k].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(live_opt[k][name], value)
    # a full-set state (no batches) with batches=None
    full_model = tiny_poisson(0)
    full = ngp.train(full_model, "adam", lr=1e-2, iterations=2, verbose=0).state
    assert full["batches"] is None
    assert state_mod.restore_run(full, full_model.opt, generator=_gen(0), noise_generator=_gen(0), batches=None)[1] == 2
    # refusals, each before the generators are touched
    generator = _gen(50)
    before = generator.get_state()
    for bad, match in [
        ({**state, "batches": {"index": None, "steps_left": 0, "draws": 3}}, "exactly when"),
        ({**state, "generator": torch.zeros(3, dtype=torch.uint8)}, "'generator' is a state"),
        ({**state, "noise_generator": torch.zeros(3, dtype=torch.uint8)}, "'noise_generator' is a state"),
        ({**state, "optimizer": {"state": {}, "param_groups": []}}, "'optimizer' does not fit"),
    ]:
        with pytest.raises(CheckpointError, match=match):
            state_mod.restore_run(bad, other.opt, generator=generator, noise_generator=_gen(0), batches=batches)
        assert torch.equal(generator.get_state(), before)


def test_restore_model_sets_weights_unknowns_decay_and_step() -> None:
    dde = deepxde()
    unknown = dde.Variable(0.5)
    model = tiny_poisson(0, external=unknown)
    result = ngp.train(model, "adam", lr=1e-2, iterations=4, decay=("step", 2, 0.5), verbose=0,
                       external_trainable_variables=[unknown])  # fmt: skip
    state = result.state
    assert len(state["external"]) == 1
    assert state["lr_scheduler"] is not None
    assert float(state["external"][0]) == float(unknown.detach()) != 0.5
    other_unknown = dde.Variable(3.0)
    other = tiny_poisson(1, external=other_unknown)
    ngp.train(other, "adam", lr=1e-2, iterations=1, decay=("step", 2, 0.5), verbose=0,
              external_trainable_variables=[other_unknown])  # fmt: skip
    full_batch = {"batch_size": None, "batch_every": 1}
    assert state_mod.check_resume(state, other, other.opt, "adam", batch=full_batch, decay=True) is state
    state_mod.restore_model(state, other)
    assert same(params_of(other), params_of(model))
    assert float(other_unknown.detach()) == float(unknown.detach())
    assert other.lr_scheduler.state_dict() == model.lr_scheduler.state_dict()
    assert other.train_state.step == other.train_state.iteration == 4


# ------------------------------------------------------------------------------------------------- optimizers


def _warnings_of(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [w for w in record if issubclass(w.category, ngp.PinnWarning)]


def _with_unknown() -> tuple[Any, Any]:
    dde = deepxde()
    unknown = dde.Variable(0.5)
    return tiny_poisson(0, external=unknown), unknown


def test_the_documented_names_and_constants() -> None:
    assert opt_mod.FIRST_ORDER_NAMES == ("adam", "adamw", "sgd")
    assert opt_mod.LBFGS_NAMES == ("lbfgs", "L-BFGS", "L-BFGS-B")
    assert opt_mod.CHUNKED_NAMES == ("lbfgs", "bfgs", "ssbfgs", "ssbroyden", "engd")
    assert opt_mod.NAMES == ("adam", "adamw", "sgd", "lbfgs", "bfgs", "ssbfgs", "ssbroyden", "engd")
    assert opt_mod.DEFAULT_LR == {"adam": 1e-3, "adamw": 1e-3, "sgd": 1e-2}
    assert opt_mod.DETERMINISTIC_SAMPLERS == ("Hammersley", "Halton", "Sobol", "uniform")
    assert (opt_mod.LINE_SEARCH_EVALS, opt_mod.ROBUST_LBFGS_LR, opt_mod.ROBUST_LBFGS_HISTORY) == (25, 0.5, 10)
    built = ngp.build_optimizer(tiny_poisson(0), "sgd")
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.name = "x"  # type: ignore[misc]


def test_trainable_and_the_l2_factor() -> None:
    model, unknown = _with_unknown()
    net, external = opt_mod.trainable(model)
    assert external == []
    assert [id(p) for p in net] == [id(p) for p in model.net.parameters()]
    model.external_trainable_variables = [unknown]
    assert opt_mod.trainable(model)[1] == [unknown]
    assert opt_mod._l2_factor(model) == 0.0
    del model.net.regularizer  # no attribute at all: no decay
    assert opt_mod._l2_factor(model) == 0.0
    model.net.regularizer = ("l2", 0.25)
    assert opt_mod._l2_factor(model) == 0.25
    model.net.regularizer = ("l1", 0.25)
    with pytest.raises(NotImplementedError, match="l2"):
        opt_mod._l2_factor(model)


def test_named_first_order_rules_their_rates_and_decay() -> None:
    model = tiny_poisson(0)
    expected = {"adam": (1e-3, 0.0, False), "adamw": (1e-3, 1e-2, True), "sgd": (1e-2, 0.0, None)}
    for name, (lr, decay, decoupled) in expected.items():
        built, caught = _warnings_of(ngp.build_optimizer, model, name)
        assert caught == []
        rule = built.optimizer.rule
        assert (built.name, built.second_order, rule.lr(0), rule.weight_decay) == (name, False, lr, decay)
        assert getattr(rule, "decoupled_weight_decay", None) is decoupled
        assert len(built.optimizer.param_groups) == 1
        assert ngp.build_optimizer(model, name, lr=0.3).optimizer.rule.lr(0) == 0.3
    model.net.regularizer = ("l2", 0.5)
    for name in ("adam", "adamw", "sgd"):
        built, caught = _warnings_of(ngp.build_optimizer, model, name)
        assert built.optimizer.rule.weight_decay == 0.5
        assert caught == []
    with pytest.raises(ValueError, match="lr"):
        ngp.build_optimizer(model, "adam", lr=0.0)
    with pytest.raises(ValueError, match="'adam', 'adamw', 'sgd', 'lbfgs', 'bfgs'"):
        ngp.build_optimizer(model, "rmsprop")


def test_external_unknowns_get_their_own_group_and_a_decay_warning() -> None:
    model, unknown = _with_unknown()
    model.external_trainable_variables = [unknown]
    built, caught = _warnings_of(ngp.build_optimizer, model, "adam")
    assert caught == []
    assert [g["params"] for g in built.optimizer.param_groups][1] == [unknown]
    model.net.regularizer = ("l2", 0.0)
    assert _warnings_of(ngp.build_optimizer, model, "adam")[1] == []  # l2 = 0 decays nothing
    model.net.regularizer = ("l2", 0.5)
    built, caught = _warnings_of(ngp.build_optimizer, model, "sgd")
    assert len(caught) == 1
    assert "external_trainable_variables" in str(caught[0].message)
    assert caught[0].filename == __file__  # stacklevel 4: _from_name, build_optimizer, _warnings_of, this test

    plain, other_unknown = _with_unknown()
    plain.external_trainable_variables = [other_unknown]
    wrapped = ngp.build_optimizer(plain, Adam(0.2))
    assert (wrapped.second_order, wrapped.name, len(wrapped.optimizer.param_groups)) == (False, "Adam", 2)
    assert wrapped.optimizer.param_groups[1]["params"] == [other_unknown]
    assert len(ngp.build_optimizer(tiny_poisson(0), Adam(0.2)).optimizer.param_groups) == 1


def test_lbfgs_defaults_max_eval_and_refusals() -> None:
    w = [torch.zeros(2, dtype=F64, requires_grad=True)]
    group = ngp.lbfgs(iter(w), max_iter=1).param_groups[0]  # any iterable of tensors
    assert isinstance(ngp.lbfgs(w, max_iter=1), opt_mod.CheckedLBFGS)
    assert {k: group[k] for k in ("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change",
                                  "history_size", "line_search_fn")} == {
        "lr": 1.0, "max_iter": 1, "max_eval": 25, "tolerance_grad": 1e-8, "tolerance_change": 0.0,
        "history_size": 100, "line_search_fn": "strong_wolfe"}  # fmt: skip
    for max_iter, max_eval in [(20, 25), (21, 26), (40, 50), (100, 125)]:  # max(5 max_iter // 4, 25)
        assert ngp.lbfgs(w, max_iter=max_iter).param_groups[0]["max_eval"] == max_eval
    group = ngp.lbfgs(w, max_iter=3, lr=0.5, history_size=7, tolerance_grad=0.0, tolerance_change=1e-3).param_groups[0]
    assert (group["lr"], group["history_size"], group["tolerance_grad"], group["tolerance_change"]) == (
        0.5,
        7,
        0.0,
        1e-3,
    )
    for params, error in [(w[0], TypeError), (5, TypeError), ([], ValueError), ([1.0], TypeError)]:
        with pytest.raises(error, match="params"):
            ngp.lbfgs(params, max_iter=1)  # type: ignore[arg-type]
    for kwargs in ({"max_iter": 0}, {"history_size": 0}, {"lr": 0.0}, {"tolerance_grad": -1.0},
                   {"tolerance_change": -1.0}, {"tolerance_change": math.nan}):  # fmt: skip
        name = next(iter(kwargs))
        with pytest.raises(ValueError, match=name):
            ngp.lbfgs(w, **{"max_iter": 1, **kwargs})


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    return [_copy(v) for v in value] if isinstance(value, list) else value


def _equal(a: Any, b: Any) -> bool:
    if isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and torch.equal(a, b)
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_checked_lbfgs_refuses_nan_and_puts_params_and_state_back() -> None:
    w = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    unused = torch.tensor([3.0], dtype=F64, requires_grad=True)  # never gets a gradient
    opt = ngp.lbfgs([w, unused], max_iter=2)
    poison = {"loss": False, "grad": False}

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (w - torch.tensor([0.5, 0.25], dtype=F64)).pow(2).sum() * (w * w).sum()
        loss.backward()
        if poison["grad"]:
            w.grad[0] = math.nan
        return loss.detach() * (math.nan if poison["loss"] else 1.0)

    first = opt.step(closure)
    assert torch.isfinite(torch.as_tensor(first))
    moved = w.detach().clone()
    assert not torch.equal(moved, torch.tensor([1.0, -2.0], dtype=F64))
    saved = {k: _copy(v) for k, v in opt.state[w].items()}
    for key in ("loss", "grad"):
        poison = {"loss": key == "loss", "grad": key == "grad"}
        with pytest.raises(NonFiniteGradientError):
            opt.step(closure)
        assert torch.equal(w.detach(), moved), key
        assert set(opt.state[w]) == set(saved), key
        for k, v in saved.items():
            assert _equal(opt.state[w][k], v), (key, k)
        assert isinstance(opt.state, dict)
        assert opt.state[torch.zeros(1)] == {}
    poison = {"loss": False, "grad": False}
    opt.step(closure)  # and it goes on from there
    assert float((w.detach() - moved).abs().max()) > 0
    with torch.no_grad():
        w[1] = math.inf
    with pytest.raises(NonFiniteGradientError, match="already NaN/Inf before this step"):
        opt.step(closure)


def test_instances_are_classified_and_checked() -> None:
    from noisygrad import LBFGS
    from noisygrad.optim.natural_gradient import EnergyNaturalGradient
    from noisygrad.optim.quasi_newton import BFGS

    with problems.default_float("float64"):
        model, unknown = _with_unknown()
    model.external_trainable_variables = [unknown]
    params = [*model.net.parameters(), unknown]
    cases = [
        (LBFGS(params), True, "noisygrad.LBFGS"),
        (BFGS(params), True, "BFGS"),
        (engd_mod.PinnEnergyNaturalGradient(model, params), True, "PinnEnergyNaturalGradient"),
        (torch.optim.LBFGS(params, max_eval=5), True, "LBFGS"),
        (torch.optim.Adam(params), False, "Adam"),
    ]
    for optimizer, second_order, name in cases:
        built, caught = _warnings_of(ngp.build_optimizer, model, optimizer)
        assert (built.optimizer, built.second_order, built.name, caught) == (optimizer, second_order, name, [])
    with pytest.raises(ValueError, match="lr must be None"):
        ngp.build_optimizer(model, torch.optim.Adam(params), lr=0.1)
    with pytest.raises(ValueError, match="does not hold 1 of the model's 7"):
        ngp.build_optimizer(model, torch.optim.Adam(list(model.net.parameters())))
    for optimizer in (BFGS(params), engd_mod.PinnEnergyNaturalGradient(model, params)):
        with pytest.raises(ValueError, match="full collocation set"):
            ngp.build_optimizer(model, optimizer, minibatch=True)
    assert ngp.build_optimizer(model, LBFGS(params), minibatch=True).second_order is True
    with pytest.raises(TypeError, match="PinnEnergyNaturalGradient"):
        ngp.build_optimizer(model, EnergyNaturalGradient(params))
    with pytest.raises(TypeError, match="optimizer must be one of"):
        ngp.build_optimizer(model, 3)
    _, caught = _warnings_of(
        ngp.build_optimizer, model, torch.optim.LBFGS(params, max_iter=1, line_search_fn="strong_wolfe")
    )
    assert len(caught) == 1
    assert "max_eval=25" in str(caught[0].message)
    assert caught[0].filename == __file__  # stacklevel 4: check_lbfgs_options, build_optimizer, _warnings_of, here
    for l2, warns in [(0.0, False), (0.5, True), (2.0, True)]:
        model.net.regularizer = ("l2", l2)
        built, caught = _warnings_of(ngp.build_optimizer, model, torch.optim.Adam(params))
        assert len(caught) == int(warns), l2
        if warns:
            assert f"weight_decay={l2}" in str(caught[0].message)
            assert caught[0].filename == __file__


def test_named_lbfgs_quasi_newton_and_engd() -> None:
    from noisygrad import LBFGS
    from noisygrad.optim.quasi_newton import BFGS, SSBFGS, SSBroyden

    model, unknown = _with_unknown()
    model.external_trainable_variables = [unknown]
    n_params = 7
    for name in ("lbfgs", "L-BFGS"):
        built, caught = _warnings_of(ngp.build_optimizer, model, name)
        assert caught == []
        assert isinstance(built.optimizer, opt_mod.CheckedLBFGS)
        group = built.optimizer.param_groups[0]
        assert (built.name, built.second_order, group["lr"], group["max_iter"]) == ("lbfgs", True, 1.0, 1000)
        assert len(group["params"]) == n_params
    built, caught = _warnings_of(ngp.build_optimizer, model, "L-BFGS-B", lr=0.5, lbfgs_max_iter=3)
    assert len(caught) == 1
    assert "L-BFGS-B" in str(caught[0].message)
    assert caught[0].filename == __file__
    assert (built.optimizer.param_groups[0]["lr"], built.optimizer.param_groups[0]["max_iter"]) == (0.5, 3)
    robust = ngp.build_optimizer(model, "lbfgs", minibatch=True)
    assert isinstance(robust.optimizer, LBFGS)
    assert not isinstance(robust.optimizer, torch.optim.LBFGS)
    group = robust.optimizer.param_groups[0]
    assert (robust.name, robust.second_order, group["lr"], group["history_size"], len(group["params"])) == (
        "lbfgs (noise-robust)", True, 0.5, 10, n_params)  # fmt: skip
    assert ngp.build_optimizer(model, "lbfgs", minibatch=True, lr=0.2).optimizer.param_groups[0]["lr"] == 0.2
    with pytest.raises(ValueError, match="lbfgs_max_iter"):
        ngp.build_optimizer(model, "lbfgs", lbfgs_max_iter=0)
    for name, cls in (("bfgs", BFGS), ("ssbfgs", SSBFGS), ("ssbroyden", SSBroyden)):
        built = ngp.build_optimizer(model, name, lbfgs_max_iter=4)
        group = built.optimizer.param_groups[0]
        assert type(built.optimizer) is cls
        assert (built.name, built.second_order, group["lr"], group["max_iter"], len(group["params"])) == (
            name, True, 1.0, 4, n_params)  # fmt: skip
        assert ngp.build_optimizer(model, name, lr=0.5).optimizer.param_groups[0]["lr"] == 0.5
        assert ngp.build_optimizer(model, name).optimizer.param_groups[0]["max_iter"] == 1000
        with pytest.raises(ValueError, match="lbfgs_max_iter"):
            ngp.build_optimizer(model, name, lbfgs_max_iter=0)
        with pytest.raises(ValueError, match="full collocation set"):
            ngp.build_optimizer(model, name, minibatch=True)
    built, caught = _warnings_of(ngp.build_optimizer, model, "engd", lbfgs_max_iter=6)  # float32: no PrecisionWarning
    assert isinstance(built.optimizer, engd_mod.PinnEnergyNaturalGradient)
    assert caught == []
    group = built.optimizer.param_groups[0]
    assert (built.name, built.second_order, group["max_iter"], len(group["params"])) == ("engd", True, 6, n_params)
    assert ngp.build_optimizer(model, "engd").optimizer.param_groups[0]["max_iter"] == 1000
    for kwargs, match in [({"lr": 0.1}, "lr must be None"), ({"minibatch": True}, "full collocation set"),
                          ({"lbfgs_max_iter": 0}, "lbfgs_max_iter")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            ngp.build_optimizer(model, "engd", **kwargs)
    model.net.regularizer = ("l2", 0.0)  # no decay: every method builds
    for name in ("lbfgs", "bfgs", "engd"):
        assert ngp.build_optimizer(model, name).name == name
    assert type(opt_mod.quasi_newton(model)) is SSBFGS
    for l2 in (0.5, 2.0):
        model.net.regularizer = ("l2", l2)
        for name in ("lbfgs", "L-BFGS-B", "bfgs", "ssbroyden", "engd"):
            with pytest.raises(ValueError, match="weight decay"):
                _warnings_of(ngp.build_optimizer, model, name)
        with pytest.raises(ValueError, match="weight decay"):
            opt_mod.quasi_newton(model, "bfgs")


def test_quasi_newton_with_options() -> None:
    from noisygrad.optim.quasi_newton import SSBFGS, SSBroyden

    model, unknown = _with_unknown()
    model.external_trainable_variables = [unknown]
    built = opt_mod.quasi_newton(model, "ssbroyden", max_iter=7, lr=0.25)
    assert type(built) is SSBroyden
    group = built.param_groups[0]
    assert (group["max_iter"], group["lr"], len(group["params"])) == (7, 0.25, 7)
    assert group["params"][-1] is unknown
    assert type(opt_mod.quasi_newton(model)) is SSBFGS
    with pytest.raises(ValueError, match="'bfgs', 'ssbfgs', 'ssbroyden'"):
        opt_mod.quasi_newton(model, "dfp")


class PDEPointResampler:  # the name is what check_sampling looks for
    pass


def test_check_lbfgs_options_precision_and_sampling_at_their_boundaries() -> None:
    from types import SimpleNamespace

    w = [torch.zeros(2, requires_grad=True)]
    for max_eval, search, warns in [(1, "strong_wolfe", True), (2, "strong_wolfe", False), (1, None, False)]:
        optimizer = torch.optim.LBFGS(w, max_iter=1, max_eval=max_eval, line_search_fn=search)
        _, caught = _warnings_of(opt_mod.check_lbfgs_options, optimizer)
        assert len(caught) == int(warns), (max_eval, search)
    optimizer = torch.optim.LBFGS(w, max_iter=1, line_search_fn="strong_wolfe")
    optimizer.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "max_eval": 25})
    assert len(_warnings_of(opt_mod.check_lbfgs_options, optimizer)[1]) == 1  # the first group's settings
    _, caught = _warnings_of(opt_mod.check_lbfgs_options, optimizer, stacklevel=1)
    assert pathlib.Path(caught[0].filename).resolve() == pathlib.Path(opt_mod.__file__).resolve()  # the warn itself
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        opt_mod.check_lbfgs_options(optimizer)  # default stacklevel 2: this line
    assert record[0].filename == __file__

    for dtype, warns in [(torch.float32, True), (torch.float16, True), (torch.float64, False)]:
        net = torch.nn.Linear(1, 1).to(dtype)
        fake = SimpleNamespace(net=net)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            opt_mod.check_precision(fake)
        assert len(record) == int(warns), dtype
        if warns:
            assert record[0].filename == __file__

    resampler = PDEPointResampler()
    for sampler in ("Hammersley", "Halton", "Sobol", "uniform"):
        fake = SimpleNamespace(data=SimpleNamespace(train_distribution=sampler))
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            opt_mod.check_sampling(fake, [object(), resampler])
        assert len(record) == 1, sampler
        assert record[0].filename == __file__, sampler
    for fake, callbacks in [
        (SimpleNamespace(data=SimpleNamespace(train_distribution="pseudo")), [resampler]),
        (SimpleNamespace(data=SimpleNamespace(train_distribution="Sobol")), None),
        (SimpleNamespace(data=SimpleNamespace(train_distribution="Sobol")), [object()]),
        (SimpleNamespace(data=SimpleNamespace()), [resampler]),
    ]:
        assert _warnings_of(opt_mod.check_sampling, fake, callbacks)[1] == []


def test_check_model_warns_at_the_callers_line() -> None:
    model = tiny_poisson(0, distribution="pseudo")
    with pytest.raises(TypeError, match=r"dde\.Model"):
        ngp.check_model(object())
    with quiet():
        model.compile("adam", lr=1e-3)
    assert _warnings_of(ngp.check_model, model)[1] == []
    for name in ("L-BFGS", "L-BFGS-B"):
        with quiet():
            model.compile(name)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            ngp.check_model(model)
        messages = [str(w.message) for w in record]
        assert any("float32" in m for m in messages), name
        assert ("0 steps" in " ".join(messages)) is (name == "L-BFGS-B")
        assert all(w.filename == __file__ for w in record)
    # a torch LBFGS instance (max_eval 1) and a resampler over Hammersley points
    hammersley = tiny_poisson(0)
    with problems.default_float("float64"):
        double = tiny_poisson(0)
    for m in (hammersley, double):
        with quiet():
            m.compile(torch.optim.LBFGS(m.net.parameters(), max_iter=1, line_search_fn="strong_wolfe"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ngp.check_model(double, [PDEPointResampler()])
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert "max_eval=25" in messages[0]
    assert "PDEPointResampler" in messages[1]
    assert all(w.filename == __file__ for w in record)
    with quiet():
        double.compile(torch.optim.Adam(double.net.parameters()))
    assert _warnings_of(ngp.check_model, double)[1] == []
    with quiet():
        hammersley.compile(torch.optim.LBFGS(hammersley.net.parameters(), max_iter=1, max_eval=5))
    caught = _warnings_of(ngp.check_model, hammersley)[1]
    assert [("float32" in str(w.message)) for w in caught] == [True]


# ------------------------------------------------------------------------------------------------------- engd


def _reverse_mode_jacobian(model: Any, rows: tuple[Any, Any, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``r`` and every row of ``dr/dtheta`` by one reverse pass per residual (no per-point trick)."""
    params = list(model.net.parameters()) + list(model.external_trainable_variables or [])
    with torch.enable_grad():
        terms = engd_mod._terms(model, *rows)
        weights = (
            [1.0] * len(terms) if model.loss_weights is None else np.asarray(model.loss_weights).reshape(-1).tolist()
        )
        r = torch.cat([(t * math.sqrt(w / t.numel())).reshape(-1) for t, w in zip(terms, weights, strict=True)])
        out = []
        for i in range(r.numel()):
            grads = torch.autograd.grad(r[i], params, retain_graph=True, allow_unused=True)
            out.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                  for g, p in zip(grads, params, strict=True)]))  # fmt: skip
    return r.detach(), torch.stack(out)


def _system(*, weights: Any = None, unknowns: int = 3, bias: bool = True, spare: bool = False) -> tuple[Any, list[Any]]:
    """Two outputs (u, v), two PDE equations, a Dirichlet, a periodic and a one-point observation condition, and
    the first ``unknowns`` of: ``c`` and ``d`` in the PDE, ``e`` that no residual uses (float64). ``spare`` adds a
    Linear layer the forward pass never uses (its Jacobian columns are zero)."""
    dde = deepxde()
    with problems.default_float("float64"):
        dde.config.set_random_seed(0)
        c, d, e = dde.Variable(0.7), dde.Variable(-1.5), dde.Variable(2.0)
        geom = dde.geometry.Interval(0.0, 1.0)

        def pde(x: Any, y: Any) -> list[Any]:
            u, v = y[:, 0:1], y[:, 1:2]
            return [c * dde.grad.hessian(y, x, component=0) - v * u, dde.grad.jacobian(y, x, i=1) + d * u * u - x]

        on = lambda _, on_boundary: on_boundary  # noqa: E731
        bcs = [
            dde.icbc.DirichletBC(geom, lambda x: np.ones((len(x), 1)), on, component=0),
            dde.icbc.PeriodicBC(geom, 0, on, component=1),
            dde.icbc.PointSetBC(np.array([[0.3]]), np.array([[0.2]]), component=1),
        ]
        data = dde.data.PDE(geom, pde, bcs, num_domain=6, num_boundary=2, anchors=np.array([[0.3]]))
        net = dde.nn.FNN([1, 5, 2], "tanh", "Glorot uniform")
        if not bias:
            net.linears[0].register_parameter("bias", None)
        if spare:
            net.spare = torch.nn.Linear(2, 1)
        model = dde.Model(data, net)
        external = [c, d, e][:unknowns]
        with quiet():
            model.compile("adam", lr=1e-3, loss_weights=weights, external_trainable_variables=external)
        with torch.no_grad():
            for p in model.net.parameters():
                p.add_(0.1 * torch.sin(torch.arange(p.numel(), dtype=F64).reshape(p.shape)))
    return model, external


def _rows(model: Any) -> tuple[Any, Any, Any]:
    data = model.data
    return data.train_x, data.train_y, data.train_aux_vars


@pytest.mark.parametrize(
    ("weights", "unknowns", "bias", "spare"),
    [
        (None, 3, True, False),
        ([2.0, 0.5, 3.0, 0.0, 1.5], 1, True, True),
        (np.array([[1.0], [2.0], [1.0], [4.0], [0.25]]), 0, False, False),
    ],
)
def test_the_per_point_jacobian_equals_reverse_mode_on_every_row(
    weights: Any, unknowns: int, bias: bool, spare: bool
) -> None:
    with problems.default_float("float64"):
        model, _external = _system(weights=weights, unknowns=unknowns, bias=bias, spare=spare)
        rows = _rows(model)
        r, jac = engd_mod.pinn_residuals(model, *rows, jacobian=True)
        r_ref, jac_ref = _reverse_mode_jacobian(model, rows)
        r_only = engd_mod.pinn_residuals(model, *rows)
    n_rows, (n_dirichlet, n_periodic, n_point) = model.data.train_x.shape[0], model.data.num_bcs
    assert (n_dirichlet, n_periodic, n_point) == (2, 4, 1)
    assert r.shape == (2 * (n_rows - 7) + 2 + 2 + 1,)  # two PDE equations, 2 Dirichlet, 2 periodic pairs, 1 point
    assert torch.equal(r, r_only)
    torch.testing.assert_close(r, r_ref, rtol=1e-14, atol=1e-15)
    assert jac.shape == (r.numel(), sum(p.numel() for p in model.net.parameters()) + unknowns)
    torch.testing.assert_close(jac, jac_ref, rtol=1e-12, atol=1e-13)
    model.loss_weights = None if weights is None else np.asarray(weights).reshape(-1).tolist()  # DeepXDE's: 1-D
    loss = float(torch.sum(model.outputs_losses_train(*rows)[1]).detach())
    assert float(r @ r) == pytest.approx(loss, rel=1e-13)
    if unknowns == 3:
        assert torch.equal(jac[:, -1], torch.zeros(r.numel(), dtype=F64))  # e enters no residual
        assert float(jac[:, -2].abs().max()) > 0  # d and c do
        assert float(jac[:, -3].abs().max()) > 0
    if spare:  # the unused layer's columns (its weight and bias, just before the unknown's column) are zero
        assert torch.equal(jac[:, -4:-1], torch.zeros(r.numel(), 3, dtype=F64))
    assert not any("forward" in vars(layer) for layer in model.net.modules())  # the patch is gone


def test_a_vector_unknown_gets_one_column_per_entry() -> None:
    dde = deepxde()
    with problems.default_float("float64"):
        dde.config.set_random_seed(0)
        k = torch.tensor([0.7, -1.5], dtype=F64, requires_grad=True)
        geom = dde.geometry.Interval(0.0, 1.0)
        bc = dde.icbc.DirichletBC(geom, lambda x: np.ones((len(x), 1)), lambda _, b: b)
        data = dde.data.PDE(geom, lambda x, u: k[0] * dde.grad.hessian(u, x) - k[1] * u * u, bc, num_domain=5,
                            num_boundary=2)  # fmt: skip
        model = dde.Model(data, dde.nn.FNN([1, 4, 1], "tanh", "Glorot uniform"))
        with quiet():
            model.compile("adam", lr=1e-3, external_trainable_variables=[k])
        rows = _rows(model)
        _, jac = engd_mod.pinn_residuals(model, *rows, jacobian=True)
        _, jac_ref = _reverse_mode_jacobian(model, rows)
    torch.testing.assert_close(jac, jac_ref, rtol=1e-12, atol=1e-13)
    assert float(jac[:, -1].abs().max()) > 0
    assert float(jac[:, -2].abs().max()) > 0


def test_auxiliary_variables_reach_the_residual() -> None:
    dde = deepxde()
    with problems.default_float("float64"):
        dde.config.set_random_seed(0)
        geom = dde.geometry.Interval(0.0, 1.0)
        bc = dde.icbc.DirichletBC(geom, lambda x: np.zeros((len(x), 1)), lambda _, b: b)
        data = dde.data.PDE(geom, lambda x, u, aux: dde.grad.hessian(u, x) - aux, bc, num_domain=5, num_boundary=2,
                            auxiliary_var_function=lambda x: 3.0 * x)  # fmt: skip
        model = dde.Model(data, dde.nn.FNN([1, 4, 1], "tanh", "Glorot uniform"))
        with quiet():
            model.compile("adam", lr=1e-3)
        rows = _rows(model)
        assert rows[2] is not None
        r, jac = engd_mod.pinn_residuals(model, *rows, jacobian=True)
        r_ref, jac_ref = _reverse_mode_jacobian(model, rows)
    torch.testing.assert_close(r, r_ref, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(jac, jac_ref, rtol=1e-12, atol=1e-13)


def test_loss_weights_and_row_maps_refuse_what_they_cannot_take() -> None:
    model = tiny_poisson(0)
    assert engd_mod._weights(model, 3) == [1.0, 1.0, 1.0]
    model.loss_weights = [1, 0]
    assert engd_mod._weights(model, 2) == [1.0, 0.0]
    for weights, match in [([1.0], "has 1 entries but the model has 2"), ([1.0, -0.5], ">= 0"),
                           ([1.0, math.inf], "finite"), ([math.nan, 1.0], "finite")]:  # fmt: skip
        model.loss_weights = weights
        with pytest.raises(ValueError, match=match):
            engd_mod._weights(model, 2)
    terms = [torch.zeros(26), torch.zeros(2)]
    assert [(k, [m.tolist() for m in maps]) for k, maps in engd_mod._row_maps(model, terms, 28)] == [
        (0, [list(range(2, 28))]), (0, [[0, 1]])]  # fmt: skip
    assert [m.tolist() for m in engd_mod._row_maps(model, [torch.zeros(26), torch.zeros(1)], 28)[1][1]] == [[0], [1]]
    with pytest.raises(ValueError, match="loss term 1 has 3 entries on 2 rows"):
        engd_mod._row_maps(model, [torch.zeros(26), torch.zeros(3)], 28)
    with pytest.raises(ValueError, match="loss term 0 has 25 entries on 26 rows"):
        engd_mod._row_maps(model, [torch.zeros(25), torch.zeros(2)], 28)
    dde = deepxde()
    zeros = np.zeros((2, 1))
    points = dde.data.DataSet(X_train=zeros, y_train=zeros, X_test=zeros, y_test=zeros)
    other = dde.Model(points, dde.nn.FNN([1, 2, 1], "tanh", "Glorot uniform"))
    with pytest.raises(ValueError, match=r"dde\.data\.PDE"):
        engd_mod.pinn_residuals(other, np.zeros((2, 1)), None, None)


def test_the_per_point_patch_checks_its_inputs_and_is_removed() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(1, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    x = torch.linspace(0, 1, 4).reshape(-1, 1)
    before = net(x).detach()
    with engd_mod._per_point_weights(net, 4) as offsets:
        assert torch.equal(net(x).detach(), before)  # zero offsets: the same values
        assert sorted(tuple(o.shape) for o in offsets.values()) == [(4, 1), (4, 1, 3), (4, 3), (4, 3, 1)]
        assert all(o.requires_grad for o in offsets.values())
        for bad in (x[:3], x.reshape(-1)):
            with pytest.raises(ValueError, match=r"shape \(4, features\)"):
                net(bad)
    assert torch.equal(net(x[:3]).detach(), before[:3])  # unpatched: any batch again
    assert engd_mod._linears(net) == [net[0], net[2]]
    net.extra = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="extra"):
        engd_mod._linears(net)


def test_the_offsets_follow_the_layers_device_and_the_net_is_put_in_training_mode() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(1, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).to("meta")
    with engd_mod._per_point_weights(net, 4) as offsets:
        assert {o.device.type for o in offsets.values()} == {"meta"}
        assert net(torch.zeros(4, 1, device="meta")).shape == (4, 1)  # offsets on another device would fail here
    assert torch.get_default_dtype() == torch.float32
    double = torch.nn.Sequential(torch.nn.Linear(1, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    with engd_mod._per_point_weights(double, 4) as offsets:
        assert {o.dtype for o in offsets.values()} == {F64}  # the layer's dtype, not the default
    with problems.default_float("float64"):
        model, _ = _system(unknowns=0)
        model.net.eval()
        engd_mod.pinn_residuals(model, *_rows(model))
        assert model.net.training  # DeepXDE's training loop computes its losses in training mode


def test_pinn_engd_holds_the_trainable_tensors_in_order_and_checks_the_loss_once() -> None:
    with problems.default_float("float64"):
        model, external = _system(unknowns=1)
        params = [*model.net.parameters(), *external]
        with pytest.raises(ValueError, match="in that order"):
            engd_mod.PinnEnergyNaturalGradient(model, [*external, *model.net.parameters()])
        with pytest.raises(ValueError, match="in that order"):
            engd_mod.PinnEnergyNaturalGradient(model, list(model.net.parameters()))
        optimizer = engd_mod.PinnEnergyNaturalGradient(model, params)
        assert optimizer.model is model
        assert optimizer._checked is False
        with pytest.raises(RuntimeError, match="no training rows"):
            optimizer.residuals(None)
        ngp.train(model, optimizer, iterations=1, lbfgs_chunk=1, verbose=0)
        state = model.train_state
        rows = (state.X_train, state.y_train, state.train_aux_vars)
        r, jac = optimizer.residuals_and_jacobian(None)
        assert optimizer._checked is True
        r_ref, jac_ref = engd_mod.pinn_residuals(model, *rows, jacobian=True)
        assert torch.equal(r, r_ref)
        assert torch.equal(jac, jac_ref)
        assert torch.equal(optimizer.residuals(None), r_ref)
        # a loss that is not |r|^2, even one within 1 of it in absolute terms, is refused on the first check
        model.compile("adam", lr=1e-3, loss="MAE", loss_weights=[1e-3] * 5, external_trainable_variables=external)
        fresh = engd_mod.PinnEnergyNaturalGradient(model, params)
        model.train_state.set_data_train(*rows)
        with pytest.raises(ValueError, match="'MSE' loss"):
            fresh.residuals_and_jacobian(None)
        optimizer.residuals_and_jacobian(None)  # already checked: not again
