"""The functional entry point: every argument check and the backend choice, in one place."""
import warnings
from typing import Optional

import torch
from torch import Tensor

from . import backends, ops

SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _check_tensor(name: str, t, x: Tensor) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != x.dtype:
        raise TypeError(f"{name} has dtype {t.dtype} but x has dtype {x.dtype}; they must match")
    if t.device != x.device:
        raise ValueError(f"{name} is on {t.device} but x is on {x.device}; they must be on the same device")


def _inputs_ok(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation) -> bool:
    """True when every check of check_inputs passes, read with as few tensor attribute reads as
    possible (the full checks cost about 6 us a call, as much as the fused kernel on a small map).
    Anything unusual, including an exception, gives False, and check_inputs runs the full checks to
    name the problem."""
    try:
        n, c, _, _ = x.shape
        dtype, device = x.dtype, x.device
        gc, one, k, k2 = weight_hw.shape
        gc_w, one_w, one_ww, kw = weight_w.shape
        gc_h, one_h, kh, one_hh = weight_h.shape
        if not (isinstance(x, Tensor) and dtype in SUPPORTED_DTYPES and type(dilation) is int and dilation >= 1
                and 1 <= gc and 3 * gc <= c and gc_w == gc and gc_h == gc
                and one == one_w == one_ww == one_h == one_hh == 1
                and k == k2 and k % 2 == 1 and kw % 2 == 1 and kh % 2 == 1):
            return False
        for t in (weight_hw, weight_w, weight_h):
            if not isinstance(t, Tensor) or t.dtype is not dtype or t.device != device:
                return False
        for t in (bias_hw, bias_w, bias_h):
            if t is not None and (not isinstance(t, Tensor) or t.dtype is not dtype or t.device != device
                                  or t.shape != (gc,)):
                return False
        return True
    except Exception:  # a non-tensor, a shape of another rank: the full checks say which
        return False


def check_inputs(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation) -> None:
    """Raises TypeError / ValueError naming the first broken constraint."""
    if not _inputs_ok(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation):
        _check_inputs_in_full(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation)


def _check_inputs_in_full(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation) -> None:
    """check_inputs, one constraint at a time: raises for the first one broken."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got a {x.dim()}-D tensor of shape {tuple(x.shape)}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"x has dtype {x.dtype}; supported dtypes are "
                        f"{', '.join(str(d) for d in SUPPORTED_DTYPES)}")
    for name, w in (("weight_hw", weight_hw), ("weight_w", weight_w), ("weight_h", weight_h)):
        _check_tensor(name, w, x)
        if w.dim() != 4 or w.shape[1] != 1:
            raise ValueError(f"{name} must have shape (gc, 1, kh, kw) (a depthwise Conv2d weight), "
                             f"got {tuple(w.shape)}")
    gc = weight_hw.shape[0]
    if gc < 1:
        raise ValueError("the conv branches have 0 channels (gc = 0): branch_ratio too small for C")
    if weight_w.shape[0] != gc or weight_h.shape[0] != gc:
        raise ValueError(f"the three branch weights must have the same channel count, got "
                         f"{weight_hw.shape[0]}, {weight_w.shape[0]}, {weight_h.shape[0]}")
    ks_h, ks_w = weight_hw.shape[-2:]
    if ks_h != ks_w:
        raise ValueError(f"weight_hw must be square (gc, 1, k, k), got {tuple(weight_hw.shape)}")
    if weight_w.shape[-2] != 1:
        raise ValueError(f"weight_w must have shape (gc, 1, 1, K), got {tuple(weight_w.shape)}")
    if weight_h.shape[-1] != 1:
        raise ValueError(f"weight_h must have shape (gc, 1, K, 1), got {tuple(weight_h.shape)}")
    for name, k in (("weight_hw", ks_h), ("weight_w", weight_w.shape[-1]), ("weight_h", weight_h.shape[-2])):
        if k % 2 == 0:
            raise ValueError(f"{name} has an even kernel size {k}; only odd kernel sizes keep H and W "
                             f"with symmetric zero padding")
    for name, b in (("bias_hw", bias_hw), ("bias_w", bias_w), ("bias_h", bias_h)):
        if b is not None:
            _check_tensor(name, b, x)
            if tuple(b.shape) != (gc,):
                raise ValueError(f"{name} must have shape ({gc},), got {tuple(b.shape)}")
    channels = x.shape[1]
    if 3 * gc > channels:
        raise ValueError(f"x has {channels} channels but the three conv branches need 3 * {gc} = "
                         f"{3 * gc}; the channel count does not match the weights")
    if isinstance(dilation, bool) or not isinstance(dilation, int):
        raise TypeError(f"dilation must be an int, got {type(dilation).__name__}")
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")


def inception_dwconv(x: Tensor, weight_hw: Tensor, bias_hw: Optional[Tensor], weight_w: Tensor,
                     bias_w: Optional[Tensor], weight_h: Tensor, bias_h: Optional[Tensor], *,
                     dilation: int = 1, backend: str = "auto") -> Tensor:
    """Inception depthwise convolution of InceptionNeXt, fused.

    x: (N, C, H, W). Channels are split as identity (C - 3*gc), square k x k depthwise conv (gc),
    1 x K depthwise conv (gc), K x 1 depthwise conv (gc), and concatenated back in that order;
    gc and the kernel sizes come from the weight shapes. Each conv has stride 1, zero padding
    dilation * (k - 1) // 2 (H and W kept), and an optional bias.
    """
    params = (weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h)
    low = _autocast_dtype(x)
    if low is not None:
        return _forward_autocast(x, params, dilation, backend, low)
    return _checked_forward(x, params, dilation, backend)


def _checked_forward(x, params, dilation, backend) -> Tensor:
    if torch.jit.is_tracing():
        # The checks read shapes as Python ints, which the tracer warns about; they hold for the
        # traced weights, and the op checks its inputs again whenever the trace runs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            check_inputs(x, *params, dilation)
    else:
        check_inputs(x, *params, dilation)
    name = backends.resolve(backend, x.device.type)
    return ops.call_forward(x, *params, dilation, name)


def _autocast_dtype(x) -> Optional[torch.dtype]:
    """The autocast dtype when autocast is on for x's device type, else None."""
    if not isinstance(x, Tensor):
        return None
    device_type = x.device.type
    if device_type not in ("cpu", "cuda") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def _forward_autocast(x: Tensor, params, dilation, backend, low: torch.dtype) -> Tensor:
    """What the eager split/conv/cat module computes under autocast: each Conv2d casts its input
    slice, weight and bias to the autocast dtype (fp64 tensors are left alone, as autocast does),
    the identity slice keeps x's dtype, and torch.cat promotes: the output has dtype
    promote_types(x.dtype, low) when there are identity channels, with the identity channels copied
    exactly and the conv channels rounded to the autocast dtype on the way."""
    if x.dtype is torch.float32 and all(p is None or (isinstance(p, Tensor) and p.dtype is torch.float32)
                                        for p in params):
        name = backends.resolve(backend, x.device.type)
        if ops.has_autocast_kernels(name, low):  # the backend can do it in one pass
            check_inputs(x, *params, dilation)
            if 3 * params[0].shape[0] < x.shape[1]:  # identity channels: an fp32 output
                y = ops.call_forward_autocast(x, *params, dilation, name, low)
                if y is not None:
                    return y
    return compose_autocast(x, params, dilation, backend, low)


def compose_autocast(x: Tensor, params, dilation, backend, low: torch.dtype) -> Tensor:
    """_forward_autocast by composition: casts, the op in the autocast dtype, the cast back and the
    identity copy (the one-pass route's backward differentiates this under create_graph=True)."""
    def cast(t):
        if isinstance(t, Tensor) and t.is_floating_point() and t.dtype != torch.float64:
            return t.to(low)
        return t

    x_low = cast(x)
    params_low = [cast(p) for p in params]
    with torch.autocast(x.device.type, enabled=False):
        y = _checked_forward(x_low, params_low, dilation, backend)
        c_id = x.shape[1] - 3 * params_low[0].shape[0]
        if c_id == 0 or x_low is x:
            return y
        y = y.to(torch.promote_types(x.dtype, low))
        y[:, :c_id] = x[:, :c_id]
        return y
