"""The CUDA kernels' device code (csrc/cuda/tile_conv.cuh) run on the CPU, block by block and thread
by thread (tests/emulation/cuda_tiles_host.cpp, built here with the host C++ compiler), against the
fp64 reference. This checks their index math, tiling, halo loads, shared-memory use (slots start
as NaN) and weight-grad slots on every machine, GPU or not; tests/test_cuda.py runs the real
kernels where there is a GPU.
"""
import ctypes
import os
import shutil
import subprocess

import pytest
import torch

from helpers import Case, assert_close, assert_rel_norm, make_params, make_x, reference_fp64

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "emulation", "cuda_tiles_host.cpp")
CXX = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")

pytestmark = pytest.mark.skipif(CXX is None, reason="no host C++ compiler")

I64 = ctypes.POINTER(ctypes.c_int64)


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    lib = str(tmp_path_factory.mktemp("emu") / "cuda_tiles_host.so")
    subprocess.run([CXX, "-O1", "-std=c++17", "-shared", "-fPIC", "-Wno-unknown-pragmas", "-o", lib, SOURCE],
                   check=True)
    return ctypes.CDLL(lib)


def _i64(values):
    return (ctypes.c_int64 * len(values))(*values)


def _ptr(t):
    return ctypes.c_void_p(t.data_ptr() if t is not None else 0)


def _suffix(dtype):
    return {torch.float32: "f32", torch.float64: "f64"}[dtype]


def emu_conv(emu, src, params, dilation, flip, cl, force_global, out_like):
    """The forward (flip=0: y from x, with biases) or grad_x (flip=1: from grad_out, no biases)."""
    out = torch.full_like(out_like, float("nan"))
    w = [None if p is None else p.detach().contiguous() for p in params]
    if flip:
        w = [w[0], None, w[2], None, w[4], None]
    gc, ks, kw, kh = w[0].shape[0], w[0].shape[-1], w[2].shape[-1], w[4].shape[-2]
    k = (ctypes.c_int * 5)(gc, ks, kw, kh, dilation)
    wptrs = (ctypes.c_void_p * 6)(*[p.data_ptr() if p is not None else None for p in w])
    fn = getattr(emu, "idw_emu_conv_" + _suffix(src.dtype))
    used_smem = fn(_i64(src.shape), k, _ptr(src), _i64(src.stride()), _ptr(out), _i64(out.stride()),
                   wptrs, int(flip), int(cl), int(force_global))
    return out, used_smem


def emu_wgrad(emu, x, g, params, dilation, cl, force_global):
    w_hw, w_w, w_h = params[0], params[2], params[4]
    gc, ks, kw, kh = w_hw.shape[0], w_hw.shape[-1], w_w.shape[-1], w_h.shape[-2]
    sizes = [gc * ks * ks, gc, gc * kw, gc, gc * kh, gc]
    out = torch.full((sum(sizes),), float("nan"), dtype=x.dtype)
    k = (ctypes.c_int * 5)(gc, ks, kw, kh, dilation)
    fn = getattr(emu, "idw_emu_wgrad_" + _suffix(x.dtype))
    used_smem = fn(_i64(x.shape), k, _ptr(x), _i64(x.stride()), _ptr(g), _i64(g.stride()), _ptr(out),
                   int(cl), int(force_global))
    shapes = [w_hw.shape, (gc,), w_w.shape, (gc,), w_h.shape, (gc,)]
    return [part.reshape(s) for part, s in zip(torch.split(out, sizes), shapes)], used_smem


F32, F64 = torch.float32, torch.float64
CASES = [
    Case(1, 96, 56, 56, 12),                                  # tiny stage 1, K=11 specialisation
    Case(1, 192, 28, 28, 24, layout="channels_last"),         # tiny stage 2
    Case(2, 40, 13, 15, 10, band=9, layout="channels_last"),  # atto ratio, K=9, partial tiles
    Case(1, 768, 7, 7, 96, layout="channels_last"),           # tiny stage 4
    Case(2, 16, 3, 5, 4, layout="strided"),                   # H, W < K
    Case(1, 24, 9, 11, 6, square=5, band=7, dilation=2, layout="strided_cl"),  # general path
    Case(1, 20, 10, 12, 5, band=7, dilation=3, bias=False),
    Case(1, 6, 12, 20, 2, band=101, dilation=3),              # halo too large: the global-memory path
    Case(1, 3, 9, 7, 1, dtype=F64),                           # gc = 1, no identity, fp64
    Case(2, 40, 13, 15, 10, dtype=F64, layout="channels_last"),
]


@pytest.mark.parametrize("force_global", [False, True], ids=["as-launched", "global-memory"])
@pytest.mark.parametrize("cl", [0, 1], ids=["pixel-order", "channel-order"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_emulated_cuda_kernels(emu, case, cl, force_global):
    x = make_x(case)
    params = make_params(case)
    gen = torch.Generator().manual_seed(case.seed + 7)
    grad_out = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(case.dtype)
    y_ref, gx_ref, gp_ref = reference_fp64(x, params, case.dilation, grad_out)
    like = torch.empty_like(x, memory_format=torch.channels_last if x.stride(1) == 1 else torch.contiguous_format)

    y, smem = emu_conv(emu, x, params, case.dilation, False, cl, force_global, like)
    assert smem in (0, 1), "tile plan not made of powers of two"
    if case.band == 101:
        assert smem == 0, "the K=101 halo should not fit in shared memory"
    elif not force_global:
        assert smem == 1, "shared-memory path expected"
    assert torch.isfinite(y).all(), f"{case}: unwritten or NaN outputs (forward)"
    assert_close(y, y_ref, case.dtype, f"{case} forward")

    gx, _ = emu_conv(emu, grad_out, params, case.dilation, True, cl, force_global, like)
    assert torch.isfinite(gx).all(), f"{case}: unwritten or NaN outputs (grad_x)"
    assert_close(gx, gx_ref, case.dtype, f"{case} grad_x")

    grads, smem_w = emu_wgrad(emu, x, grad_out, params, case.dilation, cl, force_global)
    assert smem_w in (0, 1), "tile plan not made of powers of two"
    names = ["weight_hw", "bias_hw", "weight_w", "bias_w", "weight_h", "bias_h"]
    gc = case.gc
    c_id = case.C - 3 * gc
    g64 = grad_out.double()
    for i, (name, got) in enumerate(zip(names, grads)):
        if i % 2 == 0:
            expected = gp_ref[i]
        else:  # bias grads are returned even without biases: sums of the branch's grad_out
            b = i // 2
            expected = g64[:, c_id + b * gc:c_id + (b + 1) * gc].sum(dim=(0, 2, 3))
        assert_rel_norm(got, expected, case.dtype, f"{case} grad {name}")


def test_emulated_forward_writes_only_its_output(emu):
    """Into a channel slice of a wider NaN tensor: the slice is written in full, the rest is left."""
    case = Case(1, 16, 6, 6, 4)
    x = make_x(case)
    params = make_params(case)
    base = torch.full((1, 20, 6, 6), float("nan"))
    out = base[:, :16]
    w = [p.contiguous() for p in params]
    k = (ctypes.c_int * 5)(4, 3, 11, 11, 1)
    wptrs = (ctypes.c_void_p * 6)(*[p.data_ptr() for p in w])
    emu.idw_emu_conv_f32(_i64(x.shape), k, _ptr(x), _i64(x.stride()), _ptr(out), _i64(out.stride()), wptrs,
                         0, 0, 0)
    assert torch.isfinite(out).all() and torch.isnan(base[:, 16:]).all()
    y_ref, _, _ = reference_fp64(x, params, 1)
    assert_close(out, y_ref, case.dtype, "forward into a slice")


# The one-pass autocast instances: RoundedFloat<r> (fp32 tensors read and written at bf16 / fp16
# precision) must compute what the bf16 / fp16 kernels compute from the cast tensors, which is what
# the fp32 kernels compute from the rounded tensors, rounded once more on the way out.
LOWS = [(1, torch.bfloat16), (2, torch.float16)]


def _rounded(emu, r, t):
    out = t.detach().contiguous().clone()
    emu.idw_emu_round(r, _ptr(out), ctypes.c_int64(out.numel()))
    return out


@pytest.mark.parametrize("r,low", LOWS, ids=["bf16", "fp16"])
def test_emulated_rounding_matches_torch_casts(emu, r, low):
    gen = torch.Generator().manual_seed(3)
    v = torch.cat([
        torch.randn(20000, generator=gen) * 10.0 ** torch.randint(-9, 6, (20000,), generator=gen),
        torch.randn(2000, generator=gen) * 6e-8,  # fp16 subnormals and their ties
        torch.arange(-4096, 4096) * 2.0 ** -25,  # halfway points of the fp16 subnormal grid
        torch.tensor([65504.0, 65519.0, 65520.0, 65536.0, -65520.0, 3.3895e38, 3.4e38, 6.1e-5, 6.103515625e-05,
                      2.0 ** -14 - 2.0 ** -26, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -11,
                      1.0 + 3 * 2.0 ** -11, 0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e-45]),
    ])
    # ties: values exactly halfway between neighbours of the low type
    ties = (v[:2000].to(low).float() + v[:2000].to(low).float().nextafter(torch.tensor(float("inf"))).to(low).float())
    v = torch.cat([v, ties / 2])
    got, want = _rounded(emu, r, v), v.to(low).float()
    assert torch.equal(got.isnan(), want.isnan())
    keep = ~want.isnan()
    assert torch.equal(got[keep].view(torch.int32), want[keep].view(torch.int32))


ROUND_CASES = [Case(1, 96, 14, 14, 12), Case(2, 40, 13, 15, 10, band=9, layout="channels_last"),
               Case(1, 24, 9, 11, 6, square=5, band=7, dilation=2, layout="strided")]


@pytest.mark.parametrize("force_global", [False, True], ids=["as-launched", "global-memory"])
@pytest.mark.parametrize("case", ROUND_CASES, ids=str)
@pytest.mark.parametrize("r,low", LOWS, ids=["bf16", "fp16"])
def test_emulated_autocast_kernels(emu, r, low, case, force_global):
    x = make_x(case) * 3
    x[0, case.C - 1, 0, 0] = 3.4e38 if r == 1 else 7.0e4  # rounds to inf
    params = make_params(case)
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(case.seed + 9))
    cl = int(x.stride(1) == 1)
    like = torch.empty_like(x, memory_format=torch.channels_last if cl else torch.contiguous_format)
    c_id = case.C - 3 * case.gc
    k = (ctypes.c_int * 5)(case.gc, case.square, case.band, case.band, case.dilation)
    rounded_params = [None if p is None else _rounded(emu, r, p) for p in params]

    def one_pass(src, flip):
        out = torch.full_like(like, float("nan"))
        w = [p.detach().contiguous() if p is not None else None for p in params]
        if flip:
            w = [w[0], None, w[2], None, w[4], None]
        wptrs = (ctypes.c_void_p * 6)(*[p.data_ptr() if p is not None else None for p in w])
        emu.idw_emu_conv_round(r, _i64(src.shape), k, _ptr(src), _i64(src.stride()), _ptr(out), _i64(out.stride()),
                               wptrs, int(flip), cl, int(force_global))
        return out

    def composed(src, flip):
        out, _ = emu_conv(emu, _rounded(emu, r, src), rounded_params, case.dilation, flip, cl, force_global, like)
        out = _rounded(emu, r, out)  # (dense NCHW values)
        out[:, :c_id] = src[:, :c_id]  # identity channels: copied exactly, unrounded
        return out

    for src, flip in ((x, False), (grad_out, True)):
        got, want = one_pass(src, flip), composed(src, flip)
        assert torch.equal(got.isnan(), want.isnan()) and not got[:, c_id:].isnan().all()
        assert torch.equal(got.nan_to_num(), want.nan_to_num()), f"{case} flip={flip}"
    x[0, case.C - 1, 0, 0] = 1.0  # finite weight grads
    w_hw, w_w, w_h = params[0], params[2], params[4]
    sizes = [case.gc * case.square ** 2, case.gc, case.gc * case.band, case.gc, case.gc * case.band, case.gc]
    got = torch.full((sum(sizes),), float("nan"))
    xc, gc_ = x.contiguous(), grad_out.contiguous()
    emu.idw_emu_wgrad_round(r, _i64(xc.shape), k, _ptr(xc), _i64(xc.stride()), _ptr(gc_), _i64(gc_.stride()),
                            _ptr(got), 0, int(force_global))
    want, _ = emu_wgrad(emu, _rounded(emu, r, xc), _rounded(emu, r, gc_), params, case.dilation, 0, force_global)
    want = _rounded(emu, r, torch.cat([t.flatten() for t in want]))
    assert torch.isfinite(got).all() and torch.equal(got, want)
