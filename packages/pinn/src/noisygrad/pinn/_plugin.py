"""The pinn plugin's declaration, read by `noisygrad plugins` without importing the plugin."""

from noisygrad.plugins import Plugin

PLUGIN = Plugin(
    name="pinn",
    summary="PINN training on DeepXDE with collocation mini-batches and optimizer swapping",
    requires=("deepxde",),
    experiments={},
)
