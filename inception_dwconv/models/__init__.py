"""Models built on the fused InceptionDWConv2d token mixer."""
from .inception_next import (MODEL_CONFIGS, InceptionNeXt, inception_next_atto, inception_next_base,
                             inception_next_small, inception_next_tiny)

__all__ = ["InceptionNeXt", "inception_next_atto", "inception_next_tiny", "inception_next_small",
           "inception_next_base", "MODEL_CONFIGS"]
