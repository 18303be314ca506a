import os

import pytest
import torch

# Without a GPU, the Triton backend is exercised through the Triton interpreter on CPU tensors.
# Triton reads this when kernels are decorated, so it must be set before anything imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


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
