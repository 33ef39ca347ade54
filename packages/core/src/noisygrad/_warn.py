"""Warnings that point at the user's line, not at the library's.

``warnings.warn(..., stacklevel=k)`` names the frame ``k`` levels up, which is right only when the library function
that warns is always reached through the same number of library frames. :func:`warn` instead names the first frame
outside the noisygrad library (the plugins included, the ``noisygrad`` command's tour excluded, since its
experiments are callers of the library), however deep the call that warns; Python 3.12's ``skip_file_prefixes``
does the same by file name.
"""

from __future__ import annotations

import sys
import warnings

_LIBRARY = "noisygrad"
_APPLICATION = "noisygrad.tour"


def _in_library(module: str) -> bool:
    inside = module == _LIBRARY or module.startswith(f"{_LIBRARY}.")
    return inside and not (module == _APPLICATION or module.startswith(f"{_APPLICATION}."))


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a ``warnings.warn`` in the function calling this one name the first frame
    outside the library (the outermost frame if every frame is the library's)."""
    frame = sys._getframe(1)  # the library function about to warn: stacklevel 1
    level = 1
    while frame.f_back is not None and _in_library(frame.f_globals.get("__name__", "")):
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn(message, category)`` attributed to the first caller outside the noisygrad library."""
    warnings.warn(message, category, stacklevel=caller_stacklevel())  # counted from this frame, as warn counts
