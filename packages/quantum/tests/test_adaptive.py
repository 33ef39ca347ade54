"""Adaptive shots per iteration: the shots follow the gradient's signal-to-noise, and every shot is counted."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch

import noisygrad as ng
import noisygrad.quantum as nq


def _problem():
    return nq.tfim(3), nq.tfim_ansatz(3, 1)


@pytest.mark.parametrize("inner", ["parameter-shift", "spsa"])
def test_shots_grow_as_the_gradient_falls_and_every_shot_is_counted(inner):
    hamiltonian, ansatz = _problem()
    factory = nq.ParameterShift if inner == "parameter-shift" else functools.partial(ng.SPSA, c=0.2, gamma=0.101)
    # smoothing 0.8, the default before SPSA got its own (0.98): the shots then grow by far more than 20x (see
    # test_spsa_default_smoothing_spends_far_fewer_shots for what the longer average saves)
    gradient = functools.partial(
        nq.AdaptiveShots, inner=factory, snr=1.0, min_shots=10, max_shots=20_000, smoothing=0.8
    )
    result = nq.vqe(hamiltonian, ansatz, gradient=gradient, maxiter=120, seed=0, shots=10, final_shots=1000)
    chosen = [h["group_shots"] for h in result.history]
    assert chosen[0] == 10
    # near the minimum the gradient is small against the noise: the run ends with far more shots than it began
    assert np.mean(chosen[-20:]) > 20 * np.mean(chosen[:5])
    assert result.error < 0.05 * abs(result.reference_energy)
    # every shot counted: the steps' shots (groups x points x shots per group), calibration and final estimate
    groups = 2  # the ZZ terms and the X terms
    points = 2 * 5 if inner == "parameter-shift" else 2
    steps = groups * points * sum(chosen)
    extra = result.calibration.get("shots", 0.0) + groups * 1000
    assert result.shots == steps + extra


def test_the_snr_of_the_estimates_is_held_at_the_target():
    """At a fixed point (a fixed gradient), the chosen shots settle where the measured SNR meets the target.

    The SNR an estimate reports comes from the averaged signal and noise (smoothing 0.9, about 10 estimates), so it
    scatters by roughly 1/sqrt(10) of the noise in the power; averaged over 40 estimates after a settling-in of 20,
    seeded, it lies within 20% of the target (measured: 2.00 for a target of 2)."""
    hamiltonian, ansatz = _problem()
    objective = nq.EnergyObjective(hamiltonian, ansatz, shots=10)
    adaptive = nq.AdaptiveShots(objective, snr=2.0, min_shots=4, max_shots=10**6, smoothing=0.9)
    x = torch.full((5,), 0.2, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        adaptive.estimate(x, generator)
    history = list(adaptive.history)
    assert float(np.mean([h["snr"] for h in history[20:]])) == pytest.approx(2.0, rel=0.2)
    # the shots settle (no runaway): the last 20 counts within a factor 1.5 of each other, of order 100 here
    late = [h["shots"] for h in history[40:]]
    assert max(late) < 1.5 * min(late)
    assert 20 < adaptive.shots < 2000


def test_state_round_trips_through_a_resumed_vqe_run():
    hamiltonian, ansatz = _problem()
    gradient = functools.partial(nq.AdaptiveShots, min_shots=10)
    full = nq.vqe(hamiltonian, ansatz, gradient=gradient, maxiter=30, seed=1, shots=10)
    part = nq.vqe(hamiltonian, ansatz, gradient=gradient, maxiter=30, seed=1, shots=10, stop_at=12)
    rest = nq.vqe(hamiltonian, ansatz, gradient=gradient, maxiter=30, seed=1, shots=10, resume=part.checkpoint)
    np.testing.assert_array_equal(rest.parameters, full.parameters)
    assert rest.shots == full.shots
    assert rest.history == full.history


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"snr": 0.0}, ValueError, "snr"),
        ({"min_shots": 0}, ValueError, "min_shots"),
        ({"min_shots": 10, "max_shots": 5}, ValueError, "max_shots"),
        ({"growth": 1.0}, ValueError, "growth"),
        ({"smoothing": 1.0}, ValueError, "smoothing"),
        ({"inner": ng.CentralDifference}, TypeError, "inner"),
        ({"inner": 3}, TypeError, "inner"),
    ],
)
def test_bad_settings_are_named(kwargs, error, match):
    hamiltonian, ansatz = _problem()
    objective = nq.EnergyObjective(hamiltonian, ansatz, shots=10)
    with pytest.raises(error, match=match):
        nq.AdaptiveShots(objective, **kwargs)
    with pytest.raises(TypeError, match="objective"):
        nq.AdaptiveShots(3)


def _h2_near_its_minimum():
    """H2 (the benchmark family's), at an iterate of exact gradient descent 0.03 Ha above the ground state, where
    adaptive SPSA stalled: |g|^2 = 5.4e-3, against a directional-derivative noise of 1.2e-2 at 100 shots."""
    from noisygrad.quantum.problems import problem

    case = problem("h2")
    exact = nq.EnergyObjective(case.hamiltonian, case.ansatz, noise="exact")
    x, shifts = case.initial_point(0), np.eye(case.num_parameters) * np.pi / 2
    for _ in range(400):
        if exact.exact(x)[0] - case.exact_energy < 0.03:
            break
        x = x - 0.3 * (exact.exact(x + shifts) - exact.exact(x - shifts)) / 2
    return case, exact, torch.as_tensor(x)


def test_the_spsa_signal_estimate_is_unbiased_and_needs_the_longer_average():
    """Around SPSA each estimate's power is ONE squared directional derivative ``D^2`` with ``D = (f(x + c Delta) -
    f(x - c Delta)) / (2c)`` plus shot noise, and its noise part ``n`` comes from the measured standard errors; so
    ``E[p - n] = E_Delta[D_exact(Delta)^2]``, computed here exactly over all 2^8 Rademacher directions (free, exact
    energies). 3000 estimates at a fixed point and 100 shots: the mean of ``p - n`` lies within 4 of its own Monte
    Carlo standard errors of that (measured: 0.5 standard errors; the noise part is right, the diagnosis below is
    not a bias).

    The defect was the averaging: ``p - n`` scatters by 4.7 times its mean here (true snr 0.66), so the signal
    averaged over smoothing 0.8's ~9 estimates was <= 0 in about a quarter of the steps (each doubles the shots);
    SPSA's default smoothing (0.98, ~100 estimates) brings that under 5% (measured: 27% and 0.4%)."""
    case, exact, x = _h2_near_its_minimum()
    c = 0.2
    deltas = np.array(list(itertools.product([-1.0, 1.0], repeat=case.num_parameters)))
    directional = (exact.exact(x.numpy() + c * deltas) - exact.exact(x.numpy() - c * deltas)) / (2 * c)
    expected = float(np.mean(directional**2))
    objective = nq.EnergyObjective(case.hamiltonian, case.ansatz, shots=100)
    adaptive = nq.AdaptiveShots(
        objective, inner=functools.partial(ng.SPSA, c=c, gamma=0.0), min_shots=100, max_shots=100
    )
    assert adaptive.smoothing == nq.adaptive.SPSA_SMOOTHING == 0.98
    generator = torch.Generator().manual_seed(1)
    for _ in range(3000):
        adaptive.estimate(x, generator)
    signal = np.array([h["power"] - h["noise"] for h in adaptive.history])
    assert objective.shots_used == 3000 * 2 * 2 * 100  # estimates x points x groups x shots, every one counted
    assert abs(signal.mean() - expected) < 4 * signal.std() / np.sqrt(len(signal))
    assert signal.std() > 3 * expected  # one draw resolves nothing: hence the long average

    def share_not_positive(a):
        smoothed, average = [], 0.0
        for k, value in enumerate(signal, start=1):
            average = a * average + (1 - a) * value
            smoothed.append(average / (1 - a**k))
        return float(np.mean(np.array(smoothed[100:]) <= 0))

    assert share_not_positive(0.8) > 0.15
    assert share_not_positive(adaptive.smoothing) < 0.05


def test_the_default_smoothing_follows_the_inner_estimator_and_an_explicit_one_is_kept():
    hamiltonian, ansatz = _problem()
    objective = nq.EnergyObjective(hamiltonian, ansatz, shots=10)
    assert nq.AdaptiveShots(objective).smoothing == 0.8
    assert nq.AdaptiveShots(objective, inner=ng.SPSA).smoothing == 0.98
    assert nq.AdaptiveShots(objective, inner=ng.SPSA, smoothing=0.5).smoothing == 0.5
    with pytest.raises(ValueError, match="smoothing"):
        nq.AdaptiveShots(objective, inner=ng.SPSA, smoothing=-0.1)


def test_spsa_default_smoothing_spends_far_fewer_shots():
    """The same run as test_shots_grow_as_the_gradient_falls_and_every_shot_is_counted (tfim(3), SPSA, snr 1, 120
    steps), with smoothing 0.8 and with SPSA's default 0.98: about the same final error (measured 2.5% and 3.3% of
    |E0|), at 2.7e6 and 3.3e4 shots (84x; asserted: 10x). With 0.8 the noisy signal estimate let the shots run up."""
    hamiltonian, ansatz = _problem()
    factory = functools.partial(ng.SPSA, c=0.2, gamma=0.101)
    runs = {}
    for smoothing in (0.8, None):
        gradient = functools.partial(
            nq.AdaptiveShots, inner=factory, snr=1.0, min_shots=10, max_shots=20_000, smoothing=smoothing
        )
        runs[smoothing] = nq.vqe(
            hamiltonian, ansatz, gradient=gradient, maxiter=120, seed=0, shots=10, final_shots=1000
        )
    assert runs[None].error < 0.05 * abs(runs[None].reference_energy)
    assert runs[0.8].error < 0.05 * abs(runs[0.8].reference_energy)
    assert runs[None].shots * 10 < runs[0.8].shots


def _shots_to_chemical_accuracy(case, seed, smoothing):
    """``benchmarks/quantum_shot_frugal.py``'s adaptive-spsa run at ``snr=0.5`` with vqe's default (Spall) gains, 300
    steps: its cumulative shots (calibration included) at the first iterate within 1.6 mHa, ``inf`` if none."""
    inner = functools.partial(ng.SPSA, c=0.2, gamma=0.101)
    gradient = functools.partial(
        nq.AdaptiveShots, inner=inner, snr=0.5, min_shots=10, max_shots=10**6, smoothing=smoothing
    )
    result = nq.vqe(
        case.hamiltonian,
        case.ansatz,
        gradient=gradient,
        maxiter=300,
        seed=seed,
        shots=100,
        initial_point=case.initial_point(seed),
        final_shots=10,
        average_last=1,
    )
    hits = [h["shots"] for h in result.history if h["exact"] - case.exact_energy <= nq.CHEMICAL_ACCURACY]
    return hits[0] if hits else float("inf")


def test_adaptive_spsa_reaches_chemical_accuracy_on_h2_within_a_budget():
    """H2 of the benchmark family, seeds 0..9 (every seed run, none chosen): with SPSA's default smoothing 6 of the 10
    reach 1.6 mHa within 2e5 shots (measured: 1.4e4-1.3e5; seed 4 at 2.6e5, seeds 2, 6 and 9 not in 300 steps),
    asserted: at least 5. With the former 0.8 none does (the first to get there, seed 6, after 2.9e6 shots; 5/10 in
    300 steps, README "Side by side"). The runs are deterministic given the seed."""
    from noisygrad.quantum.problems import problem

    case = problem("h2")
    within = {
        smoothing: sum(_shots_to_chemical_accuracy(case, seed, smoothing) < 2e5 for seed in range(10))
        for smoothing in (None, 0.8)
    }
    assert within[None] >= 5
    assert within[0.8] == 0
