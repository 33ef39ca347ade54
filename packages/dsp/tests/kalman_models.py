"""The small Kalman model the smoother and Kalman gap tests share (imported by name: pytest's pythonpath)."""

from __future__ import annotations

import numpy as np


def model(seed: int = 0):
    """``(rng, F, H, Q, R, B, x0, P0)``: a stable 3-state model with 2 correlated measurements and one control
    input; ``H`` and ``B`` are drawn from ``rng``, which the caller goes on drawing its data from."""
    rng = np.random.default_rng(seed)
    F = np.array([[1.0, 0.5, 0.1], [0.0, 0.9, 0.5], [0.0, 0.0, 0.8]])
    H = rng.standard_normal((2, 3))
    Q = 0.05 * np.eye(3) + 0.01
    R = np.array([[0.4, 0.1], [0.1, 0.2]])
    B = rng.standard_normal((3, 1))
    return rng, F, H, Q, R, B, np.array([0.5, -0.2, 0.1]), np.diag([1.0, 0.5, 2.0])
