"""Exact tests that close the mutation-testing gaps of ``noisygrad.distributed`` (issue 18).

Covered: ``estimates.py`` (the two-batch formulas on hand-picked numbers, their input checks at the boundaries, the
smoothing and its state), ``adaptive.py`` (the gains, the proposal's caps and rounding, the decision schedule, the
callback's two kinds of statistics, the state checks), ``group.py`` (the one-process world and the ordered gather),
``hook.py`` (the communication hook and :meth:`GradientNoiseHook.step` driven in one process: a stand-in DDP model
and a scripted two-rank gather replace the process group, so no process is spawned) and ``minibatch.py`` (the
sharded estimate against a hand-written shard sum, the fingerprint check, the layout of :func:`reference`).

Every number is exact (small binary fractions) or float64 rounding of a closed form; nothing is statistical.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import noisygrad as ng
import noisygrad.distributed.group as group
import noisygrad.distributed.hook as hook_mod
import noisygrad.distributed.minibatch as minibatch_mod
from noisygrad.checks import NonFiniteGradientError
from noisygrad.distributed import AdaptiveBatch, DataParallelMiniBatch, adascale_gain, reference
from noisygrad.distributed.estimates import NoiseEstimate, SmoothedNoiseScale, two_batch_estimates
from noisygrad.estimators.base import Cost

F64 = torch.float64

# ------------------------------------------------------------------------------------------------- estimates


def test_noise_estimate_ratio_and_its_inf_at_and_below_zero() -> None:
    assert NoiseEstimate(3.0, 2.0).noise_scale == 1.5
    assert NoiseEstimate(1.0, 0.5).noise_scale == 2.0  # any |G|^2 > 0, below 1 too
    assert NoiseEstimate(3.0, 0.0).noise_scale == math.inf
    assert NoiseEstimate(3.0, -1.0).noise_scale == math.inf
    assert NoiseEstimate(-3.0, 2.0).noise_scale == -1.5  # one step's ratio is not clipped (smooth the parts)


def test_two_batch_estimates_closed_form() -> None:
    # tr(S) = (5 - 2) / (1/2 - 1/8) = 8; |G|^2 = (8*2 - 2*5) / (8 - 2) = 1
    est = two_batch_estimates(5.0, 2.0, 2, 8)
    assert est == (8.0, 1.0)
    assert type(est) is NoiseEstimate
    # without replacement from N = 16: + tr(S)/N = 0.5
    assert two_batch_estimates(5.0, 2.0, 2, 8, n_examples=16) == (8.0, 1.5)
    # b_big = N is allowed (the whole data set), b_small = 1 too; integers are accepted
    assert two_batch_estimates(5, 2, 1, 4, n_examples=4) == pytest.approx(((5 - 2) / 0.75, (8 - 5) / 3 + 4.0 / 4))
    # zero norms are fine
    assert two_batch_estimates(0.0, 0.0, 1, 2) == (0.0, 0.0)


def test_two_batch_estimates_refusals_at_their_boundaries() -> None:
    with pytest.raises(ValueError, match="larger than b_small"):
        two_batch_estimates(5.0, 2.0, 4, 4)
    with pytest.raises(ValueError, match="n_examples"):
        two_batch_estimates(5.0, 2.0, 2, 9, n_examples=8)
    with pytest.raises(TypeError, match="small_sq"):
        two_batch_estimates(True, 2.0, 2, 8)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="big_sq"):
        two_batch_estimates(1.0, "2", 2, 8)  # type: ignore[arg-type]
    for bad in (-1e-300, math.inf, math.nan):
        with pytest.raises(ValueError, match="small_sq"):
            two_batch_estimates(bad, 2.0, 2, 8)
        with pytest.raises(ValueError, match="big_sq"):
            two_batch_estimates(2.0, bad, 2, 8)


def test_smoothed_noise_scale_ema_is_bias_corrected() -> None:
    s = SmoothedNoiseScale()
    assert s.ema == 0.9
    assert s.count == 0
    with pytest.raises(RuntimeError, match="update"):
        _ = s.trace_cov
    s.update(10, 2)  # ints accepted
    assert (s.count, s.trace_cov, s.grad_sq, s.noise_scale) == (1, pytest.approx(10.0), pytest.approx(2.0), 5.0)
    s.update(20.0, 4.0)
    # raw: trace 0.1*10 = 1 then 1 + 0.1*(20 - 1) = 2.9; debias 1 - 0.81 = 0.19
    assert s.state_dict() == {"trace": pytest.approx(2.9), "grad_sq": pytest.approx(0.58), "count": 2}
    assert s.trace_cov == pytest.approx(2.9 / 0.19, rel=1e-14)
    assert s.grad_sq == pytest.approx(0.58 / 0.19, rel=1e-14)
    assert s.noise_scale == pytest.approx(5.0, rel=1e-14)


def test_smoothed_noise_scale_running_means_and_clipping() -> None:
    s = SmoothedNoiseScale(None)
    assert s.ema is None
    for t, g in ((1.0, 4.0), (2.0, 0.0), (6.0, -1.0)):
        s.update(t, g)
    assert (s.trace_cov, s.grad_sq, s.noise_scale) == (3.0, 1.0, 3.0)
    s.update(-20.0, 1.0)  # trace mean -2.75: no measurable noise gives 0, not a negative scale
    assert s.trace_cov == -2.75
    assert s.noise_scale == 0.0
    z = SmoothedNoiseScale(None)
    z.update(1.0, 0.0)
    assert z.noise_scale == math.inf  # |G|^2 = 0 exactly
    with pytest.raises(ValueError, match="ema"):
        SmoothedNoiseScale(0.0)
    with pytest.raises(ValueError, match="ema"):
        SmoothedNoiseScale(1.0)
    assert SmoothedNoiseScale(0.5).ema == 0.5


def test_smoothed_noise_scale_refuses_bad_updates_and_states() -> None:
    s = SmoothedNoiseScale()
    for bad in (True, math.inf, math.nan, "1"):
        with pytest.raises(ValueError, match="trace_cov"):
            s.update(bad, 1.0)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="grad_sq"):
            s.update(1.0, bad)  # type: ignore[arg-type]
    assert s.count == 0
    s.load_state_dict({"trace": 1.5, "grad_sq": -0.5, "count": 0})  # a zero count is a fresh state
    assert s.state_dict() == {"trace": 1.5, "grad_sq": -0.5, "count": 0}
    s.load_state_dict({"trace": 0.3, "grad_sq": 0.1, "count": 3})
    assert s.trace_cov == pytest.approx(0.3 / (1 - 0.9**3), rel=1e-14)
    with pytest.raises(ValueError, match="keys"):
        s.load_state_dict({"trace": 1.0, "grad_sq": 1.0})
    with pytest.raises(ValueError, match="non-finite"):
        s.load_state_dict({"trace": math.inf, "grad_sq": 1.0, "count": 1})
    with pytest.raises(ValueError, match="non-finite"):
        s.load_state_dict({"trace": 1.0, "grad_sq": math.nan, "count": 1})
    with pytest.raises(ValueError, match="count"):
        s.load_state_dict({"trace": 1.0, "grad_sq": 1.0, "count": -1})
    assert s.state_dict() == {"trace": 0.3, "grad_sq": 0.1, "count": 3}  # refused states change nothing


# -------------------------------------------------------------------------------------------------- adaptive


def test_adascale_gain_closed_form_and_refusals() -> None:
    assert adascale_gain(3.0, 2, 8) == (1 + 1.5) / (1 + 0.375)
    assert adascale_gain(3, 2, 8) == (1 + 1.5) / (1 + 0.375)  # an int noise scale
    assert adascale_gain(0.0, 2, 8) == 1.0
    assert adascale_gain(-math.inf, 2, 8) == 1.0  # negative infinity: no measurable noise
    assert adascale_gain(math.inf, 2, 8) == 4.0
    with pytest.raises(ValueError, match="noise_scale"):
        adascale_gain(True, 2, 8)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="noise_scale"):
        adascale_gain("1", 2, 8)  # type: ignore[arg-type]


def test_adaptive_batch_documented_defaults() -> None:
    ctrl = AdaptiveBatch(8, 64)
    assert (ctrl.multiple_of, ctrl.target, ctrl.warmup, ctrl.interval, ctrl.max_growth) == (1, 1.0, 10, 1, 2.0)
    assert (ctrl.lr_rule, ctrl.base_batch_size, ctrl.estimator, ctrl.smoothed.ema) == (None, 8, None, 0.9)
    assert (ctrl.batch_size, ctrl.steps, ctrl.progress, ctrl.lr_gain) == (8, 0, 0.0, 1.0)
    assert AdaptiveBatch(8, 8).max_batch_size == 8  # max == batch: the lr-only mode


def test_adaptive_batch_multiple_of_defaults_to_the_estimators_shards() -> None:
    est = SimpleNamespace(batch_size=12, shards=3)
    assert AdaptiveBatch(12, 48, estimator=est).multiple_of == 3
    with pytest.raises(ValueError, match="multiple of multiple_of"):
        AdaptiveBatch(8, 48, estimator=est)
    # shards that are not an int fall back to the (one-process) world
    assert AdaptiveBatch(7, 48, estimator=SimpleNamespace(batch_size=7, shards=3.0)).multiple_of == 1
    assert AdaptiveBatch(12, 48, multiple_of=4, estimator=est).multiple_of == 4


def test_adaptive_batch_multiple_of_defaults_to_the_world_size(monkeypatch: pytest.MonkeyPatch) -> None:
    import noisygrad.distributed.adaptive as adaptive_mod

    monkeypatch.setattr(adaptive_mod, "initialized", lambda: True)
    monkeypatch.setattr(adaptive_mod, "world_and_rank", lambda group=None: (4, 1))  # rank 1 of 4
    assert AdaptiveBatch(8, 64).multiple_of == 4
    assert AdaptiveBatch(6, 64, estimator=SimpleNamespace(batch_size=6, shards=3)).multiple_of == 3  # shards first


def test_adaptive_batch_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        AdaptiveBatch(16, 8)
    with pytest.raises(ValueError, match="multiple_of"):
        AdaptiveBatch(12, 64, multiple_of=8)
    with pytest.raises(ValueError, match="max_growth"):
        AdaptiveBatch(8, 64, max_growth=1.0)
    assert AdaptiveBatch(8, 64, warmup=0).warmup == 0
    with pytest.raises(ValueError, match="lr_rule"):
        AdaptiveBatch(8, 64, lr_rule="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_batch_size"):
        AdaptiveBatch(8, 64, base_batch_size=9)
    assert AdaptiveBatch(8, 64, base_batch_size=8).base_batch_size == 8
    with pytest.raises(TypeError, match="batch_size"):
        AdaptiveBatch(8, 64, estimator=object())


def test_adaptive_batch_gains_by_rule() -> None:
    lin = AdaptiveBatch(32, 32, lr_rule="linear", base_batch_size=8)
    assert lin.lr_gain == 4.0
    sq = AdaptiveBatch(32, 32, lr_rule="sqrt", base_batch_size=8)
    assert sq.lr_gain == 2.0
    ada = AdaptiveBatch(32, 32, lr_rule="adascale", base_batch_size=8, warmup=0, ema=None)
    assert ada.lr_gain == 1.0  # no estimate yet
    assert ada.update(24.0, 2.0) == (32, (1 + 12 / 8) / (1 + 12 / 32))
    assert ada.progress == (1 + 12 / 8) / (1 + 12 / 32)
    assert ada.update(24.0, 2.0)[1] == ada.lr_gain
    assert ada.progress == 2 * ada.lr_gain
    none = AdaptiveBatch(32, 32, base_batch_size=8)
    assert none.lr_gain == 1.0


def test_adaptive_batch_proposal_caps_and_rounding() -> None:
    ctrl = AdaptiveBatch(12, 100, multiple_of=4, warmup=1, ema=None, max_growth=1.5)
    # wants 19 (noise scale 19): ceil(19/4)*4 = 20 < cap floor(12*1.5) = 18 -> 16? no: the cap is 18 // 4 * 4 = 16
    assert ctrl.update(19.0, 1.0)[0] == 16
    # cap now min(100, 24) = 24; wants 19 -> 20
    assert ctrl.update(19.0, 1.0)[0] == 20
    # wants exactly the cap (30 = floor(20*1.5), a multiple of... 30 // 4 * 4 = 28): >= cap -> the cap
    ctrl2 = AdaptiveBatch(20, 100, multiple_of=4, warmup=1, ema=None, max_growth=1.5)
    assert ctrl2.update(28.0, 1.0)[0] == 28
    ctrl3 = AdaptiveBatch(20, 100, multiple_of=4, warmup=1, ema=None, max_growth=1.5)
    assert ctrl3.update(27.0, 1.0)[0] == 28  # below the cap: rounded up to 28
    ctrl4 = AdaptiveBatch(20, 100, multiple_of=4, warmup=1, ema=None, max_growth=1.5)
    assert ctrl4.update(25.0, 1.0)[0] == 28
    ctrl5 = AdaptiveBatch(20, 100, multiple_of=4, warmup=1, ema=None, max_growth=1.5)
    assert ctrl5.update(24.0, 1.0)[0] == 24
    # target scales the noise scale: 2 * 10 = 20 -> 20
    assert AdaptiveBatch(8, 100, warmup=1, ema=None, target=2.0, max_growth=4.0).update(10.0, 1.0)[0] == 20
    # a smaller wish keeps the batch; the max batch caps below the growth cap
    assert AdaptiveBatch(8, 100, warmup=1, ema=None).update(2.0, 1.0)[0] == 8
    assert AdaptiveBatch(8, 10, warmup=1, ema=None).update(1e9, 1.0)[0] == 10
    # a cap below the current batch (max 10, multiple 4 -> 8 < 12) keeps the batch
    assert AdaptiveBatch(12, 15, multiple_of=4, warmup=1, ema=None).update(1e9, 1.0)[0] == 12
    assert AdaptiveBatch(12, 15, multiple_of=4, warmup=1, ema=None).update(1.0, -1.0)[0] == 12


def test_adaptive_batch_decision_schedule() -> None:
    ctrl = AdaptiveBatch(8, 10**6, warmup=3, interval=2, ema=None, max_growth=2.0)
    sizes = [ctrl.update(1e6, 1.0)[0] for _ in range(8)]
    # decisions at steps 3, 5, 7 (steps >= warmup and (steps - warmup) % interval == 0)
    assert sizes == [8, 8, 16, 16, 32, 32, 64, 64]
    assert ctrl.steps == 8


def test_adaptive_batch_resizes_its_estimator_and_reads_callback_stats() -> None:
    est = SimpleNamespace(batch_size=4, shards=2)
    ctrl = AdaptiveBatch(4, 64, warmup=1, ema=None, estimator=est)
    info = SimpleNamespace(estimate=SimpleNamespace(stats={"trace_cov": 60.0, "grad_norm_sq": 10.0}, grad=None))
    ctrl(info)
    assert ctrl.smoothed.state_dict() == {"trace": 60.0, "grad_sq": 10.0, "count": 1}
    assert est.batch_size == ctrl.batch_size == 6
    # MiniBatch(noise_stats=True): |G|^2 = |g|^2 - grad_variance = (9 + 16) - 5 = 20
    grad = torch.tensor([3.0, 4.0], dtype=torch.float32)
    info2 = SimpleNamespace(estimate=SimpleNamespace(stats={"trace_cov": 100.0, "grad_variance": 5.0}, grad=grad))
    ctrl2 = AdaptiveBatch(4, 64, warmup=1, ema=None)
    ctrl2(info2)
    assert ctrl2.smoothed.state_dict() == {"trace": 100.0, "grad_sq": 20.0, "count": 1}
    assert ctrl2.batch_size == 5
    for stats in ({"trace_cov": 1.0}, {"grad_norm_sq": 1.0, "grad_variance": 1.0}, {}):
        with pytest.raises(ValueError, match="noise statistics"):
            ctrl2(SimpleNamespace(estimate=SimpleNamespace(stats=stats, grad=grad)))


def test_adaptive_batch_state_round_trip_and_refusals() -> None:
    est = SimpleNamespace(batch_size=8, shards=4)
    ctrl = AdaptiveBatch(8, 64, warmup=1, ema=None, estimator=est)
    ctrl.update(16.0, 1.0)
    state = ctrl.state_dict()
    assert state == {
        "batch_size": 16,
        "steps": 1,
        "progress": 1.0,
        "lr_gain": 1.0,
        "smoothed": {"trace": 16.0, "grad_sq": 1.0, "count": 1},
    }
    est2 = SimpleNamespace(batch_size=8, shards=4)
    fresh = AdaptiveBatch(8, 64, warmup=1, ema=None, estimator=est2)
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state
    assert est2.batch_size == 16
    plain = AdaptiveBatch(8, 64, multiple_of=4)
    plain.load_state_dict({**state, "steps": 0, "progress": 0.0, "batch_size": 64})
    assert (plain.batch_size, plain.steps, plain.progress) == (64, 0, 0.0)
    for bad, match in (
        ({k: v for k, v in state.items() if k != "lr_gain"}, "keys"),
        ({**state, "batch_size": 18}, "multiple"),
        ({**state, "batch_size": 68}, "multiple"),
        ({**state, "steps": -1}, "steps"),
        ({**state, "progress": -1.0}, "progress"),
        ({**state, "lr_gain": 0.0}, "lr_gain"),
    ):
        with pytest.raises(ValueError, match=match):
            plain.load_state_dict(bad)


# ----------------------------------------------------------------------------------------------------- group


class _Work:
    def __init__(self) -> None:
        self.waited = 0

    def wait(self) -> bool:
        self.waited += 1
        return True


class _TwoRanks:
    """A scripted ``all_gather_single`` for a world of 2: this process is rank 0, ``others`` rank 1's rows."""

    def __init__(self, others: list[torch.Tensor]) -> None:
        self.others = list(others)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, out: torch.Tensor, inp: torch.Tensor, group: Any = None, async_op: bool = False) -> Any:
        other = self.others.pop(0)
        m = inp.shape[0]
        out[:m] = inp
        out[m:] = other
        work = _Work() if async_op else None
        self.calls.append({"group": group, "async_op": async_op, "contiguous": inp.is_contiguous(), "work": work})
        return work


def test_group_one_process_world() -> None:
    assert group.initialized() is False
    assert group.world_and_rank() == (1, 0)
    with pytest.raises(RuntimeError, match="not initialised"):
        group.world_and_rank("a group")
    local = torch.arange(6.0).reshape(3, 2)
    assert group.gather_rows(local, 1) is local
    assert group.EXIT_GRACE_SECONDS == 0.5


def test_group_gather_rows_stacks_in_rank_order(monkeypatch: pytest.MonkeyPatch) -> None:
    gather = _TwoRanks([torch.full((2, 3), 7.0)])
    monkeypatch.setattr(dist, "all_gather_single", gather)
    held = []
    monkeypatch.setattr(group, "hold_exit_for_workers", lambda: held.append(1))
    local = torch.arange(6.0).reshape(3, 2).t()  # (2, 3), not contiguous: it is made so before the gather
    out = group.gather_rows(local, 2, group="g")
    expected = torch.tensor([[0.0, 2.0, 4.0], [1.0, 3.0, 5.0], [7.0, 7.0, 7.0], [7.0, 7.0, 7.0]])
    assert torch.equal(out, expected)
    assert gather.calls[0]["group"] == "g"
    assert gather.calls[0]["contiguous"]
    assert held == [1]


def test_a_fresh_process_has_no_exit_guard_until_a_collective(monkeypatch: pytest.MonkeyPatch) -> None:
    # a fresh copy of the module (not the one in sys.modules, which earlier tests may have guarded)
    import atexit
    import importlib.util
    import time

    spec = importlib.util.find_spec("noisygrad.distributed.group")
    assert spec is not None
    assert spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    assert fresh._exit_guarded is False
    registered: list[tuple[Any, ...]] = []
    monkeypatch.setattr(atexit, "register", lambda *args: registered.append(args))
    fresh.hold_exit_for_workers()
    assert registered == [(time.sleep, 0.5)]
    assert fresh._exit_guarded is True


# ------------------------------------------------------------------------------------------------------ hook


class _FakeDDP(DistributedDataParallel):
    """Passes the isinstance check; holds a process group name and records the registered hook."""

    def __init__(self) -> None:
        torch.nn.Module.__init__(self)
        self.process_group = "pg"
        self.registered: list[tuple[Any, Any]] = []

    def register_comm_hook(self, state: object, hook: Any) -> None:  # type: ignore[override]
        self.registered.append((state, hook))


class _Bucket:
    def __init__(self, index: int, buffer: torch.Tensor, last: bool) -> None:
        self._index, self._buffer, self._last = index, buffer, last

    def index(self) -> int:
        return self._index

    def buffer(self) -> torch.Tensor:
        return self._buffer

    def is_last(self) -> bool:
        return self._last


def _done(value: Any) -> torch.futures.Future[Any]:
    fut: torch.futures.Future[Any] = torch.futures.Future()
    fut.set_result(value)
    return fut


def _meter(monkeypatch: pytest.MonkeyPatch, others: list[float], **kwargs: Any) -> tuple[Any, _FakeDDP, _TwoRanks]:
    monkeypatch.setattr(dist, "get_world_size", lambda g=None: 2)
    gather = _TwoRanks([torch.tensor([v], dtype=F64) for v in others])
    monkeypatch.setattr(dist, "all_gather_single", gather)
    monkeypatch.setattr(hook_mod, "hold_exit_for_workers", lambda: None)
    model = _FakeDDP()
    return hook_mod.GradientNoiseHook(model, **kwargs), model, gather


def _backward(model: _FakeDDP, local: list[torch.Tensor], reduced: list[Any]) -> None:
    """Run the registered hook over the buckets: ``local`` buffers, the inner hook's futures hold ``reduced``."""
    state, fn = model.registered[0]
    for i, buf in enumerate(local):
        state.inner = lambda st, b, i=i: _done(reduced[i])
        fn(state, _Bucket(i, buf, i == len(local) - 1)).wait()


def test_hook_defaults_and_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    meter, model, _ = _meter(monkeypatch, [])
    assert (meter.accumulation_steps, meter.micro_batch_size, meter.n_examples) == (1, None, None)
    assert (meter.accumulation, meter.every, meter.world, meter.group) == ("sum", 1, 2, "pg")
    assert (meter.calls, meter.steps, meter.skipped) == (0, 0, 0)
    assert meter._smoothed.ema == 0.9
    state, fn = model.registered[0]
    assert fn is hook_mod.gradient_noise_hook
    assert state.meter is meter
    assert state.inner is hook_mod.allreduce_hook
    assert state.inner_state == "pg"
    inner = lambda s, b: _done(b.buffer())  # noqa: E731
    m2, model2, _ = _meter(monkeypatch, [], wrap=inner, wrap_state="mine", micro_batch_size=3, n_examples=9, ema=None)
    st2 = model2.registered[0][0]
    assert st2.inner is inner
    assert st2.inner_state == "mine"
    assert (m2.micro_batch_size, m2.n_examples, m2._smoothed.ema, m2._gather_early) == (3, 9, None, False)
    _m3, model3, _ = _meter(monkeypatch, [], wrap=inner)
    assert model3.registered[0][0].inner_state is None


def test_hook_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="DistributedDataParallel"):
        hook_mod.GradientNoiseHook(torch.nn.Linear(1, 1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="wrap"):
        _meter(monkeypatch, [], wrap=3)
    with pytest.raises(ValueError, match="accumulation"):
        _meter(monkeypatch, [], accumulation="max")
    meter, _, _ = _meter(monkeypatch, [])
    with pytest.raises(ValueError, match="micro_batch_size"):
        meter.step()
    monkeypatch.setattr(dist, "get_world_size", lambda g=None: 1)
    with pytest.raises(ValueError, match="at least 2 ranks"):
        hook_mod.GradientNoiseHook(_FakeDDP())


def test_hook_step_is_the_two_batch_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    # rank 0's buckets: |(1, 2)|^2 + |(2)|^2 = 9; rank 1's local |g|^2 = 11; small = 10
    # the reduced mean: |(2, 1)|^2 + |(1)|^2 = 6 (the second a list value, as some hooks return)
    meter, model, gather = _meter(monkeypatch, [11.0], micro_batch_size=2)
    local = [torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([2.0], dtype=F64)]
    _backward(model, local, [torch.tensor([2.0, 1.0], dtype=F64), [torch.tensor([1.0], dtype=F64)]])
    assert gather.calls[0]["async_op"] is True
    assert gather.calls[0]["group"] == "pg"
    est = meter.step()
    assert gather.calls[0]["work"].waited == 1
    expected = two_batch_estimates(10.0, 6.0, 2, 4)
    # the norms are squared norms (sqrt then square): float64 rounding only
    assert est == pytest.approx(expected, rel=1e-14)
    assert expected == (16.0, 2.0)
    assert (meter.calls, meter.steps) == (1, 1)
    # one update, bias-corrected: the step's own values (to the rounding of 0.1 / (1 - 0.9))
    assert (meter.trace_cov, meter.grad_sq, meter.noise_scale) == pytest.approx((16.0, 2.0, 8.0), rel=1e-14)


def test_hook_step_with_a_wrapped_hook_accumulation_and_loss_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    inner = lambda s, b: _done(b.buffer())  # noqa: E731
    meter, model, gather = _meter(monkeypatch, [4.0 * 36.0], wrap=inner, accumulation_steps=3, n_examples=100)
    # accumulation "sum": the bucket holds 3 x the mean; loss scale 2: factor (2*3)^2 = 36
    _backward(model, [torch.tensor([6.0, 12.0], dtype=F64)], [torch.tensor([3.0, 6.0], dtype=F64)])
    assert gather.calls == []  # a wrapped hook: the gather waits for step()
    est = meter.step(micro_batch_size=1, loss_scale=2.0)
    assert gather.calls[0]["async_op"] is False
    assert gather.calls[0]["group"] == "pg"
    # small = (180 + 144)/2 / 36 = 4.5; big = 45 / 36 = 1.25; b_small = 3, b_big = 6, N = 100
    assert est == pytest.approx(two_batch_estimates(4.5, 1.25, 3, 6, 100), rel=1e-14)
    # accumulation "mean": the bucket holds the mean itself; factor 1 (no loss scale): small = (9 + 25)/2 = 17
    mean, model2, _ = _meter(monkeypatch, [25.0], wrap=inner, accumulation_steps=3, accumulation="mean")
    _backward(model2, [torch.tensor([3.0], dtype=F64)], [torch.tensor([1.0], dtype=F64)])
    assert mean.step(micro_batch_size=2) == pytest.approx(two_batch_estimates(17.0, 1.0, 6, 12), rel=1e-14)


def test_hook_every_sync_count_and_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    meter, model, gather = _meter(monkeypatch, [2.0, 2.0, 2.0], micro_batch_size=1, every=2)
    buf, red = [torch.tensor([2.0], dtype=F64)], [torch.tensor([1.0], dtype=F64)]
    _backward(model, buf, red)
    assert meter.step() is not None  # the first step is measured
    _backward(model, buf, red)  # left out: the wrapped hook alone
    assert meter.step() is None
    assert (meter.calls, meter.steps, len(gather.calls)) == (2, 1, 1)
    with pytest.raises(RuntimeError, match="no gradient synchronisation"):
        meter.step()  # the third call measures, but nothing was synchronised
    meter2, model2, _ = _meter(monkeypatch, [2.0, 2.0], micro_batch_size=1, every=2)
    _backward(model2, buf, red)
    meter2.step()
    _backward(model2, buf, red)
    _backward(model2, buf, red)
    with pytest.raises(RuntimeError, match=r"2 gradient synchronisations.*every backward outside no_sync"):
        meter2.step()  # an unmeasured step that synchronised twice (A = 1: the hint for no accumulation)
    # every = 3: calls 2 and 3 are left out, each with its own single synchronisation
    meter5, model5, gather5 = _meter(monkeypatch, [2.0, 2.0], micro_batch_size=1, every=3)
    results = []
    for _ in range(4):
        _backward(model5, buf, red)
        results.append(meter5.step())
    assert [r is None for r in results] == [False, True, True, False]
    assert (meter5.calls, meter5.steps, len(gather5.calls)) == (4, 2, 2)
    meter3, model3, _ = _meter(monkeypatch, [2.0, 2.0], micro_batch_size=1, accumulation_steps=2)
    _backward(model3, buf, red)
    _backward(model3, buf, red)
    with pytest.raises(RuntimeError, match=r"2 gradient synchronisations.*first 1 of the 2 micro-batches"):
        meter3.step()
    # an overflow: skipped with a loss scale, refused without one
    meter4, model4, _ = _meter(monkeypatch, [math.inf, math.inf], micro_batch_size=1)
    _backward(model4, buf, red)
    assert meter4.step(loss_scale=1024.0) is None
    assert (meter4.skipped, meter4.steps, meter4.calls) == (1, 0, 1)
    _backward(model4, buf, [torch.tensor([math.nan], dtype=F64)])
    with pytest.raises(NonFiniteGradientError, match="loss_scale"):
        meter4.step()


def test_hook_state_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    meter, _, _ = _meter(monkeypatch, [], every=3)
    state = {"smoothed": {"trace": 1.0, "grad_sq": 0.5, "count": 2}, "calls": 4, "steps": 2, "skipped": 1}
    meter.load_state_dict(state)
    assert meter.state_dict() == state
    assert meter._measure_now is False  # 4 % 3 != 0
    meter.load_state_dict({**state, "calls": 6})
    assert meter._measure_now is True
    zero = {"smoothed": {"trace": 0.0, "grad_sq": 0.0, "count": 0}, "calls": 0, "steps": 0, "skipped": 0}
    meter.load_state_dict(zero)  # a fresh state: zeros allowed
    assert meter.state_dict() == zero
    assert meter._measure_now is True
    with pytest.raises(ValueError, match="keys"):
        meter.load_state_dict({"calls": 1})
    for key in ("calls", "steps", "skipped"):
        with pytest.raises(ValueError, match=key):
            meter.load_state_dict({**state, key: -1})


def test_sq_norm_dtype_rules() -> None:
    half = torch.tensor([3.0, 4.0], dtype=torch.float16)
    out = hook_mod._sq_norm(half)
    assert out.dtype == F64
    assert float(out) == 25.0
    # a low-precision bucket's norm is taken in float32: sqrt(2) rounded to float32, then squared in float64
    root2 = float(torch.tensor(2.0, dtype=torch.float32).sqrt())
    assert float(hook_mod._sq_norm(torch.ones(2, dtype=torch.float16))) == root2**2
    x = torch.tensor([1.0 + 2.0**-40, 0.0], dtype=F64)  # float64 accumulation keeps the low bits
    assert float(hook_mod._sq_norm(x)) == (1.0 + 2.0**-40) ** 2
    x32 = torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=torch.float32)
    assert float(hook_mod._sq_norm(x32)) == 25.0


# ------------------------------------------------------------------------------------------------- minibatch


def _objective() -> ng.FiniteSum:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, generator=gen, dtype=F64)
    y = torch.randn(24, generator=gen, dtype=F64)
    return ng.FiniteSum(lambda w, x, y: 0.5 * ((x @ w - y) ** 2).mean(), (x, y))


def test_minibatch_estimate_is_the_shard_sum_with_noise_stats() -> None:
    obj = _objective()
    est = DataParallelMiniBatch(obj, 8, shards=4, ema=None)
    assert (est.world, est.rank, est.shards, est.replace, est.verify) == (1, 0, 4, False, True)
    w = torch.tensor([0.3, -0.2, 0.1], dtype=F64)
    idx = torch.randperm(24, generator=torch.Generator().manual_seed(5))[:8]
    e = est.estimate(w, torch.Generator().manual_seed(5))
    parts = [obj.value_and_grad(w, idx[2 * k : 2 * k + 2]) for k in range(4)]
    grad = parts[0][1].clone()
    for k in range(1, 4):
        grad += parts[k][1]
    grad /= 4
    assert torch.equal(e.grad, grad)
    assert e.value == pytest.approx(sum(float(v) for v, _ in parts) / 4, rel=1e-15)
    assert e.cost == Cost(examples=8)
    small = sum(float(g.pow(2).sum()) for _, g in parts) / 4
    noise = two_batch_estimates(small, float(grad.pow(2).sum()), 2, 8, 24)
    assert e.stats["trace_cov"] == pytest.approx(noise.trace_cov, rel=1e-12)
    assert e.stats["grad_norm_sq"] == pytest.approx(noise.grad_sq, rel=1e-12)
    assert e.stats["grad_variance"] == pytest.approx(noise.trace_cov * (1 / 8 - 1 / 24), rel=1e-12)
    assert est.noise.state_dict()["count"] == 1


def test_minibatch_with_replacement_uses_the_stream_formulas() -> None:
    obj = _objective()
    est = DataParallelMiniBatch(obj, 6, shards=2, replace=True, ema=0.5)
    assert est.replace is True
    assert est.noise.ema == 0.5
    w = torch.zeros(3, dtype=F64)
    idx = torch.randint(24, (6,), generator=torch.Generator().manual_seed(2))
    e = est.estimate(w, torch.Generator().manual_seed(2))
    parts = [obj.value_and_grad(w, idx[3 * k : 3 * k + 3]) for k in range(2)]
    grad = (parts[0][1] + parts[1][1]) / 2
    assert torch.allclose(e.grad, grad, rtol=1e-15, atol=0)
    small = sum(float(g.pow(2).sum()) for _, g in parts) / 2
    noise = two_batch_estimates(small, float(grad.pow(2).sum()), 3, 6, None)
    assert e.stats["trace_cov"] == pytest.approx(noise.trace_cov, rel=1e-12)
    assert e.stats["grad_norm_sq"] == pytest.approx(noise.grad_sq, rel=1e-12)
    assert e.stats["grad_variance"] == pytest.approx(noise.trace_cov / 6, rel=1e-12)


def test_minibatch_state_and_reference_layout() -> None:
    obj = _objective()
    est = DataParallelMiniBatch(obj, 8, shards=2, replace=True, ema=0.7, verify=False)
    est.estimate(torch.zeros(3, dtype=F64), torch.Generator().manual_seed(1))
    state = est.state_dict()
    assert set(state) == {"batch_size", "noise"}
    assert state["batch_size"] == 8
    twin = reference(est, world=4)
    assert (twin.shards, twin.replace, twin.verify, twin.noise.ema, twin.batch_size) == (8, True, False, 0.7, 8)
    assert twin.noise.state_dict() == est.noise.state_dict()
    assert reference(est).shards == 2
    est.world = 2  # as on 2 ranks with 1 shard each
    est.shards = 2
    assert reference(est).shards == 2
    assert reference(est, world=4).shards == 4
    with pytest.raises(ValueError, match="world"):
        reference(est, world=0)
    with pytest.raises(TypeError, match="distributed"):
        DataParallelMiniBatch(obj, 8, distributed=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keys"):
        est.load_state_dict({"batch_size": 8, "noise": state["noise"], "x": 1})


def test_minibatch_ranks_verify_and_gather(monkeypatch: pytest.MonkeyPatch) -> None:
    obj = _objective()
    est = DataParallelMiniBatch(obj, 8, shards=2, ema=None)
    est.world, est.rank = 2, 1  # rank 1 of 2: its shard is the second half of the draw
    w = torch.zeros(3, dtype=F64)
    gen_seed = 4
    idx = torch.randperm(24, generator=torch.Generator().manual_seed(gen_seed))[:8]
    local_g, local_m = est._local_shards(w, idx)
    v1, g1 = obj.value_and_grad(w, idx[4:])
    assert torch.equal(local_g, g1.reshape(1, -1))
    fingerprint = float((idx.to(F64) * torch.arange(1, 9, dtype=F64)).sum())
    assert local_m.tolist() == [[float(v1), fingerprint, 0.0]]
    v0, g0 = obj.value_and_grad(w, idx[:4])

    def gather(local: torch.Tensor, world: int, group: Any = None) -> torch.Tensor:
        assert world == 2
        if local.shape[1] == 3 and local.dtype == F64 and bool((local[:, 1] == fingerprint).all()):
            return torch.cat([torch.tensor([[float(v0), fingerprint, 0.0]], dtype=F64), local])
        return torch.cat([g0.reshape(1, -1), local])

    monkeypatch.setattr(minibatch_mod, "gather_rows", gather)
    e = est.estimate(w, torch.Generator().manual_seed(gen_seed))
    assert torch.equal(e.grad, (g0 + g1) / 2)
    assert e.value == pytest.approx((float(v0) + float(v1)) / 2, rel=1e-15)

    def bad_gather(local: torch.Tensor, world: int, group: Any = None) -> torch.Tensor:
        other = local.clone()
        if local.shape[1] == 3:
            other[:, 2] += 1.0  # rank 0 holds other parameters
        return torch.cat([other, local])

    monkeypatch.setattr(minibatch_mod, "gather_rows", bad_gather)
    with pytest.raises(RuntimeError, match="different batches"):
        est.estimate(w, torch.Generator().manual_seed(gen_seed))

    def other_batch(local: torch.Tensor, world: int, group: Any = None) -> torch.Tensor:
        other = local.clone()
        if local.shape[1] == 3:
            other[:, 1] += 1.0  # rank 0 drew another batch (same parameters)
        return torch.cat([other, local])

    monkeypatch.setattr(minibatch_mod, "gather_rows", other_batch)
    with pytest.raises(RuntimeError, match="different batches"):
        est.estimate(w, torch.Generator().manual_seed(gen_seed))
    est.verify = False
    est.estimate(w, torch.Generator().manual_seed(gen_seed))  # not checked


def test_minibatch_one_rank_skips_the_fingerprint_check() -> None:
    # one process: no comparison across ranks, even where NaN parameters make the fingerprints unequal to themselves
    est = DataParallelMiniBatch(_objective(), 8, shards=2)
    w = torch.tensor([math.nan, 0.0, 0.0], dtype=F64)
    with pytest.raises(NonFiniteGradientError, match="gradient"):
        est.estimate(w, torch.Generator().manual_seed(0))


def test_minibatch_layout_follows_an_initialised_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minibatch_mod, "initialized", lambda: True)
    monkeypatch.setattr(minibatch_mod, "world_and_rank", lambda group=None: (2, 1))
    obj = _objective()
    est = DataParallelMiniBatch(obj, 8)
    assert (est.world, est.rank, est.shards) == (2, 1, 2)
    assert DataParallelMiniBatch(obj, 8, distributed=True).world == 2
    one = DataParallelMiniBatch(obj, 8, distributed=False)
    assert (one.world, one.rank, one.shards) == (1, 0, 1)
    assert DataParallelMiniBatch(obj, 8).noise.ema == 0.9
    twin = reference(est)  # built on a rank of the group, the twin still runs in this one process
    assert (twin.world, twin.rank, twin.shards) == (1, 0, 2)


def test_minibatch_shard_metadata_is_float64_on_the_gradients_device() -> None:
    est = DataParallelMiniBatch(_objective(), 4, shards=2)
    est.objective = SimpleNamespace(value_and_grad=lambda p, i: (0.1, torch.zeros(3, device="meta")))
    grads, meta = est._local_shards(torch.zeros(3, dtype=F64), torch.tensor([3, 1, 2, 0]))
    assert grads.shape == (2, 3)
    assert grads.device.type == "meta"
    assert meta.device.type == "meta"
    assert meta.dtype == F64
