"""Shot-frugal VQE, part 2: shots to reach the target energy, side by side with qiskit-algorithms and PennyLane.

Same Hamiltonians, ansatzes and initial points (``noisygrad.quantum.problems.family``, tuning and held-out halves
reported separately), same seeds, same shot model: a shot is one preparation of the ansatz state measured once (one
measurement group for the qiskit and noisygrad runs, one Hamiltonian term for PennyLane's Rosalin, which samples
terms). For every iterate the exact (statevector) energy is computed for free; a run's *shots to target* are its
cumulative shots (calibration included) at the first iterate within the target: 1.6 mHa for molecules, 1e-3
relative for the other problems (issue 20). A run that never gets there counts as infinite (the medians say how
many did). Methods:

* ``qiskit-spsa``: ``qiskit_algorithms.optimizers.SPSA`` (its defaults, calibrated), driving
  :func:`~noisygrad.quantum.shot_estimator` with a fixed number of shots per group, for each of ``--fixed-shots``;
  the table takes its best fixed count per problem (the lowest median; among counts tied at an infinite median, the
  one with the most seeds at the target), as the acceptance asks.
* ``adaptive-ps``: :func:`~noisygrad.quantum.vqe` with :class:`~noisygrad.quantum.AdaptiveShots` around parameter
  shift (Adam, lr 0.1): shots per iteration chosen to hold the gradient's signal-to-noise at ``--snr``.
* ``adaptive-spsa``: the same around the core's SPSA (Spall's calibrated gains).
* ``sequential``: :class:`~noisygrad.quantum.sequential.SequentialMinimizer` (sequential minimal optimization with
  NFT's recycled value, two estimates per coordinate step) with ``--sequential-shots`` shots per group, one setting
  for every problem, grown by ``--sequential-growth`` every sweep; at most ``maxiter`` sweeps (``maxiter * P``
  steps; ``--sequential-sweeps`` sets another count) and qiskit's SPSA budget at ``--sequential-budget-shots``
  shots per group (``maxiter * 2 * that * G`` shots; default 100).
* ``qiskit-nft``: qiskit-algorithms' ``NFT`` (the same idea with shifts of pi/2 and a re-measured point every 32
  steps) on :func:`~noisygrad.quantum.shot_estimator`, best of ``--fixed-shots`` as for SPSA; at most ``maxiter``
  sweeps and qiskit's SPSA budget at 100 shots.
* ``rosalin``: PennyLane's ``ShotAdaptiveOptimizer`` (weighted random term sampling, ``min_shots=10``, its default
  step 0.07) on ``default.qubit``, with the circuit and Hamiltonian converted gate for gate and term for term.

    .venv/bin/python benchmarks/quantum_shot_frugal.py [--problems h2 tfim_4 ...] [--seeds 3] [--maxiter 300]
        [--fixed-shots 100 1000] [--snr 1.0] [--spsa-snr 1.0] [--spsa-stability 300] [--spsa-target-step 0.2]
        [--sequential-shots 2] [--sequential-sweeps N] [--sequential-reset 0] [--sequential-growth 1.0]
        [--sequential-budget-shots 100] [--split tuning|held_out]
        [--methods ...] [--json out.json]

Prints one row per problem and method: median shots to target (and how many seeds reached it), the ratio of
qiskit's best fixed count to each method, and the medians over each half.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import noisygrad as ng
from noisygrad.quantum import (
    CHEMICAL_ACCURACY,
    AdaptiveShots,
    EnergyObjective,
    MeasurementPlan,
    ParameterShift,
    shot_estimator,
    vqe,
)
from noisygrad.quantum.problems import Problem, family, problem
from noisygrad.quantum.sequential import SequentialMinimizer

METHODS = ("qiskit-spsa", "adaptive-ps", "adaptive-spsa", "rosalin", "sequential", "qiskit-nft")


def target(case: Problem) -> float:
    """The energy error a run must reach: chemical accuracy for molecules, 1e-3 relative otherwise."""
    return CHEMICAL_ACCURACY if case.kind == "molecule" else 1e-3 * abs(case.exact_energy)


def first_hit(trace: list[tuple[float, float]], goal: float) -> float:
    """The cumulative shots at the first iterate whose error is within ``goal`` (``inf`` if none)."""
    return next((shots for shots, error in trace if error <= goal), math.inf)


def run_qiskit_spsa(case: Problem, seed: int, shots: int, maxiter: int) -> list[tuple[float, float]]:
    from qiskit_algorithms.optimizers import SPSA as QiskitSPSA
    from qiskit_algorithms.utils import algorithm_globals

    exact = EnergyObjective(case.hamiltonian, case.ansatz, noise="exact")
    estimator = shot_estimator(shots=shots, seed=seed)
    trace: list[tuple[float, float]] = []

    def fun(x: np.ndarray) -> float:
        return float(estimator.run([(case.ansatz, case.hamiltonian, x)]).result()[0].data.evs)

    def checker(nfev: int, x: np.ndarray, fx: float, step: float, accepted: bool) -> bool:
        trace.append((float(estimator.shots_used), float(exact.exact(x)[0]) - case.exact_energy))
        return False

    algorithm_globals.random_seed = seed
    QiskitSPSA(maxiter=maxiter, termination_checker=checker).minimize(fun, case.initial_point(seed))
    return trace


def run_adaptive(
    case: Problem,
    seed: int,
    maxiter: int,
    snr: float,
    inner: str,
    calibration_shots: int = 100,
    stability: float | None = None,
    target_step: float = 2 * math.pi / 10,
) -> list[tuple[float, float]]:
    """``vqe`` with ``AdaptiveShots`` around parameter shift (``inner="ps"``, Adam) or SPSA (``"spsa"``, Spall's gain
    ``a / (stability + k + 1)^0.602`` calibrated so that the first step is ``target_step``)."""
    factory: Callable[..., Any] = ParameterShift if inner == "ps" else functools.partial(ng.SPSA, c=0.2, gamma=0.101)
    gradient = functools.partial(AdaptiveShots, inner=factory, snr=snr, min_shots=10, max_shots=10**6)
    gains: dict[str, Any] = {} if inner == "ps" else {"stability": stability, "target_step": target_step}
    result = vqe(
        case.hamiltonian,
        case.ansatz,
        gradient=gradient,
        maxiter=maxiter,
        seed=seed,
        shots=calibration_shots,  # SPSA's gain calibration measures with these (counted); then AdaptiveShots decides
        initial_point=case.initial_point(seed),
        final_shots=10,
        average_last=1,
        **gains,
    )
    return [(float(h["shots"]), h["exact"] - case.exact_energy) for h in result.history]


def _caps(case: Problem, maxiter: int, sweeps: int | None = None, budget_shots: int = 100) -> tuple[int, int]:
    """The sequential methods' caps: ``sweeps`` sweeps (default ``maxiter``), and qiskit SPSA's budget at
    ``budget_shots`` shots per group (``maxiter`` iterations of two estimates)."""
    groups = MeasurementPlan(case.hamiltonian).num_groups
    return (maxiter if sweeps is None else sweeps) * case.ansatz.num_parameters, maxiter * 2 * budget_shots * groups


def run_sequential(
    case: Problem,
    seed: int,
    shots: int,
    maxiter: int,
    sweeps: int | None = None,
    reset_interval: int = 0,
    shots_growth: float = 1.0,
    budget_shots: int = 100,
) -> list[tuple[float, float]]:
    """:class:`SequentialMinimizer` with ``shots`` per group (times ``shots_growth`` per sweep), stopped at the
    first hit (the metric) or the caps (:func:`_caps`)."""
    exact = EnergyObjective(case.hamiltonian, case.ansatz, noise="exact")
    minimizer = SequentialMinimizer(
        EnergyObjective(case.hamiltonian, case.ansatz, shots=shots),
        case.initial_point(seed),
        seed=seed,
        reset_interval=reset_interval,
        shots_growth=shots_growth,
    )
    trace: list[tuple[float, float]] = []
    goal = target(case)
    sweep: list[tuple[float, np.ndarray]] = []

    def record(x: np.ndarray, entry: dict[str, float]) -> bool:
        """Keeps each step's point; the exact energies of a sweep's points are computed in one call at its end
        (the first hit's shots are the same as with one call per step, a sweep at most later)."""
        sweep.append((entry["shots"], x))
        if len(sweep) < case.ansatz.num_parameters:
            return False
        return flush()

    def flush() -> bool:
        if not sweep:
            return False
        errors = exact.exact(np.stack([point for _, point in sweep])) - case.exact_energy
        trace.extend((spent, float(error)) for (spent, _), error in zip(sweep, errors, strict=True))
        sweep.clear()
        return bool(errors.min() <= goal)

    max_steps, max_shots = _caps(case, maxiter, sweeps, budget_shots)
    minimizer.run(max_steps=max_steps, max_shots=max_shots, callback=record)
    flush()  # the steps of a sweep cut short by the shot cap
    return trace


class _Stop(Exception):
    """Ends a qiskit NFT run from its callback (it has no termination checker)."""


def run_qiskit_nft(case: Problem, seed: int, shots: int, maxiter: int) -> list[tuple[float, float]]:
    """qiskit-algorithms' ``NFT`` on the shot estimator, stopped at the first hit or the caps."""
    from qiskit_algorithms.optimizers import NFT

    exact = EnergyObjective(case.hamiltonian, case.ansatz, noise="exact")
    estimator = shot_estimator(shots=shots, seed=seed)
    trace: list[tuple[float, float]] = []
    goal = target(case)
    max_steps, max_shots = _caps(case, maxiter)

    def fun(x: np.ndarray) -> float:
        return float(estimator.run([(case.ansatz, case.hamiltonian, x)]).result()[0].data.evs)

    def record(x: np.ndarray) -> None:
        trace.append((float(estimator.shots_used), float(exact.exact(x)[0]) - case.exact_energy))
        if trace[-1][1] <= goal or estimator.shots_used >= max_shots:
            raise _Stop

    with contextlib.suppress(_Stop):
        NFT(maxiter=max_steps, maxfev=None, callback=record).minimize(fun, case.initial_point(seed))
    return trace


def _pennylane_parts(case: Problem) -> tuple[Callable[[Any], None], Any]:
    """The ansatz as a function applying PennyLane gates, and the Hamiltonian (qiskit qubit i = wire i)."""
    import pennylane as qml
    from qiskit import transpile
    from qiskit.circuit import Parameter

    basis = ["h", "x", "cx", "cz", "rx", "ry", "rz", "rzz"]
    circuit = transpile(case.ansatz, basis_gates=basis, optimization_level=0)
    index = {p: i for i, p in enumerate(case.ansatz.parameters)}
    fixed = {"h": qml.Hadamard, "x": qml.PauliX, "cx": qml.CNOT, "cz": qml.CZ}
    rotations = {"rx": qml.RX, "ry": qml.RY, "rz": qml.RZ, "rzz": qml.IsingZZ}
    ops: list[tuple[str, list[int], Any]] = []
    for inst in circuit.data:
        wires = [circuit.find_bit(q).index for q in inst.qubits]
        name = inst.operation.name
        if name in fixed:
            ops.append((name, wires, None))
        elif name in rotations:
            (angle,) = inst.operation.params
            ops.append((name, wires, index[angle] if isinstance(angle, Parameter) else float(angle)))
        elif name != "barrier":
            raise ValueError(f"no PennyLane conversion for gate {name!r}")

    def apply(params: Any) -> None:
        for name, wires, angle in ops:
            if angle is None:
                fixed[name](wires=wires)
            else:
                value = params[angle] if isinstance(angle, int) else angle
                rotations[name](value, wires=wires)

    coeffs, observables = [], []
    for label, coeff in zip(case.hamiltonian.paulis.to_labels(), case.hamiltonian.coeffs.real, strict=True):
        factors = [getattr(qml, f"Pauli{p}")(q) for q, p in enumerate(reversed(label)) if p != "I"]
        observables.append(qml.prod(*factors) if len(factors) > 1 else (factors[0] if factors else qml.Identity(0)))
        coeffs.append(float(coeff))
    return apply, qml.Hamiltonian(coeffs, observables)


def run_rosalin(case: Problem, seed: int, maxiter: int) -> list[tuple[float, float]]:
    import pennylane as qml
    from pennylane import numpy as pnp

    apply, hamiltonian = _pennylane_parts(case)
    device = qml.device("default.qubit", wires=case.num_qubits, seed=seed)

    @qml.set_shots(100)
    @qml.qnode(device, diff_method="parameter-shift")
    def cost(params: Any) -> Any:
        apply(params)
        return qml.expval(hamiltonian)

    np.random.seed(seed)  # noqa: NPY002  (Rosalin draws its term samples from numpy's global generator)
    optimizer = qml.ShotAdaptiveOptimizer(min_shots=10, term_sampling="weighted_random_sampling")
    exact = EnergyObjective(case.hamiltonian, case.ansatz, noise="exact")
    params = pnp.array(case.initial_point(seed), requires_grad=True)
    trace: list[tuple[float, float]] = []
    for _ in range(maxiter):
        params = optimizer.step(cost, params)
        trace.append((float(optimizer.total_shots_used), float(exact.exact(np.asarray(params))[0]) - case.exact_energy))
        if trace[-1][1] <= target(case):
            break  # the metric is the first hit; later iterations cost time only
    return trace


def run_problem(case: Problem, args: argparse.Namespace) -> dict[str, Any]:
    goal = target(case)
    row: dict[str, Any] = {"problem": case.name, "split": case.split, "target": goal, "methods": {}}
    for method in args.methods:
        start = time.perf_counter()
        if method in ("qiskit-spsa", "qiskit-nft"):
            fixed = run_qiskit_spsa if method == "qiskit-spsa" else run_qiskit_nft
            per_count = {}
            for shots in args.fixed_shots:
                hits = [first_hit(fixed(case, s, shots, args.maxiter), goal) for s in range(args.seeds)]
                per_count[shots] = hits
            # the lowest median; among counts that tie (both never got there in half the seeds), the most hits
            best = min(
                per_count,
                key=lambda s: (float(np.median(per_count[s])), -sum(map(math.isfinite, per_count[s])), s),
            )
            row["methods"][method] = {"hits": per_count[best], "best_fixed_shots": best, "all": per_count}
        else:
            runner = {
                "adaptive-ps": lambda s: run_adaptive(case, s, args.maxiter, args.snr, "ps"),
                "adaptive-spsa": lambda s: run_adaptive(
                    case,
                    s,
                    args.maxiter,
                    args.snr if args.spsa_snr is None else args.spsa_snr,
                    "spsa",
                    stability=args.spsa_stability,
                    target_step=args.spsa_target_step,
                ),
                "rosalin": lambda s: run_rosalin(case, s, args.maxiter),
                "sequential": lambda s: run_sequential(
                    case,
                    s,
                    args.sequential_shots,
                    args.maxiter,
                    args.sequential_sweeps,
                    args.sequential_reset,
                    args.sequential_growth,
                    args.sequential_budget_shots,
                ),
            }[method]
            row["methods"][method] = {"hits": [first_hit(runner(s), goal) for s in range(args.seeds)]}
        row["methods"][method]["seconds"] = time.perf_counter() - start
        hits = row["methods"][method]["hits"]
        print(
            f"  {case.name:26s} {method:14s} median {float(np.median(hits)):10.3g} shots, "
            f"{sum(math.isfinite(h) for h in hits)}/{len(hits)} reached, {row['methods'][method]['seconds']:.0f} s",
            flush=True,
        )
    return row


def _ratio(base: float, method: float) -> float:
    """``base / method`` of two median shot counts: ``inf`` when only the method reached the target, 0 when only
    the baseline did, NaN when neither did."""
    if math.isinf(base) and math.isinf(method):
        return math.nan
    if math.isinf(method):
        return 0.0
    return math.inf if math.isinf(base) else base / method


def report(rows: list[dict[str, Any]], methods: list[str]) -> None:
    print(f"\n{'problem':26s} {'split':8s} " + " ".join(f"{m:>16s}" for m in methods) + "   (median shots; ratio)")
    for split in ("tuning", "held_out"):
        ratios: dict[str, list[float]] = {m: [] for m in methods}
        for row in (r for r in rows if r["split"] == split):
            base = float(np.median(row["methods"]["qiskit-spsa"]["hits"])) if "qiskit-spsa" in methods else math.nan
            cells = []
            for m in methods:
                med = float(np.median(row["methods"][m]["hits"]))
                ratio = math.nan if math.isnan(base) else _ratio(base, med)
                if not math.isnan(ratio):  # neither reached the target: no ratio
                    ratios[m].append(ratio)
                cells.append(f"{med:10.3g} ({ratio:4.2g}x)")
            print(f"{row['problem']:26s} {split:8s} " + " ".join(f"{c:>16s}" for c in cells))
        summary = "  ".join(f"{m}: {float(np.median(v)) if v else math.nan:.3g}x" for m, v in ratios.items())
        print(f"  {split}: median over problems of (qiskit best fixed / method): {summary}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="*", default=None, help="problem names (default: the whole family)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--maxiter", type=int, default=300)
    parser.add_argument("--fixed-shots", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--snr", type=float, default=1.0)
    parser.add_argument("--spsa-snr", type=float, default=None, help="adaptive-spsa's snr (default: --snr)")
    parser.add_argument(
        "--spsa-stability", type=float, default=None, help="adaptive-spsa's Spall A (default: vqe's, 0)"
    )
    parser.add_argument(
        "--spsa-target-step", type=float, default=2 * math.pi / 10, help="adaptive-spsa's calibrated first step"
    )
    parser.add_argument("--sequential-shots", type=int, default=2, help="sequential's shots per group")
    parser.add_argument(
        "--sequential-sweeps", type=int, default=None, help="sequential's sweep cap (default: --maxiter)"
    )
    parser.add_argument(
        "--sequential-reset", type=int, default=0, help="sequential's reset_interval (default 0: never)"
    )
    parser.add_argument(
        "--sequential-growth", type=float, default=1.0, help="sequential's shots_growth per sweep (default 1: fixed)"
    )
    parser.add_argument(
        "--sequential-budget-shots",
        type=int,
        default=100,
        help="sequential's shot cap: qiskit SPSA's budget at this many shots per group (default 100)",
    )
    parser.add_argument("--split", choices=("tuning", "held_out"), default=None, help="only this half of the family")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    cases = [problem(name) for name in args.problems] if args.problems else family()
    cases = [case for case in cases if args.split in (None, case.split)]
    rows = []
    for case in cases:
        print(f"{case.name} ({case.split}, target {target(case):.3g}):", flush=True)
        rows.append(run_problem(case, args))
    report(rows, list(args.methods))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"args": vars(args), "rows": rows}, out, indent=1, default=str)


if __name__ == "__main__":
    main()
