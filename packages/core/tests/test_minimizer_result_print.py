"""Printing a ``Minimizer`` result shows scipy's fields and one line for the per-step history, not every step."""

from __future__ import annotations

import numpy as np
import scipy.optimize

import noisygrad as ng
from noisygrad.adapters.scipy_minimize import History


def _quadratic(x):
    return float((x**2).sum())


def test_printing_a_result_shows_the_history_in_one_line():
    result = scipy.optimize.minimize(_quadratic, np.ones(3), method=ng.Minimizer(ng.SGD(0.1), maxiter=300))
    printed = str(result)
    assert len(printed.splitlines()) == len(result) <= 12  # one line per field, whatever the number of steps
    (line,) = [line for line in printed.splitlines() if line.strip().startswith("history:")]
    assert line.strip().startswith("history: History(300 steps of nit, grad_norm, nfev; last: nit=300")
    assert repr(result) == printed


def test_the_history_is_still_the_list_of_steps():
    result = ng.Minimizer(ng.SGD(0.1), maxiter=5)(_quadratic, np.ones(2))
    assert isinstance(result.history, list)
    assert [step["nit"] for step in result.history] == [1, 2, 3, 4, 5]
    assert result.history == list(result.history)
    assert result.history[-1]["nfev"] == result.nfev - 1 - 4  # after the steps: fun at x, then jac at x (2n = 4)
    assert repr(History()) == "History(0 steps)"
