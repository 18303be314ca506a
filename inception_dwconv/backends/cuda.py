"""Fused CUDA C++ kernels (csrc/cuda), compiled into inception_dwconv._C when a CUDA toolkit and a
CUDA build of torch were present at build time."""
import torch

from .. import _extension
from ._compiled import backward, forward  # noqa: F401

DEVICE_TYPES = ("cuda",)


def is_available() -> bool:
    return _extension.has_kernel("CUDA") and torch.cuda.is_available()


def why_unavailable() -> str:
    if not _extension.LOADED:
        return f"the compiled extension inception_dwconv._C did not load ({_extension.LOAD_ERROR})"
    if not _extension.has_kernel("CUDA"):
        return "the extension was built without its CUDA sources"
    return "no CUDA device is visible"
