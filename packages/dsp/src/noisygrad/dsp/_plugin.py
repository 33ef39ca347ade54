"""The dsp plugin's declaration, read by `noisygrad plugins` without importing the plugin."""

from noisygrad.plugins import Plugin

PLUGIN = Plugin(
    name="dsp",
    summary="LMS, NLMS, RLS and Kalman filters tied to the noisy-gradient theory",
    requires=("numba",),
    experiments={
        "lms-misadjustment": "noisygrad.dsp.experiments:lms_misadjustment",
        "rls-kalman": "noisygrad.dsp.experiments:rls_kalman",
        "lms-noise-ball": "noisygrad.dsp.experiments:lms_noise_ball",
        "rls-tracking": "noisygrad.dsp.experiments:rls_tracking",
    },
)
