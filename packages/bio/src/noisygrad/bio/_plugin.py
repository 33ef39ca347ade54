"""The bio plugin's declaration, read by `noisygrad plugins` without importing the plugin."""

from noisygrad.plugins import Plugin

PLUGIN = Plugin(
    name="bio",
    summary="Synaptic pruning, Bicoid gradient sensing and evolution as noisy searches",
    requires=(),
    experiments={},
)
