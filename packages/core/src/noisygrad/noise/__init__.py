"""Noise: per-example gradients, noise statistics (diversity, cosine law, noise scale, temperature) and the
closed forms of the theory that the simulations are held against. The public names are importable from
:mod:`noisygrad` itself."""
