"""SPSA optimizers on the VQE problem family: relative error at equal shots, tuning and held-out halves apart.

Every run drives ``qiskit_algorithms.VQE`` (or the native ``noisygrad.quantum.vqe``) on ``shot_estimator``
(real shot sampling, the problem's shots per measurement group) from the problem's initial point for the seed,
and scores the returned parameters by their EXACT relative error ``(E - E0) / |E0|`` (statevector). Methods:

* ``qiskit-spsa``: ``qiskit_algorithms.optimizers.SPSA(maxiter=problem.maxiter)`` with its defaults (calibrated
  gains, ``last_avg=1``), seeded through ``algorithm_globals.random_seed``;
* ``spsa``: ``noisygrad.quantum.SPSA`` with its defaults, at EQUAL SHOTS: its ``maxiter`` is the largest whose
  evaluation count (probed on a cheap stand-in function, calibration and final evaluation included) does not
  exceed qiskit-spsa's at ``problem.maxiter``; the shots each run really spent (the estimator's ``shots_used``)
  are reported beside qiskit-spsa's;
* ``qnspsa``: ``noisygrad.quantum.QNSPSA`` (skipped while it does not exist) with ``maxiter=problem.maxiter``;
  each fidelity is measured with the problem's shots, by default as a binomial draw from the exact overlap
  (:class:`ShotFidelity`: the statistics of compute-uncompute, without a sampler job per call), or with
  ``--qnspsa-option fidelity=sampler`` through ``QNSPSA.get_fidelity(ansatz, StatevectorSampler(...))`` (the
  same statistics, about 5x slower per run); its shots (energy plus fidelity) are reported, not matched;
* ``vqe``: ``noisygrad.quantum.vqe(maxiter=problem.maxiter)`` with its defaults (its final estimate at 10x the
  shots is included in the shots it reports).

The seed sets the initial point (``problem.initial_point(seed)``), the estimator's stream and the optimizer's
perturbations. Per problem and method: the median relative error with a distribution-free order-statistic
interval for it (the widest pair of order statistics whose binomial coverage of the true median is >= 90%) and
a bootstrap standard error, the worst run, the shots per run; per half, the median and geometric mean over
problems of the per-problem medians, and on how many problems a method's median beats qiskit-spsa's.

Defaults are tuned on the tuning half (the default split) with ``--spsa-option key=value`` (values are Python
literals), and only then is ``--split held_out`` run::

    .venv/bin/python benchmarks/quantum_family.py --list
    .venv/bin/python benchmarks/quantum_family.py [--split tuning|held_out|all] [--seeds 10] [--first-seed 0]
        [--problems h2 lih ...] [--methods qiskit-spsa spsa qnspsa vqe] [--jobs 2] [--json out.json]
        [--spsa-option stability=0 --spsa-option average_last=1] [--qnspsa-option ...] [--vqe-option ...]
        [--qiskit-option ...]
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from multiprocessing import get_context
from typing import Any

import numpy as np

METHODS = ("qiskit-spsa", "spsa", "qnspsa", "vqe")
COVERAGE = 0.90


# ----------------------------------------------------------------------------------------------------- running


def _quiet() -> None:
    """One torch thread per process (``--jobs`` processes share the cores) and no deprecation chatter."""
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", DeprecationWarning)


@cache
def _problem(name: str) -> Any:
    from noisygrad.quantum.problems import problem

    return problem(name)


def _stand_in(num_parameters: int) -> tuple[Callable[[np.ndarray], Any], list[int]]:
    """A cheap noisy function of the VQE energy's shape (batched ``(K, P)`` or one point) that counts its points."""
    counter = [0]
    rng = np.random.default_rng(0)

    def fun(x: np.ndarray) -> Any:
        x = np.asarray(x, dtype=float)
        points = x.reshape(-1, num_parameters)
        counter[0] += len(points)
        values = np.sum(np.sin(points) ** 2, axis=1) + 0.01 * rng.standard_normal(len(points))
        return values if x.ndim == 2 else float(values[0])

    return fun, counter


def _count_evaluations(optimizer: Any, num_parameters: int) -> int:
    """Energy evaluations ``optimizer`` makes in ``qiskit_algorithms.VQE`` (probed on the stand-in function)."""
    fun, counter = _stand_in(num_parameters)
    x0 = np.full(num_parameters, 0.3)
    from qiskit_algorithms.optimizers import SPSA as QiskitSPSA

    if isinstance(optimizer, QiskitSPSA):  # VQE groups qiskit's SPSA's points by 50 (the count is the same)
        optimizer.set_max_evals_grouped(50)
    if hasattr(optimizer, "minimize"):  # a qiskit-algorithms Optimizer
        optimizer.minimize(fun, x0)
    else:  # a (fun, x0, jac, bounds) minimizer
        optimizer(fun, x0, None, None)
    return counter[0]


_PROBES: dict[tuple[Any, ...], Any] = {}  # per process: probing a budget once per problem size and options


def _qiskit_evaluations(maxiter: int, num_parameters: int, options: dict[str, Any]) -> int:
    """Evaluations of qiskit-algorithms' SPSA with ``options`` at ``maxiter`` (calibration and final value included)."""
    from qiskit_algorithms.optimizers import SPSA as QiskitSPSA
    from qiskit_algorithms.utils import algorithm_globals

    key = ("qiskit", maxiter, num_parameters, repr(sorted(options.items())))
    if key not in _PROBES:
        algorithm_globals.random_seed = 0
        _PROBES[key] = _count_evaluations(QiskitSPSA(maxiter=maxiter, **options), num_parameters)
    return int(_PROBES[key])


def _matched_maxiter(budget: int, num_parameters: int, options: dict[str, Any]) -> tuple[int, int]:
    """The largest ``maxiter`` of noisygrad's SPSA (with ``options``) whose evaluations stay within ``budget``,
    and those evaluations: an affine fit from 1 and 2 iterations, then checked (and stepped) at full length."""
    key = ("spsa", budget, num_parameters, repr(sorted(options.items())))
    if key not in _PROBES:
        _PROBES[key] = _search_maxiter(budget, num_parameters, options)
    return tuple(_PROBES[key])  # type: ignore[return-value]


def _search_maxiter(budget: int, num_parameters: int, options: dict[str, Any]) -> tuple[int, int]:
    from noisygrad.quantum import SPSA

    def evaluations(maxiter: int) -> int:
        return _count_evaluations(SPSA(maxiter=maxiter, seed=0, **options), num_parameters)

    one, two = evaluations(1), evaluations(2)
    per_step = max(two - one, 1)
    maxiter = max(1, (budget - (one - per_step)) // per_step)
    spent = evaluations(maxiter)
    while spent > budget and maxiter > 1:
        maxiter -= 1
        spent = evaluations(maxiter)
    while (more := evaluations(maxiter + 1)) <= budget:
        maxiter, spent = maxiter + 1, more
    return maxiter, spent


def _vqe_run(problem: Any, optimizer: Any, seed: int, x0: np.ndarray) -> tuple[np.ndarray, Any, bool | None]:
    from qiskit_algorithms import VQE

    from noisygrad.quantum import shot_estimator

    estimator = shot_estimator(shots=problem.shots, seed=seed)
    result = VQE(estimator, problem.ansatz, optimizer, initial_point=x0).compute_minimum_eigenvalue(problem.hamiltonian)
    # noisygrad's optimizers say whether a run diverged (qiskit's have no such field: None)
    return np.asarray(result.optimal_point), estimator, getattr(result.optimizer_result, "success", None)


Options = dict[str, dict[str, Any]]  # method -> its keyword overrides


def _run_qiskit_spsa(problem: Any, seed: int, x0: np.ndarray, options: Options) -> dict[str, Any]:
    from qiskit_algorithms.optimizers import SPSA as QiskitSPSA
    from qiskit_algorithms.utils import algorithm_globals

    algorithm_globals.random_seed = seed  # qiskit-algorithms draws its perturbations (and calibration) here
    optimizer = QiskitSPSA(maxiter=problem.maxiter, **options["qiskit-spsa"])
    point, estimator, _ = _vqe_run(problem, optimizer, seed, x0)
    return {"point": point, "shots": estimator.shots_used, "evaluations": estimator.evaluations, "maxiter": None}


def _run_spsa(problem: Any, seed: int, x0: np.ndarray, options: Options) -> dict[str, Any]:
    from noisygrad.quantum import SPSA

    p = problem.num_parameters
    budget = _qiskit_evaluations(problem.maxiter, p, options["qiskit-spsa"])  # qiskit-spsa as it is run
    maxiter, _ = _matched_maxiter(budget, p, options["spsa"])
    point, estimator, success = _vqe_run(problem, SPSA(maxiter=maxiter, seed=seed, **options["spsa"]), seed, x0)
    return {
        "point": point,
        "shots": estimator.shots_used,
        "evaluations": estimator.evaluations,
        "maxiter": maxiter,
        "success": success,
    }


def _counting_sampler(sampler: Any) -> Any:
    """``sampler`` (a ``BaseSamplerV2``) behind a wrapper whose ``shots_used`` counts every shot it is asked for."""
    from qiskit.primitives import BaseSamplerV2
    from qiskit.primitives.containers.sampler_pub import SamplerPub

    class CountingSampler(BaseSamplerV2):
        def __init__(self) -> None:
            self.shots_used = 0

        def run(self, pubs: Any, *, shots: int | None = None) -> Any:
            pubs = list(pubs)
            default = shots if shots is not None else sampler.default_shots
            for pub in pubs:
                coerced = SamplerPub.coerce(pub, default)
                self.shots_used += int(coerced.shots) * int(np.prod(coerced.shape))
            return sampler.run(pubs, shots=shots)

    return CountingSampler()


def _state_function(ansatz: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``states(X)``: the ansatz's statevectors for the rows of ``X`` (Qiskit's qubit order). The plugin's batched
    torch simulator (a private module: 20x faster than Qiskit's ``Statevector`` here) when it runs the circuit
    and agrees with Qiskit at a test point, else Qiskit's ``Statevector`` one point at a time."""
    from qiskit.quantum_info import Statevector

    def reference(points: np.ndarray) -> np.ndarray:
        return np.array([Statevector(ansatz.assign_parameters(x)).data for x in points])

    try:
        from noisygrad.quantum._statevector import TorchStatevector

        simulator = TorchStatevector(ansatz)

        def batched(points: np.ndarray) -> np.ndarray:
            return simulator.states(np.asarray(points, dtype=float)).numpy().reshape(len(points), -1)

        probe = np.linspace(-1.0, 1.0, ansatz.num_parameters)[None, :]
        if abs(abs(np.vdot(batched(probe)[0], reference(probe)[0])) - 1.0) < 1e-10:
            return batched
    except Exception:  # the private simulator changed or refuses the circuit: Qiskit is always right
        pass
    return reference


class ShotFidelity:
    """``F(x, y) = |<psi(x)|psi(y)>|^2`` measured as compute-uncompute measures it, without the sampler's overhead.

    Compute-uncompute prepares ``U(y)^dagger U(x) |0>`` and returns the frequency of the all-zeros outcome in
    ``shots`` shots, whose probability is ``F``: a ``Binomial(shots, F) / shots`` draw, which is what this returns
    (exact states from :func:`_state_function`, one seeded generator). ``shots_used`` counts every shot.
    """

    def __init__(self, ansatz: Any, shots: int, seed: int) -> None:
        self.num_parameters, self.shots = ansatz.num_parameters, shots
        self.states = _state_function(ansatz)
        self.rng = np.random.default_rng([seed, 7])
        self.shots_used = 0

    def __call__(self, values_x: Any, values_y: Any) -> Any:
        p = self.num_parameters
        left = np.reshape(np.asarray(values_x, dtype=float), (-1, p))
        right = np.reshape(np.asarray(values_y, dtype=float), (-1, p))
        left, right = np.broadcast_arrays(left, right)
        states = self.states(np.vstack([left, right]))
        k = len(left)
        exact = np.abs(np.einsum("ij,ij->i", states[:k].conj(), states[k:])) ** 2
        self.shots_used += self.shots * k
        values = self.rng.binomial(self.shots, np.clip(exact, 0.0, 1.0)) / self.shots
        return values if np.ndim(values_x) > 1 or k > 1 else float(values[0])


def _run_qnspsa(problem: Any, seed: int, x0: np.ndarray, all_options: Options) -> dict[str, Any]:
    import noisygrad.quantum as ngq

    options = dict(all_options["qnspsa"])
    qnspsa = ngq.QNSPSA  # type: ignore[attr-defined]
    how = options.pop("fidelity", "statevector")
    fidelity: Any
    if how == "sampler":  # what a user writes: ComputeUncompute on a shot-sampling Qiskit sampler (slow)
        from qiskit.primitives import StatevectorSampler

        fidelity = _counting_sampler(StatevectorSampler(default_shots=problem.shots, seed=np.random.default_rng(seed)))
        function = qnspsa.get_fidelity(problem.ansatz, fidelity)
    elif how == "statevector":
        fidelity = function = ShotFidelity(problem.ansatz, problem.shots, seed)
    else:
        raise ValueError(f"--qnspsa-option fidelity= must be 'statevector' or 'sampler', got {how!r}")
    if "seed" in inspect.signature(qnspsa).parameters:
        options.setdefault("seed", seed)
    else:  # a qiskit-algorithms-style optimizer draws from algorithm_globals
        from qiskit_algorithms.utils import algorithm_globals

        algorithm_globals.random_seed = seed
    point, estimator, success = _vqe_run(problem, qnspsa(function, maxiter=problem.maxiter, **options), seed, x0)
    return {
        "point": point,
        "shots": estimator.shots_used + fidelity.shots_used,
        "fidelity_shots": fidelity.shots_used,
        "evaluations": estimator.evaluations,
        "maxiter": problem.maxiter,
        "success": success,
    }


def _run_vqe(problem: Any, seed: int, x0: np.ndarray, options: Options) -> dict[str, Any]:
    from noisygrad.quantum import vqe

    result = vqe(
        problem.hamiltonian,
        problem.ansatz,
        shots=problem.shots,
        maxiter=problem.maxiter,
        seed=seed,
        initial_point=x0,
        track_exact=False,
        **options["vqe"],
    )
    return {"point": result.parameters, "shots": result.shots, "evaluations": result.evaluations, "maxiter": None}


RUNNERS: dict[str, Callable[[Any, int, np.ndarray, Options], dict[str, Any]]] = {
    "qiskit-spsa": _run_qiskit_spsa,
    "spsa": _run_spsa,
    "qnspsa": _run_qnspsa,
    "vqe": _run_vqe,
}


def run_task(task: tuple[str, str, int, Options]) -> dict[str, Any]:
    """One run: ``(problem name, method, seed, every method's options)`` -> its record (errors are recorded)."""
    name, method, seed, options = task
    _quiet()
    problem = _problem(name)
    x0 = problem.initial_point(seed)
    record: dict[str, Any] = {"problem": name, "method": method, "seed": seed}
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        out = RUNNERS[method](problem, seed, x0, options)
    except Exception as exc:  # a method under construction must not sink the others' results
        record["error"] = f"{type(exc).__name__}: {exc}"
        return record
    point = out.pop("point")
    record.update(out)
    record["wall_s"] = time.perf_counter() - wall
    record["cpu_s"] = time.process_time() - cpu
    record["relative_error"] = problem.relative_error(point)
    record["energy"] = problem.energy(point)
    return record


def run_all(tasks: Sequence[tuple[str, str, int, Options]], jobs: int) -> list[dict[str, Any]]:
    """Every task, in ``jobs`` processes; the records come back in the order of ``tasks``."""
    if jobs <= 1:
        return [run_task(task) for task in tasks]
    # spawn, not fork: a forked child of a process whose torch/OpenMP threads already ran can deadlock
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_quiet) as pool:
        return list(pool.map(run_task, tasks, chunksize=1))


# -------------------------------------------------------------------------------------------------- statistics


def median_interval(values: Sequence[float], level: float = COVERAGE) -> tuple[float, float, float]:
    """The order statistics ``(x_(k), x_(n+1-k))`` with the largest ``k`` whose coverage of the true median,
    ``1 - 2 P(Binomial(n, 1/2) < k)``, is at least ``level`` (distribution-free), and that coverage. With fewer
    than 6 values no pair reaches 90%: the range is returned with its coverage."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    best = 1
    for k in range(1, n // 2 + 1):
        if 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n >= level:
            best = k
    coverage = 1 - 2 * sum(math.comb(n, i) for i in range(best)) / 2**n
    return float(x[best - 1]), float(x[n - best]), coverage


def bootstrap_se(values: Sequence[float], resamples: int = 2000) -> float:
    """Bootstrap standard error of the median (a fixed generator, so reruns print the same number)."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(12345)
    medians = np.median(x[rng.integers(0, len(x), (resamples, len(x)))], axis=1)
    return float(medians.std(ddof=1))


def summarise(records: list[dict[str, Any]], problems: list[Any], methods: list[str]) -> dict[str, Any]:
    """Per problem and method, and per split: the numbers described in the module docstring."""
    per_problem: dict[str, dict[str, Any]] = {}
    for p in problems:
        per_problem[p.name] = {}
        for method in methods:
            runs = [r for r in records if r["problem"] == p.name and r["method"] == method]
            good = [r for r in runs if "error" not in r]
            if not good:
                errors = sorted({r["error"] for r in runs if "error" in r})
                per_problem[p.name][method] = {"runs": 0, "errors": errors}
                continue
            rel = [r["relative_error"] for r in good]
            lo, hi, coverage = median_interval(rel)
            per_problem[p.name][method] = {
                "runs": len(good),
                "failed": len(runs) - len(good),
                "median": float(np.median(rel)),
                "interval": [lo, hi],
                "coverage": coverage,
                "bootstrap_se": bootstrap_se(rel),
                "worst": float(np.max(rel)),
                "shots": float(np.median([r["shots"] for r in good])),
                "maxiter": good[0].get("maxiter"),
                "wall_s": float(np.mean([r["wall_s"] for r in good])),
                "unsuccessful": sum(r.get("success") is False for r in good),  # reported divergences
            }
    halves: dict[str, dict[str, Any]] = {}
    for split in ("tuning", "held_out"):
        names = [p.name for p in problems if p.split == split]
        if not names:
            continue
        halves[split] = {}
        for method in methods:
            medians = [per_problem[n][method]["median"] for n in names if per_problem[n][method]["runs"]]
            if not medians:
                continue
            entry: dict[str, Any] = {
                "problems": len(medians),
                "median_of_medians": float(np.median(medians)),
                "geometric_mean_of_medians": float(np.exp(np.mean(np.log(np.maximum(medians, 1e-15))))),
            }
            if method != "qiskit-spsa" and "qiskit-spsa" in methods:
                pairs = [
                    (per_problem[n][method]["median"], per_problem[n]["qiskit-spsa"]["median"])
                    for n in names
                    if per_problem[n][method]["runs"] and per_problem[n]["qiskit-spsa"]["runs"]
                ]
                entry["beats_qiskit_spsa"] = f"{sum(a < b for a, b in pairs)}/{len(pairs)}"
            halves[split][method] = entry
    return {"per_problem": per_problem, "halves": halves}


# -------------------------------------------------------------------------------------------------- reporting


def family_table(problems: list[Any]) -> str:
    columns = ("qubits", "params", "groups", "shots", "maxiter")
    lines = [f"{'problem':27} {'kind':8} " + " ".join(f"{c:>7}" for c in columns) + "  split     start"]
    for p in problems:
        lines.append(
            f"{p.name:27} {p.kind:8} {p.num_qubits:7} {p.num_parameters:7} {p.num_groups:7} {p.shots:7} {p.maxiter:7}"
            f"  {p.split:9} {p.start}"
        )
    return "\n".join(lines)


def report(summary: dict[str, Any], problems: list[Any], methods: list[str]) -> str:
    lines = []
    for split in ("tuning", "held_out"):
        chosen = [p for p in problems if p.split == split]
        if not chosen:
            continue
        what = f"median [>= {COVERAGE:.0%} interval] +- bootstrap s.e."
        lines.append(f"\n== {split} half: relative error (E - E0)/|E0|, {what}")
        for p in chosen:
            lines.append(f"{p.name} ({p.num_qubits} qubits, {p.num_parameters} params, maxiter {p.maxiter})")
            for method in methods:
                s = summary["per_problem"][p.name][method]
                if not s["runs"]:
                    lines.append(f"    {method:12} no result: {'; '.join(s['errors'])}")
                    continue
                iters = f"  maxiter {s['maxiter']}" if s["maxiter"] else ""
                if s["coverage"] < COVERAGE:  # too few seeds for a 90% pair: the range, with its coverage
                    iters += f"  (interval covers {s['coverage']:.0%})"
                failed = f"  ({s['failed']} failed)" if s["failed"] else ""
                if s["unsuccessful"]:
                    failed += f"  ({s['unsuccessful']} reported success=False)"
                lines.append(
                    f"    {method:12} median {s['median']:.2e} [{s['interval'][0]:.2e}, {s['interval'][1]:.2e}]"
                    f" +- {s['bootstrap_se']:.1e}  worst {s['worst']:.2e}  shots/run {s['shots']:.3g}"
                    f"  wall/run {s['wall_s']:.2f} s{iters}{failed}"
                )
        lines.append(f"family ({split}): median / geometric mean over problems of the per-problem medians")
        for method, h in summary["halves"].get(split, {}).items():
            beats = f"  beats qiskit-spsa on {h['beats_qiskit_spsa']}" if "beats_qiskit_spsa" in h else ""
            lines.append(
                f"    {method:12} {h['median_of_medians']:.2e} / {h['geometric_mean_of_medians']:.2e}"
                f"  ({h['problems']} problems){beats}"
            )
    return "\n".join(lines)


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["stability=0", "average_last=None"]`` -> ``{"stability": 0, "average_last": None}`` (Python literals,
    else the string as given)."""
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"an option must read key=value, got {item!r}")
        try:
            options[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            options[key] = raw
    return options


def main() -> None:
    from noisygrad.quantum.problems import family, names, problem

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--split", default="tuning", choices=["tuning", "held_out", "all"])
    parser.add_argument("--problems", nargs="+", default=None, choices=names(), metavar="NAME")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (results keep the input order)")
    parser.add_argument("--json", default=None, metavar="OUT", help="write every run and the summary here")
    parser.add_argument("--list", action="store_true", help="print the family table and stop")
    for method in ("spsa", "qnspsa", "vqe", "qiskit"):
        parser.add_argument(
            f"--{method}-option", action="append", metavar="KEY=VALUE", help=f"a keyword for {method} (repeatable)"
        )
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)

    split = None if args.split == "all" else args.split
    problems = [problem(n) for n in args.problems] if args.problems else family(split)
    print(family_table(problems))
    if args.list:
        return
    import noisygrad.quantum as ngq

    methods = [m for m in args.methods if m != "qnspsa" or hasattr(ngq, "QNSPSA")]
    if len(methods) < len(args.methods):
        print("qnspsa skipped: noisygrad.quantum has no QNSPSA yet")
    options = {
        "qiskit-spsa": parse_options(args.qiskit_option),
        "spsa": parse_options(args.spsa_option),
        "qnspsa": parse_options(args.qnspsa_option),
        "vqe": parse_options(args.vqe_option),
    }
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    tasks = [(p.name, m, s, options) for p in problems for s in seeds for m in methods]
    changed = {k: v for k, v in options.items() if v}
    print(
        f"\n{len(tasks)} runs ({len(problems)} problems x {args.seeds} seeds x {len(methods)} methods), "
        f"{args.jobs} process(es) on {os.cpu_count()} CPUs; options {changed}",
        flush=True,
    )
    start = time.perf_counter()
    records = run_all(tasks, args.jobs)
    wall = time.perf_counter() - start
    summary = summarise(records, problems, methods)
    print(report(summary, problems, methods))
    cpu = sum(r.get("cpu_s", 0.0) for r in records)
    print(f"\nwall {wall:.0f} s for {len(tasks)} runs with --jobs {args.jobs}; CPU time in the runs {cpu:.0f} s")
    if args.json:
        document = {
            "config": {**vars(args), "methods": methods, "options": options},
            "problems": [
                {
                    "name": p.name,
                    "kind": p.kind,
                    "split": p.split,
                    "qubits": p.num_qubits,
                    "params": p.num_parameters,
                    "groups": p.num_groups,
                    "shots": p.shots,
                    "maxiter": p.maxiter,
                    "exact_energy": p.exact_energy,
                    "description": p.description,
                }
                for p in problems
            ],
            "runs": records,
            "summary": summary,
            "wall_s": wall,
        }
        with open(args.json, "w") as fh:
            json.dump(document, fh, indent=1, default=float)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
