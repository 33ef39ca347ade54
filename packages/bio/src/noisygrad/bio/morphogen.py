"""Bicoid gradient sensing: positional information read from an exponential gradient with counting noise.

The gradient is ``c(x) = c0 exp(-x / lambda)`` (``x`` from the anterior pole, in egg lengths, EL). A nucleus
counts ``n ~ Poisson(A c(x))`` molecules (``A`` is volume times integration time, or ``pi D a T`` for
Berg-Purcell diffusive counting: the variance is proportional to ``c`` either way) and infers its position
as ``x_hat = lambda ln(A c0 / n)``. The delta method gives the positional error::

    sigma_x = sigma_c / |dc/dx| = lambda / sqrt(A c(x)) = lambda exp(x / (2 lambda)) / sqrt(A c0).

How ``c0`` changes with ``lambda`` depends on what the embryo holds fixed. Writing ``c0 ~ lambda^beta``,
``sigma_x ~ lambda^(1 - beta/2) exp(x_T / (2 lambda))`` is smallest at ``lambda* = x_T / (2 - beta)``:

=================  ====  ==============  =============================================================
constraint         beta  lambda*         why
=================  ====  ==============  =============================================================
``"amplitude"``     0    ``x_T / 2``     ``c0`` fixed
``"total"``        -1    ``x_T / 3``     total morphogen ``c0 lambda`` fixed
``"flux"``         +1    ``x_T``         source flux ``j`` fixed with fixed ``D``: ``c0 = j lambda / D``
=================  ====  ==============  =============================================================

The optimum is flat: ``ln sigma_x`` has curvature only ``(2 - beta)/2`` in ``ln lambda`` there, so 10%
off the optimum costs about 0.5% in error (fixed amplitude), and a simulation finds it by fitting a
quartic to ``ln sigma_x`` against ``ln lambda``, not by taking the grid minimum.
Embryo-to-embryo amplitude noise (``ln c0`` with standard deviation ``cv_amplitude``) adds ``(lambda cv)^2``
to ``sigma_x^2`` and moves the optimum to shorter decay lengths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import optimize

from noisygrad.checks import check_generator, check_positive, check_positive_array, check_positive_int

Constraint = Literal["amplitude", "total", "flux"]

#: ``c0 ~ lambda^beta`` for each constraint.
CONSTRAINT_BETA: dict[str, float] = {"amplitude": 0.0, "total": -1.0, "flux": 1.0}

#: Figures for comparison, from Gregor, Tank, Wieschaus & Bialek 2007 (Cell 130:153) as commonly summarised:
#: decay length about 0.2 egg length (about 100 um of a 500 um egg), Hunchback boundary near 0.48 EL placed
#: to about 1% EL (one nuclear spacing), and about 10% noise in each of their precision measures.
GREGOR_2007 = {
    "egg_length_um": 500.0,
    "decay_length_EL": 0.2,
    "boundary_EL": 0.48,
    "boundary_error_EL": 0.01,
    "relative_concentration_noise": 0.10,
}


def _finite(name: str, values: object) -> np.ndarray:
    """``values`` as float64 if they are finite real numbers (strings and booleans are refused, not converted)."""
    raw = np.asarray(values)
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be real numbers, got {raw.dtype} values {values!r}")
    arr = raw.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite numbers, got {values!r}")
    return arr


def constraint_beta(constraint: str) -> float:
    """The exponent ``beta`` of ``c0 ~ lambda^beta`` for a named constraint."""
    if constraint not in CONSTRAINT_BETA:
        raise ValueError(f"constraint must be one of {sorted(CONSTRAINT_BETA)}, got {constraint!r}")
    return CONSTRAINT_BETA[constraint]


@dataclass(frozen=True)
class ExponentialGradient:
    """``c(x) = c0 exp(-x / decay_length)``, read by counting ``Poisson(exposure c(x))`` molecules.

    Args:
        c0: concentration at the source (``x = 0``), > 0.
        decay_length: ``lambda``, in the unit of ``x`` (egg lengths by convention), > 0.
        exposure: ``A``, the mean count per unit concentration (volume x integration time), > 0.
    """

    c0: float
    decay_length: float
    exposure: float = 1.0

    def __post_init__(self) -> None:
        check_positive("c0", self.c0)
        check_positive("decay_length", self.decay_length)
        check_positive("exposure", self.exposure)

    def concentration(self, x: float | np.ndarray) -> np.ndarray:
        return np.asarray(self.c0 * np.exp(-_finite("x", x) / self.decay_length))

    def slope(self, x: float | np.ndarray) -> np.ndarray:
        """``dc/dx = -c(x)/lambda``."""
        return np.asarray(-self.concentration(x) / self.decay_length)

    def mean_count(self, x: float | np.ndarray) -> np.ndarray:
        return np.asarray(self.exposure * self.concentration(x))

    def positional_error(self, x: float | np.ndarray) -> np.ndarray:
        """Delta-method error ``sigma_c / |dc/dx|`` with Poisson ``sigma_c = sqrt(c / A)``."""
        c = self.concentration(x)
        return np.asarray(np.sqrt(c / self.exposure) / np.abs(self.slope(x)))

    def sample_counts(self, x: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One Poisson count per position in ``x`` (one nucleus each)."""
        check_generator(rng)
        return rng.poisson(self.mean_count(x))

    def decode(self, counts: np.ndarray, *, c0: float | None = None) -> np.ndarray:
        """Inferred position ``lambda ln(A c0 / n)``; ``c0`` defaults to the gradient's own amplitude.

        A count of 0 is read as 1/2 (the usual continuity correction): with the mean counts of a real
        gradient near a boundary (hundreds) it never happens.
        """
        amplitude = self.c0 if c0 is None else check_positive("c0", c0)
        n = _finite("counts", counts)
        if np.any(n < 0):
            raise ValueError("counts must be >= 0 (molecule counts)")
        n = np.maximum(n, 0.5)
        return np.asarray(self.decay_length * np.log(self.exposure * amplitude / n))


def positional_error(
    x: float,
    decay_length: float | np.ndarray,
    *,
    constraint: str = "amplitude",
    count_at_reference: float,
    reference_decay_length: float,
    cv_amplitude: float = 0.0,
) -> np.ndarray:
    """Predicted positional error at ``x`` for each decay length under a constraint.

    The scale is set by ``count_at_reference``: the mean count at ``x`` when the decay length is
    ``reference_decay_length``. Then ``sigma_x^2 = lambda^2 / m(lambda) + (lambda cv_amplitude)^2``, where
    ``m(lambda)`` is the mean count at ``x`` allowed by the constraint.
    """
    position = check_positive("x", x)
    lam = check_positive_array("decay_length", decay_length)
    m_ref = check_positive("count_at_reference", count_at_reference)
    ref = check_positive("reference_decay_length", reference_decay_length)
    cv = check_positive("cv_amplitude", cv_amplitude, allow_zero=True)
    beta = constraint_beta(constraint)
    # m(lambda) = A c0(lambda) exp(-x/lambda), normalised so that m(ref) = m_ref
    log_m = math.log(m_ref) + beta * np.log(lam / ref) - position / lam + position / ref
    return np.asarray(lam * np.sqrt(np.exp(-log_m) + cv * cv))


def optimal_decay_length(
    x_target: float,
    constraint: str = "amplitude",
    *,
    cv_amplitude: float = 0.0,
    count_at_reference: float | None = None,
    reference_decay_length: float | None = None,
) -> float:
    """The decay length that minimises the positional error at ``x_target``.

    Without amplitude noise this is the closed form ``x_T / (2 - beta)``, whatever the counts. With
    ``cv_amplitude > 0`` the optimum depends on the count scale, so ``count_at_reference`` and
    ``reference_decay_length`` are needed, and the minimum of :func:`positional_error` is found numerically.
    """
    x_t = check_positive("x_target", x_target)
    beta = constraint_beta(constraint)
    cv = check_positive("cv_amplitude", cv_amplitude, allow_zero=True)
    if cv == 0.0:
        return x_t / (2.0 - beta)
    if count_at_reference is None or reference_decay_length is None:
        raise ValueError("cv_amplitude > 0 needs count_at_reference and reference_decay_length (the count scale)")

    def log_error(log_lam: float) -> float:
        err = positional_error(
            x_t,
            math.exp(log_lam),
            constraint=constraint,
            count_at_reference=count_at_reference,
            reference_decay_length=reference_decay_length,
            cv_amplitude=cv,
        )
        return float(np.log(err[0]))

    noiseless = math.log(x_t / (2.0 - beta))
    res = optimize.minimize_scalar(
        log_error, bounds=(noiseless - 5.0, noiseless), method="bounded", options={"xatol": 1e-10}
    )
    return float(math.exp(res.x))


@dataclass(frozen=True)
class ErrorCurve:
    """Simulated positional error against decay length (see :func:`simulate_error_curve`).

    Attributes:
        decay_lengths: the grid of ``lambda``.
        error: standard deviation of the inferred position of the nuclei at ``x_T``, per ``lambda``.
        error_se: its standard error.
        predicted: :func:`positional_error` on the same grid.
    """

    decay_lengths: np.ndarray
    error: np.ndarray
    error_se: np.ndarray
    predicted: np.ndarray

    def fitted_optimum(self, degree: int = 4) -> float:
        """``lambda`` minimising a polynomial fit of ``ln error`` against ``ln lambda``."""
        return fit_optimum(self.decay_lengths, self.error, degree=degree)

    def fitted_optimum_se(self, degree: int = 4) -> float:
        """Monte-Carlo standard error of :meth:`fitted_optimum`, by linear propagation of ``error_se``.

        The fitted minimum is a smooth function of the points; its derivative with respect to each
        ``ln error`` (by central differences) times that point's relative standard error, summed in
        quadrature (the points are independent).
        """
        base = np.log(self.error)
        rel_se = self.error_se / self.error
        step = 1e-4
        grads = np.empty(base.size)
        for i in range(base.size):
            up, down = base.copy(), base.copy()
            up[i] += step
            down[i] -= step
            hi = fit_optimum(self.decay_lengths, np.exp(up), degree=degree)
            lo = fit_optimum(self.decay_lengths, np.exp(down), degree=degree)
            grads[i] = (hi - lo) / (2 * step)
        return float(np.sqrt(np.sum((grads * rel_se) ** 2)))


def fit_optimum(decay_lengths: np.ndarray, errors: np.ndarray, *, degree: int = 4) -> float:
    """Minimum of a least-squares polynomial in ``ln lambda`` fitted to ``ln error``.

    A flat optimum makes the grid minimum noisy and a quadratic fit on an asymmetric range biased; a
    quartic follows the asymmetric bowl. The minimum is searched inside the grid's range.
    """
    lam = check_positive_array("decay_lengths", decay_lengths)
    err = check_positive_array("errors", errors)
    deg = check_positive_int("degree", degree)
    if lam.size != err.size or lam.size <= deg:
        raise ValueError(f"need as many errors as decay_lengths and more than degree={deg} points, got {lam.size}")
    u, v = np.log(lam), np.log(err)
    poly = np.polynomial.Polynomial.fit(u, v, deg)
    stationary = [r.real for r in poly.deriv().roots() if abs(r.imag) < 1e-9 and u.min() <= r.real <= u.max()]
    candidates = [*stationary, u.min(), u.max()]
    best = min(candidates, key=lambda r: float(poly(r)))
    return float(np.exp(best))


def simulate_error_curve(
    x_target: float,
    decay_lengths: np.ndarray,
    *,
    constraint: str = "amplitude",
    count_at_reference: float,
    reference_decay_length: float,
    n_nuclei: int,
    rng: np.random.Generator,
    cv_amplitude: float = 0.0,
) -> ErrorCurve:
    """Nuclei at ``x_target`` count Poisson molecules and decode their position, for each decay length.

    Each of the ``n_nuclei`` nuclei lives in its own embryo; with ``cv_amplitude > 0`` the embryo's amplitude
    is ``c0 exp(cv_amplitude z)`` (``z ~ N(0, 1)``) while the nucleus decodes with the nominal ``c0``.
    """
    x_t = check_positive("x_target", x_target)
    lam = check_positive_array("decay_lengths", decay_lengths)
    n = check_positive_int("n_nuclei", n_nuclei)
    if n < 2:
        raise ValueError(f"n_nuclei must be >= 2 to estimate a spread, got {n}")
    m_ref = check_positive("count_at_reference", count_at_reference)
    ref = check_positive("reference_decay_length", reference_decay_length)
    cv = check_positive("cv_amplitude", cv_amplitude, allow_zero=True)
    check_generator(rng)
    errors, ses = np.empty(lam.size), np.empty(lam.size)
    for i, decay in enumerate(lam):
        # exposure A = 1 and c0 = the mean count at x = 0 allowed by the constraint
        c0 = m_ref * math.exp(x_t / ref) * (decay / ref) ** constraint_beta(constraint)
        gradient = ExponentialGradient(c0, float(decay))
        amplitude = np.exp(cv * rng.standard_normal(n)) if cv > 0 else 1.0
        counts = rng.poisson(amplitude * gradient.mean_count(x_t), size=n)
        x_hat = gradient.decode(counts)
        errors[i] = x_hat.std(ddof=1)
        # standard error of a standard deviation, with the sample kurtosis (not Gaussian-exact)
        dev = x_hat - x_hat.mean()
        m4 = float(np.mean(dev**4))
        ses[i] = math.sqrt(max(m4 - errors[i] ** 4 * (n - 3) / (n - 1), 0.0) / n) / (2.0 * errors[i])
    predicted = positional_error(
        x_t, lam, constraint=constraint, count_at_reference=m_ref, reference_decay_length=ref, cv_amplitude=cv
    )
    return ErrorCurve(lam, errors, ses, predicted)


def error_curve_around_optimum(
    x_target: float,
    constraint: str = "amplitude",
    *,
    count_at_reference: float,
    reference_decay_length: float,
    n_nuclei: int,
    rng: np.random.Generator,
    cv_amplitude: float = 0.0,
    span: float = 1.5,
    points: int = 21,
) -> tuple[float, ErrorCurve]:
    """The predicted optimal decay length and the error curve simulated on a log grid around it.

    The grid has ``points`` decay lengths on ``[lambda* / span, span lambda*]``, where ``lambda*`` is
    :func:`optimal_decay_length` (numerical when ``cv_amplitude > 0``); the defaults are the research note's
    21 points on ``[lambda*/1.5, 1.5 lambda*]``, wide enough for the quartic fit of
    :meth:`ErrorCurve.fitted_optimum`. Returns ``(lambda*, curve)``; the other arguments are
    :func:`simulate_error_curve`'s.
    """
    width = check_positive("span", span)
    if width <= 1.0:
        raise ValueError(f"span must be > 1 (the grid is [lambda*/span, span lambda*]), got {span!r}")
    best = optimal_decay_length(
        x_target,
        constraint,
        cv_amplitude=cv_amplitude,
        count_at_reference=count_at_reference,
        reference_decay_length=reference_decay_length,
    )
    grid = np.geomspace(best / width, best * width, check_positive_int("points", points))
    curve = simulate_error_curve(
        x_target,
        grid,
        constraint=constraint,
        count_at_reference=count_at_reference,
        reference_decay_length=reference_decay_length,
        n_nuclei=n_nuclei,
        rng=rng,
        cv_amplitude=cv_amplitude,
    )
    return best, curve


def simulate_boundary(
    gradient: ExponentialGradient,
    boundary: float,
    *,
    n_embryos: int,
    spacing: float = 0.01,
    rng: np.random.Generator,
) -> tuple[np.ndarray, float]:
    """A Hunchback-like boundary: nuclei in a row switch on where their count exceeds the count at ``boundary``.

    Nuclei sit every ``spacing`` along ``[0, 1]``; in each embryo a nucleus is ON if its Poisson count is
    above the mean count at ``boundary`` (a sharp threshold readout). The boundary is placed at
    ``spacing x (number of ON nuclei)``. Returns the boundary positions of the ``n_embryos`` embryos and
    the exact prediction of their standard deviation, ``spacing sqrt(sum_k p_k (1 - p_k))`` with
    ``p_k = P(n_k > threshold)``: each nucleus near the boundary flips independently.
    """
    from scipy import stats

    b = check_positive("boundary", boundary)
    n = check_positive_int("n_embryos", n_embryos)
    h = check_positive("spacing", spacing)
    check_generator(rng)
    positions = np.arange(0.5 * h, 1.0, h)
    threshold = float(gradient.mean_count(b))
    means = gradient.mean_count(positions)
    counts = rng.poisson(means, size=(n, positions.size))
    edges = h * (counts > threshold).sum(axis=1)
    p_on = stats.poisson.sf(math.floor(threshold), means)
    return edges.astype(np.float64), float(h * math.sqrt(np.sum(p_on * (1.0 - p_on))))
