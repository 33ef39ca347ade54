"""The bio plugin's declaration, read by `noisygrad plugins` without importing the plugin."""

from noisygrad.plugins import Plugin

PLUGIN = Plugin(
    name="bio",
    summary="Synaptic pruning, Bicoid gradient sensing and evolution as noisy searches",
    requires=("scipy",),
    experiments={
        "bio.pruning-passage": "noisygrad.bio.experiments:pruning_passage",
        "bio.bicoid-optimum": "noisygrad.bio.experiments:bicoid_optimum",
        "bio.evolution": "noisygrad.bio.experiments:evolution",
    },
)
