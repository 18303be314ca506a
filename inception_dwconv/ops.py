"""The op contract seen by autograd and torch.compile.

Two torch.library custom ops in the ``inception_dwconv`` namespace:

* ``inception_dwconv::forward(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h,
  dilation, backend) -> Tensor``
* ``inception_dwconv::backward(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend,
  compute_input, compute_weight) -> Tensor[]``

each with a fake (meta) implementation, and an autograd formula that links them. ``backend`` is
already resolved to a concrete backend name (never "auto") by ``functional``.
"""
from typing import List, Optional

import torch
from torch import Tensor

from . import backends
from ._layout import empty_output


@torch.library.custom_op("inception_dwconv::forward", mutates_args=())
def forward(x: Tensor, weight_hw: Tensor, bias_hw: Optional[Tensor], weight_w: Tensor,
            bias_w: Optional[Tensor], weight_h: Tensor, bias_h: Optional[Tensor],
            dilation: int, backend: str) -> Tensor:
    return backends.get(backend).forward(x, weight_hw, bias_hw, weight_w, bias_w, weight_h,
                                         bias_h, dilation)


@forward.register_fake
def _forward_fake(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation, backend):
    return empty_output(x)


@torch.library.custom_op("inception_dwconv::backward", mutates_args=())
def backward(grad_out: Tensor, x: Tensor, weight_hw: Tensor, weight_w: Tensor, weight_h: Tensor,
             dilation: int, backend: str, compute_input: bool,
             compute_weight: bool) -> List[Tensor]:
    return backends.get(backend).backward(grad_out, x, weight_hw, weight_w, weight_h, dilation,
                                          compute_input, compute_weight)


@backward.register_fake
def _backward_fake(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend, compute_input,
                   compute_weight):
    out = [empty_output(x)] if compute_input else []
    if compute_weight:
        for w in (weight_hw, weight_w, weight_h):
            out.append(torch.empty_like(w, memory_format=torch.contiguous_format))
            out.append(w.new_empty((w.shape[0],)))
    return out


def _setup_context(ctx, inputs, output):
    x, weight_hw, _, weight_w, _, weight_h, _, dilation, backend = inputs
    ctx.save_for_backward(x, weight_hw, weight_w, weight_h)
    ctx.dilation = dilation
    ctx.backend = backend


def _backward_formula(ctx, grad_out):
    x, weight_hw, weight_w, weight_h = ctx.saved_tensors
    needs = ctx.needs_input_grad
    compute_input = bool(needs[0])
    compute_weight = any(needs[1:7])
    grads: List[Optional[Tensor]] = [None] * 9
    if not (compute_input or compute_weight):
        return tuple(grads)
    result = backward(grad_out, x, weight_hw, weight_w, weight_h, ctx.dilation, ctx.backend,
                      compute_input, compute_weight)
    if compute_input:
        grads[0] = result[0]
    if compute_weight:
        weight_grads = result[1:] if compute_input else result
        for i, g in enumerate(weight_grads):
            if needs[1 + i]:
                grads[1 + i] = g
    return tuple(grads)


forward.register_autograd(_backward_formula, setup_context=_setup_context)
