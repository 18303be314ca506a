"""The Triton backend: one fused launch for the forward; the backward is two launches, grad_x (the
forward kernel with flipped taps) and the weight/bias partials, then a fixed-order reduction.
Kernels in ``kernels.py``, launchers and tile heuristics in ``launch.py``; both are imported lazily
so that this package imports without Triton, and so that TRITON_INTERPRET (read by ``triton.jit``
at decoration time) is honoured.

Runs on CUDA tensors, and on CPU tensors only under the Triton interpreter (TRITON_INTERPRET=1),
which is a testing aid (slow: each program costs tens of milliseconds of Python).
"""
import importlib.util
import os

import torch

DEVICE_TYPES = ("cuda", "cpu")


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def is_available() -> bool:
    if importlib.util.find_spec("triton") is None:
        return False
    return torch.cuda.is_available() or _interpreting()


def why_unavailable() -> str:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    if not (torch.cuda.is_available() or _interpreting()):
        return "no CUDA device, and the Triton interpreter is off (set TRITON_INTERPRET=1 to run on CPU)"
    return ""


def forward(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation, low=None):
    """low: the one-pass autocast forward (launch.forward)."""
    from . import launch
    return launch.forward(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation, low)


def backward(grad_out, x, w_hw, w_w, w_h, dilation, compute_input, compute_weight, low=None):
    from . import launch
    return launch.backward(grad_out, x, w_hw, w_w, w_h, dilation, compute_input, compute_weight, low)
