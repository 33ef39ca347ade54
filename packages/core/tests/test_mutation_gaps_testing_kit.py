"""Tests that close the mutation-testing gaps of the public check kit, ``noisygrad.testing`` (issue 18).

The kit is what users run on their own estimators and optimizers, so each check is held to both sides: a
deliberately broken object (a hidden counter, the global generator, a wrong dtype, a silent NaN, an in-place
write, a bias) must be rejected with an ``AssertionError`` that names the object and the check, and a correct
one must pass. The helpers of ``_common`` are checked directly. Every check here is exact: the estimators are
deterministic or draw from the generator they are given, and the one statistical check (``unbiasedness``) is
fed a scripted sequence of estimates whose mean and standard error are known in closed form, set 1% either side
of the check's own boundary ``t se + bias + rounding``; no Monte-Carlo tolerance is involved.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.stats
import torch

import noisygrad as ng
from noisygrad import Cost, Estimate
from noisygrad.rng import torch_stream
from noisygrad.testing import _common, estimators, optimizers
from noisygrad.testing._common import (
    REFUSALS,
    as_points,
    clone,
    describe_tensor,
    devices,
    difference,
    expect_refusal,
    fail,
    global_rng_states,
    global_seeds,
    is_real,
    poisoned,
    same_global_rng_states,
    serialise,
)
from noisygrad.testing.estimators import estimator_checks, mean_tolerance
from noisygrad.testing.optimizers import _flat_state, _Quadratic, _TorchRun, optimizer_checks, torch_optimizer_checks

F64 = torch.float64


def _raises(check: Any, label: str, name: str, match: str = "") -> None:
    """``check()`` fails with the battery's message ``"<label>: <name>: ..."`` (and ``match`` in it)."""
    with pytest.raises(AssertionError, match=f"^{label}: {name}: ") as info:
        check()
    assert match in str(info.value), str(info.value)


# ================================================================================================ _common


def test_fail_names_the_object_and_the_check():
    with pytest.raises(AssertionError, match=r"^obj: chk: what happened$"):
        fail("obj", "chk", "what happened")


def test_devices_is_the_cpu_first_and_cuda_when_seen():
    found = devices()
    assert found[0] == torch.device("cpu")
    assert len(found) == 1 + torch.cuda.is_available()
    if torch.cuda.is_available():
        assert found[1].type == "cuda"


def test_serialise_round_trips_plain_data_and_refuses_pickled_classes():
    value = {"a": torch.arange(3.0), "b": [1, 2.5, "s"], "c": (torch.tensor([True]),)}
    back = serialise("obj", "chk", value)
    assert difference(value, back) is None
    assert back is not value

    class Custom:
        pass

    with pytest.raises(AssertionError, match=r"^obj: chk: the state does not survive torch.save"):
        serialise("obj", "chk", {"x": Custom()})


def test_clone_copies_tensors_and_containers_and_shares_other_leaves():
    leaf = object()
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    value = {"t": t, "l": [t, leaf], "u": (t, 3)}
    copied = clone(value)
    assert isinstance(copied["l"], list)
    assert isinstance(copied["u"], tuple)
    assert copied["l"][1] is leaf
    assert copied["u"][1] == 3
    for c in (copied["t"], copied["l"][0], copied["u"][0]):
        assert c is not t
        assert not c.requires_grad
        assert torch.equal(c, t.detach())
        c.add_(1.0)
    assert torch.equal(t.detach(), torch.tensor([1.0, 2.0]))


def test_difference_of_identical_values_is_none():
    nan = torch.tensor([1.0, math.nan, 3.0])
    assert difference(nan, nan.clone()) is None
    assert difference(torch.tensor([1, 2]), torch.tensor([1, 2])) is None
    assert difference({"a": [1, (2.0, nan)]}, {"a": [1, (2.0, nan.clone())]}) is None
    assert difference(math.nan, math.nan) is None
    assert difference(1.5, 1.5) is None
    assert difference(torch.zeros(0), torch.zeros(0)) is None
    assert difference((1, 2), [1, 2]) is None  # a list and a tuple of the same items are the same sequence


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (torch.tensor([1.0]), 1.0, "value: Tensor vs float"),
        (1.0, torch.tensor([1.0]), "value: float vs Tensor"),
        (torch.tensor([1.0]), torch.tensor([1.0], dtype=F64), "value: torch.float32 (1,) on cpu vs torch.float64"),
        (torch.tensor([1.0]), torch.tensor([[1.0]]), "value: torch.float32 (1,) on cpu vs torch.float32 (1, 1)"),
        (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]), "value: tensors differ (largest difference 0.5)"),
        (torch.tensor([1.0, 2.0]), torch.tensor([1.0, math.nan]), "value: tensors differ (largest difference inf)"),
        (torch.tensor([math.nan, 2.0]), torch.tensor([1.0, math.nan]), "value: tensors differ"),
        (torch.tensor([1, 2]), torch.tensor([1, 3]), "value: tensors differ (largest difference 1)"),
        ({"a": 1}, [1], "value: dict vs list"),
        ([1], {"a": 1}, "value: list vs dict"),
        ({"a": 1}, {"b": 1}, "value: keys ['a'] vs ['b']"),
        ({"a": 1, "b": 2}, {"a": 1, "b": 3}, "['b']: 2 vs 3"),
        ({"a": {"c": [0, 5]}}, {"a": {"c": [0, 6]}}, "['a']['c'][1]: 5 vs 6"),
        ([1, 2], [1, 2, 3], "value: [1, 2] vs [1, 2, 3]"),
        ([1, 2], 3, "value: [1, 2] vs 3"),
        (3, (1, 2), "value: 3 vs (1, 2)"),
        ([1, 2], [1, 4], "[1]: 2 vs 4"),
        (1.0, 2.0, "value: 1.0 vs 2.0"),
        (math.nan, 1.0, "value: nan vs 1.0"),
        ("a", "b", "value: 'a' vs 'b'"),
    ],
)
def test_difference_says_where_and_what(a, b, expected):
    found = difference(a, b)
    assert found is not None
    assert found.startswith(expected), found


def test_difference_largest_gap_is_over_every_entry_and_the_path_is_given():
    found = difference(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.25, 2.0, 1.0]), "p")
    assert found == "p: tensors differ (largest difference 2)"


@pytest.mark.parametrize(
    ("exc", "ok"),
    [
        (ng.NonFiniteGradientError("gradient holds NaN"), True),
        (FloatingPointError("value is INF"), True),
        (ValueError("params must be finite"), True),
        (ValueError("params out of range"), False),
        (TypeError("params hold nan"), False),
        (RuntimeError("nan"), False),
    ],
)
def test_expect_refusal_accepts_only_a_clear_refusal(exc, ok):
    seen = []

    def call(*args):
        seen.append(args)
        raise exc

    if ok:
        expect_refusal("obj", "chk", "bad input", call, 1, 2)
    else:
        _raises(lambda: expect_refusal("obj", "chk", "bad input", call, 1, 2), "obj", "chk", "bad input: raised")
    assert seen == [(1, 2)]
    assert (FloatingPointError, ValueError) == REFUSALS


def test_expect_refusal_fails_a_silent_acceptance():
    _raises(lambda: expect_refusal("obj", "chk", "bad input", lambda: None), "obj", "chk", "accepted silently")


def test_poisoned_sets_the_second_entry_of_a_copy():
    t = torch.arange(6.0).reshape(2, 3)
    out = poisoned(t, math.nan)
    assert torch.equal(t, torch.arange(6.0).reshape(2, 3))
    assert out.shape == (2, 3)
    assert math.isnan(out[0, 1])
    assert torch.equal(out.view(-1)[[0, 2, 3, 4, 5]], torch.tensor([0.0, 2.0, 3.0, 4.0, 5.0]))
    one = poisoned(torch.tensor([7.0]), math.inf)
    assert torch.equal(one, torch.tensor([math.inf]))
    two = poisoned(torch.tensor([7.0, 8.0]), -1.0)
    assert torch.equal(two, torch.tensor([7.0, -1.0]))


def test_global_seeds_seeds_both_generators_and_restores_them():
    torch.manual_seed(99)
    np.random.seed(99)  # noqa: NPY002 -- the global generators are what is being checked
    before = global_rng_states()
    with global_seeds(7):
        t_draw = torch.rand(3)
        n_draw = np.random.rand(3)  # noqa: NPY002
    torch.manual_seed(7)
    np.random.seed(7)  # noqa: NPY002
    assert torch.equal(t_draw, torch.rand(3))
    assert np.array_equal(n_draw, np.random.rand(3))  # noqa: NPY002
    torch.set_rng_state(before[0])
    np.random.set_state(before[1])  # noqa: NPY002
    with global_seeds(7):
        torch.rand(3)
        np.random.rand(3)  # noqa: NPY002
    assert same_global_rng_states(before, global_rng_states())


def test_same_global_rng_states_tells_either_generator_apart():
    torch.manual_seed(1)
    np.random.seed(1)  # noqa: NPY002
    a = global_rng_states()
    assert same_global_rng_states(a, global_rng_states())
    torch.rand(1)
    assert not same_global_rng_states(a, global_rng_states())
    torch.set_rng_state(a[0])
    np.random.rand(1)  # noqa: NPY002
    assert not same_global_rng_states(a, global_rng_states())
    np.random.set_state(a[1])  # noqa: NPY002
    assert same_global_rng_states(a, global_rng_states())


def test_is_real_and_describe_tensor():
    assert is_real(1)
    assert is_real(2.5)
    assert is_real(np.float64(1.0))
    assert not is_real(True)
    assert not is_real("1")
    assert not is_real(None)
    assert describe_tensor(torch.zeros(2, 3, dtype=F64)) == "torch.float64 (2, 3) on cpu"


def test_as_points_takes_one_tensor_or_a_sequence_of_floating_tensors():
    x = torch.zeros(2)
    assert as_points(x)[0] is x
    assert len(as_points(x)) == 1
    y = torch.ones(3, dtype=F64)
    assert as_points((x, y)) == [x, y]
    for bad in ([], [x, torch.zeros(2, dtype=torch.int64)], torch.zeros(2, dtype=torch.int64), [x, [1.0]]):
        with pytest.raises(TypeError, match="params must be a floating tensor"):
            as_points(bad)


def test_refusal_words():
    assert _common._REFUSAL_WORDS == ("nan", "inf", "finite")


# ================================================================================================ estimators

OBJECTIVE_DATA = torch.arange(8.0, dtype=F64).reshape(4, 2) / 4.0


def _objective() -> ng.FiniteSum:
    """``f(w) = mean_i 0.5 |w - a_i|^2`` over 4 rows ``a_i``: gradient ``w - mean(a)``."""

    def loss(w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((w - a.to(w)) ** 2).sum(-1).mean()

    return ng.FiniteSum(loss, (OBJECTIVE_DATA.clone(),))


X = torch.tensor([0.3, -0.2], dtype=F64)


def _exact(w: torch.Tensor) -> torch.Tensor:
    return w - OBJECTIVE_DATA.mean(0).to(w)


class _Est:
    """A correct estimator: the exact gradient plus ``noise`` times a normal draw from the generator given.

    Knobs break one property at a time; every estimate's point and generator are recorded.
    """

    def __init__(self, objective: Any, noise: float = 0.1, **faults: Any) -> None:
        self._objective = objective
        self.noise = noise
        self.faults = faults
        self.calls = 0
        self.hidden = 0
        self.seen: list[torch.Tensor] = []
        self.generators: list[torch.ByteTensor] = []

    @property
    def objective(self) -> Any:
        return self._objective

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Any:
        f = self.faults
        self.seen.append(params.detach().clone())
        self.generators.append(generator.get_state())
        if f.get("write_state_first"):
            self.calls += 1
        if f.get("write_state_when_warm") and self.calls >= 2:
            self.calls += 100
        if f.get("mutate_params"):
            params.add_(0.0 * params + 1e-3)
        if f.get("mutate_data"):
            self._objective.data[0].add_(1e-3)
        finite = bool(torch.isfinite(params).all())
        if not finite:
            if f.get("accept") == "all" or (f.get("accept") == "inf" and not bool(torch.isnan(params).any())):
                pass
            elif f.get("refuse_with") is not None:
                raise f["refuse_with"]
            else:
                raise ng.NonFiniteGradientError("params hold NaN or Inf")
        self.calls += 1
        self.hidden += 1
        noise = torch.randn(params.shape, generator=generator, dtype=F64).to(params)
        if f.get("global_torch"):
            noise = noise + 1e-3 * torch.randn(params.shape, dtype=F64).to(params)
        if f.get("global_numpy"):
            noise = noise + 1e-3 * float(np.random.rand())  # noqa: NPY002 -- the fault under test
        if f.get("initial_seed"):
            noise = noise + 1e-3 * (torch.initial_seed() % 7)
        grad = _exact(params) + self.noise * noise + f.get("offset", 0.0)
        if f.get("hidden_grad"):
            grad = grad * (1.0 + 0.01 * self.hidden)
        if "dtype" in f:
            grad = grad.to(f["dtype"])
        if f.get("flatten"):
            grad = grad.reshape(1, -1)
        if f.get("nan_grad"):
            grad = poisoned(grad, math.nan)
        value = f.get("value", float(0.5 * (params**2).sum()))
        cost = f.get("cost", Cost(examples=4))
        if f.get("hidden_cost"):
            cost = Cost(examples=4, shots=self.hidden)
        stats = f.get("stats", {"calls": float(self.calls)})
        if f.get("hidden_stats"):
            stats = {"hidden": float(self.hidden)}
        if f.get("hidden_value"):
            value = float(self.hidden)
        if f.get("not_estimate"):
            return grad
        if f.get("numpy_grad"):
            return Estimate(grad.numpy(), value, cost, stats)
        return Estimate(grad, value, cost, stats)

    def state_dict(self) -> Any:
        if "state" in self.faults:
            return self.faults["state"]
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.faults.get("refuse_load"):
            raise ValueError("no")
        self.calls = state["calls"]


def _est_checks(factory: Any = None, **options: Any) -> dict[str, Any]:
    options.setdefault("samples", 50)
    return dict(estimator_checks(factory or (lambda o: _Est(o)), _objective(), X, name="E", **options))


def test_estimator_check_names_order_and_constants():
    assert estimators.ESTIMATOR_CHECKS == (
        "protocol",
        "state_round_trip",
        "determinism",
        "dtype_shape_device",
        "nonfinite_params",
        "refusal_keeps_state",
        "no_input_mutation",
        "unbiasedness",
    )
    assert [n for n, _ in estimator_checks(lambda o: _Est(o), _objective(), X)] == list(estimators.ESTIMATOR_CHECKS)
    assert estimators.FAMILY_FALSE_ALARM == 1e-6
    assert estimators.DRAWS == ("fresh", "sequential")


def test_a_correct_estimator_passes_every_check():
    for draws in ("fresh", "sequential"):
        for _, check in estimator_checks(lambda o: _Est(o), _objective(), [X, X.float()], samples=60, draws=draws):
            check()


def test_mean_tolerance_is_the_bonferroni_student_quantile():
    for draws, d in ((2, 1), (10, 3), (1000, 4)):
        expected = scipy.stats.t.ppf(1.0 - 1e-6 / (2 * d), draws - 1)
        assert mean_tolerance(draws, d) == pytest.approx(expected, rel=1e-12)
    for draws, d in ((1, 1), (0, 3), (5, 0)):
        with pytest.raises(ValueError, match="draws >= 2 and coordinates >= 1"):
            mean_tolerance(draws, d)


def test_estimator_checks_refuse_bad_options():
    make = lambda o: _Est(o)  # noqa: E731
    estimator_checks(make, _objective(), X, samples=2, calls=2, bias_tolerance=0.0)  # the smallest allowed
    for options in ({"samples": 1}, {"calls": 1}):
        with pytest.raises(ValueError, match="samples and calls must be >= 2"):
            estimator_checks(make, _objective(), X, **options)
    for bias in (-1e-9, math.nan, math.inf):
        with pytest.raises(ValueError, match="bias_tolerance must be a finite number >= 0"):
            estimator_checks(make, _objective(), X, bias_tolerance=bias)
    with pytest.raises(ValueError, match="draws must be one of"):
        estimator_checks(make, _objective(), X, draws="fresh ")
    box = ng.NoisyBlackBox(lambda x, gen: float(x.sum()))
    with pytest.raises(ValueError, match="gradient= is required"):
        estimator_checks(make, box, X)
    estimator_checks(make, box, X, gradient=torch.zeros(2, dtype=F64))
    with pytest.raises(TypeError, match="params must be a floating tensor"):
        estimator_checks(make, _objective(), [])


def test_estimator_failures_name_the_class_by_default():
    class Offset(_Est):
        def __init__(self, objective):
            super().__init__(objective, offset=1.0)

    checks = dict(estimator_checks(Offset, _objective(), X, samples=20))
    _raises(checks["unbiasedness"], "Offset", "unbiasedness")


def test_the_checks_walk_a_short_path_and_seed_the_generators():
    made: list[_Est] = []

    def make(o):
        made.append(_Est(o))
        return made[-1]

    direction = torch.tensor([-1.0, 1.0], dtype=F64)
    checks = dict(estimator_checks(make, _objective(), X, calls=4, seed=5, samples=3, name="E"))
    made.clear()
    checks["no_input_mutation"]()
    assert len(made) == 1
    assert torch.equal(torch.stack(made[0].seen), torch.stack([X + (0.05 * t) * direction for t in range(4)]))
    assert torch.equal(made[0].generators[0], torch.Generator().manual_seed(5).get_state())
    made.clear()
    checks["state_round_trip"]()
    assert [len(e.seen) for e in made] == [4, 2, 2]
    assert torch.equal(made[2].seen[0], X + 0.1 * direction)
    made.clear()
    checks["unbiasedness"]()
    assert len(made) == 3
    assert all(len(e.seen) == 1 and torch.equal(e.seen[0], X) for e in made)
    assert torch.equal(made[0].generators[0], torch_stream(5, 1).get_state())
    made.clear()
    checks["determinism"]()
    assert [len(e.seen) for e in made] == [4, 4]
    made.clear()
    checks["dtype_shape_device"]()
    assert [len(e.seen) for e in made] == [2]
    made.clear()
    checks["nonfinite_params"]()
    assert [len(e.seen) for e in made] == [3, 3]
    made.clear()
    checks["refusal_keeps_state"]()
    assert [len(e.seen) for e in made] == [1, 1, 3, 3]
    sequential = dict(estimator_checks(make, _objective(), X, samples=3, draws="sequential", name="E"))
    made.clear()
    sequential["unbiasedness"]()
    assert [len(e.seen) for e in made] == [3]


def test_the_path_keeps_the_points_dtype_and_shape():
    point = torch.zeros(2, 3, dtype=torch.float32)
    step = estimators._path(point, 2)
    assert step.dtype == torch.float32
    assert step.shape == (2, 3)
    assert torch.equal(step, point + 0.1 * torch.linspace(-1.0, 1.0, 6, dtype=F64).float().reshape(2, 3))


@pytest.mark.parametrize(
    ("faults", "match"),
    [
        ({"not_estimate": True}, "must return a noisygrad.Estimate"),
        ({"numpy_grad": True}, "with a tensor grad"),
        ({"value": math.nan}, "Estimate.value must be a finite number or None"),
        ({"value": math.inf}, "Estimate.value must be a finite number or None"),
        ({"value": True}, "Estimate.value must be a finite number or None"),
        ({"value": "1.0"}, "Estimate.value must be a finite number or None"),
        ({"cost": (4, 0, 0)}, "Estimate.cost must be a noisygrad.Cost"),
        ({"cost": Cost(examples=-1)}, "Estimate.cost must be a noisygrad.Cost"),
        ({"cost": Cost(evaluations=-1)}, "Estimate.cost must be a noisygrad.Cost"),
        ({"cost": Cost(shots=-1)}, "Estimate.cost must be a noisygrad.Cost"),
        ({"cost": Cost(examples=4.0)}, "Estimate.cost must be a noisygrad.Cost"),
        ({"stats": [("a", 1.0)]}, "Estimate.stats must map names to numbers"),
        ({"stats": {1: 1.0}}, "Estimate.stats must map names to numbers"),
        ({"stats": {"a": True}}, "Estimate.stats must map names to numbers"),
        ({"stats": {"a": 1.0, "b": "x"}}, "Estimate.stats must map names to numbers"),
        ({"state": [1]}, "state_dict() returned list, not a dict"),
        ({"state": {"calls": object()}}, "the state does not survive"),
        ({"refuse_load": True}, "load_state_dict refused its own state_dict"),
    ],
)
def test_protocol_rejects_a_broken_estimate(faults, match):
    _raises(_est_checks(lambda o: _Est(o, **faults))["protocol"], "E", "protocol", match)


def test_protocol_accepts_the_edges_of_a_good_estimate():
    for faults in ({"value": None}, {"value": 3}, {"cost": Cost(0, 0, 0)}, {"stats": {}}, {"stats": {"a": 2}}):
        _est_checks(lambda o, f=faults: _Est(o, **f))["protocol"]()


def test_protocol_rejects_what_is_not_an_estimator():
    class NoState:
        objective = None

        def estimate(self, params, generator):
            return None

    _raises(_est_checks(lambda o: NoState())["protocol"], "E", "protocol", "is not a noisygrad.Estimator")


@pytest.mark.parametrize("fault", ["hidden_grad", "hidden_value", "hidden_cost", "hidden_stats"])
def test_state_round_trip_catches_memory_kept_outside_the_state(fault):
    checks = _est_checks(lambda o: _Est(o, **{fault: True}))
    _raises(checks["state_round_trip"], "E", "state_round_trip", "after 2 estimates")
    checks["determinism"]()  # two fresh objects agree: only the resumption tells


def test_state_round_trip_needs_the_generator_restored():
    """The noise comes from the generator, so the continuation matches only with the saved generator state."""

    class Ignores(_Est):
        def load_state_dict(self, state):
            self.calls = 0  # forgets the count: the recorded stats differ

    _raises(_est_checks(Ignores)["state_round_trip"], "E", "state_round_trip")
    _est_checks()["state_round_trip"]()


@pytest.mark.parametrize("fault", ["global_torch", "global_numpy"])
def test_determinism_catches_the_global_generators(fault):
    _raises(_est_checks(lambda o: _Est(o, **{fault: True}))["determinism"], "E", "determinism", "global generator")


def test_determinism_catches_a_run_that_depends_on_the_global_seed():
    _raises(_est_checks(lambda o: _Est(o, initial_seed=True))["determinism"], "E", "determinism", "equally seeded")


@pytest.mark.parametrize("faults", [{"dtype": torch.float32}, {"flatten": True}])
def test_dtype_shape_device_catches_a_changed_gradient(faults):
    _raises(
        _est_checks(lambda o: _Est(o, **faults))["dtype_shape_device"],
        "E",
        "dtype_shape_device",
        "params torch.float64 (2,) on cpu gave a gradient",
    )


def test_dtype_shape_device_runs_at_every_point():
    make = lambda o: _Est(o, dtype=F64)  # noqa: E731 -- right for float64 points only
    checks = dict(estimator_checks(make, _objective(), [X, X.float()], name="E", samples=3))
    _raises(checks["dtype_shape_device"], "E", "dtype_shape_device", "params torch.float32 (2,) on cpu")
    dict(estimator_checks(make, _objective(), [X], samples=3))["dtype_shape_device"]()


def test_dtype_shape_device_checks_the_second_estimate_too():
    class Late(_Est):
        def estimate(self, params, generator):
            out = super().estimate(params, generator)
            return out if self.calls < 2 else Estimate(out.grad.float(), out.value, out.cost, out.stats)

    _raises(_est_checks(Late)["dtype_shape_device"], "E", "dtype_shape_device")


@pytest.mark.parametrize(
    ("faults", "match"),
    [
        ({"accept": "all"}, "params holding nan: accepted silently"),
        ({"accept": "inf"}, "params holding inf: accepted silently"),
        ({"refuse_with": ValueError("bad params")}, "without saying NaN/Inf/non-finite"),
        ({"refuse_with": TypeError("params hold nan")}, "raised TypeError"),
    ],
)
def test_nonfinite_params_catches_a_silent_or_unclear_acceptance(faults, match):
    _raises(_est_checks(lambda o: _Est(o, **faults))["nonfinite_params"], "E", "nonfinite_params", match)


def test_nonfinite_params_runs_two_estimates_first():
    class RefusesOnlyWhenWarm(_Est):
        def estimate(self, params, generator):
            if self.calls < 2 and not bool(torch.isfinite(params).all()):
                return Estimate(params.clone(), None, Cost(), {})
            return super().estimate(params, generator)

    _est_checks(RefusesOnlyWhenWarm)["nonfinite_params"]()


@pytest.mark.parametrize(
    ("faults", "match"),
    [({"write_state_first": True}, "(a fresh estimator) changed the state"), ({"write_state_when_warm": True}, "")],
)
def test_refusal_keeps_state_catches_a_state_written_before_refusing(faults, match):
    _raises(_est_checks(lambda o: _Est(o, **faults))["refusal_keeps_state"], "E", "refusal_keeps_state", match)


def test_refusal_keeps_state_after_two_estimates_is_checked():
    class Warm(_Est):
        def estimate(self, params, generator):
            if self.calls >= 2 and not bool(torch.isfinite(params).all()):
                self.calls = 99
            return super().estimate(params, generator)

    _raises(_est_checks(Warm)["refusal_keeps_state"], "E", "refusal_keeps_state", "(after 2 estimates)")


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_refusal_keeps_state_checks_nan_and_inf(bad):
    class OneKind(_Est):
        def estimate(self, params, generator):
            hit = torch.isnan(params).any() if bad == "nan" else torch.isinf(params).any()
            if bool(hit):
                self.calls = -5
            return super().estimate(params, generator)

    _raises(_est_checks(OneKind)["refusal_keeps_state"], "E", "refusal_keeps_state", f"holding {bad}")


@pytest.mark.parametrize("fault", ["mutate_params", "mutate_data"])
def test_no_input_mutation_catches_in_place_writes(fault):
    _raises(
        _est_checks(lambda o: _Est(o, **{fault: True}))["no_input_mutation"],
        "E",
        "no_input_mutation",
        "changed its params or the objective's data",
    )


def test_no_input_mutation_reads_only_tensor_data():
    objective = _objective()
    objective.data = (objective.data[0], "not a tensor")
    dict(estimator_checks(lambda o: _Est(o), objective, X, samples=3))["no_input_mutation"]()


def test_unbiasedness_catches_a_bias_and_passes_it_within_bias_tolerance():
    biased = lambda o: _Est(o, offset=0.5)  # noqa: E731
    _raises(_est_checks(biased)["unbiasedness"], "E", "unbiasedness", "in 2 of 2 coordinates")
    # 0.5 against t se + bias: se is about 0.1 / sqrt(50) = 0.014, t = 5.8: 0.08 + 0.3 < 0.5 < 0.08 + 0.6
    _raises(_est_checks(biased, bias_tolerance=0.3)["unbiasedness"], "E", "unbiasedness")
    _est_checks(biased, bias_tolerance=0.6)["unbiasedness"]()


def test_unbiasedness_catches_a_nan_gradient():
    _raises(_est_checks(lambda o: _Est(o, nan_grad=True))["unbiasedness"], "E", "unbiasedness", "[1] mean nan")


def test_unbiasedness_takes_the_gradient_as_a_tensor_or_a_function():
    shifted = _exact(X) + 0.5
    make = lambda o: _Est(o, offset=0.5)  # noqa: E731
    _est_checks(make, gradient=shifted)["unbiasedness"]()
    _est_checks(make, gradient=lambda w: _exact(w) + 0.5)["unbiasedness"]()
    _raises(_est_checks(make, gradient=_exact)["unbiasedness"], "E", "unbiasedness")
    _raises(
        _est_checks(make, gradient=torch.zeros(3, dtype=F64))["unbiasedness"],
        "E",
        "unbiasedness",
        "gradient= has 3 entries, the estimates 2",
    )


class _Cycle:
    """Deterministic estimates from a fixed cycle ``exact + rows[k % len(rows)]`` (k counts this object's calls)."""

    def __init__(self, objective: Any, rows: torch.Tensor) -> None:
        self._objective = objective
        self.rows = rows
        self.k = 0

    @property
    def objective(self) -> Any:
        return self._objective

    def estimate(self, params, generator):
        row = self.rows[self.k % len(self.rows)].to(params)
        self.k += 1
        return Estimate(_exact(params) + row, None, Cost(examples=1), {})

    def state_dict(self):
        return {"k": self.k}

    def load_state_dict(self, state):
        self.k = state["k"]


def test_unbiasedness_fresh_or_sequential_draws():
    """A fixed cycle ``+1, -1`` is unbiased over a pass (sequential) but always ``+1`` when fresh."""
    rows = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=F64)
    make = lambda o: _Cycle(o, rows)  # noqa: E731
    dict(estimator_checks(make, _objective(), X, samples=10, draws="sequential"))["unbiasedness"]()
    _raises(
        dict(estimator_checks(make, _objective(), X, samples=10, name="C"))["unbiasedness"],
        "C",
        "unbiasedness",
        "(fresh draws)",
    )


@pytest.mark.parametrize("side", [0.99, 1.01])
def test_unbiasedness_boundary_is_t_times_the_standard_error(side):
    """Sequential draws ``d + a, d - a`` (n = 4): mean ``d``, sd ``a sqrt(4/3)``, se ``a / sqrt(3)``."""
    a, n = 0.3, 4
    se = a * math.sqrt(4.0 / 3.0) / math.sqrt(n)
    t = mean_tolerance(n, 2)
    d = side * t * se
    rows = torch.tensor([[d + a, d + a], [d - a, d - a]], dtype=F64)
    checks = dict(estimator_checks(lambda o: _Cycle(o, rows), _objective(), X, samples=n, draws="sequential", name="C"))
    if side < 1:
        checks["unbiasedness"]()
    else:
        _raises(checks["unbiasedness"], "C", "unbiasedness", "in 2 of 2 coordinates")


@pytest.mark.parametrize("side", [0.99, 1.01])
def test_unbiasedness_boundary_adds_the_bias_tolerance(side):
    """A constant offset (se = 0) against ``bias_tolerance`` alone (the rounding allowance is 1e-13 here)."""
    rows = torch.tensor([[0.25, -0.25]], dtype=F64)
    checks = dict(
        estimator_checks(lambda o: _Cycle(o, rows), _objective(), X, samples=3, bias_tolerance=0.25 / side, name="C")
    )
    if side < 1:
        checks["unbiasedness"]()
    else:
        _raises(checks["unbiasedness"], "C", "unbiasedness", "in 2 of 2")


@pytest.mark.parametrize("side", [0.995, 1.005])
def test_unbiasedness_rounding_allowance_is_100_eps_of_the_scale(side):
    """A constant offset (se = 0) against ``100 eps (max|expected| + max|g|)`` in float32.

    At ``x = (2, 1)`` the exact gradient is ``(1.25, 0)``: the offset sits in the zero coordinate, so it is
    represented exactly and the scale is ``1.25 + 1.25``.
    """
    eps = torch.finfo(torch.float32).eps
    x = torch.tensor([2.0, 1.0], dtype=torch.float32)
    assert torch.equal(_exact(x), torch.tensor([1.25, 0.0]))
    offset = side * 100 * eps * 2.5
    rows = torch.tensor([[0.0, offset]], dtype=F64)
    checks = dict(estimator_checks(lambda o: _Cycle(o, rows), _objective(), x, samples=3, name="C"))
    if side < 1:
        checks["unbiasedness"]()
    else:
        _raises(checks["unbiasedness"], "C", "unbiasedness", "in 1 of 2")


def test_unbiasedness_passes_an_exact_estimate_of_a_zero_gradient():
    """gap 0 <= tolerance 0: a zero-variance estimator exactly at a stationary point passes."""
    at_minimum = OBJECTIVE_DATA.mean(0)
    zero = torch.zeros(1, 2, dtype=F64)
    dict(estimator_checks(lambda o: _Cycle(o, zero), _objective(), at_minimum, samples=3))["unbiasedness"]()


def test_the_path_is_float64_before_the_cast_and_keeps_the_device():
    point = torch.zeros(6, dtype=F64)
    assert torch.equal(estimators._path(point, 1), 0.05 * torch.linspace(-1.0, 1.0, 6, dtype=F64))
    assert estimators._path(torch.zeros(3, device="meta"), 1).device.type == "meta"


def test_record_holds_grad_value_cost_and_stats():
    out = Estimate(torch.ones(2), 1.5, Cost(1, 2, 3), {"a": 1.0})
    assert estimators._record(out)[1:] == (1.5, (1, 2, 3), {"a": 1.0})
    assert torch.equal(estimators._record(out)[0], torch.ones(2))


# ================================================================================================ optimizers


class _Opt:
    """A correct plain SGD on the kit's protocol, with knobs that break one property at a time."""

    def __init__(self, **faults: Any) -> None:
        self.lr = faults.pop("lr", ng.Constant(0.1))
        self.faults = faults
        self.calls = 0
        self.updates: list[tuple[tuple[int, ...], torch.dtype]] = []

    def init(self, params: torch.Tensor) -> Any:
        f = self.faults
        if f.get("init_mutates"):
            params.add_(1.0)
        if "init_state" in f:
            return f["init_state"]
        state: dict[str, Any] = {"step": f.get("first_step", 0), "m": torch.zeros_like(params)}
        if f.get("int_state"):
            state["count"] = torch.zeros(3, dtype=torch.int64)
        if f.get("state_dtype"):
            state["m"] = state["m"].to(f["state_dtype"])
        if f.get("state_2d_dtype") and params.ndim == 2:
            state["m"] = state["m"].double()
        return state

    def update(self, params, grad, state, *, lr=None):
        f = self.faults
        self.updates.append((tuple(params.shape), params.dtype))
        if not (f.get("accept_grad") or bool(torch.isfinite(grad).all())):
            raise ng.NonFiniteGradientError("gradient holds NaN or Inf")
        if not (f.get("accept_params") or bool(torch.isfinite(params).all())):
            raise ng.NonFiniteGradientError("params hold NaN or Inf")
        self.calls += 1
        rate = float(self.lr(state["step"])) if lr is None else lr
        if f.get("lr_differs") and lr is not None:
            rate *= 1.5
        if f.get("hidden_counter"):
            rate /= self.calls
        if f.get("global_torch"):
            grad = grad + 1e-3 * torch.randn(grad.shape, dtype=grad.dtype)
        if f.get("initial_seed"):
            grad = grad + 1e-3 * (torch.initial_seed() % 7)
        if f.get("mutate_grad"):
            grad.mul_(1.0)
            grad.add_(1e-3)
        if f.get("mutate_params"):
            params.add_(1e-3)
        m = state["m"]
        if f.get("mutate_state"):
            m.add_(1.0)
        new = params - rate * grad
        if f.get("to_float64"):
            new = new.double()
        if f.get("flatten"):
            new = new.reshape(-1)
        if f.get("numpy") and self.calls == 3:  # the last update of the check's runs of 3
            new = new.numpy()
        if f.get("flatten_2d") and params.ndim == 2 and self.calls == 3:
            new = new.reshape(-1)
        out = {**state, "step": state["step"] + f.get("step_by", 1), "m": m + grad}
        if f.get("hidden_state"):
            out["hidden"] = self.calls
        return new, out


def _opt_checks(factory: Any = None, **options: Any) -> dict[str, Any]:
    return dict(optimizer_checks(factory or _Opt, name="O", **options))


def test_optimizer_check_names_and_order():
    assert optimizers.OPTIMIZER_CHECKS == (
        "protocol",
        "state_round_trip",
        "determinism",
        "dtype_shape_device",
        "nonfinite_grad",
        "nonfinite_params",
        "no_input_mutation",
    )
    assert [n for n, _ in optimizer_checks(_Opt)] == list(optimizers.OPTIMIZER_CHECKS)


def test_a_correct_optimizer_passes_every_check():
    for _, check in optimizer_checks(_Opt):
        check()
    for _, check in optimizer_checks(lambda: ng.Adam(0.05)):
        check()
    for _, check in optimizer_checks(_Opt, shapes=((4,),), steps=2, resume_after=1):
        check()


def test_resume_after_must_lie_inside_the_run():
    optimizer_checks(_Opt, steps=6, resume_after=5)
    for resume_after in (0, 6, 7):
        with pytest.raises(ValueError, match=r"resume_after must lie in \(0, steps=6\)"):
            optimizer_checks(_Opt, steps=6, resume_after=resume_after)


def test_optimizer_failures_name_the_class_by_default():
    class Hidden(_Opt):
        def __init__(self):
            super().__init__(hidden_counter=True)

    _raises(dict(optimizer_checks(Hidden))["state_round_trip"], "Hidden", "state_round_trip")


def test_the_checks_run_the_documented_steps_shapes_and_dtypes():
    made: list[_Opt] = []

    def make():
        made.append(_Opt())
        return made[-1]

    checks = dict(optimizer_checks(make, name="O"))
    made.clear()
    checks["state_round_trip"]()
    assert [len(o.updates) for o in made] == [6, 3, 3, 6, 3, 3]
    assert {u for o in made[:3] for u in o.updates} == {((5,), F64)}
    assert {u for o in made[3:] for u in o.updates} == {((5,), torch.float32)}
    made.clear()
    checks["determinism"]()
    assert [len(o.updates) for o in made] == [6, 6]
    made.clear()
    checks["dtype_shape_device"]()
    shapes_seen = [o.updates[0] for o in made]
    expected = [(s, dt) for _ in devices() for dt in (torch.float32, F64) for s in ((5,), (2, 3))]
    assert shapes_seen == expected
    assert all(len(o.updates) == 3 for o in made)
    made.clear()
    checks["protocol"]()
    assert [len(o.updates) for o in made] == [2]
    made.clear()
    checks["no_input_mutation"]()
    assert [len(o.updates) for o in made] == [3]
    made.clear()
    checks["nonfinite_grad"]()
    checks["nonfinite_params"]()
    assert [len(o.updates) for o in made] == [4, 4]
    short = dict(optimizer_checks(make, steps=4, resume_after=1, name="O"))
    made.clear()
    short["state_round_trip"]()
    assert [len(o.updates) for o in made] == [4, 1, 3, 4, 1, 3]


@pytest.mark.parametrize(
    ("faults", "match"),
    [
        ({"init_state": [0]}, "init returned list, not a dict"),
        ({"init_state": {"m": 0}}, "init's state must have 'step' = 0"),
        ({"first_step": 1}, "init's state must have 'step' = 0"),
        ({"lr": lambda t: 0.0}, "lr(0) must be a finite number > 0"),
        ({"lr": lambda t: -0.1}, "lr(0) must be a finite number > 0"),
        ({"lr": lambda t: math.inf}, "lr(0) must be a finite number > 0"),
        ({"lr": lambda t: math.nan}, "lr(0) must be a finite number > 0"),
        ({"lr": lambda t: True}, "lr(0) must be a finite number > 0"),
        ({"lr": lambda t: "0.1"}, "lr(0) must be a finite number > 0"),
        ({"step_by": 2}, "after one update the state's 'step' must be 1"),
        ({"step_by": 0}, "after one update the state's 'step' must be 1"),
        ({"lr_differs": True}, "update(..., lr=lr(0)) differs from update(...)"),
    ],
)
def test_protocol_rejects_a_broken_rule(faults, match):
    _raises(_opt_checks(lambda: _Opt(**faults))["protocol"], "O", "protocol", match)


def test_protocol_accepts_an_integer_rate_and_rejects_a_non_optimizer():
    _opt_checks(lambda: _Opt(lr=lambda t: 1))["protocol"]()

    class NoUpdate:
        lr = 0.1

        def init(self, params):
            return {"step": 0}

    _raises(_opt_checks(NoUpdate)["protocol"], "O", "protocol", "is not a noisygrad.Optimizer")

    class ListState(_Opt):
        def update(self, params, grad, state, *, lr=None):
            new, out = super().update(params, grad, state, lr=lr)
            return new, [out]

    _raises(_opt_checks(ListState)["protocol"], "O", "protocol", "'step' must be 1, got None")


def test_state_round_trip_catches_a_hidden_counter_and_a_hidden_state():
    _raises(_opt_checks(lambda: _Opt(hidden_counter=True))["state_round_trip"], "O", "state_round_trip", "after 3")
    _raises(
        _opt_checks(lambda: _Opt(hidden_state=True))["state_round_trip"],
        "O",
        "state_round_trip",
        "torch.float64: the final state differs",
    )


def test_state_round_trip_catches_a_state_that_is_not_plain_data():
    class Custom:
        pass

    class Pickled(_Opt):
        def init(self, params):
            return {**super().init(params), "obj": Custom()}

    _raises(_opt_checks(Pickled)["state_round_trip"], "O", "state_round_trip", "does not survive")


def test_state_round_trip_checks_float32_too():
    class Float32Only(_Opt):
        def update(self, params, grad, state, *, lr=None):
            new, out = super().update(params, grad, state, lr=lr)
            if params.dtype == torch.float32:
                new = new / self.calls
            return new, out

    _raises(_opt_checks(Float32Only)["state_round_trip"], "O", "state_round_trip", "torch.float32: after 3")


@pytest.mark.parametrize(("fault", "match"), [("global_torch", "global generator"), ("initial_seed", "12345")])
def test_determinism_catches_the_global_generator(fault, match):
    _raises(_opt_checks(lambda: _Opt(**{fault: True}))["determinism"], "O", "determinism", match)


@pytest.mark.parametrize(
    ("faults", "match"),
    [
        ({"to_float64": True}, "params torch.float32 (5,) on cpu came back as torch.float64"),
        ({"flatten_2d": True}, "params torch.float32 (2, 3) on cpu came back as torch.float32 (6,)"),
        ({"numpy": True}, "came back as ndarray"),
        ({"state_dtype": F64}, "state ['m'] is torch.float64 (5,) on cpu for torch.float32 (5,)"),
        ({"state_2d_dtype": True}, "state ['m'] is torch.float64 (2, 3)"),
    ],
)
def test_dtype_shape_device_catches_a_changed_tensor(faults, match):
    _raises(_opt_checks(lambda: _Opt(**faults))["dtype_shape_device"], "O", "dtype_shape_device", match)


def test_dtype_shape_device_uses_the_given_shapes_and_ignores_integer_state():
    _opt_checks(lambda: _Opt(flatten_2d=True, int_state=True), shapes=((5,), (3,)))["dtype_shape_device"]()


@pytest.mark.parametrize(
    ("faults", "grad_ok", "params_ok"),
    [({"accept_grad": True}, False, True), ({"accept_params": True}, True, False), ({}, True, True)],
)
def test_nonfinite_grad_and_params_are_checked_apart(faults, grad_ok, params_ok):
    checks = _opt_checks(lambda: _Opt(**faults))
    for check, ok in (("nonfinite_grad", grad_ok), ("nonfinite_params", params_ok)):
        if ok:
            checks[check]()
        else:
            _raises(checks[check], "O", check, "holding nan: accepted silently")


def test_nonfinite_checks_try_inf_as_well():
    class NanOnly(_Opt):
        def update(self, params, grad, state, *, lr=None):
            if bool(torch.isinf(grad).any()) or bool(torch.isinf(params).any()):
                return params, state
            return super().update(params, grad, state, lr=lr)

    checks = _opt_checks(NanOnly)
    _raises(checks["nonfinite_grad"], "O", "nonfinite_grad", "a gradient holding inf: accepted silently")
    _raises(checks["nonfinite_params"], "O", "nonfinite_params", "params holding inf: accepted silently")


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        ("init_mutates", "init changed the params it was given"),
        ("mutate_grad", "update changed the grad it was given"),
        ("mutate_params", "update changed the params it was given"),
        ("mutate_state", "update changed the state it was given"),
    ],
)
def test_optimizer_no_input_mutation_catches_in_place_writes(fault, match):
    _raises(_opt_checks(lambda: _Opt(**{fault: True}))["no_input_mutation"], "O", "no_input_mutation", match)


def test_quadratic_is_fixed_by_its_seed_and_its_loss_has_the_gradient():
    q = _Quadratic((2, 3), 4, torch.float32, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn((2, 3), generator=gen, dtype=F64)
    center = torch.randn((2, 3), generator=gen, dtype=F64)
    curvature = 0.5 + 1.5 * torch.rand((2, 3), generator=gen, dtype=F64)
    noise = [0.1 * torch.randn((2, 3), generator=gen, dtype=F64) for _ in range(4)]
    assert torch.equal(q.x0, x0.float())
    assert torch.equal(q.center, center.float())
    assert torch.equal(q.curvature, curvature.float())
    assert len(q.noise) == 4
    assert all(torch.equal(a, b.float()) for a, b in zip(q.noise, noise, strict=True))
    assert q.x0.dtype == torch.float32
    other = _Quadratic((2, 3), 1, F64, torch.device("cpu"), seed=1)
    assert not torch.equal(other.x0, x0)
    x = torch.linspace(-1.0, 1.0, 6).reshape(2, 3).requires_grad_(True)
    (grad,) = torch.autograd.grad(q.loss(x, 2), x)
    assert torch.allclose(grad, q.grad(x.detach(), 2), rtol=1e-6, atol=1e-7)
    assert torch.equal(q.grad(x.detach(), 2), q.curvature * (x.detach() - q.center) + q.noise[2])
    expected_loss = (0.5 * q.curvature * (x.detach() - q.center) ** 2 + q.noise[2] * x.detach()).sum()
    assert torch.equal(q.loss(x.detach(), 2), expected_loss)


def test_flat_state_lists_every_tensor_with_its_path():
    a, b, c = torch.zeros(1), torch.ones(2), torch.full((1,), 2.0)
    found = _flat_state({"m": a, "hist": [b, (c, 3)], "n": 1})
    assert [(k, v) for k, v in found] == [("['m']", a), ("['hist'][0]", b), ("['hist'][1][0]", c)]
    assert _flat_state(a) == [("value", a)]
    assert _flat_state(3) == []


# ================================================================================================ torch optimizers


def _sgd(params: list[torch.Tensor]) -> torch.optim.Optimizer:
    return ng.TorchSGD(params, lr=0.1, momentum=0.9)


class _TSGD(ng.TorchSGD):
    """``TorchSGD(lr=0.1, momentum=0.9)`` with knobs that break one property at a time."""

    faults: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: list[torch.Tensor]) -> None:
        super().__init__(params, lr=0.1, momentum=0.9)
        self.calls = 0

    def step(self, closure=None):
        f = self.faults
        self.calls += 1
        if f.get("hidden_counter"):
            for group in self.param_groups:
                group["lr"] = 0.1 / self.calls
        if f.get("global_torch"):
            torch.rand(1)
        if f.get("half_apply"):
            loss = closure()
            with torch.no_grad():
                self.param_groups[0]["params"][0].add_(1.0)
            return super().step(lambda: loss)
        if f.get("accept_nan"):
            loss = closure()
            with torch.no_grad():
                for p in self.param_groups[0]["params"]:
                    p.sub_(0.1 * p.grad.nan_to_num())
            return loss
        out = super().step(closure)
        if f.get("initial_seed"):
            with torch.no_grad():
                self.param_groups[0]["params"][0].add_(1e-3 * (torch.initial_seed() % 7))
        if f.get("mutate_grad") and self.calls == 3:
            self.param_groups[0]["params"][0].grad.add_(1.0)
        if f.get("to_double"):
            for p in self.param_groups[0]["params"]:
                p.data = p.data.double()
        if f.get("replace"):
            self.param_groups[0]["params"] = [p.detach().clone() for p in self.param_groups[0]["params"]]
        if "state_tensor" in f:
            for p in self.param_groups[0]["params"]:
                self.state[p][f["state_tensor"][0]] = f["state_tensor"][1].clone()
        if f.get("return_none"):
            return None
        if f.get("return_float"):
            return float(out)
        if f.get("return_other"):
            return out + 1.0
        return out

    def state_dict(self):
        out = super().state_dict()
        if self.faults.get("no_groups"):
            del out["param_groups"]
        return out


def _broken(**faults: Any) -> type[_TSGD]:
    return type("Broken", (_TSGD,), {"faults": faults})


def _torch_checks(factory: Any = None, **options: Any) -> dict[str, Any]:
    return dict(torch_optimizer_checks(factory or _sgd, name="T", **options))


def test_torch_check_names_and_order():
    assert optimizers.TORCH_OPTIMIZER_CHECKS == (
        "protocol",
        "state_round_trip",
        "determinism",
        "dtype_shape_device",
        "nonfinite_grad",
        "nonfinite_params",
        "no_grad_mutation",
    )
    assert [n for n, _ in torch_optimizer_checks(_sgd)] == list(optimizers.TORCH_OPTIMIZER_CHECKS)
    assert optimizers._TORCH_SHAPES == ((3,), (2, 2))


def test_a_correct_torch_optimizer_passes_every_check():
    for make in (_sgd, _TSGD, lambda ps: ng.TorchAdam(ps, lr=0.05), lambda ps: ng.LBFGS(ps, lr=0.5, history_size=2)):
        for _, check in torch_optimizer_checks(make):
            check()
    for _, check in torch_optimizer_checks(_sgd, steps=2, resume_after=1):
        check()


def test_torch_resume_after_must_lie_inside_the_run():
    torch_optimizer_checks(_sgd, steps=6, resume_after=5)
    for resume_after in (0, 6):
        with pytest.raises(ValueError, match=r"resume_after must lie in \(0, steps=6\)"):
            torch_optimizer_checks(_sgd, steps=6, resume_after=resume_after)


def test_torch_failures_name_the_class_by_default():
    _raises(
        dict(torch_optimizer_checks(_broken(hidden_counter=True)))["state_round_trip"], "Broken", "state_round_trip"
    )


@pytest.mark.parametrize(
    ("faults", "match"),
    [
        ({"return_none": True}, "step(closure) must return the closure's first loss, got None"),
        ({"return_float": True}, "step(closure) must return the closure's first loss"),
        ({"return_other": True}, "step(closure) must return the closure's first loss"),
        ({"no_groups": True}, "state_dict() must be a dict with 'state' and 'param_groups'"),
    ],
)
def test_torch_protocol_rejects_a_broken_step(faults, match):
    _raises(_torch_checks(_broken(**faults))["protocol"], "T", "protocol", match)


def test_torch_protocol_rejects_what_is_not_a_torch_optimizer():
    class Fake:
        def __init__(self, params):
            self.params = params

    _raises(_torch_checks(Fake)["protocol"], "T", "protocol", "Fake is not a torch.optim.Optimizer")


def test_torch_protocol_expects_the_first_loss_of_a_closure_called_twice():
    class Twice(_TSGD):
        def step(self, closure=None):
            first = closure()
            with torch.no_grad():
                for p in self.param_groups[0]["params"]:
                    p.sub_(0.01)
            closure()
            super().step(lambda: first)
            return first

    _torch_checks(Twice)["protocol"]()

    class ReturnsSecond(Twice):
        def step(self, closure=None):
            super().step(closure)
            return closure()

    _raises(_torch_checks(ReturnsSecond)["protocol"], "T", "protocol", "first loss")


def test_torch_state_round_trip_catches_a_hidden_counter():
    _raises(_torch_checks(_broken(hidden_counter=True))["state_round_trip"], "T", "state_round_trip", "after 3")


def test_torch_state_round_trip_checks_float32_too():
    class Float32Only(_TSGD):
        def step(self, closure=None):
            out = super().step(closure)
            p = self.param_groups[0]["params"][0]
            if p.dtype == torch.float32:
                with torch.no_grad():
                    p.mul_(1.0 + 0.01 * self.calls)
            return out

    _raises(_torch_checks(Float32Only)["state_round_trip"], "T", "state_round_trip", "torch.float32: after 3")


@pytest.mark.parametrize(("fault", "match"), [("global_torch", "global generator"), ("initial_seed", "12345")])
def test_torch_determinism_catches_the_global_generator(fault, match):
    _raises(_torch_checks(_broken(**{fault: True}))["determinism"], "T", "determinism", match)


@pytest.mark.parametrize(
    ("faults", "match"),
    [
        ({"to_double": True}, "a torch.float32 (3,) tensor on cpu became torch.float64 (3,) on cpu"),
        ({"replace": True}, "no longer holds the tensors it was given"),
        ({"state_tensor": ("step", torch.zeros(1, dtype=torch.float32))}, "state ['step'] is torch.float32 (1,)"),
        (
            {"state_tensor": ("count", torch.tensor(0.0))},
            "state ['count'] is torch.float32 () on cpu for a torch.float64",
        ),
    ],
)
def test_torch_dtype_shape_device_catches_a_changed_tensor(faults, match):
    _raises(_torch_checks(_broken(**faults))["dtype_shape_device"], "T", "dtype_shape_device", match)


def test_torch_dtype_shape_device_lets_a_scalar_step_counter_and_integer_state_be():
    _torch_checks(_broken(state_tensor=("step", torch.tensor(0.0))))["dtype_shape_device"]()
    _torch_checks(_broken(state_tensor=("count", torch.zeros(2, dtype=torch.int64))))["dtype_shape_device"]()


def test_torch_refusals_catch_a_silent_or_half_applied_step():
    accept = _torch_checks(_broken(accept_nan=True))
    _raises(accept["nonfinite_grad"], "T", "nonfinite_grad", "a gradient holding nan: accepted silently")
    _raises(accept["nonfinite_params"], "T", "nonfinite_params", "a parameter holding nan: accepted silently")
    half = _torch_checks(_broken(half_apply=True))
    _raises(half["nonfinite_grad"], "T", "nonfinite_grad", "after refusing a gradient holding nan, the parameters")


def test_torch_refusals_try_inf_and_poison_the_last_tensor():
    class NanOnly(_TSGD):
        def step(self, closure=None):
            loss = closure()
            params = self.param_groups[0]["params"]
            if any(bool(torch.isinf(p.grad).any() or torch.isinf(p).any()) for p in params):
                return loss
            return super().step(lambda: loss)

    checks = _torch_checks(NanOnly)
    _raises(checks["nonfinite_grad"], "T", "nonfinite_grad", "holding inf: accepted silently")
    _raises(checks["nonfinite_params"], "T", "nonfinite_params", "holding inf: accepted silently")

    class FirstTensorOnly(_TSGD):
        """Checks only the first tensor: the poison sits in the last one."""

        def step(self, closure=None):
            loss = closure()
            p = self.param_groups[0]["params"][0]
            if not bool(torch.isfinite(p.grad).all() and torch.isfinite(p).all()):
                raise ng.NonFiniteGradientError("non-finite")
            return loss

    checks = _torch_checks(FirstTensorOnly)
    _raises(checks["nonfinite_grad"], "T", "nonfinite_grad", "accepted silently")
    _raises(checks["nonfinite_params"], "T", "nonfinite_params", "accepted silently")


def test_torch_no_grad_mutation_catches_a_changed_grad_at_the_third_step():
    _raises(_torch_checks(_broken(mutate_grad=True))["no_grad_mutation"], "T", "no_grad_mutation", "changed the .grad")


def test_torch_run_closure_sets_fresh_grads_and_remembers_the_first_loss():
    run = _TorchRun(F64, torch.device("cpu"), 2)
    assert [p.x0.shape for p in run.problems] == [(3,), (2, 2)]
    assert torch.equal(run.problems[1].x0, _Quadratic((2, 2), 2, F64, torch.device("cpu"), seed=1).x0)
    params = run.params()
    assert all(p.requires_grad for p in params)
    assert all(torch.equal(p.detach(), q.x0) and p is not q.x0 for p, q in zip(params, run.problems, strict=True))
    closure = run.closure(params, 1)
    first = closure()
    expected = sum(q.loss(p.detach(), 1) for q, p in zip(run.problems, params, strict=True))
    assert torch.allclose(first, expected, rtol=1e-14, atol=0.0)
    assert all(torch.equal(p.grad, q.grad(p.detach(), 1)) for p, q in zip(params, run.problems, strict=True))
    with torch.no_grad():
        params[0].add_(1.0)
    second = closure()
    assert run.first_loss is first
    assert not torch.equal(second, first)
    assert torch.equal(run.last_grads[0], params[0].grad)
    assert run.last_grads[0] is not params[0].grad
    poisoned_closure = run.closure(params, 0, math.inf)
    assert run.first_loss is None
    poisoned_closure()
    assert math.isinf(params[1].grad.view(-1)[1])
    assert bool(torch.isfinite(params[0].grad).all())
    traj = run.run(_sgd(params), params, 0, 2)
    assert len(traj) == 2
    assert [t.shape for t in traj[0]] == [(3,), (2, 2)]


def test_estimator_checks_documented_defaults():
    """samples=1000 fresh draws, calls=4, seed=0, bias_tolerance=0."""
    made: list[_Est] = []

    def make(o):
        made.append(_Est(o))
        return made[-1]

    checks = dict(estimator_checks(make, _objective(), X, name="E"))
    made.clear()
    checks["no_input_mutation"]()
    assert len(made[0].seen) == 4
    assert torch.equal(made[0].generators[0], torch.Generator().manual_seed(0).get_state())
    made.clear()
    checks["unbiasedness"]()
    assert len(made) == 1000
    assert all(len(e.seen) == 1 for e in made)
    assert torch.equal(made[0].generators[0], torch_stream(0, 1).get_state())
    offset = torch.tensor([[0.5, 0.5]], dtype=F64)  # a constant bias: se = 0, so only bias_tolerance could pass it
    _raises(
        dict(estimator_checks(lambda o: _Cycle(o, offset), _objective(), X, name="C"))["unbiasedness"],
        "C",
        "unbiasedness",
    )


def test_check_is_the_type_of_a_check():
    from collections.abc import Callable

    from noisygrad import testing

    assert testing.Check == Callable[[], None]


def test_protocol_reads_the_rate_at_step_zero():
    _opt_checks(lambda: _Opt(lr=lambda t: 0.1 / (1 + t)))["protocol"]()
    _opt_checks(lambda: _Opt(lr=lambda t: 0.1 if t == 0 else -1.0))["protocol"]()


def test_quadratic_and_the_path_keep_the_device():
    meta = torch.device("meta")
    q = _Quadratic((2,), 2, F64, meta)
    assert {t.device.type for t in (q.x0, q.center, q.curvature, *q.noise)} == {"meta"}
    assert _TorchRun(F64, meta, 1).params()[0].device.type == "meta"


class _Recording(_Opt):
    """``_Opt`` that also keeps the params and gradient of every update call."""

    def update(self, params, grad, state, *, lr=None):
        self.args = getattr(self, "args", [])
        self.args.append((params.clone(), grad.clone()))
        return super().update(params, grad, state, lr=lr)


def test_the_refusals_and_the_mutation_check_use_the_second_iterate():
    """Two SGD steps of lr 0.1 on the quadratic, then the third gradient at that point (poisoned or not)."""
    q = _Quadratic((5,), 3, F64, torch.device("cpu"))
    x1 = q.x0 - 0.1 * q.grad(q.x0, 0)
    x2 = x1 - 0.1 * q.grad(x1, 1)
    g2 = q.grad(x2, 2)
    made: list[_Recording] = []

    def make():
        made.append(_Recording())
        return made[-1]

    checks = dict(optimizer_checks(make, name="O"))
    made.clear()
    checks["nonfinite_grad"]()
    (opt,) = made  # one optimizer, refused twice
    assert torch.equal(opt.args[1][0], x1)
    assert difference(opt.args[2], (x2, poisoned(g2, math.nan))) is None
    assert difference(opt.args[3], (x2, poisoned(g2, math.inf))) is None
    made.clear()
    checks["nonfinite_params"]()
    assert difference(made[0].args[2], (poisoned(x2, math.nan), g2)) is None
    assert difference(made[0].args[3], (poisoned(x2, math.inf), g2)) is None
    made.clear()
    checks["no_input_mutation"]()
    assert difference(made[0].args[2], (x2, g2)) is None


def test_the_torch_checks_run_the_documented_steps():
    made: list[Any] = []

    class Counting(_TSGD):
        def step(self, closure=None):
            self.steps = getattr(self, "steps", 0) + 1
            return super().step(closure)

    def make(params):
        made.append(Counting(params))
        return made[-1]

    checks = dict(torch_optimizer_checks(make, name="T"))
    expected = {
        "protocol": [1],
        "state_round_trip": [6, 3, 3, 6, 3, 3],
        "determinism": [6, 6],
        "dtype_shape_device": [3] * 2 * len(devices()),
        "nonfinite_grad": [3, 3],
        "nonfinite_params": [3, 3],
        "no_grad_mutation": [3],
    }
    for name, counts in expected.items():
        made.clear()
        checks[name]()
        assert [getattr(o, "steps", 0) for o in made] == counts, name
    short = dict(torch_optimizer_checks(make, name="T", steps=4, resume_after=1))
    made.clear()
    short["state_round_trip"]()
    assert [o.steps for o in made] == [4, 1, 3, 4, 1, 3]


def test_serialise_asks_torch_load_for_weights_only(monkeypatch):
    """The default of ``weights_only`` is True only from torch 2.6; the core supports torch 2.4, so it is passed."""
    seen: list[dict[str, Any]] = []
    real = torch.load

    def load(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    assert serialise("obj", "chk", {"a": 1}) == {"a": 1}
    assert seen == [{"weights_only": True}]


def test_devices_adds_cuda_when_torch_sees_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices() == [torch.device("cpu"), torch.device("cuda")]


def test_global_seeds_forks_the_generators_of_every_cuda_device(monkeypatch):
    # torch.manual_seed seeds every CUDA device's generator too: the fork must cover them all to put them back
    forked = []

    @contextlib.contextmanager
    def recording_fork(devices=None, enabled=True):  # type: ignore[no-untyped-def]
        forked.append(list(devices))
        yield

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.random, "fork_rng", recording_fork)
    monkeypatch.setattr(torch, "manual_seed", lambda seed: None)  # no real GPU behind the two devices
    with _common.global_seeds(3):
        pass
    assert forked == [[0, 1]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_global_seeds_puts_the_cuda_generators_back():
    torch.cuda.manual_seed_all(11)
    before = [torch.cuda.get_rng_state(i) for i in range(torch.cuda.device_count())]
    with _common.global_seeds(3):
        torch.randn(4, device="cuda")
    after = [torch.cuda.get_rng_state(i) for i in range(torch.cuda.device_count())]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
