"""The backend registry: the one place that knows which backends exist, which are usable here,
and what "auto" means.

Every backend module exposes the same three functions:

    is_available() -> bool
    forward(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation) -> Tensor
    backward(grad_out, x, w_hw, w_w, w_h, dilation, compute_input, compute_weight) -> list[Tensor]

and the attribute DEVICE_TYPES (the tensor device types it runs on). Inputs reaching a backend
were already validated by ``inception_dwconv.functional``. Outputs are allocated through
``inception_dwconv._layout.empty_output`` so that every backend (and the fake kernels) agree on
strides. ``backward`` returns ``[grad_x]`` when compute_input, followed by
``[grad_w_hw, grad_b_hw, grad_w_w, grad_b_w, grad_w_h, grad_b_h]`` when compute_weight.
"""
import importlib
import os
from typing import List, Optional

import torch

BACKENDS = ("reference", "cpu", "cuda", "triton")
ENV_VAR = "INCEPTION_DWCONV_BACKEND"

# "auto" takes the first available backend in this order for the tensor's device type.
# CPU: the fused C++ kernels; the Triton interpreter is a testing aid, never picked by auto.
# CUDA: Triton first - on an H200 (benchmarks/results/gpu-h200-20261127) its forward was 2.7x-5.3x
# faster than the CUDA C++ kernels' at every InceptionNeXt-T stage measured, and forward+backward
# faster at 56x56 and 28x28 (slower at 14x14).
AUTO_ORDER = {
    "cpu": ("cpu", "reference"),
    "cuda": ("triton", "cuda", "reference"),
}


_LOADED = {}  # name -> backend module (importlib.import_module costs about 1 us even when imported)


def get(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS} or 'auto'")
    mod = _LOADED.get(name)
    if mod is None:
        mod = _LOADED[name] = importlib.import_module(f"{__name__}.{name}")
    return mod


def available_backends(device_type: Optional[str] = None) -> List[str]:
    """Backends usable on this machine (optionally only those that run on device_type)."""
    names = []
    for name in BACKENDS:
        mod = get(name)
        if device_type is not None and device_type not in mod.DEVICE_TYPES:
            continue
        if mod.is_available():
            names.append(name)
    return names


# torch.compile calls this eagerly at trace time and bakes the chosen name into the graph.
@torch.compiler.assume_constant_result
def resolve(name: str, device_type: str) -> str:
    """Turns a user's backend choice into a concrete, usable backend for device_type."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string, got {type(name).__name__}")
    if name == "auto":
        override = os.environ.get(ENV_VAR, "").strip()
        if override and override != "auto":
            name = override
        else:
            for candidate in AUTO_ORDER.get(device_type, ("reference",)):
                if get(candidate).is_available() and device_type in get(candidate).DEVICE_TYPES:
                    return candidate
            return "reference"
    mod = get(name)
    if device_type not in mod.DEVICE_TYPES:
        raise ValueError(f"backend {name!r} does not run on {device_type} tensors "
                         f"(it runs on: {', '.join(mod.DEVICE_TYPES)})")
    if not mod.is_available():
        raise RuntimeError(f"backend {name!r} is not available on this machine: {mod.why_unavailable()}; "
                           f"available: {available_backends()}")
    return name
