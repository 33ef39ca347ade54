"""The dsp plugin's declaration, read by `noisygrad plugins` without importing the plugin."""

from noisygrad.plugins import Plugin

PLUGIN = Plugin(
    name="dsp",
    summary="LMS, NLMS, RLS and Kalman filters tied to the noisy-gradient theory",
    requires=("numba",),
    experiments={},
)
