"""Fused Inception depthwise convolution (InceptionNeXt token mixer) for PyTorch."""
from . import _extension  # noqa: F401  (loads the compiled kernels, when built)
from . import ops  # noqa: F401  (registers the torch.library ops)
from .backends import available_backends
from .convert import convert
from .functional import inception_dwconv
from .module import InceptionDWConv2d

__all__ = ["InceptionDWConv2d", "inception_dwconv", "available_backends", "convert"]
__version__ = "0.1.0"
