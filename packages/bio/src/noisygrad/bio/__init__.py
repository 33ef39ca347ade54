"""noisygrad.bio: Synaptic pruning, Bicoid gradient sensing and evolution as noisy searches."""

from noisygrad.plugins import require as _require

from ._plugin import PLUGIN as _PLUGIN

_require(_PLUGIN)  # a missing field package names the extra to install

__all__: list[str] = []
