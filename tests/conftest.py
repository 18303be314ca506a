import os

import pytest
import torch

# Without a GPU, the Triton backend is exercised through the Triton interpreter on CPU tensors.
# Triton reads this when kernels are decorated, so it must be set before anything imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Under pytest-xdist every worker would otherwise run torch's CPU ops with one thread per core:
# 14 workers x 16 threads on a 16-core GPU machine made sub-second fp64 reference computations take
# 45-150 s (benchmarks/results/gpu-h200-20261127). Give each worker its share of the cores.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
if _workers > 1:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _workers))


@pytest.fixture
def poison():
    """Every tensor allocated while active (torch.empty, and at::empty inside the C++ kernels) starts
    as NaN, so an output element a kernel forgets to write shows up as NaN."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    assert torch.isnan(torch.empty(8)).all()
    yield
    torch.use_deterministic_algorithms(previous)
    torch.utils.deterministic.fill_uninitialized_memory = previous_fill
