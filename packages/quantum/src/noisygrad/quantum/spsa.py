"""``SPSA``: qiskit-algorithms' SPSA (and 2-SPSA), argument for argument, with honest costs and divergence checks.

``noisygrad.quantum.SPSA`` is a ``qiskit_algorithms.optimizers.Optimizer``: every constructor argument,
method, attribute and callback of ``qiskit_algorithms.optimizers.SPSA`` (0.4) has the same meaning here, so
swapping the import changes nothing a user relies on; with the same settings and the same seeding it takes
the same steps (``tests/test_spsa.py`` holds it to qiskit's iterates bit for bit). What it adds:

* ``seed=``: a stream of its own (``None`` draws from ``qiskit_algorithms.utils.algorithm_globals.random``,
  as qiskit does);
* honest accounting: ``result.nfev`` is qiskit's count (it leaves out calibration, the blocking noise
  estimate and the final evaluation); ``result.nfev_total`` counts every evaluation of ``fun``;
* divergence is detected and reported (``result.success = False`` with a message), never returned as success;
* all points of one iteration (every resampling) go to ``fun`` in one call when grouping is allowed, and a
  call as ``SPSA(...)(fun, x0)`` (how ``qiskit_algorithms.VQE`` calls a callable optimizer) groups by default;
* ``final_evaluations`` averages several fresh evaluations at the returned point (``result.fun_stderr``).

The gains are qiskit's calibrated power series ``a_k = a / (k + A)^alpha`` and ``c_k = 0.2 / k^gamma``
(``k = 1, 2, ...``; ``a`` sets the first step to ``2 pi / 10`` per parameter) unless ``learning_rate`` and
``perturbation`` are given as a constant, an array or a callable returning an iterator. noisygrad's defaults
differ from qiskit's in ``alpha = 0.5`` (qiskit 0.602), ``gamma = 0.05`` (0.101) and ``last_avg`` (the mean of
the last quarter of the iterates; qiskit 1), chosen on a family of problems (:data:`DEFAULT_LEARNING_RATE_DECAY`);
``SPSA(learning_rate_decay=0.602, perturbation_decay=0.101, last_avg=1)`` is qiskit's SPSA step for step.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.linalg
import torch
from qiskit_algorithms.optimizers import Optimizer, OptimizerResult, OptimizerSupportLevel
from qiskit_algorithms.utils import algorithm_globals

from noisygrad.adapters.scipy_minimize import box_from_bounds
from noisygrad.checks import check_in_range, check_positive, check_positive_int, warn

from . import _spsa_checkpoint

SPALL_ALPHA = 0.602
SPALL_GAMMA = 0.101
#: qiskit's calibration targets a first step of this size per parameter.
DEFAULT_TARGET_MAGNITUDE = 2 * math.pi / 10
#: noisygrad's defaults, chosen on the tuning half of ``benchmarks/quantum_family.py`` (8 problems x 10 seeds,
#: against qiskit's SPSA at equal shots; the held-out half was run once, after): a learning rate that decays as
#: ``k^-0.5`` instead of ``k^-0.602`` keeps steps large enough to finish descending in a few hundred iterations,
#: the mean of the last quarter of the iterates (Polyak-Ruppert) removes the noise ball those larger steps leave,
#: and a perturbation decaying as ``k^-0.05`` keeps the late gradient estimates from drowning in shot noise.
DEFAULT_LEARNING_RATE_DECAY = 0.5
DEFAULT_PERTURBATION_DECAY = 0.05
#: With ``last_avg=None`` the returned point is the mean of the last ``ceil(fraction * maxiter)`` accepted iterates.
DEFAULT_AVERAGE_FRACTION = 0.25
#: A run has diverged when its value estimate exceeds the first one by this many times the spread of the
#: function at the start, for ``DIVERGENCE_PATIENCE`` iterations in a row (or turns NaN/Inf).
DIVERGENCE_FACTOR = 1e3
DIVERGENCE_PATIENCE = 5

#: noisygrad's constructor options beyond qiskit's (``settings`` lists them where they differ from the default).
NOISYGRAD_OPTIONS = (
    "last_avg",
    "seed",
    "stability",
    "learning_rate_decay",
    "perturbation_decay",
    "average_fraction",
    "calibration_samples",
    "target_magnitude",
    "final_evaluations",
    "batch",
)

Gain = float | np.ndarray | Sequence[float] | Callable[[], Iterator[float]]
Callback = Callable[[int, np.ndarray, float, float, bool], None]
TerminationChecker = Callable[[int, np.ndarray, float, float, bool], bool]
Point = np.ndarray


class SPSAResult(OptimizerResult):  # type: ignore[misc]
    """qiskit's ``OptimizerResult`` (``x``, ``fun``, ``nfev``, ``nit``) plus what a cost-aware user needs.

    Attributes:
        nfev_total: every evaluation of ``fun`` (``nfev`` is qiskit's count, which leaves out calibration, the
            blocking noise estimate and the final evaluation).
        success: ``False`` when the run diverged (``message`` says where) or a value was NaN/Inf.
        message: what happened.
        fun_stderr: the standard error of ``fun`` when ``final_evaluations > 1`` (else ``None``).
        rejected: steps rejected by ``blocking``.
        learning_rate, perturbation: the first ``nit`` gains used.
        checkpoint: the run's state where its iterations ended (before the final evaluation): pass it as
            ``resume=`` to continue (see :meth:`SPSA.minimize`); ``torch.save``-able, ``weights_only``-loadable.
    """

    def __init__(self) -> None:
        super().__init__()
        self.nfev_total: int = 0
        self.success: bool = True
        self.message: str = ""
        self.fun_stderr: float | None = None
        self.rejected: int = 0
        self.learning_rate: np.ndarray = np.zeros(0)
        self.perturbation: np.ndarray = np.zeros(0)
        self.checkpoint: dict[str, Any] = {}


def powerseries(eta: float = 0.01, power: float = 2.0, offset: float = 0.0) -> Iterator[float]:
    """``eta / (n + offset)^power`` for ``n = 1, 2, ...`` (qiskit's power series)."""
    n = 1
    while True:
        yield eta / ((n + offset) ** power)
        n += 1


class _CalibratedSeries:
    """The factory of ``a / (n + stability)^alpha`` that remembers ``a`` (a checkpoint stores it, so a resumed run
    takes the same gains without calibrating again)."""

    def __init__(self, a: float, alpha: float, stability: float) -> None:
        self.a, self.alpha, self.stability = a, alpha, stability

    def __call__(self) -> Iterator[float]:
        return powerseries(self.a, self.alpha, self.stability)


def _calibrated_gains(
    a: float, c: float, alpha: float, gamma: float, stability: float
) -> tuple[Callable[[], Iterator[float]], Callable[[], Iterator[float]]]:
    return _CalibratedSeries(a, alpha, stability), (lambda: powerseries(c, gamma))


def bernoulli_perturbation(
    dim: int, perturbation_dims: int | None = None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """A random +-1 direction of ``dim`` entries (``perturbation_dims`` of them nonzero, chosen at random).

    Draws exactly as qiskit-algorithms does (``1 - 2 * binomial(1, 0.5)``, then the support), so a shared
    generator gives the same directions.
    """
    rng = algorithm_globals.random if rng is None else rng
    if perturbation_dims is None:
        return 1 - 2 * rng.binomial(1, 0.5, size=dim)
    signs = 1 - 2 * rng.binomial(1, 0.5, size=perturbation_dims)
    support = rng.choice(list(range(dim)), size=perturbation_dims, replace=False)
    direction = np.zeros(dim)
    direction[support] = signs
    return direction


def _check_gain(name: str, value: object, maxiter: int) -> None:
    """A gain is None (calibrate), a finite number, an array of >= maxiter finite numbers, or a callable."""
    if value is None or callable(value):
        return
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ValueError(f"{name} must be finite, got {value}")
        return
    if isinstance(value, list | tuple | np.ndarray):
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim != 1 or len(arr) < maxiter:
            raise ValueError(f"Length of {name} is smaller than maxiter ({maxiter}).")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must contain finite numbers only")
        return
    raise TypeError(
        f"{name} must be None (calibrate), a number (constant), an array with one value per iteration, or a "
        f"callable returning an iterator, got {type(value).__name__}"
    )


def _gain_factory(name: str, value: Gain) -> Callable[[], Iterator[float]]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        constant = float(value)

        def constant_series() -> Iterator[float]:
            while True:
                yield constant

        return constant_series
    if isinstance(value, list | tuple | np.ndarray):
        array = np.asarray(value, dtype=np.float64)
        return lambda: iter(array)
    if callable(value):
        return lambda: (float(v) for v in value())  # each gain a float, so that the iterate stays float64
    raise TypeError(f"{name} must be a number, an array or a callable returning an iterator")


def _make_spd(matrix: np.ndarray, bias: float) -> np.ndarray:
    """``sqrt(M M) + bias I``: the symmetric positive-definite preconditioner of 2-SPSA (Spall 1997)."""
    return np.real(scipy.linalg.sqrtm(matrix.dot(matrix))) + bias * np.identity(matrix.shape[0])


class _Counter:
    """Evaluates ``fun`` on a list of points, ``group`` points per call, counting every evaluation."""

    def __init__(self, fun: Callable[..., Any], group: int) -> None:
        self.fun = fun
        self.group = group
        self.total = 0

    def one(self, point: np.ndarray) -> Any:
        """``fun(point)`` for a single 1-D point, as qiskit evaluates blocking, callback and final values."""
        self.total += 1
        return self.fun(point)

    def __call__(self, points: Sequence[Any], *, unpack: bool = False) -> list[Any]:
        self.total += len(points)
        if self.group <= 1:
            return [self.fun(*p) if unpack else self.fun(p) for p in points]
        out: list[Any] = []
        for chunk in np.array_split(np.asarray(points), math.ceil(len(points) / self.group)):
            values = self.fun(*[list(part) for part in zip(*chunk, strict=True)]) if unpack else self.fun(chunk)
            values = list(np.asarray(values).reshape(-1))
            if len(values) != len(chunk):
                raise ValueError(
                    f"fun returned {len(values)} values for a batch of {len(chunk)} points; with grouped evaluation "
                    "(max_evals_grouped > 1, or a call as SPSA(...)(fun, x0) with batch=True) fun must take a "
                    "(K, P) array and return K values; use set_max_evals_grouped(1) or batch=False otherwise"
                )
            out += values
        return out


def _stddev(evaluate: _Counter, point: np.ndarray, repeats: int) -> float:
    """The standard deviation of ``repeats`` evaluations at ``point`` (qiskit's ``estimate_stddev``)."""
    return float(np.std([_as_value("fun", v) for v in evaluate(repeats * [point])]))


def _as_value(name: str, value: Any) -> float:
    """One function value as a float (a shape-(1,) array is accepted: ``float()`` of one fails in numpy 2)."""
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"{name} must return one number per point, got an array of shape {arr.shape}")
    return float(np.real(arr.reshape(())))


class SPSA(Optimizer):  # type: ignore[misc]
    """Simultaneous-perturbation stochastic approximation (Spall 1998), and 2-SPSA with ``second_order=True``.

    The arguments up to ``termination_checker`` are those of ``qiskit_algorithms.optimizers.SPSA`` with the same
    meaning (see its documentation); the keyword-only ones after them are noisygrad's.

    Args:
        maxiter: iterations; each evaluates ``fun`` at ``2 * resamplings`` points (``4 *`` with
            ``second_order``), plus one with ``blocking`` or a ``callback``.
        blocking: accept a step only if ``fun`` did not rise by more than ``allowed_increase``.
        allowed_increase: ``None`` uses twice the standard deviation of 25 evaluations at ``x0``, measured for
            each run (qiskit stores it on the instance, so a second run reuses the first run's noise; here the
            attribute stays as the user set it).
        trust_region: clip the update's norm to 1 before scaling it by the learning rate.
        learning_rate, perturbation: a number (a constant gain), an array with one value per iteration, or a
            callable returning an iterator; both ``None`` calibrates them (50 evaluations at ``x0``, in
            ``nfev_total`` but not in ``nfev``, as in qiskit). Set both or neither.
        last_avg: return the mean of the last ``last_avg`` accepted iterates (qiskit's default is 1: the last
            iterate). ``None`` (noisygrad's default) averages the last ``ceil(average_fraction * maxiter)``.
        resamplings: directions averaged per iteration, an int or ``{iteration: number}``.
        perturbation_dims: perturb this many randomly chosen parameters per direction (``None``: all).
        second_order: 2-SPSA: precondition with a smoothed stochastic Hessian.
        regularization: the ``bias * I`` added to the preconditioner (``None``: 0.01).
        hessian_delay: precondition only after this many iterations.
        lse_solver: solves ``H x = g`` (``None``: ``numpy.linalg.solve``).
        initial_hessian: the Hessian estimate before the first sample (``None``: the identity).
        callback: ``callback(nfev, x, fx, stepsize, accepted)`` after each iteration (without ``blocking`` this
            costs one evaluation per iteration, counted in ``nfev`` as in qiskit).
        termination_checker: ``checker(nfev, x, fx, stepsize, accepted) -> bool``; ``True`` stops the run.
        seed: ``None`` draws the directions from ``algorithm_globals.random`` (qiskit's behaviour; set
            ``algorithm_globals.random_seed`` to reproduce); an int seeds a fresh generator for every run (two
            runs with the same seed take the same directions); a ``numpy.random.Generator`` is used as a stream.
        stability: Spall's ``A`` in the calibrated ``a / (k + A)^alpha`` (qiskit's 0).
        learning_rate_decay: ``alpha`` of the calibrated learning rate (noisygrad's 0.5; Spall's and qiskit's
            0.602).
        perturbation_decay: ``gamma`` of the calibrated perturbation ``0.2 / k^gamma`` (noisygrad's 0.05;
            qiskit's 0.101).
        average_fraction: with ``last_avg=None``, the fraction of the iterations whose iterates are averaged.
        calibration_samples: directions drawn by the calibration (qiskit's 25; 2 evaluations each).
        target_magnitude: the calibrated first step's size per parameter (qiskit's ``2 pi / 10``).
        final_evaluations: fresh evaluations of ``fun`` at the returned point; more than one returns their mean
            as a float with ``result.fun_stderr`` (one returns ``fun``'s own value, as qiskit does).
        batch: how a call as ``SPSA(...)(fun, x0, jac, bounds)`` evaluates when ``max_evals_grouped`` is unset:
            ``True`` sends every point of a step in one call (``fun`` takes ``(K, P)`` and returns ``K`` values,
            as ``qiskit_algorithms.VQE``'s energy does), ``False`` one point per call. ``minimize`` follows
            qiskit's ``max_evals_grouped`` (unset: one point per call).
    """

    def __init__(
        self,
        maxiter: int = 100,
        blocking: bool = False,
        allowed_increase: float | None = None,
        trust_region: bool = False,
        learning_rate: Gain | None = None,
        perturbation: Gain | None = None,
        last_avg: int | None = None,
        resamplings: int | dict[int, int] = 1,
        perturbation_dims: int | None = None,
        second_order: bool = False,
        regularization: float | None = None,
        hessian_delay: int = 0,
        lse_solver: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        initial_hessian: np.ndarray | None = None,
        callback: Callback | None = None,
        termination_checker: TerminationChecker | None = None,
        *,
        seed: int | np.random.Generator | None = None,
        stability: float = 0.0,
        learning_rate_decay: float = DEFAULT_LEARNING_RATE_DECAY,
        perturbation_decay: float = DEFAULT_PERTURBATION_DECAY,
        average_fraction: float = DEFAULT_AVERAGE_FRACTION,
        calibration_samples: int = 25,
        target_magnitude: float = DEFAULT_TARGET_MAGNITUDE,
        final_evaluations: int = 1,
        batch: bool = True,
    ) -> None:
        super().__init__()
        self.maxiter = check_positive_int("maxiter", maxiter)
        _check_gain("learning_rate", learning_rate, self.maxiter)
        _check_gain("perturbation", perturbation, self.maxiter)
        if allowed_increase is not None:
            check_positive("allowed_increase", allowed_increase, allow_zero=True)
        if last_avg is not None:
            check_positive_int("last_avg", last_avg)
        if isinstance(resamplings, dict):
            for k, n in resamplings.items():
                check_positive_int(f"resamplings[{k}]", n)
        else:
            check_positive_int("resamplings", resamplings)
        if perturbation_dims is not None:
            check_positive_int("perturbation_dims", perturbation_dims)
        if regularization is not None:
            check_positive("regularization", regularization, allow_zero=True)
        check_positive_int("hessian_delay", hessian_delay, allow_zero=True)
        hooks = {"lse_solver": lse_solver, "callback": callback, "termination_checker": termination_checker}
        for name, fn in hooks.items():
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
        if seed is not None and not isinstance(seed, np.random.Generator):
            check_positive_int("seed", seed, allow_zero=True)
        self.trust_region = trust_region
        self.callback = callback
        self.termination_checker = termination_checker
        self.learning_rate = learning_rate
        self.perturbation = perturbation
        self.blocking = blocking
        self.allowed_increase = allowed_increase
        self.last_avg = last_avg
        self.resamplings = resamplings
        self.perturbation_dims = perturbation_dims
        self.second_order = second_order
        self.hessian_delay = hessian_delay
        self.lse_solver = lse_solver
        self.regularization = 0.01 if regularization is None else regularization
        self.initial_hessian = initial_hessian
        self.seed = seed
        self.stability = check_positive("stability", stability, allow_zero=True)
        self.learning_rate_decay = check_in_range("learning_rate_decay", learning_rate_decay, 0.0, 1.0, high_open=False)
        self.perturbation_decay = check_in_range("perturbation_decay", perturbation_decay, 0.0, 1.0, high_open=False)
        self.average_fraction = check_in_range("average_fraction", average_fraction, 0.0, 1.0, high_open=False)
        self.calibration_samples = check_positive_int("calibration_samples", calibration_samples)
        self.target_magnitude = check_positive("target_magnitude", target_magnitude)
        self.final_evaluations = check_positive_int("final_evaluations", final_evaluations)
        self.batch = bool(batch)
        self._nfev: int | None = None
        self._smoothed_hessian: np.ndarray | None = None
        self._checkpoint: dict[str, Any] | None = None

    # ------------------------------------------------------------------ qiskit's static helpers

    @staticmethod
    def calibrate(
        loss: Callable[[np.ndarray], float],
        initial_point: np.ndarray,
        c: float = 0.2,
        stability_constant: float = 0,
        target_magnitude: float | None = None,
        alpha: float = SPALL_ALPHA,
        gamma: float = SPALL_GAMMA,
        modelspace: bool = False,
        max_evals_grouped: int = 1,
        *,
        samples: int = 25,
        rng: np.random.Generator | None = None,
    ) -> tuple[Callable[[], Iterator[float]], Callable[[], Iterator[float]]]:
        """qiskit's calibration: ``a`` so that the first step is ``target_magnitude`` on average.

        Draws ``samples`` directions (``2 * samples`` evaluations of ``loss``) and returns the factories of
        ``a / (n + stability_constant)^alpha`` and ``c / n^gamma``. ``rng`` defaults to
        ``algorithm_globals.random``.
        """
        return SPSA._calibrate(
            _Counter(loss, max_evals_grouped or 1),
            np.asarray(initial_point, dtype=np.float64),
            c=c,
            stability=stability_constant,
            target=DEFAULT_TARGET_MAGNITUDE if target_magnitude is None else target_magnitude,
            alpha=alpha,
            gamma=gamma,
            modelspace=modelspace,
            samples=samples,
            rng=algorithm_globals.random if rng is None else rng,
        )

    @staticmethod
    def _calibrate(
        evaluate: _Counter,
        x0: np.ndarray,
        *,
        c: float,
        stability: float,
        target: float,
        alpha: float,
        gamma: float,
        modelspace: bool,
        samples: int,
        rng: np.random.Generator,
    ) -> tuple[Callable[[], Iterator[float]], Callable[[], Iterator[float]]]:
        points: list[np.ndarray] = []
        for _ in range(samples):
            direction = bernoulli_perturbation(len(x0), rng=rng)
            points += [x0 + c * direction, x0 - c * direction]
        losses = [_as_value("loss", v) for v in evaluate(points)]
        if not all(math.isfinite(v) for v in losses):
            raise ValueError("the objective returned NaN or Inf near the initial point during SPSA's calibration")
        magnitude = 0.0
        for i in range(samples):
            magnitude += abs((losses[2 * i] - losses[2 * i + 1]) / (2 * c))
        magnitude /= samples
        a = (target / magnitude**2 if modelspace else target / magnitude) if magnitude > 0 else math.inf
        if not 1e-10 <= a < math.inf:
            warn(f"SPSA calibration failed, using {target} for `a`", RuntimeWarning)
            a = target
        return _calibrated_gains(a, c, alpha, gamma, stability)

    @staticmethod
    def estimate_stddev(
        loss: Callable[[np.ndarray], float],
        initial_point: np.ndarray,
        avg: int = 25,
        max_evals_grouped: int = 1,
    ) -> float:
        """The standard deviation of ``avg`` evaluations of ``loss`` at ``initial_point``."""
        return _stddev(_Counter(loss, max_evals_grouped or 1), np.asarray(initial_point), avg)

    def get_support_level(self) -> dict[str, OptimizerSupportLevel]:
        """Gradients are ignored, bounds clip the iterates, an initial point is required."""
        return {
            "gradient": OptimizerSupportLevel.ignored,
            "bounds": OptimizerSupportLevel.supported,
            "initial_point": OptimizerSupportLevel.required,
        }

    @property
    def settings(self) -> dict[str, Any]:
        """qiskit's settings (callable gains expanded to ``maxiter`` values), plus noisygrad's options where they
        differ from their defaults, so that ``type(self)(**settings)`` rebuilds the optimizer."""
        settings: dict[str, Any] = {
            "maxiter": self.maxiter,
            "learning_rate": self._expanded(self.learning_rate),
            "perturbation": self._expanded(self.perturbation),
            "trust_region": self.trust_region,
            "blocking": self.blocking,
            "allowed_increase": self.allowed_increase,
            "resamplings": self.resamplings,
            "perturbation_dims": self.perturbation_dims,
            "second_order": self.second_order,
            "hessian_delay": self.hessian_delay,
            "regularization": self.regularization,
            "lse_solver": self.lse_solver,
            "initial_hessian": self.initial_hessian,
            "callback": self.callback,
            "termination_checker": self.termination_checker,
        }
        signature = inspect.signature(type(self)).parameters
        defaults = {name: signature[name].default for name in NOISYGRAD_OPTIONS}
        for name, default in defaults.items():
            if getattr(self, name) != default:
                settings[name] = getattr(self, name)
        return settings

    def _expanded(self, gain: Any) -> Any:
        if callable(gain):
            series = gain()
            return np.array([next(series) for _ in range(self.maxiter)])
        return gain

    # ------------------------------------------------------------------ the run

    def __call__(
        self,
        fun: Callable[[np.ndarray], Any],
        x0: Sequence[float] | np.ndarray | None = None,
        jac: Callable[[np.ndarray], np.ndarray] | None = None,
        bounds: Sequence[tuple[float | None, float | None]] | None = None,
        *,
        resume: Mapping[str, Any] | None = None,
    ) -> SPSAResult:
        """Minimise as a callable optimizer (``qiskit_algorithms.VQE`` and scipy-style code call it so): every
        point of a step in one call of ``fun`` unless ``batch=False`` or ``max_evals_grouped`` says otherwise.
        ``resume`` as in :meth:`minimize`."""
        group = self._max_evals_grouped or (2**31 if self.batch else 1)
        return self._run(fun, x0, bounds, group, resume)

    def minimize(
        self,
        fun: Callable[[np.ndarray], Any],
        x0: Sequence[float] | np.ndarray | float | None = None,
        jac: Callable[[np.ndarray], np.ndarray] | None = None,
        bounds: Sequence[tuple[float | None, float | None]] | None = None,
        *,
        resume: Mapping[str, Any] | None = None,
    ) -> SPSAResult:
        """Minimise ``fun`` from ``x0`` (qiskit's ``Optimizer.minimize``; ``jac`` is ignored, ``bounds`` clip).

        ``resume``: a checkpoint (``result.checkpoint`` or :meth:`state_dict` of an earlier run, or
        ``torch.load(path, weights_only=True)`` of a saved one) to continue instead of starting at ``x0`` (leave
        ``x0`` out). The run goes on to this optimizer's ``maxiter`` with the checkpoint's iterate, gains,
        direction stream, averaging window, Hessian and counters: stopped at iteration ``k`` (by a
        ``termination_checker`` or a smaller ``maxiter``) and resumed, it takes the steps of the uninterrupted
        run bit for bit, provided ``fun`` continues its own noise stream too (a
        :class:`~noisygrad.quantum.ShotEstimator`'s ``state_dict``, taken when the run stopped). The settings
        must be those of the run that wrote it (checked: dimension, ``second_order``, ``blocking``, calibrated
        or given gains); a truncated, corrupted, foreign or diverged checkpoint raises
        :class:`~noisygrad.loop_checkpoint.CheckpointError` before any evaluation.
        """
        return self._run(fun, x0, bounds, self._max_evals_grouped or 1, resume)

    def _generator(self) -> np.random.Generator:
        if self.seed is None:
            return algorithm_globals.random
        if isinstance(self.seed, np.random.Generator):
            return self.seed
        return np.random.default_rng(self.seed)

    def _gains(
        self, evaluate: _Counter, x0: np.ndarray, rng: np.random.Generator, saved: Mapping[str, Any] | None = None
    ) -> tuple[Iterator[float], Iterator[float], float | None]:
        """The gain iterators and the calibrated ``a`` (``None`` for given gains); from a checkpoint, the same
        gains advanced past its iterations, without calibrating again."""
        if saved is not None:
            if saved["a"] is not None:
                get_eta, get_eps = _calibrated_gains(
                    saved["a"], 0.2, self.learning_rate_decay, self.perturbation_decay, self.stability
                )
            elif self.learning_rate is None or self.perturbation is None:  # the settings check keeps this out
                raise ValueError("resume: the checkpoint's run had given gains; give learning_rate and perturbation")
            else:
                get_eta = _gain_factory("learning_rate", self.learning_rate)
                get_eps = _gain_factory("perturbation", self.perturbation)
            eta, eps = get_eta(), get_eps()
            for _ in range(int(saved["k"])):
                next(eta), next(eps)
            return eta, eps, saved["a"]
        if self.learning_rate is None and self.perturbation is None:
            get_eta, get_eps = self._calibrate(
                evaluate,
                x0,
                c=0.2,
                stability=self.stability,
                target=self.target_magnitude,
                alpha=self.learning_rate_decay,
                gamma=self.perturbation_decay,
                modelspace=False,
                samples=self.calibration_samples,
                rng=rng,
            )
        elif self.learning_rate is None or self.perturbation is None:
            raise ValueError("If one of learning rate or perturbation is set, both must be set.")
        else:
            _check_gain("learning_rate", self.learning_rate, self.maxiter)
            _check_gain("perturbation", self.perturbation, self.maxiter)
            get_eta = _gain_factory("learning_rate", self.learning_rate)
            get_eps = _gain_factory("perturbation", self.perturbation)
        a = get_eta.a if isinstance(get_eta, _CalibratedSeries) else None
        return get_eta(), get_eps(), a

    def _evaluate_samples(
        self,
        evaluate: _Counter,
        x: np.ndarray,
        eps: float,
        deltas1: list[np.ndarray],
        deltas2: list[np.ndarray | None],
    ) -> list[tuple[float, float, np.ndarray, np.ndarray | None]]:
        """``(value, spread, gradient, Hessian)`` samples, one per direction, from ONE grouped evaluation of every
        direction's points (qiskit makes one call per direction)."""
        points: list[np.ndarray] = []
        for delta1, delta2 in zip(deltas1, deltas2, strict=True):
            points += [x + eps * delta1, x - eps * delta1]
            if delta2 is not None:
                points += [x + eps * (delta1 + delta2), x + eps * (-delta1 + delta2)]
        values = [_as_value("fun", v) for v in evaluate(points)]
        per = self._evaluations_per_sample
        samples = []
        for i, (delta1, delta2) in enumerate(zip(deltas1, deltas2, strict=True)):
            own = values[i * per : (i + 1) * per]
            plus, minus = own[0], own[1]
            gradient = (plus - minus) / (2 * eps) * delta1
            hessian = None
            if delta2 is not None:
                diff = ((own[2] - plus) - (own[3] - minus)) / (2 * eps**2)
                rank_one = np.outer(delta1, delta2)
                hessian = diff * (rank_one + rank_one.T) / 2
            samples.append((float(np.mean(own)), abs(plus - minus), gradient, hessian))
        return samples

    def _compute_update(
        self,
        evaluate: _Counter,
        x: np.ndarray,
        k: int,
        eps: float,
        lse_solver: Callable[[np.ndarray, np.ndarray], np.ndarray],
        rng: np.random.Generator,
    ) -> tuple[float, float, np.ndarray]:
        """``(value estimate, mean |f(x + c d) - f(x - c d)|, update direction)`` at ``x`` for iteration ``k``."""
        num_samples = self.resamplings.get(k, 1) if isinstance(self.resamplings, dict) else self.resamplings
        deltas1 = [bernoulli_perturbation(x.size, self.perturbation_dims, rng) for _ in range(num_samples)]
        deltas2: list[np.ndarray | None] = (
            [bernoulli_perturbation(x.size, self.perturbation_dims, rng) for _ in range(num_samples)]
            if self.second_order
            else [None] * num_samples
        )
        self._nfev = (self._nfev or 0) + num_samples * self._evaluations_per_sample
        value, spread, gradient, hessian = 0.0, 0.0, np.zeros(x.size), np.zeros((x.size, x.size))
        for value_sample, spread_sample, gradient_sample, hessian_sample in self._evaluate_samples(
            evaluate, x, eps, deltas1, deltas2
        ):
            value += value_sample
            spread += spread_sample
            gradient += gradient_sample
            if hessian_sample is not None:
                hessian += hessian_sample
        value, spread = value / num_samples, spread / num_samples
        gradient, hessian = gradient / num_samples, hessian / num_samples
        if self.second_order:
            assert self._smoothed_hessian is not None
            self._smoothed_hessian = k / (k + 1) * self._smoothed_hessian + 1 / (k + 1) * hessian
            if k > self.hessian_delay:
                spd_hessian = _make_spd(self._smoothed_hessian, self.regularization)
                gradient = np.real(lse_solver(spd_hessian, gradient))
        return value, spread, gradient

    @property
    def _evaluations_per_sample(self) -> int:
        return 4 if self.second_order else 2

    def _checkpoint_settings(self, dim: int) -> dict[str, Any]:
        """What a checkpoint must agree on with the optimizer that continues it."""
        return {
            "dim": dim,
            "second_order": bool(self.second_order),
            "blocking": bool(self.blocking),
            "calibrated": self.learning_rate is None and self.perturbation is None,
        }

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint of the last run (``result.checkpoint``): ``minimize(fun, resume=...)`` continues it.

        Plain tensors, numbers, lists and dicts: ``torch.save`` it and read it back with
        ``torch.load(path, weights_only=True)``. Raises ``RuntimeError`` before any run.
        """
        if self._checkpoint is None:
            raise RuntimeError(
                f"{type(self).__name__}.state_dict() needs a finished run: call minimize first "
                "(or use result.checkpoint)"
            )
        return dict(self._checkpoint)

    def _start(self, x0: Any, resume: Mapping[str, Any] | None) -> tuple[np.ndarray, Mapping[str, Any] | None]:
        """The starting point and the checked checkpoint (``None`` for a new run); raises before any evaluation."""
        if resume is not None:
            if x0 is not None:
                raise ValueError("pass either x0 (a new run) or resume= (continue a run), not both")
            probe = resume.get("x") if isinstance(resume, Mapping) else None
            dim = int(probe.numel()) if isinstance(probe, torch.Tensor) else -1
            saved = _spsa_checkpoint.check(resume, self._checkpoint_settings(dim), self.maxiter)
            return saved["x"].numpy().copy(), saved
        if x0 is None:
            raise ValueError("x0 is required unless resume= continues an earlier run")
        x = np.atleast_1d(np.asarray(x0, dtype=np.float64)).copy()
        if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError(f"x0 must be a non-empty 1-D array of finite numbers, got {np.asarray(x0)!r}")
        return x, None

    def _run(
        self,
        fun: Callable[[np.ndarray], Any],
        x0: Any,
        bounds: Sequence[tuple[float | None, float | None]] | None,
        group: int,
        resume: Mapping[str, Any] | None = None,
    ) -> SPSAResult:
        if not callable(fun):
            raise TypeError(f"fun must be callable, got {type(fun).__name__}")
        x, saved = self._start(x0, resume)
        box = box_from_bounds(bounds, torch.from_numpy(x))
        low, high = (-np.inf, np.inf) if box is None else (box[0].numpy(), box[1].numpy())
        x = np.clip(x, low, high)
        rng = self._generator()
        evaluate = _Counter(fun, group)
        if saved is not None:
            rng.bit_generator.state = _spsa_checkpoint.unplain(saved["rng"])
        eta, eps, a = self._gains(evaluate, x, rng, saved)
        lse_solver = np.linalg.solve if self.lse_solver is None else self.lse_solver
        self._smoothed_hessian = (
            np.identity(x.size) if self.initial_hessian is None else np.asarray(self.initial_hessian, dtype=float)
        )
        self._nfev = 0
        result = SPSAResult()
        fx = math.nan
        allowed_increase = self.allowed_increase
        guard = _DivergenceGuard()
        last_steps: deque[np.ndarray] = deque([x])
        window = self._average_window()
        rates: list[float] = []
        perturbations: list[float] = []
        best_x, k = x, 0
        if saved is not None:  # the run's state where the checkpoint left it
            k, fx, allowed_increase = int(saved["k"]), float(saved["fx"]), saved["allowed_increase"]
            best_x = saved["best_x"].numpy().copy()
            last_steps = deque(row.numpy().copy() for row in saved["tail"])
            while len(last_steps) > window:
                last_steps.popleft()
            if saved["hessian"] is not None:
                self._smoothed_hessian = saved["hessian"].numpy().copy()
            guard.load_state_dict(saved["guard"])
            self._nfev, result.rejected = int(saved["nfev"]), int(saved["rejected"])
            evaluate.total = int(saved["nfev_total"])
            rates, perturbations = list(saved["learning_rate"]), list(saved["perturbation"])
        elif self.blocking:
            fx = _as_value("fun", evaluate.one(x))
            self._nfev += 1
            if allowed_increase is None:
                allowed_increase = 2 * _stddev(evaluate, x, 25)
        while k < self.maxiter:
            k += 1
            eps_k = next(eps)
            fx_estimate, spread, update = self._compute_update(evaluate, x, k, eps_k, lse_solver, rng)
            if self.trust_region:
                norm = np.linalg.norm(update)
                if norm > 1:
                    update = update / norm
            eta_k = next(eta)
            rates.append(eta_k)
            perturbations.append(eps_k)
            update = update * eta_k
            x_next = np.clip(x - update, low, high)
            fx_next = None
            if not guard.observe(fx_estimate, spread, x_next):
                break
            if fx_estimate <= guard.best_value:
                guard.best_value, best_x = fx_estimate, x
            if self.blocking:
                self._nfev += 1
                fx_next = _as_value("fun", evaluate.one(x_next))
                if fx + allowed_increase <= fx_next:  # type: ignore[operator]
                    result.rejected += 1
                    if self.callback is not None:
                        self.callback(self._nfev, x_next, fx_next, float(np.linalg.norm(update)), False)
                    continue
                fx = fx_next
            if self.callback is not None:
                if not self.blocking:
                    self._nfev += 1
                    fx_next = _as_value("fun", evaluate.one(x_next))
                self.callback(self._nfev, x_next, fx_next, float(np.linalg.norm(update)), True)  # type: ignore[arg-type]
            x = x_next
            if window > 1:
                last_steps.append(x_next)
                if len(last_steps) > window:
                    last_steps.popleft()
            if self.termination_checker is not None:
                fx_check = fx_estimate if fx_next is None else fx_next
                if self.termination_checker(self._nfev, x_next, fx_check, float(np.linalg.norm(update)), True):
                    result.message = f"stopped by the termination checker at iteration {k}"
                    break
        self._checkpoint = _spsa_checkpoint.stamp(
            {
                "settings": self._checkpoint_settings(x.size),
                "k": k,
                "x": torch.from_numpy(np.array(x, dtype=np.float64)),
                "tail": [torch.from_numpy(np.array(row, dtype=np.float64)) for row in last_steps],
                "best_x": torch.from_numpy(np.array(best_x, dtype=np.float64)),
                "rng": _spsa_checkpoint.plain(rng.bit_generator.state),
                "a": None if a is None else float(a),
                "fx": float(fx),
                "allowed_increase": None if allowed_increase is None else float(allowed_increase),
                "hessian": torch.from_numpy(np.array(self._smoothed_hessian)) if self.second_order else None,
                "guard": guard.state_dict(),
                "nfev": int(self._nfev),
                "nfev_total": int(evaluate.total),
                "rejected": int(result.rejected),
                "learning_rate": [float(r) for r in rates],
                "perturbation": [float(p) for p in perturbations],
            }
        )
        result.checkpoint = self._checkpoint
        if guard.diverged():
            result.success, result.message = False, guard.message(k)
            x = best_x  # the best iterate by its value estimate, before the run diverged
        elif window > 1:
            x = np.mean(np.asarray(last_steps), axis=0)
        if self.final_evaluations == 1:  # fun's own value at one point, as qiskit returns it
            result.fun = evaluate.one(x)
        else:
            values = np.array([_as_value("fun", v) for v in evaluate(self.final_evaluations * [x])])
            result.fun = float(values.mean())
            result.fun_stderr = float(values.std(ddof=1) / math.sqrt(len(values)))
        result.x = x
        result.nfev = self._nfev
        result.nit = k
        result.nfev_total = evaluate.total
        result.learning_rate = np.asarray(rates)
        result.perturbation = np.asarray(perturbations)
        if result.success and not result.message:
            result.message = f"{k} SPSA iterations, {result.rejected} steps rejected"
        return result

    def _average_window(self) -> int:
        if self.last_avg is None:
            return max(1, math.ceil(self.average_fraction * self.maxiter))
        return int(self.last_avg)


class _DivergenceGuard:
    """Tells a run that ran away from one that converged, so divergence is reported and never returned as success.

    The reference is the first iteration's value estimate; the scale is the larger of its magnitude and the
    spread of ``fun`` there (the differences ``|f(x + c d) - f(x - c d)|``, which hold both slope and noise).
    A run whose last ``DIVERGENCE_PATIENCE`` value estimates all lie ``DIVERGENCE_FACTOR`` scales above where it
    began has run away (a gain too large for the curvature). A transient excursion that the decaying gains
    bring back is not a failure, so the run goes on; NaN or Inf stops it at once.
    """

    def __init__(self) -> None:
        self.reference: float | None = None
        self.scale = 0.0
        self.recent: deque[float] = deque(maxlen=DIVERGENCE_PATIENCE)
        self.best_value = math.inf
        self.reason = ""

    def state_dict(self) -> dict[str, Any]:
        """The guard's state as plain numbers (for a checkpoint)."""
        return {
            "reference": self.reference,
            "scale": float(self.scale),
            "recent": [float(v) for v in self.recent],
            "best_value": float(self.best_value),
            "reason": self.reason,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.reference = None if state["reference"] is None else float(state["reference"])
        self.scale, self.best_value = float(state["scale"]), float(state["best_value"])
        self.recent = deque((float(v) for v in state["recent"]), maxlen=DIVERGENCE_PATIENCE)
        self.reason = str(state["reason"])

    def observe(self, value: float, spread: float, x_next: np.ndarray) -> bool:
        """Record an iteration; ``False`` when it produced NaN or Inf (the run cannot go on)."""
        if not math.isfinite(value) or not math.isfinite(spread) or not np.all(np.isfinite(x_next)):
            self.reason = "a value estimate or an iterate became NaN or Inf"
            return False
        if self.reference is None:
            self.reference, self.scale = value, max(abs(value), spread, 1e-12)
        self.recent.append(value)
        return True

    def diverged(self) -> bool:
        """Whether the run ended far above where it began (or stopped on NaN/Inf)."""
        if self.reason:
            return True
        if self.reference is None or len(self.recent) < DIVERGENCE_PATIENCE:
            return False
        threshold = self.reference + DIVERGENCE_FACTOR * self.scale
        if min(self.recent) > threshold:
            self.reason = (
                f"its last {DIVERGENCE_PATIENCE} value estimates (down to {min(self.recent):.3g}) lie more than "
                f"{DIVERGENCE_FACTOR:g} times the starting scale {self.scale:.3g} above the first, {self.reference:.3g}"
            )
            return True
        return False

    def message(self, k: int) -> str:
        return (
            f"SPSA diverged by iteration {k}: {self.reason}; the best iterate by its value estimate is returned. "
            "Lower learning_rate, or set blocking=True or trust_region=True."
        )
