"""The op contract seen by autograd and torch.compile.

Two torch.library custom ops in the ``inception_dwconv`` namespace:

* ``inception_dwconv::forward(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h,
  dilation, backend) -> Tensor``
* ``inception_dwconv::backward(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend,
  compute_input, compute_weight) -> Tensor[]``

each with a fake (meta) implementation, and an autograd formula that links them. ``backend`` is
already resolved to a concrete backend name (never "auto") by ``functional``. Under autocast, an
fp32 input with a backend that has one-pass autocast kernels takes ``forward_autocast`` /
``backward_autocast`` (the same arguments plus the autocast dtype ``low``) instead.
"""
import functools
import os
from typing import List, Optional

import torch
from torch import Tensor
from torch.autograd import forward_ad as _forward_ad

from . import backends, reference
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


def _grads(needs, grad_out, saved, dilation, backend, backward_fn) -> tuple:
    """Gradients of (x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation, backend),
    computing only those that `needs` asks for, through backward_fn (the custom op or a backend)."""
    x, weight_hw, weight_w, weight_h = saved
    compute_input = bool(needs[0])
    compute_weight = any(needs[1:7])
    grads: List[Optional[Tensor]] = [None] * 9
    if not (compute_input or compute_weight):
        return tuple(grads)
    result = backward_fn(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend,
                         compute_input, compute_weight)
    if compute_input:
        grads[0] = result[0]
    if compute_weight:
        weight_grads = result[1:] if compute_input else result
        for i, g in enumerate(weight_grads):
            if needs[1 + i]:
                grads[1 + i] = g
    return tuple(grads)


def _backward_formula(ctx, grad_out):
    return _grads(ctx.needs_input_grad, grad_out, ctx.saved_tensors, ctx.dilation, ctx.backend, backward)


forward.register_autograd(_backward_formula, setup_context=_setup_context)


# Double backward. The op is bilinear: y = F(x; W, b) (identity channels copied), and the backward
# op returns gx = F_x^T(gy; W) (identity channels: gy) and gW = F_W^T(gy; x), gb = sum of gy. So,
# for upstream gradients ggx, ggW, ggb of those outputs:
#   d/dgy = F(ggx; W, no bias) + F(x; ggW, ggb) with its identity channels zero
#   d/dx  = F_x^T(gy; ggW) with its identity channels zero   (the backward op's gx, weights ggW)
#   d/dW  = F_W^T(gy; ggx)                                     (the backward op's gW, x -> ggx)
# all through the custom ops, which are differentiable again in turn.

def _without_identity(t: Tensor, c_id: int) -> Tensor:
    # out of place (masked_fill keeps t's memory format), so that torch.func transforms can trace it
    if c_id == 0:
        return t
    conv = torch.arange(t.shape[1], device=t.device).view(1, -1, 1, 1) >= c_id
    return t.masked_fill(~conv, 0)


def _setup_backward_context(ctx, inputs, output):
    grad_out, x, weight_hw, weight_w, weight_h, dilation, backend, compute_input, compute_weight = inputs
    ctx.save_for_backward(grad_out, x, weight_hw, weight_w, weight_h)
    ctx.dilation, ctx.backend = dilation, backend
    ctx.compute_input, ctx.compute_weight = compute_input, compute_weight


def _double_backward_formula(ctx, grads):
    return _double_backward(ctx, grads, forward, backward)


def _zeros_for_none(ts, weights):
    """The weight directions (tangents, second-order gradients) with None read as zero weights."""
    return [t if t is not None else torch.zeros_like(w) for t, w in zip(ts, weights)]


def _forward_tangent(x, weights, tx, tw, tb, d, backend, forward_fn):
    """The op's derivative in the direction tx (x), tw and tb (weights and biases; None entries are
    zero): F(tx; W, no bias) + F(x; tw, tb) with its identity channels zero, through forward_fn.
    Also the double backward's gradient for grad_out. None when every direction is None."""
    out = None
    if tx is not None:
        out = forward_fn(tx, weights[0], None, weights[1], None, weights[2], None, d, backend)
    if any(t is not None for t in (*tw, *tb)):
        tw = _zeros_for_none(tw, weights)
        c_id = x.shape[1] - 3 * weights[0].shape[0]
        term = _without_identity(forward_fn(x, tw[0], tb[0], tw[1], tb[1], tw[2], tb[2], d, backend), c_id)
        out = term if out is None else out + term
    return out


def _double_backward(ctx, grads, forward_fn, backward_fn):
    """The formula above, through forward_fn / backward_fn (the custom ops, or the autograd.Functions
    that torch.func transforms take)."""
    grad_out, x, *weights = ctx.saved_tensors
    grads = list(grads)
    ggx = grads.pop(0) if ctx.compute_input else None
    gg = grads if ctx.compute_weight else [None] * 6  # ggW_hw, ggb_hw, ggW_w, ggb_w, ggW_h, ggb_h
    ggw = [gg[2 * i] for i in range(3)]
    ggb = [gg[2 * i + 1] for i in range(3)]
    c_id = x.shape[1] - 3 * weights[0].shape[0]
    d, backend = ctx.dilation, ctx.backend
    needs = ctx.needs_input_grad
    g_gy = g_x = None
    g_w = [None] * 3
    if needs[0]:
        g_gy = _forward_tangent(x, weights, ggx, ggw, ggb, d, backend, forward_fn)
    if needs[1] and any(g is not None for g in ggw):
        g_x = _without_identity(backward_fn(grad_out, x, *_zeros_for_none(ggw, weights), d, backend, True, False)[0],
                                c_id)
    if any(needs[2:5]) and ggx is not None:
        gw = backward_fn(grad_out, ggx, *weights, d, backend, False, True)
        g_w = [gw[0] if needs[2] else None, gw[2] if needs[3] else None, gw[4] if needs[4] else None]
    return g_gy, g_x, *g_w, None, None, None, None


def _backward_tangent(ctx, tangents, backward_fn):
    """Forward-mode derivative of the backward op (bilinear too: in grad_out and W for grad_x, in
    grad_out and x for the weight grads) in the direction of `tangents` (grad_out, x, the three
    weights; None entries are zero), one tangent per output of the op; through backward_fn."""
    grad_out, x, *weights = ctx.saved_tensors
    t_gy, t_x, *t_w = tangents[:5]
    d, backend = ctx.dilation, ctx.backend
    c_id = x.shape[1] - 3 * weights[0].shape[0]
    out = []
    if ctx.compute_input:
        t_gx = None
        if t_gy is not None:
            t_gx = backward_fn(t_gy, x, *weights, d, backend, True, False)[0]
        if any(t is not None for t in t_w):
            term = _without_identity(
                backward_fn(grad_out, x, *_zeros_for_none(t_w, weights), d, backend, True, False)[0], c_id)
            t_gx = term if t_gx is None else t_gx + term
        out.append(t_gx if t_gx is not None else torch.zeros_like(x))
    if ctx.compute_weight:
        # weight grads: from t_gy (with x) and from t_x (with grad_out); bias grads (sums of grad_out)
        # from t_gy alone
        t_g = [None] * 6
        if t_gy is not None:
            t_g = list(backward_fn(t_gy, x, *weights, d, backend, False, True))
        if t_x is not None:
            from_x = backward_fn(grad_out, t_x, *weights, d, backend, False, True)
            for i in (0, 2, 4):
                t_g[i] = from_x[i] if t_g[i] is None else t_g[i] + from_x[i]
        for i, w in enumerate(weights):
            if t_g[2 * i] is None:
                t_g[2 * i] = torch.zeros_like(w, memory_format=torch.contiguous_format)
            if t_g[2 * i + 1] is None:
                t_g[2 * i + 1] = w.new_zeros((w.shape[0],))
        out += t_g
    return tuple(out)


backward.register_autograd(_double_backward_formula, setup_context=_setup_backward_context)


# vmap (torch.func.vmap, and vmap over torch.func.grad for per-sample gradients). The op is
# independent along N, so a vmapped x with shared parameters is one call on the batch folded into
# N; per-sample parameters, and per-sample weight gradients, take one call per sample.

def _sample(t, dim, i):
    return t if t is None or dim is None else t.select(dim, i)


def _batch_first(t, dim, size):
    return t.expand(size, *t.shape) if dim is None else t.movedim(dim, 0)


@forward.register_vmap
def _forward_vmap(info, in_dims, x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation, backend):
    params = (weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h)
    size = info.batch_size
    if all(d is None for d in in_dims[1:7]):
        xb = _batch_first(x, in_dims[0], size)
        y = forward(xb.flatten(0, 1), *params, dilation, backend)
        return y.unflatten(0, xb.shape[:2]), 0
    ys = [forward(_sample(x, in_dims[0], i), *(_sample(p, d, i) for p, d in zip(params, in_dims[1:7])),
                  dilation, backend) for i in range(size)]
    return torch.stack(ys), 0


@backward.register_vmap
def _backward_vmap(info, in_dims, grad_out, x, weight_hw, weight_w, weight_h, dilation, backend, compute_input,
                   compute_weight):
    size = info.batch_size
    weights = (weight_hw, weight_w, weight_h)
    if not compute_weight and all(d is None for d in in_dims[2:5]):
        gb, xb = _batch_first(grad_out, in_dims[0], size), _batch_first(x, in_dims[1], size)
        out = backward(gb.flatten(0, 1), xb.flatten(0, 1), *weights, dilation, backend, compute_input, False)
        return [t.unflatten(0, gb.shape[:2]) for t in out], [0] * len(out)
    per_sample = [backward(_sample(grad_out, in_dims[0], i), _sample(x, in_dims[1], i),
                           *(_sample(w, d, i) for w, d in zip(weights, in_dims[2:5])), dilation, backend,
                           compute_input, compute_weight) for i in range(size)]
    out = [torch.stack(list(ts)) for ts in zip(*per_sample)]
    return out, [0] * len(out)


# Eager calls on plain tensors skip the custom-op wrappers (measured on the CPU, 1x16x2x2 input: a
# call 33 -> 19 us without autograd, 69 -> 24 us with it) and call the backend directly; when a
# gradient is needed, through the extension's C++ autograd node for the compiled backends
# (csrc/autograd.cpp: no Python in the backward, 17 - 56 us less a forward + backward) and a plain
# autograd.Function for the others. All paths run the same kernels, so they give the same bits;
# torch.compile, tensor subclasses and dispatch or function modes (fake tensors, FlopCounterMode,
# torch.device contexts) keep the custom ops.

def _backend_backward(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend, compute_input,
                      compute_weight):
    return backends.get(backend).backward(grad_out, x, weight_hw, weight_w, weight_h, dilation,
                                          compute_input, compute_weight)


def _eager_backward(ctx, grad_out):
    # create_graph=True (grad mode on here): through the custom op, whose own formula gives the
    # second derivative; else the backend's kernels directly
    backward_fn = backward if torch.is_grad_enabled() else _backend_backward
    return _grads(ctx.needs_input_grad, grad_out, ctx.saved_tensors, ctx.dilation, ctx.backend, backward_fn)


def _forward_ad_active() -> bool:
    """Whether a forward-mode AD level is open (torch.autograd.forward_ad.dual_level; torch.func.jvp
    and jacfwd open one too): then calls take the autograd.Functions below, which have a jvp."""
    return _forward_ad._current_level >= 0


def _setup_forward_ad(ctx, inputs):
    if _forward_ad_active():
        x, weight_hw, _, weight_w, _, weight_h = inputs[:6]
        ctx.save_for_forward(x, weight_hw, weight_w, weight_h)


def _jvp(ctx, tangents):
    """The forward op's jvp (_forward_tangent), through the custom op (differentiable, vmappable)."""
    x, *weights = ctx.saved_tensors
    t_x, t_whw, t_bhw, t_ww, t_bw, t_wh, t_bh = tangents[:7]
    out = _forward_tangent(x, weights, t_x, (t_whw, t_ww, t_wh), (t_bhw, t_bw, t_bh), ctx.dilation, ctx.backend,
                           forward)
    return out if out is not None else torch.zeros_like(x)


class _EagerFunction(torch.autograd.Function):
    # forward(ctx, ...): ~4 us an apply here, against ~16 us for the setup_context form below.
    @staticmethod
    def forward(ctx, x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation, backend):
        inputs = (x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation, backend)
        _setup_context(ctx, inputs, None)
        _setup_forward_ad(ctx, inputs)
        return backends.get(backend).forward(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h,
                                             dilation)

    backward = staticmethod(_eager_backward)

    @staticmethod
    def jvp(ctx, *tangents):
        return _jvp(ctx, tangents)


class _EagerFunctionForTransforms(torch.autograd.Function):
    # forward without ctx plus setup_context: the form torch.func transforms (grad, vjp) accept;
    # used only while one is active (the custom op's own autograd formula does not support them).
    # Forward and backward call the custom ops, whose vmap rules then serve vmap over this too; the
    # backward is _BackwardForTransforms, differentiable in turn (nested torch.func.grad).
    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation, backend):
        return forward(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation, backend)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _setup_context(ctx, inputs, output)
        _setup_forward_ad(ctx, inputs)

    @staticmethod
    def backward(ctx, grad_out):
        return _grads(ctx.needs_input_grad, grad_out, ctx.saved_tensors, ctx.dilation, ctx.backend,
                      _backward_for_transforms)

    @staticmethod
    def jvp(ctx, *tangents):
        return _jvp(ctx, tangents)


class _BackwardForTransforms(torch.autograd.Function):
    """The backward op with the double-backward formula, in the form torch.func transforms take."""
    generate_vmap_rule = True

    @staticmethod
    def forward(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend, compute_input, compute_weight):
        return tuple(backward(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend, compute_input,
                              compute_weight))

    @staticmethod
    def setup_context(ctx, inputs, output):
        _setup_backward_context(ctx, inputs, output)
        if _forward_ad_active():
            ctx.save_for_forward(*inputs[:5])

    @staticmethod
    def backward(ctx, *grads):
        return _double_backward(ctx, grads, _EagerFunctionForTransforms.apply, _backward_for_transforms)

    @staticmethod
    def jvp(ctx, *tangents):
        return _backward_tangent(ctx, tangents, backward)


def _backward_for_transforms(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend, compute_input,
                             compute_weight):
    return list(_BackwardForTransforms.apply(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend,
                                             compute_input, compute_weight))


_COMPILED = ("cpu", "cuda")  # the backends whose kernels are the extension's fused_forward / fused_backward
_EXTENSION_OPS = {}  # extension ops found registered, by name


def _extension_op(name: str):
    """torch.ops.inception_dwconv.<name>.default when the loaded extension registers it, else None
    (an extension built before the op existed)."""
    op = _EXTENSION_OPS.get(name)
    if op is None:
        try:
            op = _EXTENSION_OPS[name] = getattr(torch.ops.inception_dwconv, name).default
        except (AttributeError, RuntimeError):
            return None
    return op


def _cpp_autograd_op():
    """inception_dwconv::fused_autograd (csrc/autograd.cpp) when the loaded extension has it, else None."""
    return _extension_op("fused_autograd")


def _wants_grad(args) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in args)


def _plain(tensors) -> bool:
    return not torch.overrides.has_torch_function(tensors) and all(
        type(t) is Tensor or type(t) is torch.nn.Parameter for t in tensors if t is not None)


def _eager_plain(args) -> bool:
    """An eager call on plain tensors: no compiler, tracer, dispatch or function mode, no subclass."""
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch._C._len_torch_dispatch_stack() > 0
                or torch._C._is_torch_function_mode_enabled() or not _plain(args))


# INCEPTION_DWCONV_AUTOCAST=compose turns the one-pass autocast route off (casts, the low-precision
# op, cast back, as on backends without one-pass kernels): a switch for comparing the two, or for
# stepping around the one-pass kernels should they misbehave somewhere.
AUTOCAST_ENV_VAR = "INCEPTION_DWCONV_AUTOCAST"


@torch.compiler.assume_constant_result
def has_autocast_kernels(backend: str, low: torch.dtype) -> bool:
    """Whether `backend` runs autocast to `low` in one pass (_autocast_kernels, unless
    INCEPTION_DWCONV_AUTOCAST=compose); a constant under torch.compile, like backends.resolve."""
    if os.environ.get(AUTOCAST_ENV_VAR) == "compose":
        return False
    return _autocast_kernels(backend, low) is not None


_LOW_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}
_AUTOCAST_OPS = {}  # (dispatch key, low) -> (forward op, backward op) or None


def _autocast_ops(dispatch_key: str, low: torch.dtype):
    """The extension's fused_{forward,backward}_autocast_<low> ops when the loaded extension has
    kernels for them under dispatch_key ("CPU", "CUDA"), else None."""
    key = (dispatch_key, low)
    if key not in _AUTOCAST_OPS:
        names = [f"fused_{d}_autocast_{_LOW_NAMES[low]}" for d in ("forward", "backward")] if low in _LOW_NAMES else []
        try:
            found = names and all(torch._C._dispatch_has_kernel_for_dispatch_key("inception_dwconv::" + n, dispatch_key)
                                  for n in names)
        except RuntimeError:  # an extension built before the ops existed
            found = False
        ops = tuple(_extension_op(n) for n in names) if found else ()
        _AUTOCAST_OPS[key] = ops if ops and None not in ops else None
    return _AUTOCAST_OPS[key]


def _autocast_kernels(backend: str, low: torch.dtype):
    """(forward, backward) of a backend's one-pass kernels under autocast to `low`, or None: the
    CPU kernels for bf16 and the CUDA kernels for bf16 and fp16 (when the loaded extension has
    them), the Triton kernels for bf16 and fp16. They take the backend's forward / backward
    arguments, less the backend name."""
    if backend == "cpu" and low is torch.bfloat16:
        return _autocast_ops("CPU", low)
    if backend == "cuda":
        return _autocast_ops("CUDA", low)
    if backend == "triton" and low in (torch.bfloat16, torch.float16):
        mod = backends.get("triton")
        return functools.partial(mod.forward, low=low), functools.partial(mod.backward, low=low)
    return None


def _autocast_backward(grad_out, x, weight_hw, weight_w, weight_h, dilation, backward_kernel, compute_input,
                       compute_weight):
    return backward_kernel(grad_out, x, weight_hw, weight_w, weight_h, dilation, compute_input, compute_weight)


class _AutocastOnePass(torch.autograd.Function):
    """A backend's one-pass autocast forward and backward (fp32 tensors read at the autocast precision)."""

    @staticmethod
    def forward(ctx, x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation, kernels, backend, low):
        ctx.save_for_backward(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h)
        ctx.dilation, ctx.backend, ctx.low = dilation, backend, low
        ctx.backward_kernel = kernels[1]
        return kernels[0](x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation)

    @staticmethod
    def backward(ctx, grad_out):
        saved = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            return _composed_autocast_grads(ctx, saved, grad_out) + (None, None, None, None)
        return _grads(ctx.needs_input_grad, grad_out, (saved[0], saved[1], saved[3], saved[5]), ctx.dilation,
                      ctx.backward_kernel, _autocast_backward)[:7] + (None, None, None, None)


def _composed_autocast_grads(ctx, saved, grad_out) -> tuple:
    """The one-pass route's gradients under create_graph=True: those of the composition it equals
    (functional.compose_autocast: casts, the op in the autocast dtype, whose backward has its own
    derivative, casts back), recomputed from the saved inputs so that they can be differentiated
    again; the same values as the one-pass kernels give."""
    from .functional import compose_autocast  # functional imports this module
    needs = ctx.needs_input_grad[:7]
    with torch.enable_grad():
        y = compose_autocast(saved[0], saved[1:], ctx.dilation, ctx.backend, ctx.low)
    wanted = [t for t, n in zip(saved, needs) if n]
    got = iter(torch.autograd.grad(y, wanted, grad_out, create_graph=True, allow_unused=True))
    return tuple(next(got) if n else None for n in needs)


# The one-pass autocast route as custom ops too, for torch.compile (and tensor subclasses, dispatch
# modes): forward_autocast / backward_autocast take the backend and the autocast dtype; autocast
# itself passes custom ops their fp32 inputs unchanged.

@torch.library.custom_op("inception_dwconv::forward_autocast", mutates_args=())
def forward_autocast(x: Tensor, weight_hw: Tensor, bias_hw: Optional[Tensor], weight_w: Tensor,
                     bias_w: Optional[Tensor], weight_h: Tensor, bias_h: Optional[Tensor],
                     dilation: int, backend: str, low: torch.dtype) -> Tensor:
    return _autocast_kernels(backend, low)[0](x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation)


@forward_autocast.register_fake
def _forward_autocast_fake(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation, backend, low):
    return empty_output(x)


@torch.library.custom_op("inception_dwconv::backward_autocast", mutates_args=())
def backward_autocast(grad_out: Tensor, x: Tensor, weight_hw: Tensor, weight_w: Tensor, weight_h: Tensor,
                      dilation: int, backend: str, low: torch.dtype, compute_input: bool,
                      compute_weight: bool) -> List[Tensor]:
    return _autocast_kernels(backend, low)[1](grad_out, x, weight_hw, weight_w, weight_h, dilation, compute_input,
                                              compute_weight)


@backward_autocast.register_fake
def _backward_autocast_fake(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend, low, compute_input,
                            compute_weight):
    return _backward_fake(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend, compute_input,
                          compute_weight)


def _setup_autocast_context(ctx, inputs, output):
    _setup_context(ctx, inputs[:9], output)
    ctx.low = inputs[9]


def _autocast_backward_formula(ctx, grad_out):
    def backward_fn(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend, compute_input, compute_weight):
        return backward_autocast(grad_out, x, weight_hw, weight_w, weight_h, dilation, backend, ctx.low,
                                 compute_input, compute_weight)
    return _grads(ctx.needs_input_grad, grad_out, ctx.saved_tensors, ctx.dilation, ctx.backend, backward_fn) + (None,)


forward_autocast.register_autograd(_autocast_backward_formula, setup_context=_setup_autocast_context)


def call_forward_autocast(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation, backend, low):
    """A backend's one-pass forward (and backward) under autocast to `low` (_autocast_kernels), for
    fp32 x and parameters rounded to `low` inside: functional._forward_autocast's result and
    gradients, bit for bit, when the backend has such kernels, outside torch.func transforms (whose
    vmap and grad rules belong to the plain ops) and ONNX export; eager calls on plain tensors skip
    the custom ops (as call_forward does). Else None, and the caller composes it."""
    args = (x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h)
    if not torch.compiler.is_compiling() and (torch._C._functorch.peek_interpreter_stack() is not None
                                              or _forward_ad_active()):
        return None  # torch.func transforms and forward-mode AD: composed
    if not _eager_plain(args):
        if torch.onnx.is_in_onnx_export() or not has_autocast_kernels(backend, low):
            return None
        return forward_autocast(*args, dilation, backend, low)
    kernels = _autocast_kernels(backend, low)
    if kernels is None:
        return None
    if _wants_grad(args):
        return _AutocastOnePass.apply(*args, dilation, kernels, backend, low)
    return kernels[0](*args, dilation)


def call_forward(x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h, dilation, backend):
    """The forward op, by the cheapest route that gives the same result (see above)."""
    args = (x, weight_hw, bias_hw, weight_w, bias_w, weight_h, bias_h)
    if not _eager_plain(args):
        if torch.onnx.is_in_onnx_export():  # both exporters trace through here
            # ONNX has no kernel for the fused op: export what it computes, split / grouped Conv /
            # concat, which every ONNX runtime has.
            return reference.inception_dwconv_reference(*args, dilation)
        if _forward_ad_active():
            # the custom op's autograd formula has no jvp, and a custom op without one drops the
            # tangent silently (torch 2.14): the autograd.Function that has it, around the op
            return _EagerFunctionForTransforms.apply(*args, dilation, backend)
        return forward(*args, dilation, backend)
    if torch._C._functorch.peek_interpreter_stack() is not None:  # inside a torch.func transform
        if _wants_grad(args) or _forward_ad_active():
            return _EagerFunctionForTransforms.apply(*args, dilation, backend)
        return forward(*args, dilation, backend)  # the custom op: its vmap rule
    if _forward_ad_active():  # forward-mode AD: the Python autograd.Function has the jvp
        return _EagerFunction.apply(*args, dilation, backend)
    if _wants_grad(args):
        if backend in _COMPILED:
            op = _cpp_autograd_op()
            if op is not None:
                return op(*args, dilation)
        return _EagerFunction.apply(*args, dilation, backend)
    return backends.get(backend).forward(*args, dilation)
