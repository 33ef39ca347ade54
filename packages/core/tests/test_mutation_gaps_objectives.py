"""Costs and estimates, ``evaluate_points``, clipping, the run's random streams and the objectives: the
behaviours mutation testing found unchecked (tools/mutation.py, issue 18).

Every check is exact (closed forms, documented defaults, exact boundaries, generator reproducibility): no
statistical tolerance is needed anywhere in this file.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch

import noisygrad as ng
from noisygrad.estimators.base import Cost, Estimate, Stateless, evaluate_points
from noisygrad.objectives import Kind, ModuleLoss, require_kind
from noisygrad.rng import draw_seed, init_state, substream, substream_seed, torch_from_torch, torch_stream

# --- estimators/base.py ------------------------------------------------------------------------------------------


def test_cost_defaults_to_nothing_spent_adds_fieldwise_and_is_frozen():
    assert (Cost().examples, Cost().evaluations, Cost().shots) == (0, 0, 0)
    total = Cost(examples=5, evaluations=2, shots=300) + Cost(examples=3, evaluations=7, shots=1000)
    assert (total.examples, total.evaluations, total.shots) == (8, 9, 1300)
    with pytest.raises(dataclasses.FrozenInstanceError):
        total.shots = 0  # type: ignore[misc]
    assert hash(Cost(1, 2, 3)) == hash(Cost(1, 2, 3))  # frozen: usable as a key, equal costs hash alike


def test_estimate_is_frozen_and_its_stats_default_to_a_fresh_empty_dict():
    a = Estimate(torch.zeros(2), 1.5, Cost(examples=1))
    b = Estimate(torch.zeros(2), None, Cost())
    assert a.stats == {}
    assert a.stats is not b.stats
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.value = 2.0  # type: ignore[misc]


def test_stateless_state_is_empty_and_refuses_keys():
    s = Stateless()
    assert s.state_dict() == {}
    s.load_state_dict({})
    with pytest.raises(ValueError, match=r"keeps no state, got keys \['a', 'k'\]"):
        s.load_state_dict({"k": 1, "a": 2})


def test_evaluate_points_refuses_anything_but_a_matrix_of_points():
    f = ng.Energy(lambda x: (x * x).sum())
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"points must be a tensor of shape \(K, d\)"):
        evaluate_points(f, [[0.0, 1.0]], gen)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"points must be a tensor of shape \(K, d\)"):
        evaluate_points(f, torch.zeros(3), gen)
    with pytest.raises(TypeError, match="evaluate_points needs an objective of kind"):
        evaluate_points(ng.FiniteSum(lambda w, x: (w * x).mean(), torch.ones(2)), torch.zeros(1, 1), gen)


def test_evaluate_points_counts_shots_only_for_a_shot_priced_black_box():
    points = torch.tensor([[0.0, 1.0], [2.0, 3.0], [1.0, 1.0]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    plain = ng.NoisyBlackBox(lambda p, g: p.sum(1), cost_per_evaluation=250.0)
    values, cost = evaluate_points(plain, points, gen)
    assert values.tolist() == [1.0, 5.0, 2.0]
    assert cost == Cost(examples=0, evaluations=3, shots=0)
    shots = ng.NoisyBlackBox(lambda p, g: p.sum(1), cost_per_evaluation=250.4, cost_unit="shots")
    assert evaluate_points(shots, points, gen)[1] == Cost(evaluations=3, shots=751)  # round(3 * 250.4)


def test_evaluate_points_reshapes_energy_rows_and_keeps_their_dtype():
    seen: list[tuple[tuple[int, ...], torch.dtype]] = []

    def fn(x: torch.Tensor) -> float:
        seen.append((tuple(x.shape), x.dtype))
        return float(x[0, 1]) + 1.0 / 3.0  # a Python float: evaluated in the points' dtype

    points = torch.arange(8, dtype=torch.float64).reshape(2, 4)
    values, cost = evaluate_points(ng.Energy(fn), points, torch.Generator(), shape=(2, 2))
    assert seen == [((2, 2), torch.float64)] * 2
    assert values.dtype == torch.float64
    assert values.tolist() == [1.0 + 1.0 / 3.0, 5.0 + 1.0 / 3.0]
    assert cost == Cost(evaluations=2)
    with pytest.raises(ng.NonFiniteGradientError, match="energy values"):
        evaluate_points(ng.Energy(lambda x: float("nan")), points, torch.Generator())


# --- estimators/clipping.py --------------------------------------------------------------------------------------


def _linear_energy(g: list[float]) -> ng.Energy:
    """``f(x) = <g, x> + 2``: its exact gradient is ``g`` wherever it is taken."""
    b = torch.tensor(g, dtype=torch.float64)
    return ng.Energy(lambda x: (b * x).sum() + 2.0)


@pytest.mark.parametrize(("g", "max_norm"), [([3.0, 4.0], 1.0), ([0.3, 0.4], 0.25)])  # |g| = 5 and 0.5 (< 1)
def test_clipped_scales_a_long_gradient_to_max_norm_exactly(g, max_norm):
    inner = ng.FullBatch(_linear_energy(g))
    clipped = ng.Clipped(inner, max_norm)
    assert clipped.objective is inner.objective
    assert clipped.estimator is inner
    assert clipped.max_norm == max_norm
    est = clipped.estimate(torch.zeros(2, dtype=torch.float64), torch.Generator())
    norm = (g[0] ** 2 + g[1] ** 2) ** 0.5
    torch.testing.assert_close(est.grad, torch.tensor(g, dtype=torch.float64) * (max_norm / norm), rtol=0, atol=0)
    assert est.value == 2.0
    assert est.cost == Cost()
    assert est.stats == {"grad_variance": 0.0, "clipped": 1.0, "raw_grad_norm": norm}  # the wrapped stats kept


def test_clipped_leaves_a_short_zero_or_boundary_gradient_as_it_is():
    for g, max_norm in (([0.3, 0.4], 2.0), ([3.0, 4.0], 5.0), ([0.0, 0.0], 1.0)):
        est = ng.Clipped(ng.FullBatch(_linear_energy(g)), max_norm).estimate(
            torch.ones(2, dtype=torch.float64), torch.Generator()
        )
        assert est.grad.tolist() == g  # untouched, bit for bit (no 0 / 0 for the zero gradient)
        assert est.stats["clipped"] == 0.0
        assert est.stats["raw_grad_norm"] == pytest.approx((g[0] ** 2 + g[1] ** 2) ** 0.5, rel=1e-15)


def test_clipped_refuses_a_missing_generator_and_a_non_estimator():
    clipped = ng.Clipped(ng.FullBatch(_linear_energy([1.0, 0.0])), 1.0)  # FullBatch itself ignores the generator
    with pytest.raises(TypeError, match="generator"):
        clipped.estimate(torch.zeros(2, dtype=torch.float64), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="estimator must be a noisygrad Estimator, got Energy"):
        ng.Clipped(_linear_energy([1.0, 0.0]), 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_norm"):
        ng.Clipped(ng.FullBatch(_linear_energy([1.0, 0.0])), -1.0)


def test_clipped_passes_the_wrapped_estimators_state_through():
    f = _linear_energy([1.0, -1.0])
    inner = ng.SPSA(f, c=0.1)
    clipped = ng.Clipped(inner, 10.0)
    gen = torch.Generator().manual_seed(3)
    clipped.estimate(torch.zeros(2, dtype=torch.float64), gen)
    clipped.estimate(torch.zeros(2, dtype=torch.float64), gen)
    assert clipped.state_dict() == inner.state_dict() == {"k": 2}
    clipped.load_state_dict({"k": 7})
    assert inner.k == 7


# --- rng.py ------------------------------------------------------------------------------------------------------


def test_substream_is_the_seed_sequence_of_the_seed_keyed_by_the_path_and_zero_is_allowed():
    ss = substream(5, 2, 1)
    assert (ss.entropy, ss.spawn_key) == (5, (2, 1))
    zero = substream(0, 0, 0)
    assert (zero.entropy, zero.spawn_key) == (0, (0, 0))
    assert substream(0).spawn_key == ()
    assert substream(3, np.int64(4)).spawn_key == (4,)  # numpy integers are keys too, stored as ints
    with pytest.raises(TypeError, match="seed"):
        substream(1.5)  # type: ignore[arg-type]


def test_substream_seed_is_the_first_63_bit_word_of_the_substream():
    for seed, keys in ((0, ()), (5, (2,)), (7, (0, 3))):
        word = int(np.random.SeedSequence(seed, spawn_key=keys).generate_state(1, np.uint64)[0])
        assert substream_seed(seed, *keys) == word >> 1
    assert torch.equal(
        torch.randn(4, generator=torch_stream(5, 2)),
        torch.randn(4, generator=torch.Generator().manual_seed(substream_seed(5, 2))),
    )
    assert torch_stream(5, 2).device == torch.device("cpu")


def test_draw_seed_is_one_randint_below_2_to_the_62_from_the_generator():
    for s in (0, 7, 123):
        expected = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(s)).item())
        gen = torch.Generator().manual_seed(s)
        assert draw_seed(gen) == expected
        assert expected > 2 * 62
        assert expected < 2**62
        twin = torch.Generator().manual_seed(s)
        torch.randint(0, 2**62, (1,), generator=twin)
        assert torch.equal(gen.get_state(), twin.get_state())  # advanced by exactly that one draw
    child = torch_from_torch(torch.Generator().manual_seed(7))
    assert child.device == torch.device("cpu")
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator, got NoneType"):
        draw_seed(None)  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_streams_and_spawns_live_on_the_device_asked_for():
    assert torch_stream(5, 2, device="cuda").device.type == "cuda"
    expected = torch.randint(0, 2**62, (1,), generator=torch.Generator("cuda").manual_seed(7), device="cuda")
    assert draw_seed(torch.Generator("cuda").manual_seed(7)) == int(expected.item())  # drawn on the generator's device
    child = torch_from_torch(torch.Generator("cuda").manual_seed(7), device="cuda")
    assert child.device.type == "cuda"
    assert torch.equal(
        torch.randn(3, generator=child, device="cuda"),
        torch.randn(3, generator=torch_stream(int(expected.item()), device="cuda"), device="cuda"),
    )


class _Recorder:
    """An update rule whose ``init`` records what it was given."""

    def __init__(self, takes_generator: bool) -> None:
        self.calls: list[dict[str, object]] = []
        if takes_generator:
            self.init = self._init_with_generator
        else:
            self.init = self._init

    def _init(self, params: torch.Tensor) -> str:
        self.calls.append({})
        return "plain"

    def _init_with_generator(self, params: torch.Tensor, generator: torch.Generator | None = None) -> str:
        self.calls.append({"generator": generator})
        return "stochastic"


def test_init_state_hands_the_generator_only_to_a_rule_that_takes_it():
    gen = torch.Generator().manual_seed(0)
    params = torch.zeros(2)
    stochastic, plain = _Recorder(True), _Recorder(False)
    assert init_state(stochastic, params, gen) == "stochastic"
    assert stochastic.calls == [{"generator": gen}]
    assert init_state(plain, params, gen) == "plain"
    assert plain.calls == [{}]
    # a builtin init has no signature to read: it is called with the parameters alone
    assert init_state(types.SimpleNamespace(init=max), torch.tensor([1.0, 3.0, 2.0]), gen) == 3.0
    state_before = gen.get_state()
    ng.SGD(0.1).init(params)
    init_state(ng.SGD(0.1), params, gen)
    assert torch.equal(gen.get_state(), state_before)  # a deterministic rule leaves the generator alone


# --- objectives.py -----------------------------------------------------------------------------------------------

X3 = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 2.0], [3.0, 0.0, -1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
Y3 = torch.tensor([1.0, 0.0, -2.0, 0.5], dtype=torch.float64)
W3 = torch.tensor([0.5, -0.25, 1.0], dtype=torch.float64)


def _least_squares() -> ng.FiniteSum:
    return ng.FiniteSum(lambda w, X, y: ((X @ w - y) ** 2).mean() / 2, (X3, Y3))


def test_kinds_name_what_they_are_and_each_objective_carries_its_own():
    assert [k.value for k in Kind] == ["finite sum", "noisy black box", "holistic energy"]
    assert ng.FiniteSum.kind is Kind.FINITE_SUM
    assert ng.NoisyBlackBox.kind is Kind.BLACK_BOX
    assert ng.Energy.kind is Kind.ENERGY
    assert _least_squares().kind is Kind.FINITE_SUM


def test_require_kind_passes_the_allowed_kinds_and_names_the_rest():
    energy = ng.Energy(lambda x: x.sum())
    require_kind("me", energy, (Kind.FINITE_SUM, Kind.ENERGY))  # allowed: nothing raised
    with pytest.raises(
        TypeError, match=r"^me needs an objective of kind finite sum, holistic energy; got noisy black box$"
    ):
        require_kind("me", ng.NoisyBlackBox(lambda p, g: p.sum(1)), (Kind.FINITE_SUM, Kind.ENERGY))
    with pytest.raises(TypeError, match=r"^me needs an objective of kind holistic energy; got int$"):
        require_kind("me", 3, (Kind.ENERGY,))
    with pytest.raises(TypeError, match=r"got SimpleNamespace$"):
        require_kind("me", types.SimpleNamespace(kind="finite sum"), (Kind.FINITE_SUM,))  # a look-alike string


def test_finite_sum_keeps_its_data_and_counts_examples():
    one = ng.FiniteSum(lambda w, X: (X @ w).mean(), X3)
    assert one.data == (X3,)
    assert one.data[0] is X3
    assert one.n_examples == 4
    assert one.example_losses is None
    listed = ng.FiniteSum(lambda w, X, y: (X @ w - y).mean(), [X3, Y3])
    assert isinstance(listed.data, tuple)
    assert listed.data[0] is X3
    assert listed.data[1] is Y3
    single = ng.FiniteSum(lambda w, X: (X @ w).mean(), torch.ones(1, 3))  # N = 1 is a finite sum too
    assert single.n_examples == 1
    assert single.value(torch.ones(3)) == 3.0


def test_finite_sum_refuses_data_that_is_not_examples():
    loss = lambda w, *b: w.sum()  # noqa: E731
    with pytest.raises(TypeError, match=r"data must be a tensor or a non-empty sequence of tensors, got int"):
        ng.FiniteSum(loss, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"non-empty sequence of tensors, got nothing$"):
        ng.FiniteSum(loss, [])
    with pytest.raises(TypeError, match=r"non-empty sequence of tensors, got Tensor, list$"):
        ng.FiniteSum(loss, [X3, [1.0, 2.0]])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"share their length along dimension 0, got shapes \[\(\)\]"):
        ng.FiniteSum(loss, torch.tensor(1.0))  # a 0-d tensor holds no examples
    with pytest.raises(ValueError, match=r"got shapes \[\(4, 3\), \(\)\]"):
        ng.FiniteSum(loss, (X3, torch.tensor(4.0)))
    with pytest.raises(ValueError, match=r"got shapes \[\(4, 3\), \(3,\)\]"):
        ng.FiniteSum(loss, (X3, Y3[:3]))
    with pytest.raises(ValueError, match="at least one example"):
        ng.FiniteSum(loss, (torch.zeros(0, 3), torch.zeros(0)))


def test_finite_sum_batch_value_and_gradient_are_the_closed_forms():
    f = _least_squares()
    assert f.batch(None) is f.data
    idx = torch.tensor([2, 0])
    rows = f.batch(idx)
    assert torch.equal(rows[0], X3[[2, 0]])
    assert torch.equal(rows[1], Y3[[2, 0]])
    r = X3 @ W3 - Y3
    assert f.value(W3) == pytest.approx(float((r**2).mean() / 2), rel=1e-15)
    assert f.value(W3, idx) == pytest.approx(float((r[[2, 0]] ** 2).mean() / 2), rel=1e-15)
    params = W3.clone()
    value, grad = f.value_and_grad(params, idx)
    assert value == pytest.approx(float((r[[2, 0]] ** 2).mean() / 2), rel=1e-15)
    torch.testing.assert_close(grad, X3[[2, 0]].T @ r[[2, 0]] / 2, rtol=1e-14, atol=1e-14)
    assert not params.requires_grad
    assert torch.equal(params, W3)
    full_value, full_grad = f.value_and_grad(W3)
    torch.testing.assert_close(full_grad, X3.T @ r / 4, rtol=1e-14, atol=1e-14)
    assert full_value == pytest.approx(f.value(W3), rel=1e-15)


def test_per_example_values_and_grads_are_each_examples_own():
    f = _least_squares()
    idx = torch.tensor([3, 1, 1])
    r = X3[idx] @ W3 - Y3[idx]
    values, grads = f.per_example_values_and_grads(W3, idx)
    torch.testing.assert_close(values, r**2 / 2, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(grads, r.unsqueeze(1) * X3[idx], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(f.per_example_grads(W3, idx), grads, rtol=0, atol=0)
    torch.testing.assert_close(f.per_example_values(W3, idx), r**2 / 2, rtol=1e-14, atol=1e-14)
    x = W3.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f.per_example_values(x, idx).sum(), x)  # differentiable in params
    torch.testing.assert_close(g, grads.sum(0), rtol=1e-14, atol=1e-14)


def test_from_example_losses_uses_them_and_checks_their_shape():
    calls: list[int] = []

    def losses(w: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        calls.append(X.shape[0])
        return (X @ w) ** 2

    f = ng.FiniteSum.from_example_losses(losses, X3)  # one data tensor, N = 4 rows of 3 columns
    assert f.example_losses is not None
    assert f.n_examples == 4
    idx = torch.tensor([0, 2])
    torch.testing.assert_close(f.per_example_values(W3, idx), (X3[idx] @ W3) ** 2, rtol=0, atol=0)
    assert calls == [2]  # read from the per-example losses, not a vmap of the mean
    assert f.value(W3) == pytest.approx(float(((X3 @ W3) ** 2).mean()), rel=1e-15)
    wrong = ng.FiniteSum.from_example_losses(lambda w, X: (X @ w).reshape(-1, 1), X3)
    with pytest.raises(
        ValueError, match=r"^example_losses must return one loss per example, shape \(4,\); got \(4, 1\)$"
    ):
        wrong.value(W3)
    scalar = ng.FiniteSum.from_example_losses(lambda w, X: float((X @ w).sum()), X3)
    with pytest.raises(ValueError, match=r"shape \(4,\); got float$"):
        scalar.value(W3)
    with pytest.raises(TypeError, match="example_losses must be callable"):
        ng.FiniteSum.from_example_losses(3, X3)  # type: ignore[arg-type]


def _net() -> torch.nn.Module:
    torch.manual_seed(0)  # only the module's initial weights; nothing in the tests draws from it
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))


def _sq(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (out.squeeze(-1) - y) ** 2


def test_module_loss_lays_out_the_flat_vector_like_parameters_to_vector():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ml = ModuleLoss(net, _sq)
    assert ml.module is net
    assert ml.example_loss is _sq
    assert ml.names == ("0.weight", "0.bias", "2.weight", "2.bias")
    assert ml.shapes == ((2, 3), (2,), (1, 2), (1,))
    assert ml.sizes == (6, 2, 2, 1)
    assert ml.n_params == 11
    flat = torch.arange(11, dtype=torch.float32)
    views = ml.parameters(flat)
    assert list(views) == list(ml.names)
    assert torch.equal(views["0.weight"], flat[:6].view(2, 3))
    assert torch.equal(views["2.bias"], flat[10:])
    assert views["0.bias"].data_ptr() == flat[6:].data_ptr()  # views of the vector, not copies
    x0 = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    inputs, y = X3.float(), Y3.float()
    expected = _sq(net(inputs), y).detach()
    torch.testing.assert_close(ml.example_losses(x0, inputs, y), expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ml(x0 * 0, inputs, y), (0.5 * y**2).mean(), rtol=1e-6, atol=1e-7)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the module is never changed
    with pytest.raises(ValueError, match=r"flat vector of the module's 11 parameters .* got shape \(12,\)"):
        ml.parameters(torch.zeros(12))
    with pytest.raises(ValueError, match=r"got shape \(1, 11\)"):
        ml.parameters(torch.zeros(1, 11))


def test_module_loss_refuses_what_it_cannot_use():
    with pytest.raises(TypeError, match=r"module must be a torch\.nn\.Module, got function"):
        ModuleLoss(_sq, _sq)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="example_loss must be callable"):
        ModuleLoss(_net(), 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="module Tanh has no parameters"):
        ModuleLoss(torch.nn.Tanh(), _sq)
    bad = ModuleLoss(_net(), lambda out, y: out)  # (B, 1): not one loss per example
    with pytest.raises(
        ValueError, match=r"^example_loss must return one loss per example, shape \(4,\); got \(4, 1\)$"
    ):
        bad.example_losses(torch.zeros(11), X3.float(), Y3.float())


def test_from_module_knows_each_examples_loss():
    net = _net()
    f = ng.FiniteSum.from_module(net, _sq, (X3.float(), Y3.float()))
    assert isinstance(f.loss, ModuleLoss)
    assert f.example_losses == f.loss.example_losses
    x0 = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    idx = torch.tensor([1, 3])
    torch.testing.assert_close(
        f.per_example_values(x0, idx), _sq(net(X3[idx].float()), Y3[idx].float()).detach(), rtol=1e-6, atol=1e-7
    )


def test_black_box_defaults_and_its_evaluations_in_the_points_dtype():
    fn = lambda p, g: (p**2).sum(1).to(torch.float32)  # noqa: E731
    box = ng.NoisyBlackBox(fn)
    assert box.fn is fn
    assert box.cost_per_evaluation == 1.0
    assert box.cost_unit == "evaluations"
    shots = ng.NoisyBlackBox(fn, cost_per_evaluation=100, cost_unit="shots")
    assert (shots.cost_per_evaluation, shots.cost_unit) == (100.0, "shots")
    points = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    values = box.evaluate(points, torch.Generator())
    assert values.dtype == torch.float64
    assert values.shape == (1,)
    assert float(values[0]) == float(torch.tensor(0.14, dtype=torch.float64).float())  # fn's float32, cast up
    listed = ng.NoisyBlackBox(lambda p, g: [1.0, 2.0]).evaluate(torch.zeros(2, 1), torch.Generator())
    assert listed.tolist() == [1.0, 2.0]
    assert listed.dtype == torch.float32


def test_black_box_evaluate_draws_only_from_the_generator_it_is_given():
    box = ng.NoisyBlackBox(lambda p, g: p.sum(1) + torch.randn(p.shape[0], generator=g, dtype=p.dtype))
    points = torch.zeros(3, 2, dtype=torch.float64)
    a = box.evaluate(points, torch.Generator().manual_seed(4))
    expected = torch.randn(3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.equal(a, expected)


def test_black_box_refuses_bad_points_generators_and_values():
    box = ng.NoisyBlackBox(lambda p, g: p.sum(-1).reshape(-1))
    gen = torch.Generator()
    for bad in ([[0.0, 1.0]], torch.zeros(2), torch.zeros(2, 2, 2)):
        with pytest.raises(ValueError, match=r"points must have shape \(K, d\)"):
            box.evaluate(bad, gen)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="generator"):
        box.evaluate(torch.zeros(2, 2), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fn returned shape \(3,\) for 2 points"):
        ng.NoisyBlackBox(lambda p, g: torch.zeros(3)).evaluate(torch.zeros(2, 2), gen)
    with pytest.raises(ValueError, match=r"fn returned shape \(2, 1\) for 2 points"):
        ng.NoisyBlackBox(lambda p, g: torch.zeros(2, 1)).evaluate(torch.zeros(2, 2), gen)
    with pytest.raises(TypeError, match="fn must be callable as fn\\(points, generator\\), got int"):
        ng.NoisyBlackBox(3)  # type: ignore[arg-type]


def test_energy_value_and_gradient_leave_the_parameters_alone():
    f = ng.Energy(lambda x: (x**3).sum())
    params = torch.tensor([1.0, -2.0], dtype=torch.float64)
    assert f.value(params) == -7.0
    value, grad = f.value_and_grad(params)
    assert value == -7.0
    assert grad.tolist() == [3.0, 12.0]
    assert not params.requires_grad
    assert params.grad is None
    with pytest.raises(TypeError, match="fn must be callable as fn\\(params\\), got float"):
        ng.Energy(1.0)  # type: ignore[arg-type]


class _FixedGradient:
    """An estimator returning one fixed gradient whatever it is asked: a stand-in for a user's own estimator."""

    def __init__(self, grad: list[float]) -> None:
        self.objective = _linear_energy([0.0, 0.0])
        self.grad = torch.tensor(grad, dtype=torch.float64)

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        return Estimate(self.grad.clone(), 0.0, Cost(), {})

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_clipped_refuses_a_non_finite_gradient_from_the_wrapped_estimator(bad):
    clipped = ng.Clipped(_FixedGradient([1.0, bad]), 1.0)
    with pytest.raises(ng.NonFiniteGradientError, match="the wrapped estimator's gradient has 1 non-finite entry"):
        clipped.estimate(torch.zeros(2, dtype=torch.float64), torch.Generator())


def test_clipped_clips_a_finite_gradient_whose_squares_overflow():
    est = ng.Clipped(_FixedGradient([3e200, 4e200]), 2.0).estimate(
        torch.zeros(2, dtype=torch.float64), torch.Generator()
    )
    torch.testing.assert_close(est.grad, torch.tensor([1.2, 1.6], dtype=torch.float64), rtol=1e-15, atol=0)
    assert est.stats["raw_grad_norm"] == pytest.approx(5e200, rel=1e-15)
    assert est.stats["clipped"] == 1.0
