"""Estimators: how a gradient is guessed and what the guess costs.

``base`` says what an estimator is (:class:`Cost`, :class:`Estimate`, the :class:`Estimator` protocol) and
holds the exact and mini-batch estimators and central differences; ``zeroth_order`` the evaluation-only ones
(SPSA, Gaussian smoothing), ``variance_reduction`` the control variates (SVRG, SAGA, STORM) and ``clipping``
the heavy-tail guard. The public names are importable from :mod:`noisygrad` itself.
"""
