"""The eager split / conv / cat formulation: the oracle every fused backend is tested against,
and the "reference" backend. It follows the released InceptionNeXt token mixer exactly."""
from typing import List, Optional

import torch
import torch.nn.functional as F

from ._layout import empty_output


def padding(kernel_size: int, dilation: int) -> int:
    return dilation * (kernel_size - 1) // 2


def split_sizes(channels: int, gc: int):
    return (channels - 3 * gc, gc, gc, gc)


def _branches(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation):
    gc = w_hw.shape[0]
    x_id, x_hw, x_w, x_h = torch.split(x, split_sizes(x.shape[1], gc), dim=1)
    ks, kw, kh = w_hw.shape[-1], w_w.shape[-1], w_h.shape[-2]
    d = dilation
    y_hw = F.conv2d(x_hw, w_hw, b_hw, padding=padding(ks, d), dilation=d, groups=gc)
    y_w = F.conv2d(x_w, w_w, b_w, padding=(0, padding(kw, d)), dilation=(1, d), groups=gc)
    y_h = F.conv2d(x_h, w_h, b_h, padding=(padding(kh, d), 0), dilation=(d, 1), groups=gc)
    return x_id, y_hw, y_w, y_h


def inception_dwconv_reference(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation: int = 1) -> torch.Tensor:
    """Differentiable eager implementation (plain autograd through split/conv/cat)."""
    return torch.cat(_branches(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation), dim=1)


def forward(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation: int) -> torch.Tensor:
    out = empty_output(x)
    out.copy_(inception_dwconv_reference(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation))
    return out


def backward(grad_out, x, w_hw, w_w, w_h, dilation: int,
             compute_input: bool, compute_weight: bool) -> List[torch.Tensor]:
    """The eager backward: aten's convolution_backward on each branch, as autograd would run it
    for the split/conv/cat module (the identity part of grad_out passes through)."""
    gc = w_hw.shape[0]
    d = dilation
    sizes = split_sizes(x.shape[1], gc)
    xs = torch.split(x, sizes, dim=1)
    gs = torch.split(grad_out, sizes, dim=1)
    branch_args = (
        (w_hw, (padding(w_hw.shape[-2], d), padding(w_hw.shape[-1], d)), (d, d)),
        (w_w, (0, padding(w_w.shape[-1], d)), (1, d)),
        (w_h, (padding(w_h.shape[-2], d), 0), (d, 1)),
    )
    grad_parts, weight_grads = [gs[0]], []
    for (w, pad, dil), xb, gb in zip(branch_args, xs[1:], gs[1:]):
        gi, gw, gbias = torch.ops.aten.convolution_backward(
            gb, xb, w, [gc], [1, 1], list(pad), list(dil), False, [0, 0], gc,
            [compute_input, compute_weight, compute_weight])
        grad_parts.append(gi)
        weight_grads += [gw, gbias]
    out = []
    if compute_input:
        gx = empty_output(x)
        gx.copy_(torch.cat(grad_parts, dim=1))
        out.append(gx)
    if compute_weight:
        out += [g.contiguous() for g in weight_grads]
    return out
