"""The quantum plugin's declaration, read by `noisygrad plugins` without importing the plugin."""

from noisygrad.plugins import Plugin

PLUGIN = Plugin(
    name="quantum",
    summary="VQE with real shot noise on Qiskit Aer: SPSA, parameter shift, shot budgets",
    requires=(
        "qiskit",
        "qiskit_aer",
    ),
    experiments={},
)
