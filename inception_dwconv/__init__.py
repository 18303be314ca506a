"""Fused Inception depthwise convolution (InceptionNeXt token mixer) for PyTorch."""
from . import ops  # noqa: F401  (registers the torch.library ops)
from .backends import available_backends
from .functional import inception_dwconv
from .module import InceptionDWConv2d

__all__ = ["InceptionDWConv2d", "inception_dwconv", "available_backends"]
__version__ = "0.1.0"
