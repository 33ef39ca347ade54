"""Adapters: a noisygrad optimizer where users already have a slot for one: ``torch.optim``
(:class:`~noisygrad.TorchOptimizer`) and scipy/qiskit-style minimizer callables (:class:`~noisygrad.Minimizer`)."""
