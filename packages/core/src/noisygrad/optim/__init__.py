"""Optimizers: update rules with explicit, serialisable state (SGD, Adam, Langevin samplers, L-BFGS, the
thermostat). The public names are importable from :mod:`noisygrad` itself."""
