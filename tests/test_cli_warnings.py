"""Warnings name the line of the code that called the library, however deep inside the library they are raised:
``DeviceFallbackWarning`` (asking for a GPU that is not there) through each public entry, and the mechanism itself
(``noisygrad.checks.warn``) on functions whose module is inside and outside the library."""

from __future__ import annotations

import warnings

import pytest
import torch

from noisygrad.checks import caller_stacklevel, warn

quantum = pytest.importorskip("noisygrad.quantum")
from qiskit.circuit.library import efficient_su2  # noqa: E402

from noisygrad.quantum.backends import make_backend, resolve_device  # noqa: E402

no_gpu_at_all = pytest.mark.skipif(
    torch.cuda.is_available() or quantum.gpu_available(), reason="a GPU simulator is installed here: no fallback"
)


def _warned_at(call):
    """``(filename, category)`` of each warning ``call`` raises."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call()
    return [(w.filename, w.category) for w in record]


@no_gpu_at_all
@pytest.mark.parametrize(
    "call",
    [
        lambda: quantum.shot_estimator(shots=10, seed=0, device="GPU"),  # shot_estimator -> ShotEstimator -> resolve
        lambda: quantum.ShotEstimator(shots=10, seed=0, device="GPU"),
        lambda: quantum.EnergyObjective(quantum.tfim(2), efficient_su2(2, reps=1), shots=10, device="GPU"),
        lambda: make_backend(efficient_su2(2, reps=1), "aer", "GPU"),
        lambda: resolve_device("torch", "GPU"),
    ],
    ids=["shot_estimator", "ShotEstimator", "EnergyObjective", "make_backend", "resolve_device"],
)
def test_the_device_fallback_warning_names_the_callers_file(call):
    warned = _warned_at(call)
    assert warned == [(__file__, quantum.DeviceFallbackWarning)]


_LIBRARY_CODE = """
def inner(warn, category):
    warn("deep inside", category)


def outer(warn, category):
    inner(warn, category)


def level(caller_stacklevel):
    return caller_stacklevel()
"""


def _module(name):
    """Functions whose module is called ``name``, as a library or a user module would define them."""
    namespace = {"__name__": name}
    exec(compile(_LIBRARY_CODE, f"<{name}>", "exec"), namespace)
    return namespace


def test_warn_skips_every_library_frame_and_no_other():
    library = _module("noisygrad.somewhere")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        library["outer"](warn, UserWarning)  # this line is the caller
    assert [(w.filename, str(w.message)) for w in record] == [(__file__, "deep inside")]

    user = _module("my_package.module")  # not the library: the warning names its line
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        user["outer"](warn, UserWarning)
    assert [w.filename for w in record] == ["<my_package.module>"]

    application = _module("noisygrad.tour.experiments.fake")  # the tour's experiments call the library
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        application["outer"](warn, UserWarning)
    assert [w.filename for w in record] == ["<noisygrad.tour.experiments.fake>"]


def test_caller_stacklevel_counts_from_the_function_that_warns():
    assert _module("noisygrad.x")["level"](caller_stacklevel) == 2  # level 1: the library function; 2: this test
    assert _module("user.x")["level"](caller_stacklevel) == 1
