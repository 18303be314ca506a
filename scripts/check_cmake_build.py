"""Loads the library built by CMakeLists.txt (not the setup.py extension) and checks its fused CPU
ops against the eager reference. Usage: python scripts/check_cmake_build.py cmake-build/libinception_dwconv_ops.so"""
import os
import sys

os.environ["INCEPTION_DWCONV_NO_EXTENSION"] = "1"  # the library below registers the same ops

import torch  # noqa: E402

torch.ops.load_library(sys.argv[1])

import inception_dwconv  # noqa: E402
from inception_dwconv.reference import inception_dwconv_reference  # noqa: E402

assert "cpu" in inception_dwconv.available_backends(), inception_dwconv.available_backends()
g = torch.Generator().manual_seed(0)
x = torch.randn(2, 40, 9, 13, generator=g, dtype=torch.float64, requires_grad=True)
params = [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True)
          for s in [(10, 1, 3, 3), (10,), (10, 1, 1, 9), (10,), (10, 1, 9, 1), (10,)]]
y = inception_dwconv.inception_dwconv(x, *params, backend="cpu")
assert "FusedInceptionDWConv" in y.grad_fn.name(), y.grad_fn.name()  # the library's C++ autograd node
y_ref = inception_dwconv_reference(x, *params)
torch.testing.assert_close(y, y_ref)
grads = torch.autograd.grad(y.square().sum(), [x, *params])
grads_ref = torch.autograd.grad(y_ref.square().sum(), [x, *params])
for a, b in zip(grads, grads_ref):
    torch.testing.assert_close(a, b)
# its argument checks format numbers with the process's libstdc++ (CMakeLists.txt; a private static
# copy printed them as nothing)
try:
    torch.ops.inception_dwconv.fused_forward(x[0].detach(), *[p.detach() for p in params], 1)
    raise AssertionError("a 3-D input was accepted")
except RuntimeError as exc:
    assert "got 3-D" in str(exc), str(exc)
print(f"CMake-built library {sys.argv[1]}: forward and backward match the reference; errors are clear")
