"""Warnings of the library name the caller's line, beyond ``DeviceFallbackWarning`` (``tests/test_cli_warnings.py``)
and the PINN float32 L-BFGS warning (``packages/pinn/tests/test_progress.py``): each warning that the library raises
with a fixed ``stacklevel`` is reached here the way a user reaches it, and must be attributed to this file.

torch's own frames between a user's ``optimizer.step()`` and the library count as the library's
(``noisygrad.checks._WRAPPERS``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch

import noisygrad as ng


def _warned_at(call: Callable[[], object]) -> list[tuple[str, type[Warning]]]:
    """``(filename, category)`` of each warning ``call`` raises."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call()
    return [(w.filename, w.category) for w in record]


def test_the_lms_stability_warning_names_the_callers_line() -> None:
    dsp = pytest.importorskip("noisygrad.dsp")
    rng = np.random.default_rng(0)
    x, d = rng.standard_normal(200), rng.standard_normal(200)
    assert _warned_at(lambda: dsp.LMS(taps=4, mu=5.0).run(x, d=d)) == [(__file__, dsp.StabilityWarning)]


def test_the_pinn_l_bfgs_b_warning_names_the_callers_line() -> None:
    ngp = pytest.importorskip("noisygrad.pinn")
    from noisygrad.pinn._deepxde import deepxde, quiet

    dde = deepxde()
    with quiet():
        dde.config.set_random_seed(0)
    geom = dde.geometry.Interval(0.0, 1.0)
    bc = dde.icbc.DirichletBC(geom, lambda x: np.zeros((len(x), 1)), lambda _, on_boundary: on_boundary)
    data = dde.data.PDE(geom, lambda x, u: dde.grad.hessian(u, x) + 1.0, bc, num_domain=8, num_boundary=2)
    model = dde.Model(data, dde.nn.FNN([1, 4, 1], "tanh", "Glorot uniform"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ngp.train(model, "L-BFGS-B", iterations=2, verbose=0)
    ours = [w for w in record if issubclass(w.category, ngp.PinnWarning)]
    assert any("L-BFGS-B" in str(w.message) for w in ours), [str(w.message) for w in ours]
    assert {w.filename for w in ours} == {__file__}


def test_the_two_schedules_warning_of_the_torch_adapter_names_the_callers_line() -> None:
    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = ng.TorchOptimizer([weight], ng.SGD(ng.Cosine(0.1, 10)))
    torch.optim.lr_scheduler.StepLR(optimizer, step_size=5)  # a torch schedule beside the rule's own
    weight.grad = torch.ones(2)
    with pytest.warns(UserWarning, match="lr_scheduler is attached") as record:  # no warning at all: a real failure
        optimizer.step()
    assert [w.filename for w in record] == [__file__]


def test_the_spsa_calibration_warning_names_the_callers_line() -> None:
    quantum = pytest.importorskip("noisygrad.quantum")
    spsa = quantum.SPSA(maxiter=2, seed=0)  # a constant objective: the calibration measures no slope
    with pytest.warns(RuntimeWarning, match="SPSA calibration failed") as record:  # no warning: a real failure
        spsa.minimize(lambda x: 1.0, np.zeros(2))
    assert [w.filename for w in record] == [__file__]
