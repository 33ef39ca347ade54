"""Suite-wide test setup.

Every test runs with one torch intra-op thread: the suite's tensors are small, and on a shared 2-core machine
extra threads only add contention (measured here: small batched matmuls ~100x slower with 2 threads under
load, the pinn package's default tests 14 min instead of about 3).
"""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
