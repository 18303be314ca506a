"""Fused C++ CPU kernels (csrc/cpu): one pass over x forward, one pass over grad_out backward."""
from .. import _extension
from ._compiled import backward, forward  # noqa: F401

DEVICE_TYPES = ("cpu",)


def is_available() -> bool:
    return _extension.has_kernel("CPU")


def why_unavailable() -> str:
    if not _extension.LOADED:
        return f"the compiled extension inception_dwconv._C did not load ({_extension.LOAD_ERROR})"
    return "the extension has no CPU kernel registered"
