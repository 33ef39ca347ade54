"""noisygrad.pinn: PINN training on DeepXDE with collocation mini-batches and optimizer swapping."""

from noisygrad.plugins import require as _require

from ._plugin import PLUGIN as _PLUGIN

_require(_PLUGIN)  # a missing field package names the extra to install

__all__: list[str] = []
