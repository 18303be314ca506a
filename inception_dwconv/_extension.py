"""Loads the compiled extension (inception_dwconv._C) when it was built.

The package works without it: only the "reference" (and, where Triton runs, "triton") backend is
then available, and ``available_backends()`` says so.
"""
import os

import torch

LOADED = False
LOAD_ERROR = None
if os.environ.get("INCEPTION_DWCONV_NO_EXTENSION", "") == "1":
    # For processes that load the ops library another way (the CMake build, via
    # torch.ops.load_library) or that want the pure-Python package only.
    LOAD_ERROR = "INCEPTION_DWCONV_NO_EXTENSION=1"
else:
    try:  # importing _C registers the inception_dwconv::fused_* ops with the dispatcher
        from . import _C  # noqa: F401

        LOADED = True
    except ImportError as exc:  # not built, or built against another torch
        LOAD_ERROR = exc

FORWARD_OP = "inception_dwconv::fused_forward"


_REGISTERED = set()  # dispatch keys seen with a kernel: registrations are not undone


def has_kernel(dispatch_key: str) -> bool:
    """Whether a fused kernel is registered for this dispatch key ("CPU" or "CUDA"), by _C or by a
    library loaded with torch.ops.load_library."""
    if dispatch_key in _REGISTERED:  # the dispatcher query costs ~3 us; every eager call asks
        return True
    try:
        found = torch._C._dispatch_has_kernel_for_dispatch_key(FORWARD_OP, dispatch_key)
    except RuntimeError:  # no such op registered at all
        return False
    if found:
        _REGISTERED.add(dispatch_key)
    return found
