"""Sequential minimal optimization: the sinusoid fit against exact energies, the recycled value's noise bias against
its closed form, shots counted, bit-identical continuation, refused inputs, and shots to chemical accuracy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from noisygrad.quantum import CHEMICAL_ACCURACY, EnergyObjective, ShotAllocator
from noisygrad.quantum.problems import family, problem
from noisygrad.quantum.sequential import (
    SequentialMinimizer,
    SequentialOptimizer,
    check_single_frequency,
    fit_sinusoid,
    shifted_points,
)


def test_every_ansatz_of_the_family_has_one_frequency_per_parameter():
    for case in family():
        check_single_frequency(case.ansatz)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda qc, t: (qc.ry(t, 0), qc.rz(t, 1)), "more than one gate"),
        (lambda qc, t: qc.ry(2 * t, 0), "as 2"),
        (lambda qc, t: qc.crx(t, 0, 1), r"as \(-?0\.5\)\*theta"),  # crx unfolds into rotations by theta / 2
    ],
)
def test_an_ansatz_with_more_than_one_frequency_is_refused_naming_the_parameter(build, match):
    theta = Parameter("theta")
    circuit = QuantumCircuit(2)
    build(circuit, theta)
    with pytest.raises(ValueError, match=f"^ansatz parameter 'theta' .*{match}"):
        check_single_frequency(circuit)


def test_a_shifted_or_negated_parameter_is_one_sinusoid():
    theta, phi = Parameter("theta"), Parameter("phi")
    circuit = QuantumCircuit(2)
    circuit.ry(-theta + 0.3, 0)
    circuit.rzz(phi + math.pi, 0, 1)
    check_single_frequency(circuit)


def test_one_noise_free_step_lands_on_the_exact_minimum_along_its_axis(hamiltonian, ansatz, theta):
    objective = EnergyObjective(hamiltonian, ansatz, noise="exact")
    minimizer = SequentialMinimizer(objective, theta, seed=0)
    minimizer.step()
    grid = np.linspace(-math.pi, math.pi, 4001)
    scan = np.repeat(theta[None, :], grid.size, axis=0)
    scan[:, 0] = grid
    energies = objective.exact(scan)
    assert minimizer.anchor == pytest.approx(energies.min(), abs=1e-5)  # the grid's spacing, squared
    assert minimizer.anchor == pytest.approx(objective.exact(minimizer.x)[0], abs=1e-12)
    assert minimizer.x[0] == pytest.approx(grid[np.argmin(energies)], abs=2 * (grid[1] - grid[0]))
    np.testing.assert_array_equal(minimizer.x[1:], theta[1:])  # one coordinate moves


def test_noise_free_sweeps_reach_the_ground_state_of_h2():
    case = problem("h2")
    objective = EnergyObjective(case.hamiltonian, case.ansatz, noise="exact")
    minimizer = SequentialMinimizer(objective, case.initial_point(0))
    result = minimizer.run(max_steps=40 * case.ansatz.num_parameters)
    # coordinate descent converges linearly in the valley near the minimum: 3.2e-6 Ha above it after 40 sweeps
    assert float(objective.exact(result.x)[0]) - case.exact_energy < 1e-5
    energies = [h["anchor"] for h in result.history]
    assert all(later <= earlier + 1e-12 for earlier, later in itertools.pairwise(energies))  # no step goes up
    assert result.anchor == pytest.approx(float(objective.exact(result.x)[0]), abs=1e-12)


def test_the_recycled_value_is_biased_low_by_the_closed_form(hamiltonian, ansatz, theta):
    """With noise, the fitted minimum ``C - R_hat`` is low by ``Var_perp / (2 R)`` to first order: ``R_hat`` is the
    length of ``(A, B)``, whose noise across its direction has variance ``Var_perp`` (from the three estimates'
    exact variances, which differ here: 1.3e-3, 1.4e-3 and 0.8e-3 at 200 shots). At 50 shots ``tau / R`` is 0.14,
    so the second-order terms (relative size ``(tau / R)**2``, 2%) stay below the Monte-Carlo error. 40000 repeats:
    the tolerance is 4 standard errors of the mean (measured z = 1.6, -0.1 and -1.3 for seeds 1-3); the bias itself
    is 17 standard errors."""
    exact = EnergyObjective(hamiltonian, ansatz, noise="exact")
    objective = EnergyObjective(hamiltonian, ansatz, shots=50)
    points = np.vstack([theta[None, :], shifted_points(theta, 0)])
    values = exact.exact(points)
    _, minimum, amplitude = fit_sinusoid(*values)
    cos_part, sin_part = (2 * values[0] - values[1] - values[2]) / 3, (values[1] - values[2]) / math.sqrt(3)
    v0, v_plus, v_minus = objective.variance(points) / 50
    covariance = np.array(
        [
            [(4 * v0 + v_plus + v_minus) / 9, (v_minus - v_plus) / (3 * math.sqrt(3))],
            [(v_minus - v_plus) / (3 * math.sqrt(3)), (v_plus + v_minus) / 3],
        ]
    )
    across = np.array([-sin_part, cos_part]) / amplitude
    predicted = -float(across @ covariance @ across) / (2 * amplitude)
    repeats = 40_000
    noisy = objective.sample(np.tile(points, (repeats, 1)), np.random.default_rng(1)).reshape(repeats, 3)
    fitted = np.array([fit_sinusoid(*row)[1] for row in noisy])
    bias, stderr = float(fitted.mean()) - minimum, float(fitted.std()) / math.sqrt(repeats)
    assert bias == pytest.approx(predicted, abs=4 * stderr)
    assert bias < -10 * stderr  # the bias is there, not lost in the noise


def test_without_re_measuring_the_anchor_drifts_below_the_energy_like_the_square_root_of_the_steps():
    """The module's account of why few shots work: the anchor's lag behind the true energy at the current point
    grows like sqrt(k). H2 at 2 shots per group, seeds 0-9: the mean lag after 400, 800 and 1600 steps measured
    5.6, 7.8 and 11.1 Ha (ratios 1.40 and 1.42 per doubling, each seed's within 1.35-1.57; a linear drift would
    double, a constant lag stay). Asserted: ratios within sqrt(2) +- 0.1, and the lag far above the noise of one
    estimate (about 0.33 Ha)."""
    case = problem("h2")
    exact = EnergyObjective(case.hamiltonian, case.ansatz, noise="exact")
    lags = []
    for seed in range(10):
        minimizer = SequentialMinimizer(
            EnergyObjective(case.hamiltonian, case.ansatz, shots=2), case.initial_point(seed), seed=seed
        )
        lag = []
        for steps in (400, 400, 800):
            minimizer.run(max_steps=steps)
            lag.append(float(exact.exact(minimizer.x)[0]) - minimizer.anchor)
        lags.append(lag)
    mean = np.mean(lags, axis=0)
    assert mean[1] / mean[0] == pytest.approx(math.sqrt(2), abs=0.1)
    assert mean[2] / mean[1] == pytest.approx(math.sqrt(2), abs=0.1)
    assert mean[0] > 3.0


@pytest.mark.parametrize("reset_interval", [0, 3, 4])
def test_every_shot_is_counted(hamiltonian, ansatz, theta, reset_interval):
    objective = EnergyObjective(hamiltonian, ansatz, shots=7)
    result = SequentialMinimizer(objective, theta, seed=0, reset_interval=reset_interval).run(max_steps=10)
    measured_points = 2 * 10 + (1 if reset_interval == 0 else math.ceil(10 / reset_interval))
    assert result.shots == objective.shots_used == measured_points * 7 * objective.plan.num_groups
    assert result.evaluations == measured_points
    assert [h["shots"] for h in result.history][-1] == result.shots
    assert [h["coordinate"] for h in result.history] == [k % 8 for k in range(10)]
    assert [h["step"] for h in result.history] == list(range(1, 11))


def test_growing_shots_multiply_each_sweep_s_count_and_re_measure_its_first_point(hamiltonian, ansatz, theta):
    """8 parameters, 2 groups, 3 shots per group grown 1.5x a sweep: sweeps of 3, 4 (4.5 rounds to even), 7 shots."""
    objective = EnergyObjective(hamiltonian, ansatz, shots=3)
    result = SequentialMinimizer(objective, theta, seed=0, shots_growth=1.5).run(max_steps=20)
    per_sweep = [3, 4, 7]
    assert [h["estimate_shots"] for h in result.history] == [2 * per_sweep[k // 8] for k in range(20)]
    measured = sum(m * 2 * (1 + 2 * n) for m, n in zip(per_sweep, (8, 8, 4), strict=True))  # anchor + 2 a step
    assert result.shots == objective.shots_used == measured
    assert result.evaluations == 3 + 2 * 20
    objective = EnergyObjective(hamiltonian, ansatz, shots=3)
    with_reset = SequentialMinimizer(objective, theta, seed=0, shots_growth=1.5, reset_interval=3)
    # re-measured at steps 0, 3, 6, ... and at each sweep start (0, 8, 16), once where both fall together
    assert with_reset.run(max_steps=20).evaluations == len({0, 8, 16} | set(range(0, 20, 3))) + 2 * 20
    one_shot = EnergyObjective(hamiltonian, ansatz, shots=1)
    grown = SequentialMinimizer(one_shot, theta, seed=0, shots_growth=1.4).run(max_steps=24)
    assert [h["estimate_shots"] for h in grown.history] == [2 * m for m in (1, 1, 2) for _ in range(8)]


def test_a_growth_past_the_largest_shot_count_is_refused_before_its_sweep_measures(hamiltonian, ansatz, theta):
    objective = EnergyObjective(hamiltonian, ansatz, shots=2)
    minimizer = SequentialMinimizer(objective, theta, seed=0, shots_growth=1e300)
    minimizer.run(max_steps=8)
    spent = objective.shots_used
    with pytest.raises(OverflowError, match=r"^shots_growth=1e\+300 asks for 2e\+300 shots per group at sweep 1"):
        minimizer.step()
    assert objective.shots_used == spent


def test_the_largest_shot_count_is_two_to_the_53_per_group(hamiltonian, ansatz, theta):
    minimizer = SequentialMinimizer(EnergyObjective(hamiltonian, ansatz, shots=1), theta, seed=0, shots_growth=2.0)
    state = minimizer.state_dict()
    minimizer.load_state_dict({**state, "steps": 53 * 8})  # sweep 53: 2**53 shots per group
    assert minimizer.shots_per_group == 2**53
    minimizer.load_state_dict({**state, "steps": 54 * 8})
    with pytest.raises(OverflowError, match=r"^shots_growth=2.0 asks for 1.8e\+16 shots per group at sweep 54"):
        minimizer.shots_per_group  # noqa: B018  (the property raises)


def test_a_state_saved_before_growth_existed_still_loads(hamiltonian, ansatz, theta):
    source = SequentialMinimizer(EnergyObjective(hamiltonian, ansatz, shots=10), theta, seed=0)
    source.run(max_steps=3)
    old = {k: v for k, v in source.state_dict().items() if k not in ("shots_growth", "objective_shots")}
    target = SequentialMinimizer(EnergyObjective(hamiltonian, ansatz, shots=10), theta, seed=1)
    target.load_state_dict(old)
    np.testing.assert_array_equal(target.run(max_steps=4).x, source.run(max_steps=4).x)


def test_an_allocating_objective_sets_every_estimate_s_shots(hamiltonian, ansatz, theta):
    allocation = ShotAllocator(2, total=40, min_shots=4, pilot_shots=8)
    objective = EnergyObjective(hamiltonian, ansatz, shots=10, allocation=allocation)
    result = SequentialMinimizer(objective, theta, seed=0).run(max_steps=6)
    assert [h["estimate_shots"] for h in result.history] == [40] * 6  # the allocator's total, not 10 x 2 groups


@pytest.mark.parametrize(("allocated", "growth"), [(False, 1.0), (True, 1.0), (False, 1.3)])
def test_a_saved_run_continues_bit_for_bit(hamiltonian, ansatz, theta, allocated, growth):
    def make():
        allocation = ShotAllocator(2, total=40, min_shots=4, pilot_shots=8) if allocated else None
        return EnergyObjective(hamiltonian, ansatz, shots=10, allocation=allocation)

    options = {"reset_interval": 4, "shots_growth": growth}
    whole = SequentialMinimizer(make(), theta, seed=3, **options).run(max_steps=30)
    first = SequentialMinimizer(make(), theta, seed=3, **options)
    first.run(max_steps=13)
    state = first.state_dict()
    second = SequentialMinimizer(make(), np.zeros(8), seed=99, **options)
    second.load_state_dict(state)
    rest = second.run(max_steps=17)
    np.testing.assert_array_equal(rest.x, whole.x)
    assert rest.history == whole.history
    assert (rest.shots, rest.evaluations, rest.anchor) == (
        whole.shots,
        whole.evaluations,
        whole.anchor,
    )


def test_bad_inputs_are_refused_before_any_shot(hamiltonian, ansatz, theta):
    objective = EnergyObjective(hamiltonian, ansatz, shots=10)
    with pytest.raises(TypeError, match=r"^objective must be an EnergyObjective"):
        SequentialMinimizer(lambda x: 0.0, theta)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^initial_point must have 8 entries"):
        SequentialMinimizer(objective, theta[:5])
    with pytest.raises(ValueError, match=r"^initial_point contain NaN or Inf"):
        SequentialMinimizer(objective, np.full(8, np.nan))
    with pytest.raises(ValueError, match=r"^reset_interval must be"):
        SequentialMinimizer(objective, theta, reset_interval=-1)
    for growth in (0.9, math.inf, math.nan):
        with pytest.raises(ValueError, match=r"^shots_growth must lie in \[1.0, inf\)"):
            SequentialMinimizer(objective, theta, shots_growth=growth)
    for growth in ("2", True):
        with pytest.raises(TypeError, match=r"^shots_growth must be a real number, got (str|bool)"):
            SequentialMinimizer(objective, theta, shots_growth=growth)  # type: ignore[arg-type]
    allocated = EnergyObjective(hamiltonian, ansatz, allocation=ShotAllocator(2, total=40))
    with pytest.raises(ValueError, match=r"^shots_growth must be 1 for an objective that allocates"):
        SequentialMinimizer(allocated, theta, shots_growth=1.1)
    minimizer = SequentialMinimizer(objective, theta, seed=0)
    with pytest.raises(ValueError, match=r"^run needs max_steps, max_shots or a callback"):
        minimizer.run()
    with pytest.raises(ValueError, match=r"^max_steps must be"):
        minimizer.run(max_steps=0)
    with pytest.raises(ValueError, match=r"^state holds 3 parameters"):
        minimizer.load_state_dict({**minimizer.state_dict(), "x": [0.0, 0.0, 0.0]})
    assert objective.shots_used == 0


def test_the_caller_s_point_is_not_changed(hamiltonian, ansatz, theta):
    start = theta.copy()
    SequentialMinimizer(EnergyObjective(hamiltonian, ansatz, shots=10), start, seed=0).run(max_steps=16)
    np.testing.assert_array_equal(start, theta)


def _shots_to_target(
    name: str, seed: int, shots: int, max_shots: int, shots_growth: float = 1.0, max_steps: int | None = None
) -> float:
    """Shots to the benchmark's target: chemical accuracy for molecules, 1e-3 relative for the others."""
    case = problem(name)
    goal = CHEMICAL_ACCURACY if case.kind == "molecule" else 1e-3 * abs(case.exact_energy)
    exact = EnergyObjective(case.hamiltonian, case.ansatz, noise="exact")
    minimizer = SequentialMinimizer(
        EnergyObjective(case.hamiltonian, case.ansatz, shots=shots),
        case.initial_point(seed),
        seed=seed,
        shots_growth=shots_growth,
    )
    hit = [math.inf]

    def record(x: np.ndarray, entry: dict[str, float]) -> bool:
        if float(exact.exact(x)[0]) - case.exact_energy <= goal:
            hit[0] = entry["shots"]
            return True
        return False

    minimizer.run(max_shots=max_shots, max_steps=max_steps, callback=record)
    return hit[0]


def test_heh_plus_reaches_chemical_accuracy_on_a_few_thousand_shots():
    """HeH+ (a held-out problem of the family, though it was among those looked at when 2 shots per group was
    picked), seeds 0-9, deterministic given the seed.
    Measured: median 2.6e3 shots, every seed within 1.8e4; qiskit-algorithms' SPSA at its best fixed count needs
    7.6e4 (README). Asserted with margin: a median below 7.6e4 / 10 and every seed within 5e4."""
    hits = [_shots_to_target("heh+", seed, shots=2, max_shots=5 * 10**4) for seed in range(10)]
    assert all(math.isfinite(h) for h in hits)
    assert float(np.median(hits)) < 7.6e3


@pytest.mark.slow
def test_h2_reaches_chemical_accuracy_with_fewer_shots_than_a_third_of_spsa_s():
    """H2, seeds 0-9, 2 shots per group. Measured: median 1.0e4, 10/10 within 1.8e5 shots; qiskit-algorithms' SPSA at
    its best fixed count (100 shots) needs 5.5e4 (README). Asserted: at least 9 of 10 within 2e5 and the median
    below 5.5e4 / 3."""
    hits = [_shots_to_target("h2", seed, shots=2, max_shots=2 * 10**5) for seed in range(10)]
    assert sum(math.isfinite(h) for h in hits) >= 9
    assert float(np.median(hits)) < 5.5e4 / 3


@pytest.mark.slow
def test_growing_shots_reach_the_target_on_j1j2_in_every_seed():
    """j1j2_6 (24 parameters, a tuning problem of the family), seeds 0-9, 2 shots per group grown 1.1x a sweep,
    within the benchmark's caps (2000 sweeps and qiskit SPSA's budget at 1000 shots: 1.2e7). Measured: 10/10,
    median 9.3e5; at a fixed 2 shots per group, 2 of 5 seeds within 2000 sweeps (README). Asserted: 10/10 and a
    median below 2e6."""
    hits = [
        _shots_to_target("j1j2_6", seed, shots=2, max_shots=12 * 10**6, shots_growth=1.1, max_steps=2000 * 24)
        for seed in range(10)
    ]
    assert all(math.isfinite(h) for h in hits)
    assert float(np.median(hits)) < 2e6


def _exact_energy(hamiltonian, ansatz):
    objective = EnergyObjective(hamiltonian, ansatz, noise="exact")
    return lambda x: objective.exact(np.atleast_2d(x)) if np.ndim(x) == 2 else float(objective.exact(x)[0])


def test_the_qiskit_optimizer_takes_the_steps_of_qiskit_s_nft_on_exact_energies(hamiltonian, ansatz, theta):
    """On exact energies both land on the exact minimum along each axis, so the iterates agree (mod 2 pi) with
    qiskit-algorithms' ``NFT`` (its shifts of pi/2, ours of 2 pi/3) and with :class:`SequentialMinimizer`."""
    from qiskit_algorithms.optimizers import NFT

    fun = _exact_energy(hamiltonian, ansatz)
    ours, theirs = [], []
    SequentialOptimizer(maxiter=24, callback=ours.append).minimize(fun, theta)
    NFT(maxiter=24, maxfev=None, reset_interval=-1, callback=theirs.append).minimize(fun, theta.copy())
    assert len(ours) == len(theirs) == 24
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(np.remainder(a - b + math.pi, 2 * math.pi) - math.pi, 0.0, atol=1e-9)
    minimizer = SequentialMinimizer(EnergyObjective(hamiltonian, ansatz, noise="exact"), theta)
    np.testing.assert_allclose(minimizer.run(max_steps=24).x, ours[-1], atol=1e-12)


def test_the_qiskit_optimizer_runs_qiskit_algorithms_vqe_to_the_ground_state(hamiltonian, ansatz, theta):
    from qiskit.primitives import StatevectorEstimator
    from qiskit_algorithms import VQE

    optimizer = SequentialOptimizer(maxiter=40 * 8, maxfev=None)
    result = VQE(StatevectorEstimator(), ansatz, optimizer=optimizer, initial_point=theta).compute_minimum_eigenvalue(
        hamiltonian
    )
    ground = float(np.linalg.eigvalsh(hamiltonian.to_matrix()).min())
    assert result.eigenvalue.real - ground < CHEMICAL_ACCURACY / 10  # measured 7.3e-5 from this random start
    assert result.cost_function_evals == 1 + 2 * 40 * 8 + 1  # the first point, two per step, the final point
    assert result.optimizer_result.nit == 40 * 8


def test_the_qiskit_optimizer_sends_a_step_s_two_points_in_one_call_when_grouped(hamiltonian, ansatz, theta):
    calls = []
    fun = _exact_energy(hamiltonian, ansatz)

    def counted(x):
        calls.append(np.shape(x))
        return fun(x)

    optimizer = SequentialOptimizer(maxiter=5, maxfev=None, reset_interval=2)
    optimizer.set_max_evals_grouped(2)
    result = optimizer.minimize(counted, theta)
    assert calls == [(1, 8), (2, 8), (2, 8), (1, 8), (2, 8), (2, 8), (1, 8), (2, 8), (1, 8)]
    assert result.nfev == 3 + 2 * 5 + 1
    assert result.fun == pytest.approx(fun(result.x), abs=1e-12)
    one_by_one = SequentialOptimizer(maxiter=5, maxfev=None, reset_interval=2)
    np.testing.assert_allclose(one_by_one.minimize(fun, theta).x, result.x, atol=1e-12)


def test_the_qiskit_optimizer_stops_at_maxfev_and_refuses_bad_settings(hamiltonian, ansatz, theta):
    fun = _exact_energy(hamiltonian, ansatz)
    for maxfev in (10, 11):  # stops once nfev >= maxfev (1 + 2 * 5 steps = 11); the final point's evaluation on top
        assert SequentialOptimizer(maxfev=maxfev).minimize(fun, theta).nfev == 12
    with pytest.raises(ValueError, match=r"^maxiter and maxfev cannot both be None"):
        SequentialOptimizer(maxiter=None, maxfev=None)
    with pytest.raises(ValueError, match=r"^maxiter must be"):
        SequentialOptimizer(maxiter=0)
    with pytest.raises(TypeError, match=r"^callback must be callable"):
        SequentialOptimizer(callback=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^x0 must be a non-empty 1-D array of finite numbers"):
        SequentialOptimizer().minimize(fun, np.full(8, np.inf))
    with pytest.raises(FloatingPointError, match=r"^fun's values at 1 points are not finite"):
        SequentialOptimizer().minimize(lambda x: math.nan, theta)
    settings = SequentialOptimizer(maxiter=7, reset_interval=3).settings
    assert SequentialOptimizer(**settings).settings == settings


@pytest.mark.parametrize("gate", ["rx", "ry", "rz", "p", "u1", "u", "u3", "rxx", "ryy", "rzz", "rzx"])
def test_a_refusal_names_the_gate_as_written(gate):
    """Known single-frequency gates are read as they stand, not unfolded first: the error names the caller's gate."""
    from qiskit.circuit.library import U1Gate, U3Gate

    theta = Parameter("theta")
    circuit = QuantumCircuit(2)
    if gate == "u1":
        circuit.append(U1Gate(3 * theta), [0])
    elif gate == "u3":
        circuit.append(U3Gate(3 * theta, 0.1, 0.2), [0])
    elif gate == "u":
        circuit.u(3 * theta, 0.1, 0.2, 0)
    else:
        qubits = (0,) if gate in ("rx", "ry", "rz", "p") else (0, 1)
        getattr(circuit, gate)(3 * theta, *qubits)
    expected = rf"^ansatz parameter 'theta' enters its {gate} gate \(instruction 0, argument 0\) as 3\*theta"
    with pytest.raises(ValueError, match=expected):
        check_single_frequency(circuit)


def _nested(depth: int) -> QuantumCircuit:
    circuit = QuantumCircuit(1)
    circuit.ry(Parameter("theta"), 0)
    for level in range(depth):
        outer = QuantumCircuit(1)
        outer.append(circuit.to_gate(label=f"block{level}"), [0])
        circuit = outer
    return circuit


def test_blocks_are_unfolded_however_deep_and_a_gate_that_does_not_unfold_is_refused():
    check_single_frequency(_nested(12))
    from qiskit.circuit import Gate

    circuit = QuantumCircuit(1)
    circuit.append(Gate("opaque", 1, [Parameter("theta")]), [0])  # no definition: nothing to unfold
    with pytest.raises(ValueError, match=r"^ansatz parameter 'theta' enters a opaque gate .*: sequential minimization"):
        check_single_frequency(circuit)


def test_a_parameter_in_two_arguments_of_one_gate_or_with_an_imaginary_slope_is_refused():
    theta = Parameter("theta")
    circuit = QuantumCircuit(1)
    circuit.u(theta, theta, 0.0, 0)
    with pytest.raises(ValueError, match=r"more than one gate \(u gate \(instruction 0, argument 0\) and u gate"):
        check_single_frequency(circuit)
    circuit = QuantumCircuit(1)
    circuit.ry(1j * theta, 0)
    with pytest.raises(ValueError, match=r"as .*theta: sequential minimization needs \+-theta"):
        check_single_frequency(circuit)


def test_a_flat_axis_stays_where_it_is():
    assert fit_sinusoid(0.5, 0.5, 0.5) == (0.0, 0.5, 0.0)


def test_a_refused_state_changes_nothing_and_the_caller_s_generator_is_left_alone(hamiltonian, ansatz, theta):
    allocation = ShotAllocator(2, total=40, min_shots=4, pilot_shots=8)
    objective = EnergyObjective(hamiltonian, ansatz, shots=10, allocation=allocation)
    source = SequentialMinimizer(objective, theta, seed=3)
    source.run(max_steps=5)
    state = source.state_dict()
    callers = np.random.default_rng(7)
    before = callers.bit_generator.state
    target = SequentialMinimizer(
        EnergyObjective(hamiltonian, ansatz, shots=10, allocation=ShotAllocator(2, total=40)), np.zeros(8), seed=callers
    )
    snapshot = (target.x.copy(), target.steps, target.objective.shots_used, target.objective.allocation.state_dict())
    for bad, match in (
        ({**state, "allocation": {**state["allocation"], "weight": [1.0]}}, "^state must hold 2 groups"),
        ({**state, "reset_interval": 4}, "^state was saved with reset_interval=4"),
        ({**state, "shots_growth": 1.2}, "^state was saved with shots_growth=1.2 and objective shots 10"),
        ({**state, "objective_shots": 20}, "^state was saved with shots_growth=1.0 and objective shots 20"),
        ({**state, "x": [np.nan] * 8}, "^state holds 8 parameters"),
    ):
        with pytest.raises(ValueError, match=match):
            target.load_state_dict(bad)
        assert (target.x.tolist(), target.steps, target.objective.shots_used) == (snapshot[0].tolist(), 0, 0)
        assert target.objective.allocation.state_dict() == snapshot[3]
    target.load_state_dict(state)
    assert callers.bit_generator.state == before
    assert target.rng is not callers


def test_run_stops_once_the_objective_has_used_max_shots(hamiltonian, ansatz, theta):
    objective = EnergyObjective(hamiltonian, ansatz, shots=10)  # 2 groups: 20 shots an estimate
    result = SequentialMinimizer(objective, theta, seed=0).run(max_shots=100)
    assert (result.steps, result.shots) == (2, 100)  # the first point (20), then two steps of 40
    assert SequentialMinimizer(objective, theta, seed=0).run(max_shots=101).steps == 1  # the total is already 100


def test_run_refuses_a_callback_that_cannot_be_called_before_any_shot(hamiltonian, ansatz, theta):
    objective = EnergyObjective(hamiltonian, ansatz, shots=10)
    with pytest.raises(TypeError, match=r"^callback must be callable or None, got int"):
        SequentialMinimizer(objective, theta, seed=0).run(max_steps=3, callback=3)  # type: ignore[arg-type]
    assert objective.shots_used == 0


def test_the_qiskit_optimizer_takes_a_negative_reset_interval_as_never_and_refuses_a_2d_x0(hamiltonian, ansatz, theta):
    fun = _exact_energy(hamiltonian, ansatz)
    assert SequentialOptimizer(reset_interval=-1).reset_interval == 0
    with pytest.raises(ValueError, match=r"^x0 must be a non-empty 1-D array"):
        SequentialOptimizer().minimize(fun, theta.reshape(2, 4))


def test_the_defaults_are_qiskit_nft_s_but_for_the_reset():
    from qiskit_algorithms.optimizers import NFT

    ours, theirs = SequentialOptimizer().settings, NFT().settings
    assert {k: ours[k] for k in ("maxiter", "maxfev", "disp")} == {k: theirs[k] for k in ("maxiter", "maxfev", "disp")}
    assert (ours["reset_interval"], theirs["reset_interval"]) == (0, 32)
    assert ours["callback"] is None


def test_the_qiskit_optimizer_in_vqe_with_real_shots_reports_a_measured_energy(hamiltonian, ansatz, theta):
    """qiskit-algorithms' VQE on the shot estimator (100 shots per group), seeds 0-2: the eigenvalue is a fresh
    estimate at the optimal point (measured within 1.7 of its standard deviations; asserted within 4), the point is
    near the ground state (measured 0.7-3.3 mHa; asserted below 10 mHa), every evaluation is counted, and the two
    points of each step go in one call."""
    from qiskit_algorithms import VQE

    from noisygrad.quantum import shot_estimator

    exact = EnergyObjective(hamiltonian, ansatz, noise="exact")
    ground = float(np.linalg.eigvalsh(hamiltonian.to_matrix()).min())
    for seed in range(3):
        estimator = shot_estimator(shots=100, seed=seed)
        optimizer = SequentialOptimizer(maxiter=8 * 40, maxfev=None)
        optimizer.set_max_evals_grouped(2)
        result = VQE(estimator, ansatz, optimizer=optimizer, initial_point=theta).compute_minimum_eigenvalue(
            hamiltonian
        )
        energy = float(exact.exact(result.optimal_point)[0])
        std = math.sqrt(float(exact.variance(result.optimal_point)[0]) / 100)
        assert abs(result.eigenvalue.real - energy) < 4 * std
        assert energy - ground < 0.01
        assert result.cost_function_evals == estimator.evaluations == 1 + 2 * 8 * 40 + 1
        assert estimator.calls == 1 + 8 * 40 + 1
