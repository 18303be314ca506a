"""Memory-format rule shared by every backend and by the fake (meta) implementations.

The output (and grad_x) keeps the input's memory format: channels_last in gives channels_last out,
anything else gives a contiguous NCHW tensor. Every backend allocates its result through
``empty_output`` so that real and fake strides always agree.
"""
import torch


def is_channels_last(x: torch.Tensor) -> bool:
    """True when x is laid out with channels innermost (dense channels_last, or a view of one)."""
    if x.dim() != 4:
        return False
    if x.is_contiguous():
        return False
    if x.is_contiguous(memory_format=torch.channels_last):
        return True
    # Strided views (e.g. a channel slice of a wider channels_last tensor): channels innermost.
    sn, sc, sh, sw = x.stride()
    return sc == 1 and x.size(1) > 1 and sw >= x.size(1) and sh >= sw


def output_memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if is_channels_last(x) else torch.contiguous_format


def empty_output(x: torch.Tensor, dtype: torch.dtype = None) -> torch.Tensor:
    return torch.empty(x.shape, dtype=dtype or x.dtype, device=x.device,
                       memory_format=output_memory_format(x))
