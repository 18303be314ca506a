"""Launchers of the Triton kernels: tile plans (a small shape-keyed heuristic), strides, 64-bit
index selection, the backward workspace and its deterministic reduction.

Strides: every tensor (x, grad_out, the outputs) is passed to the kernels with its own strides and
read in place: NCHW, channels_last, channel slices of wider tensors, rows with a step, and the
stride-0 grad_out that ``.sum().backward()`` produces. Nothing is made contiguous except the tiny
weight tensors. The tile plan follows the memory format of x (channels innermost or not); any
other stride pattern is still correct, only not tuned.
"""
import functools
import math
import os
from typing import List

import torch
import triton
import triton.language as tl

from ..._layout import empty_output
from . import kernels

_INT32_MAX = 2**31 - 1

# Targets when interpreting: few, large programs (each costs tens of ms of Python).
_INTERP_MAX_TILE = 4096        # spatial positions per tile
_INTERP_MAX_BLOCK = 16384      # channels x positions per tile
# GPU (H100) starting points, untuned: ~1-2K elements per program, enough programs to fill
# 132 SMs several times over.
_GPU_TILE_ELEMS = 1024
_GPU_MIN_PROGRAMS = 1024


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _pow2(v: int) -> int:
    return triton.next_power_of_2(max(1, int(v)))


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _interp_tile(H, W, channels, depth):
    """(BLOCK_C, BLOCK_H, BLOCK_W) for the interpreter: few, large programs; `depth` is an extra
    block axis (the taps of the weight-grad kernel) counted in the block size."""
    bw = min(_pow2(W), _INTERP_MAX_TILE)
    bh = max(1, min(_pow2(H), _INTERP_MAX_TILE // bw))
    bc = max(1, min(_pow2(channels), _INTERP_MAX_BLOCK // (depth * bh * bw)))
    return bc, bh, bw


def _gpu_tile(H, W, gc, channels_last, elems, max_bc):
    """(BLOCK_C, BLOCK_H, BLOCK_W) of about `elems` elements for a GPU."""
    if channels_last:
        # channels innermost: a channel block (coalesced) x a small spatial tile
        bc = min(_pow2(gc), max_bc)
        p = max(1, elems // bc)
        bw = min(_pow2(W), 16, p)
        bh = max(1, min(_pow2(H), p // bw))
    else:
        # planes: a (BLOCK_H, BLOCK_W) spatial tile, rows contiguous; small maps take a few
        # channels per program so that a program still has `elems` elements
        bw = min(_pow2(W), 64)
        bh = max(1, min(_pow2(H), elems // bw))
        bc = max(1, min(_pow2(gc), elems // (bh * bw)))
    return bc, bh, bw


@functools.lru_cache(maxsize=1024)
def _plan(N, C, H, W, gc, channels_last, backward, interpret):
    """(BLOCK_C, BLOCK_H, BLOCK_W, ROWS_PER_PROG, num_warps)."""
    c_id = C - 3 * gc
    if interpret:
        bc, bh, bw = _interp_tile(H, W, max(gc, c_id), 1)
        return bc, bh, bw, _cdiv(H, bh), 4
    bc, bh, bw = _gpu_tile(H, W, gc, channels_last, _GPU_TILE_ELEMS, 64)
    n_row_tiles = _cdiv(H, bh)
    rows = 1
    if backward:
        # the backward loops over row tiles to keep the weight-partial workspace small, as long
        # as enough programs remain
        n_cblocks = _cdiv(c_id, bc) + 3 * _cdiv(gc, bc)
        base = max(1, N * _cdiv(W, bw) * n_cblocks)
        splits = min(n_row_tiles, max(1, _cdiv(_GPU_MIN_PROGRAMS, base)))
        rows = _cdiv(n_row_tiles, splits)
    # ~4 elements per thread: the unrolled taps keep many loads in flight (see _compile_check)
    num_warps = max(1, min(8, bc * bh * bw // 128))
    return bc, bh, bw, rows, num_warps


# Elements of one wgrad_kernel tile (BLOCK_C x BLOCK_P); with its 16 (LP) taps that is a 4K-element
# block, 16 per thread at 8 warps. Untuned.
_WGRAD_TILE_ELEMS = 256


@functools.lru_cache(maxsize=1024)
def _wgrad_plan(N, C, H, W, gc, channels_last, interpret):
    """(BLOCK_C, BLOCK_H, BLOCK_W, IMGS, TILES_PER_PROG, num_warps) of wgrad_kernel: a program sums
    TILES_PER_PROG spatial tiles of IMGS images for one channel block."""
    if interpret:
        bc, bh, bw = _interp_tile(H, W, gc, 16)  # 16: the tap axis of the block
        return bc, bh, bw, max(N, 1), _cdiv(H, bh) * _cdiv(W, bw), 4
    bc, bh, bw = _gpu_tile(H, W, gc, channels_last, _WGRAD_TILE_ELEMS, 32)
    n_tiles = _cdiv(H, bh) * _cdiv(W, bw)
    per_image = 3 * _cdiv(gc, bc)  # programs per image when a program takes one whole image
    if N * per_image >= _GPU_MIN_PROGRAMS:
        imgs, tiles = max(1, (N * per_image) // _GPU_MIN_PROGRAMS), n_tiles
    else:
        imgs, tiles = 1, _cdiv(n_tiles, min(n_tiles, _cdiv(_GPU_MIN_PROGRAMS, max(1, N * per_image))))
    return bc, bh, bw, imgs, tiles, 8


def _max_offset(t: torch.Tensor) -> int:
    return sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride()) if s > 0)


def _needs_int64(*tensors) -> bool:
    return any(_max_offset(t) > _INT32_MAX or t.numel() > _INT32_MAX for t in tensors)


def _acc_dtype(dtype: torch.dtype):
    return (tl.float64, torch.float64) if dtype == torch.float64 else (tl.float32, torch.float32)


def _check_device(x: torch.Tensor) -> None:
    if x.device.type == "cpu" and not _interpreting():
        raise RuntimeError("the triton backend runs on CPU tensors only under the Triton interpreter "
                           "(TRITON_INTERPRET=1 before triton is imported)")


# Autocast dtype -> the kernels' ROUND code (kernels._rounded): fp32 tensors read and written at
# that precision; None: the tensors' own dtype.
_ROUND = {None: 0, torch.bfloat16: 1, torch.float16: 2}


def _check_low(low, *tensors) -> None:
    if low is None:
        return
    if low not in _ROUND:
        raise ValueError(f"autocast dtype must be torch.bfloat16 or torch.float16, got {low}")
    for t in tensors:
        if t is not None and t.dtype != torch.float32:
            raise TypeError(f"the one-pass autocast kernels take float32 tensors, got {t.dtype}")


def _channels_last(x: torch.Tensor) -> bool:
    return x.stride(1) == 1 and x.size(1) > 1


# Tuning hooks (scripts/triton_sweep.py, scripts/gpu_profile.py), not for users.
# PLAN_OVERRIDE: {"fwd": plan, "bwd": plan} with plan = (BLOCK_C, BLOCK_H, BLOCK_W, ROWS_PER_PROG,
# num_warps) replaces _plan's choice; {"wgrad": plan} replaces _wgrad_plan's.
# BACKWARD_MODE: "split" (default) - grad_x by the forward kernel with flipped taps, weight grads by
# wgrad_kernel (all taps as one block, one reduction per program); "fused" - one launch computes
# grad_x and the weight partials (a cross-thread reduction per tap inside the tile loop). On an
# H200 (benchmarks/results/gpu-h200-20261127-run2, profiler kernel time of a forward + backward,
# InceptionNeXt-T stages at batch 128, fp32 / bf16, NCHW / channels_last) "split" took 1.18x-2.98x
# less GPU time than "fused" in all 16 cases; both pass every test there.
PLAN_OVERRIDE = {}
BACKWARD_MODE = "split"


class _Geometry:
    def __init__(self, x, w_hw, w_w, w_h, backward):
        self.N, self.C, self.H, self.W = x.shape
        self.gc = w_hw.shape[0]
        self.c_id = self.C - 3 * self.gc
        self.ks, self.kw, self.kh = w_hw.shape[-1], w_w.shape[-1], w_h.shape[-2]
        plan = PLAN_OVERRIDE.get("bwd" if backward else "fwd")
        if plan is None:
            plan = _plan(self.N, self.C, self.H, self.W, self.gc, _channels_last(x), backward, _interpreting())
        self.bc, self.bh, self.bw, self.rows, self.num_warps = plan
        self.n_row_tiles = _cdiv(self.H, self.bh)
        self.n_groups_w = _cdiv(self.W, self.bw)
        self.n_groups = _cdiv(self.n_row_tiles, self.rows) * self.n_groups_w
        self.nb_g = _cdiv(self.gc, self.bc)

    def grid(self, nb_id):
        n_cblocks = nb_id + 3 * self.nb_g
        if n_cblocks > 65535:
            raise RuntimeError(f"too many channel blocks ({n_cblocks}) for the grid's second axis")
        return (self.N * self.n_groups, n_cblocks)


def _device_ctx(x):
    return torch.cuda.device(x.device) if x.device.type == "cuda" else _NullCtx()


class _NullCtx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _conv_pass(src, dst, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation: int, flip: bool, low=None) -> None:
    """dst = cat(src_id, conv_sq, conv_1xK, conv_Kx1)(src) (+ biases); flip: correlation with the
    flipped kernels, i.e. grad_x from grad_out (no biases). The tile plan follows dst's memory
    format (x's), whatever src's strides are (grad_out may be an expanded stride-0 tensor).
    low: the autocast dtype (fp32 src and dst; see forward)."""
    geo = _Geometry(dst, w_hw, w_w, w_h, backward=False)
    acc_tl, _ = _acc_dtype(src.dtype)
    w_hw, w_w, w_h = w_hw.contiguous(), w_w.contiguous(), w_h.contiguous()
    nb_id = _cdiv(geo.c_id, geo.bc)
    with _device_ctx(src):
        kernels.forward_kernel[geo.grid(nb_id)](
            src, dst, w_hw, b_hw if b_hw is not None else w_hw, w_w, b_w if b_w is not None else w_w,
            w_h, b_h if b_h is not None else w_h,
            geo.c_id, geo.gc, geo.H, geo.W, nb_id, geo.nb_g, geo.n_groups, geo.n_groups_w,
            geo.n_row_tiles, dilation,
            *src.stride(), *dst.stride(),
            KS=geo.ks, KW=geo.kw, KH=geo.kh,
            HAS_BHW=b_hw is not None, HAS_BW=b_w is not None, HAS_BH=b_h is not None, FLIP=flip,
            ACC=acc_tl, ROWS_PER_PROG=geo.rows, BLOCK_C=geo.bc, BLOCK_H=geo.bh, BLOCK_W=geo.bw,
            INT64=_needs_int64(src, dst), ROUND=_ROUND[low], SOFT=_interpreting(), num_warps=geo.num_warps)


def _conv_output(src, x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation: int, flip: bool, low=None) -> torch.Tensor:
    """_conv_pass of src into a new tensor in x's output memory format."""
    out = empty_output(x)
    if out.numel() > 0:
        _conv_pass(src, out, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation, flip, low)
    return out


def forward(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation: int, low=None) -> torch.Tensor:
    """The fused forward. low (bf16 or fp16; fp32 x and parameters): what autocast to low makes of
    the eager module, in one pass - the conv channels computed from x, weights and biases rounded
    to low and rounded to low themselves, the identity channels copied exactly, an fp32 output."""
    _check_device(x)
    _check_low(low, x, w_hw, b_hw, w_w, b_w, w_h, b_h)
    return _conv_output(x, x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation, flip=False, low=low)


def _weight_grads_split(grad_out, x, w_hw, w_w, w_h, dilation: int, low=None) -> List[torch.Tensor]:
    N, C, H, W = x.shape
    gc, ks, kw, kh = w_hw.shape[0], w_hw.shape[-1], w_w.shape[-1], w_h.shape[-2]
    acc_tl, acc_torch = _acc_dtype(x.dtype)
    S = gc * (ks * ks + kw + kh + 3)  # the six grads, flat
    if x.numel() == 0:  # N, H or W == 0: all grads are zero
        total = torch.zeros(S, dtype=acc_torch, device=x.device)
    else:
        plan = PLAN_OVERRIDE.get("wgrad") or _wgrad_plan(N, C, H, W, gc, _channels_last(x), _interpreting())
        bc, bh, bw, imgs, tiles, warps = plan
        n_tiles_w = _cdiv(W, bw)
        n_tiles = _cdiv(H, bh) * n_tiles_w
        n_chunks = _cdiv(n_tiles, tiles)
        nb_g = _cdiv(gc, bc)
        grid = (_cdiv(N, imgs) * n_chunks, 3 * nb_g)
        if grid[1] > 65535:
            raise RuntimeError(f"too many channel blocks ({grid[1]}) for the grid's second axis")
        ws = torch.empty((grid[0], S), dtype=acc_torch, device=x.device)
        with _device_ctx(x):
            kernels.wgrad_kernel[grid](
                grad_out, x, ws, C - 3 * gc, gc, H, W, N, nb_g, imgs, n_chunks, tiles, n_tiles_w, n_tiles,
                dilation, *grad_out.stride(), *x.stride(),
                KS=ks, KW=kw, KH=kh, LP_S=_pow2(ks * ks), LP_W=_pow2(kw), LP_H=_pow2(kh), ACC=acc_tl,
                BLOCK_C=bc, BLOCK_H=bh, BLOCK_W=bw, INT64=_needs_int64(grad_out, x), ROUND=_ROUND[low],
                SOFT=_interpreting(), num_warps=warps)
        total = ws.sum(0)  # deterministic: a fixed-shape reduction, no atomics
    return _weight_grads_from_flat(total, w_hw, w_w, w_h, low)


def _weight_grads_from_flat(total, w_hw, w_w, w_h, low=None) -> List[torch.Tensor]:
    """[gw_hw, gb_hw, gw_w, gb_w, gw_h, gb_h] in the weights' dtype, each its own tensor, from the
    kernels' flat layout (the six grads concatenated, taps of a channel consecutive); rounded to
    low first under autocast (the grads of the low-precision weights the eager module makes)."""
    gc = w_hw.shape[0]
    shapes = [w_hw.shape, (gc,), w_w.shape, (gc,), w_h.shape, (gc,)]
    if low is not None:
        total = total.to(low)
    parts = torch.split(total.to(w_hw.dtype), [math.prod(shape) for shape in shapes])
    return [part.reshape(shape).clone() for part, shape in zip(parts, shapes)]


def backward(grad_out, x, w_hw, w_w, w_h, dilation: int, compute_input: bool,
             compute_weight: bool, low=None) -> List[torch.Tensor]:
    """The fused backward; low: of forward(low=low) (always the split formulation)."""
    _check_device(x)
    _check_low(low, grad_out, x, w_hw, w_w, w_h)
    if BACKWARD_MODE == "split" or low is not None:
        out = []
        if compute_input:
            out.append(_conv_output(grad_out, x, w_hw, None, w_w, None, w_h, None, dilation, flip=True, low=low))
        if compute_weight:
            out += _weight_grads_split(grad_out, x, w_hw, w_w, w_h, dilation, low)
        return out
    geo = _Geometry(x, w_hw, w_w, w_h, backward=True)
    acc_tl, acc_torch = _acc_dtype(x.dtype)
    ks, kw, kh, gc = geo.ks, geo.kw, geo.kh, geo.gc
    L = ks * ks + kw + kh + 3
    gx = empty_output(x) if compute_input else None
    ws = None
    if x.numel() > 0 and (compute_input or compute_weight):
        w_hw_c, w_w_c, w_h_c = w_hw.contiguous(), w_w.contiguous(), w_h.contiguous()
        nb_id = _cdiv(geo.c_id, geo.bc) if compute_input else 0
        grid = geo.grid(nb_id)
        if compute_weight:
            ws = torch.empty((grid[0], gc * L), dtype=acc_torch, device=x.device)
        dummy = x
        dx = gx if compute_input else dummy
        with _device_ctx(x):
            kernels.backward_kernel[grid](
                grad_out, x, dx, ws if ws is not None else dummy, w_hw_c, w_w_c, w_h_c,
                geo.c_id, gc, geo.H, geo.W, nb_id, geo.nb_g, geo.n_groups, geo.n_groups_w,
                geo.n_row_tiles, dilation,
                *grad_out.stride(), *x.stride(), *dx.stride(),
                KS=ks, KW=kw, KH=kh, LP=_pow2(max(ks * ks, kw, kh) + 1),
                COMPUTE_INPUT=compute_input, COMPUTE_WEIGHT=compute_weight,
                ACC=acc_tl, ROWS_PER_PROG=geo.rows, BLOCK_C=geo.bc, BLOCK_H=geo.bh,
                BLOCK_W=geo.bw, INT64=_needs_int64(grad_out, x, dx), SOFT=_interpreting(),
                num_warps=geo.num_warps)
    out = []
    if compute_input:
        out.append(gx)
    if compute_weight:
        if ws is not None:
            total = ws.sum(0)  # deterministic: a fixed-shape reduction, no atomics
        else:  # empty input (N, H or W == 0): all grads are zero
            total = torch.zeros(gc * L, dtype=acc_torch, device=x.device)
        out += _weight_grads_from_flat(total, w_hw, w_w, w_h)
    return out
