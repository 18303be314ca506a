"""Shared glue for the two backends that live in the compiled extension (cpu and cuda): both call
the same dispatcher ops, which route to the CPU or CUDA kernel by the tensors' device."""
import torch


def forward(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation):
    return torch.ops.inception_dwconv.fused_forward(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation)


def backward(grad_out, x, w_hw, w_w, w_h, dilation, compute_input, compute_weight):
    return torch.ops.inception_dwconv.fused_backward(
        grad_out, x, w_hw, w_w, w_h, dilation, compute_input, compute_weight)
