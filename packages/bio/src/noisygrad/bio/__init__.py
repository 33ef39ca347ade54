"""noisygrad.bio: synaptic pruning, Bicoid gradient sensing and evolution as noisy searches.

* :mod:`~noisygrad.bio.pruning`: a synapse weight as SGD on a depressive drift with activity noise; its
  elimination is a first passage (inverse Gaussian for the diffusion, Wald-corrected for the walk), plus
  many neurons pruning their inputs by activity-dependent competition (Oja's rule).
* :mod:`~noisygrad.bio.morphogen`: positional information from an exponential gradient read with Poisson
  counting noise, the optimal decay length under each constraint, and a simulated Hunchback boundary.
* :mod:`~noisygrad.bio.evolution`: Wright-Fisher selection, mutation and recombination; drift as
  directionless noise; Lande's gradient law; SGD and an evolution strategy on the same rugged landscape.
* :mod:`~noisygrad.bio.plots`: the figures (PNG files), also from ``python -m noisygrad.bio.plots OUT``.
"""

from noisygrad.plugins import require as _require

_require("bio")  # a missing field package names the extra to install

from .evolution import (  # noqa: E402
    LinearLandscape,
    RuggedLandscape,
    SearchResult,
    WrightFisher,
    WrightFisherHistory,
    compare_searches,
)
from .morphogen import (  # noqa: E402
    CONSTRAINT_BETA,
    GREGOR_2007,
    ErrorCurve,
    ExponentialGradient,
    error_curve_around_optimum,
    fit_optimum,
    optimal_decay_length,
    positional_error,
    simulate_boundary,
    simulate_error_curve,
)
from .pruning import (  # noqa: E402
    RHO,
    CompetitionResult,
    PruningModel,
    input_covariance,
    oja_drift,
    simulate_competition,
)

__all__ = [
    "CONSTRAINT_BETA",
    "GREGOR_2007",
    "RHO",
    "CompetitionResult",
    "ErrorCurve",
    "ExponentialGradient",
    "LinearLandscape",
    "PruningModel",
    "RuggedLandscape",
    "SearchResult",
    "WrightFisher",
    "WrightFisherHistory",
    "compare_searches",
    "error_curve_around_optimum",
    "fit_optimum",
    "input_covariance",
    "oja_drift",
    "optimal_decay_length",
    "positional_error",
    "simulate_boundary",
    "simulate_competition",
    "simulate_error_curve",
]
