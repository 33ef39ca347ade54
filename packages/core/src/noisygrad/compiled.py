"""numba's ``njit`` where numba is installed, else nothing: the one place the core imports numba.

numba is an optional extra of the core (``pip install 'noisygrad-core[fast]'``): the compiled paths it enables
(:mod:`noisygrad.estimators.glm_epochs`) are accelerations of paths that exist without it, so the core never
needs it. Without numba, :func:`compiled` returns the function as it is: the same arithmetic in plain Python
(slow, used only by tests of that arithmetic), and :data:`HAVE_NUMBA` tells callers to keep their generic path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

__all__ = ["HAVE_NUMBA", "REASSOCIATE", "compiled"]

F = TypeVar("F", bound=Callable[..., Any])

numba: Any
try:
    numba = importlib.import_module("numba")
except ImportError:  # pragma: no cover - the core's tests run with numba installed
    numba = None

HAVE_NUMBA: bool = numba is not None
"""Whether numba is installed (the compiled paths are on)."""


#: The only ``fastmath`` flags used: reassociation (sums vectorise) and contraction (fused multiply-adds). NaN and
#: Inf keep their IEEE semantics (no ``nnan``/``ninf``): a NaN still propagates and is still seen.
REASSOCIATE = {"reassoc", "contract"}


@overload
def compiled(fn: F) -> F: ...


@overload
def compiled(*, reassociate: bool = False) -> Callable[[F], F]: ...


def compiled(fn: F | None = None, *, reassociate: bool = False) -> F | Callable[[F], F]:
    """``fn`` compiled in nopython mode (cached on disk) where numba is installed, else ``fn`` unchanged.

    ``reassociate=True`` lets sums be reordered (:data:`REASSOCIATE`): faster dot products, different rounding.
    Usable as ``@compiled`` or ``@compiled(reassociate=True)``.
    """

    def wrap(function: F) -> F:
        if numba is None:  # pragma: no cover
            return function
        return cast(F, numba.njit(cache=True, fastmath=REASSOCIATE if reassociate else False)(function))

    return wrap if fn is None else wrap(fn)
