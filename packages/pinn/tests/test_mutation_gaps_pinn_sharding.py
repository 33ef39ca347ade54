"""Training, resuming and sharding (``pinn/training.py``, ``pinn/distributed.py``): behaviours that the full
mutation runs of both modules (and a sample of ``training.py`` before its full run) found unchecked (issue 18).

Tiny real DeepXDE models (``conftest.tiny_poisson``) trained for a few steps. The checks are exact: documented
defaults, the saved state's settings, bit-for-bit reproducibility from the seed, dtypes. No statistical claim is
made, so there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

import noisygrad.pinn as ngp
from noisygrad.pinn import distributed as dist
from noisygrad.pinn import training as tr
from noisygrad.pinn._deepxde import deepxde
from noisygrad.pinn.problems import default_float

from .conftest import params_of, same, tiny_poisson


def test_a_fresh_train_result_has_no_shard_noise_yet() -> None:
    result = tr.TrainResult("adam")
    assert result.trace_cov.shape == result.grad_norm_sq.shape == (0,)


def test_train_draws_its_batches_from_seed_zero_by_default() -> None:
    runs = {}
    for seed in (None, 0, 1):
        model = tiny_poisson(0)
        args = {} if seed is None else {"seed": seed}
        ngp.train(model, "adam", lr=1e-2, iterations=3, batch_size=8, verbose=0, **args)
        runs[seed] = params_of(model)
    assert same(runs[None], runs[0])
    assert not same(runs[None], runs[1])


def test_the_saved_state_names_its_batch_settings() -> None:
    full = ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=1, verbose=0)
    assert full.state["batch"] == {"batch_size": None, "batch_every": 1}
    batched = ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=1, batch_size=8, batch_every=2, verbose=0)
    assert batched.state["batch"] == {"batch_size": 8, "batch_every": 2}


def test_a_run_with_a_learning_rate_decay_resumes_with_the_same_decay() -> None:
    model = tiny_poisson(0)
    decay = ("step", 10, 0.5)
    part = ngp.train(model, "adam", lr=1e-3, iterations=2, decay=decay, verbose=0)
    rest = ngp.train(model, "adam", lr=1e-3, iterations=2, decay=decay, resume=part.state, verbose=0)
    assert rest.iterations == 2
    assert model.lr_scheduler is not None


def test_shards_of_the_full_set_follow_the_seeds_order_and_shards_of_a_batch_split_the_draw() -> None:
    """On the full set each step splits a random order of the points drawn from the run's seed: the shard noise
    is the same for the same seed and differs for another. On mini-batches the draw is split (two shards of 6
    points, one shard-noise estimate per step)."""
    noise = {}
    for seed in (1, 1, 2):
        result = ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=2, shards=2, seed=seed, verbose=0)
        noise.setdefault(seed, []).append(result.trace_cov)
    assert (noise[1][0] == noise[1][1]).all()
    assert (noise[1][0] != noise[2][0]).any()
    batched = ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=2, batch_size=12, shards=2, verbose=0)
    assert (batched.shards, batched.batch_size) == (2, 12)
    assert batched.trace_cov.shape == (2,)


@pytest.mark.filterwarnings("ignore:L-BFGS in float32:noisygrad.pinn.PinnWarning")
def test_adam_then_lbfgs_runs_2000_adam_iterations_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    budgets, calls = [], []
    real_train = tr.train

    def one_step(model, optimizer, *, iterations, **kwargs):
        budgets.append(iterations)
        calls.append(kwargs)
        return real_train(model, optimizer, iterations=1, **kwargs)

    monkeypatch.setattr(tr, "train", one_step)
    tr.adam_then_lbfgs(tiny_poisson(0), verbose=0)
    assert budgets == [2000, tr.DEFAULT_LBFGS_ITERATIONS]
    assert tr.DEFAULT_LBFGS_ITERATIONS == 15000
    assert calls[0]["lr"] == 1e-3
    assert calls[0]["seed"] is calls[1]["seed"]  # the second phase goes on with the first one's generator
    assert calls[0]["seed"].initial_seed() == tr.torch_stream(0).initial_seed()  # seed 0 by default


def test_a_layout_is_frozen() -> None:
    layout = dist.Layout(2, 0, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        layout.rank = 1  # type: ignore[misc]


def test_sharded_gradient_gathers_its_fingerprints_in_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    """A float32 model's gradients travel in float32, the losses and fingerprints of points and parameters in
    float64, so that the ranks' check compares them at full precision."""
    with default_float("float32"):
        model = tiny_poisson(0)
        ngp.train(model, "adam", lr=1e-3, iterations=1, verbose=0)
        dtypes = []

        def gather(rows_here: torch.Tensor, world: int) -> torch.Tensor:
            dtypes.append(rows_here.dtype)
            return torch.cat([rows_here, rows_here])

        monkeypatch.setattr(dist, "gather_rows", gather)
        sharded = dist.ShardedGradient(model, list(model.net.parameters()), dist.Layout(2, 0, 2))
        sharded.begin_step()
        sharded.evaluate(tr._full_rows(model))
    assert dtypes == [torch.float32, torch.float64]


def test_a_fresh_result_keeps_its_state_out_of_its_repr() -> None:
    assert "state=" not in repr(tr.TrainResult("adam"))


def test_train_takes_adam_and_deepxdes_compile_arguments_by_default() -> None:
    result = ngp.train(tiny_poisson(0), iterations=1, loss="MSE", metrics=[], verbose=0)
    assert result.optimizer == "adam"
    with pytest.raises(TypeError, match=r"^train\(\) got unexpected keyword arguments \['bogus'\]"):
        ngp.train(tiny_poisson(0), iterations=1, bogus=1)


def test_plateau_compares_the_last_two_windows_only() -> None:
    """Window 2: the last two losses (1, 1) against the two before (10, 10) fell by 90%: no plateau, whatever came
    earlier."""
    assert not tr.Plateau(window=2, rel_tol=0.01)([1.0, 1.0, 10.0, 10.0, 1.0, 1.0])


def test_one_process_shards_print_deepxdes_training_banner_at_verbose_1(capsys: pytest.CaptureFixture[str]) -> None:
    ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=2, shards=2, verbose=1)
    assert "Training model" in capsys.readouterr().out


def test_mini_batch_lbfgs_takes_one_iteration_per_fresh_batch() -> None:
    with default_float("float64"):
        result = ngp.train(tiny_poisson(0), "lbfgs", iterations=3, batch_size=8, verbose=0)
    assert result.iterations == result.batch_draws == 3


def test_full_set_lbfgs_caps_the_evaluations_of_a_short_last_chunk() -> None:
    """Chunks of 30 iterations, then what is left of 53 (26 here: the first chunk ended after 27 iterations): the last
    chunk may evaluate at most ``max(m * 5 // 4, 25)`` times for its ``m`` iterations, an integer."""
    with default_float("float64"):
        model = tiny_poisson(0)
        ngp.train(model, "lbfgs", iterations=53, lbfgs_chunk=30, verbose=0)
    group = model.opt.param_groups[0]
    assert group["max_iter"] < 30
    assert group["max_eval"] == max(group["max_iter"] * 5 // 4, 25)
    assert isinstance(group["max_eval"], int)


def test_the_progress_table_shows_every_display_every_steps(capsys: pytest.CaptureFixture[str]) -> None:
    """1000 by default: 1001 Adam steps print the steps 0, 1000 and 1001."""
    ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=1001)
    steps = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line[:1].isdigit()]
    assert steps == ["0", "1000", "1001"]


def test_train_warns_about_a_resampler_of_fixed_points_in_the_callers_file() -> None:
    resampler = deepxde().callbacks.PDEPointResampler(period=10)
    with pytest.warns(ngp.PinnWarning, match="PDEPointResampler redraws the same points") as record:
        ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=1, callbacks=[resampler], verbose=0)
    warning = next(w for w in record if "PDEPointResampler" in str(w.message))
    assert warning.filename == __file__


def test_the_training_time_is_within_the_calls_own() -> None:
    before = time.perf_counter()
    result = ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=2, verbose=0)
    assert 0.0 < result.seconds <= time.perf_counter() - before


def test_train_at_verbose_0_silences_the_callbacks_too(capsys: pytest.CaptureFixture[str]) -> None:
    """DeepXDE's EarlyStopping prints when it stops; at ``verbose=0`` nothing reaches stdout."""
    stop = deepxde().callbacks.EarlyStopping(min_delta=1e9, patience=0)
    ngp.train(tiny_poisson(0), "adam", lr=1e-3, iterations=3, callbacks=[stop], verbose=0)
    assert capsys.readouterr().out == ""
