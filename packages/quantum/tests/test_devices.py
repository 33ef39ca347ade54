"""``device="GPU"``: the torch simulator on CUDA where torch sees a GPU, else Aer's GPU build, else the CPU with a
warning that says what to install. The CUDA tests run only where a GPU is present (``benchmarks/quantum_gpu_check.py``
measures the speed there); the fallback tests run only where none is."""

import numpy as np
import pytest
import torch
from qiskit.circuit.library import efficient_su2, real_amplitudes
from qiskit.quantum_info import Statevector

from noisygrad.quantum import DeviceFallbackWarning, EnergyObjective, gpu_available, shot_estimator, tfim
from noisygrad.quantum._statevector import TorchStatevector
from noisygrad.quantum.backends import AerBackend, TorchBackend, make_backend, resolve_device
from noisygrad.quantum.measurement import MeasurementPlan

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")
no_gpu_at_all = pytest.mark.skipif(
    torch.cuda.is_available() or gpu_available(), reason="a GPU simulator is installed here"
)


def test_device_names_are_checked():
    with pytest.raises(ValueError, match="device must be one of"):
        shot_estimator(device="gpu")
    with pytest.raises(ValueError, match="device must be one of"):
        make_backend(efficient_su2(2, reps=1), "auto", "cuda")


@no_gpu_at_all
@pytest.mark.parametrize(
    ("backend", "missing"),
    [
        ("torch", ["CUDA"]),
        ("aer", ["qiskit-aer-gpu"]),
        ("aer-sampler", ["qiskit-aer-gpu"]),
        ("auto", ["CUDA", "qiskit-aer-gpu"]),
    ],
)
def test_gpu_without_a_gpu_falls_back_to_the_cpu_and_says_what_is_missing(backend, missing):
    with pytest.warns(DeviceFallbackWarning) as record:
        assert resolve_device(backend, "GPU") == "CPU"
    message = str(record[0].message)
    assert all(m in message for m in missing)
    assert "Running on the CPU" in message
    with pytest.warns(DeviceFallbackWarning):
        simulator = make_backend(efficient_su2(2, reps=1), backend, "GPU")
    assert simulator.device == "CPU"


@no_gpu_at_all
def test_the_fallback_gives_the_cpu_numbers():
    """Warned once at construction, then the same draws as a CPU estimator with the same seed."""
    hamiltonian, ansatz = tfim(3), efficient_su2(3, reps=1)
    theta = np.random.default_rng(0).uniform(-3, 3, (5, ansatz.num_parameters))
    with pytest.warns(DeviceFallbackWarning):
        on_gpu = shot_estimator(shots=200, seed=4, device="GPU")
    values = on_gpu.run([(ansatz, hamiltonian, theta)]).result()[0].data.evs  # no second warning (errors here)
    reference = shot_estimator(shots=200, seed=4).run([(ansatz, hamiltonian, theta)]).result()[0].data.evs
    np.testing.assert_array_equal(values, reference)
    with pytest.warns(DeviceFallbackWarning):
        objective = EnergyObjective(hamiltonian, ansatz, shots=200, device="GPU")
    assert objective.backend.device == "CPU"


def test_aer_backend_asked_directly_for_a_missing_gpu_raises():
    if gpu_available():
        pytest.skip("this Aer build has a GPU")
    with pytest.raises(RuntimeError, match="qiskit-aer-gpu"):
        AerBackend(efficient_su2(2, reps=1), "GPU")


@needs_cuda
@pytest.mark.parametrize("circuit", [efficient_su2(5, reps=2), real_amplitudes(4, reps=3)], ids=["su2", "ra"])
def test_cuda_states_match_qiskit_to_1e12(circuit):
    values = np.random.default_rng(1).uniform(-3, 3, (4, circuit.num_parameters))
    states = TorchStatevector(circuit, "cuda").states(values)
    assert states.device.type == "cuda"
    for row, state in zip(values, states.cpu().numpy(), strict=True):
        reference = Statevector(circuit.assign_parameters(row)).data
        overlap = np.vdot(reference, state)
        np.testing.assert_allclose(state * np.conj(overlap) / abs(overlap), reference, atol=1e-12)


@needs_cuda
def test_cuda_estimator_matches_the_cpu_one():
    """Same exact probabilities (to rounding), so the same seed draws the same shots."""
    hamiltonian, ansatz = tfim(4), efficient_su2(4, reps=2)
    simulator = make_backend(ansatz, "auto", "GPU")
    assert isinstance(simulator, TorchBackend)
    assert simulator.simulator.device.type == "cuda"
    theta = np.random.default_rng(0).uniform(-3, 3, (6, ansatz.num_parameters))
    gpu = shot_estimator(shots=500, seed=9, device="GPU").run([(ansatz, hamiltonian, theta)]).result()[0].data.evs
    cpu = shot_estimator(shots=500, seed=9).run([(ansatz, hamiltonian, theta)]).result()[0].data.evs
    np.testing.assert_allclose(gpu, cpu, atol=1e-12)


def test_auto_follows_the_measured_crossover():
    """The rule measured by benchmarks/quantum_backend_crossover.py (README): torch on one thread up to 14 qubits at
    any batch; from 15 to 20 qubits torch while a call holds at most 2**20 amplitudes (K points x 2**n), else Aer;
    Aer above 20."""
    from noisygrad.quantum.backends import TORCH_MAX_AMPLITUDES, TORCH_MAX_QUBITS, AutoBackend

    assert (TORCH_MAX_QUBITS, TORCH_MAX_AMPLITUDES) == (14, 2**20)
    small = make_backend(efficient_su2(14, reps=1))
    assert isinstance(small, TorchBackend)
    assert small.threads == 1
    middle = make_backend(efficient_su2(15, reps=1))
    assert isinstance(middle, AutoBackend)
    assert isinstance(middle.pick(32), TorchBackend)  # 32 x 2**15 = 2**20
    assert isinstance(middle.pick(33), AerBackend)
    assert middle.pick(32).threads is None  # above 14 qubits torch keeps its own thread count
    assert isinstance(make_backend(efficient_su2(20, reps=0)).pick(1), TorchBackend)
    assert isinstance(make_backend(efficient_su2(21, reps=0)), AerBackend)


def test_the_per_call_choice_gives_the_same_probabilities():
    circuit = efficient_su2(15, reps=1)
    auto = make_backend(circuit)
    plan = MeasurementPlan(tfim(15), 15)
    values = np.random.default_rng(3).uniform(-3, 3, (1, circuit.num_parameters))
    np.testing.assert_allclose(auto.probabilities(values, plan), auto.pick(33).probabilities(values, plan), atol=1e-10)


def test_one_thread_is_restored_after_each_call(hamiltonian, ansatz, theta):
    before = torch.get_num_threads()
    shot_estimator(shots=10, seed=0, backend="torch").run([(ansatz, hamiltonian, theta)])
    assert torch.get_num_threads() == before
