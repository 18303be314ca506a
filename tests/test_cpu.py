"""The fused C++ CPU backend against the fp64 eager reference."""
import dataclasses
import os
import subprocess
import sys

import pytest
import torch

import inception_dwconv
from backend_checks import check_autocast_one_pass, check_autocast_one_pass_grads, check_backend
from helpers import ATTO_STAGES, BASE_STAGES, TINY_STAGES, Case

pytestmark = pytest.mark.skipif("cpu" not in inception_dwconv.available_backends(),
                                reason="the compiled CPU kernels are not built")

LAYOUTS = ["nchw", "channels_last", "strided", "strided_cl"]
DTYPES = [torch.float32, torch.bfloat16, torch.float64]

# InceptionNeXt's own shapes: atto (K = 9, ratio 1/4), tiny (K = 11, ratio 1/8), base (ratio 1/8).
STAGES = ([(c, h, 9, c // 4) for c, h in ATTO_STAGES] + [(c, h, 11, c // 8) for c, h in TINY_STAGES]
          + [(c, h, 11, c // 8) for c, h in BASE_STAGES])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("C,H,K,gc", STAGES, ids=lambda v: str(v))
def test_stage_shapes(C, H, K, gc, dtype, layout, poison):
    check_backend(Case(N=2, C=C, H=H, W=H, gc=gc, band=K, dtype=dtype, layout=layout), "cpu")


ODD = [
    Case(N=2, C=40, H=5, W=4, gc=10, band=11),             # map smaller than the band kernel
    Case(N=1, C=40, H=1, W=1, gc=10, band=9),              # a single pixel
    Case(N=3, C=13, H=9, W=17, gc=4, band=7),              # non-square, odd channel counts
    Case(N=2, C=3, H=6, W=7, gc=1, band=11),               # gc = 1, no identity channels
    Case(N=2, C=36, H=8, W=6, gc=12, band=11),             # no identity channels, gc = 12
    Case(N=0, C=40, H=7, W=7, gc=10, band=9),              # empty batch
    Case(N=2, C=40, H=13, W=11, gc=10, square=5, band=7, dilation=2),
    Case(N=1, C=24, H=12, W=12, gc=6, square=1, band=3, dilation=3),
    Case(N=2, C=40, H=9, W=9, gc=10, band=9, bias=False),
    # Rows of 3 to 8 vectors go straight into dense outputs (kernels.h, conv_rows_direct), each
    # row's last vector spilling into the next row; the last row of a plane must not spill.
    Case(N=2, C=40, H=1, W=31, gc=10, band=11),            # one row: the tail store alone
    Case(N=2, C=16, H=3, W=20, gc=4, band=5),              # whole 3-row tiles (fp32)
    Case(N=1, C=28, H=7, W=45, gc=8, band=9),              # rows not a multiple of the tile's
    Case(N=2, C=12, H=5, W=64, gc=4, band=3),              # rows of whole vectors, no tail
    # channels_last branches a whole number of 64-byte blocks wide (fp32 gc = 16k, fp64 gc = 8k)
    # are stored straight into the output rows (kernels.h, conv_rows)
    Case(N=2, C=53, H=9, W=13, gc=16, band=11),
    Case(N=1, C=96, H=3, W=5, gc=32, band=7, dilation=2),  # no identity, map smaller than the kernel
    # Maps of at most one vector each way take the 1xK and Kx1 branches as banded products (kernels.h,
    # band_plane), straight into y only for rows of at least half a vector: rows of 3 fp32 values
    # would spill past the plane, here past the end of y (the ASan run, scripts/asan_cpu.sh, sees it)
    Case(N=2, C=30, H=5, W=3, gc=10, band=9),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64], ids=str)
@pytest.mark.parametrize("case", ODD, ids=str)
def test_odd_shapes(case, dtype, layout, poison):
    check_backend(dataclasses.replace(case, dtype=dtype, layout=layout), "cpu")


def test_empty_map():
    # torch's conv2d (so the reference) refuses an empty map; the fused op returns empty results.
    x = torch.randn(2, 40, 0, 5, requires_grad=True)
    shapes = [(10, 1, 3, 3), (10,), (10, 1, 1, 9), (10,), (10, 1, 9, 1), (10,)]
    params = [torch.randn(s, requires_grad=True) for s in shapes]
    y = inception_dwconv.inception_dwconv(x, *params, backend="cpu")
    assert y.shape == x.shape
    grads = torch.autograd.grad(y, [x, *params], torch.randn(y.shape))
    assert grads[0].shape == x.shape
    for g, p in zip(grads[1:], params):
        assert g.shape == p.shape and (g == 0).all()


def test_expanded_grad_out():
    # .sum() hands backward a stride-0 expanded gradient: it must be read correctly.
    case = Case(N=2, C=40, H=9, W=8, gc=10, band=9, dtype=torch.float64)
    from helpers import make_params, make_x
    for layout in ("nchw", "channels_last"):
        case = dataclasses.replace(case, layout=layout)
        x = make_x(case, requires_grad=True)
        params = make_params(case, requires_grad=True)
        grads = torch.autograd.grad(inception_dwconv.inception_dwconv(x, *params, backend="cpu").sum(), [x, *params])
        x2 = x.detach().clone().requires_grad_()
        p2 = [p.detach().clone().requires_grad_() for p in params]
        ref = torch.autograd.grad(inception_dwconv.inception_dwconv(x2, *p2, backend="reference").sum(), [x2, *p2])
        for a, b in zip(grads, ref):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_weight_grads_deterministic_across_runs_and_threads(layout):
    from helpers import make_params, make_x
    case = Case(N=4, C=96, H=28, W=28, gc=12, layout=layout)
    x = make_x(case)
    params = make_params(case, requires_grad=True)
    grad_out = torch.randn(x.shape)
    threads = torch.get_num_threads()
    results = []
    try:
        for n_threads in (threads, 1, threads, max(2, threads)):
            torch.set_num_threads(n_threads)
            y = inception_dwconv.inception_dwconv(x, *params, backend="cpu")
            results.append(torch.autograd.grad(y, params, grad_out))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b), "weight grads changed bits between runs / thread counts"


def test_forward_bitwise_repeatable():
    from helpers import make_params, make_x
    case = Case(N=2, C=96, H=28, W=28, gc=12, layout="channels_last")
    x, params = make_x(case), make_params(case)
    first = inception_dwconv.inception_dwconv(x, *params, backend="cpu")
    for _ in range(20):
        assert torch.equal(first, inception_dwconv.inception_dwconv(x, *params, backend="cpu"))


@pytest.mark.parametrize("case", [
    Case(N=4, C=96, H=28, W=28, gc=12, layout="channels_last"),
    Case(N=1, C=80, H=7, W=7, gc=10, band=9, layout="channels_last"),
    Case(N=1, C=40, H=3, W=5, gc=10, dilation=2, layout="channels_last"),
    Case(N=2, C=48, H=9, W=6, gc=6, layout="channels_last", dtype=torch.float64),
], ids=str)
def test_forward_same_bits_for_any_row_split(case):
    # The channels_last forward splits rows by the thread count (cpu_common.h, RowChunks::forward):
    # 4 images of 28 rows on 1 thread are whole-image items, on 2 threads chunks of 8 rows, whose Kx1
    # halo rows come from the neighbouring chunk; with fewer items than threads (one 7x7 image on 2
    # threads, a 3-row map on 5) chunks shrink to about one per thread, down to single rows. Every
    # split must give the reference's values, with the same bits.
    from helpers import assert_close, make_params, make_x, reference_fp64
    x, params = make_x(case), make_params(case)
    threads = torch.get_num_threads()
    try:
        outs = []
        for n_threads in (1, 2, 3, 5):
            torch.set_num_threads(n_threads)
            outs.append(inception_dwconv.inception_dwconv(x, *params, backend="cpu", dilation=case.dilation))
    finally:
        torch.set_num_threads(threads)
    for other in outs[1:]:
        assert torch.equal(outs[0], other), "the forward changed bits with the row split"
    assert_close(outs[0], reference_fp64(x, params, case.dilation)[0], case.dtype)


@pytest.mark.parametrize("case", [
    Case(N=1, C=768, H=7, W=7, gc=96, layout="channels_last"),
    Case(N=1, C=192, H=7, W=7, gc=24, layout="channels_last"),
    Case(N=1, C=80, H=5, W=9, gc=16, band=9, layout="strided_cl"),
    Case(N=2, C=48, H=3, W=4, gc=16, dilation=2, layout="channels_last", dtype=torch.float64),
    Case(N=1, C=96, H=6, W=5, gc=32, band=7, layout="channels_last", bias=False),
    Case(N=1, C=72, H=4, W=7, gc=16, band=9, layout="channels_last", dtype=torch.bfloat16),
    Case(N=1, C=56, H=5, W=3, gc=16, band=5, layout="channels_last", dtype=torch.float16),
], ids=str)
def test_backward_same_bits_for_any_split(case, poison):
    # With fewer row items than threads, the channels_last backward cuts each item's branches into
    # channel blocks (cpu_common.h, backward_channel_blocks: 2 of 48 channels for a 7x7 image of 768
    # channels on 2 threads; 8-channel blocks on 3 - 8 threads here), each copying a share of the
    # identity channels; grad_x alone takes the forward's row split. grad_x and the weight grads must
    # have the same bits on any thread count, whether computed together or alone, and the fp64
    # reference's values.
    from helpers import assert_close, assert_rel_norm, make_params, make_x, reference_fp64
    x, params = make_x(case), make_params(case)
    gy = torch.randn(x.shape, dtype=torch.float64).to(case.dtype).contiguous(memory_format=torch.channels_last)
    op = torch.ops.inception_dwconv.fused_backward
    threads = torch.get_num_threads()
    runs = {}
    try:
        for n_threads in (1, 2, 3, 5, 8):
            torch.set_num_threads(n_threads)
            for want in ((True, True), (True, False), (False, True)):
                runs[n_threads, want] = op(gy, x, params[0], params[2], params[4], case.dilation, *want)
    finally:
        torch.set_num_threads(threads)
    both = runs[1, (True, True)]
    for (n_threads, want), out in runs.items():
        expected = both if want == (True, True) else both[:1] if want[0] else both[1:]
        assert len(out) == len(expected)
        for a, b in zip(out, expected):
            assert torch.equal(a, b), f"{n_threads} threads, {want}: the backward changed bits with the split"
    _, ref_gx, ref_gp = reference_fp64(x, params, case.dilation, gy)
    assert_close(both[0], ref_gx, case.dtype, "grad_x")
    # Without biases the reference has no bias grads; the op's are the sums of grad_out's channels.
    c_id = case.C - 3 * case.gc
    ref_grads = [g if g is not None else gy.double()[:, c_id + i // 2 * case.gc:][:, :case.gc].sum((0, 2, 3))
                 for i, g in enumerate(ref_gp)]
    for name, a, b in zip(["w_hw", "b_hw", "w_w", "b_w", "w_h", "b_h"], both[1:], ref_grads):
        assert_rel_norm(a, b, case.dtype, name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize("C,gc,H,W", [(40, 10, 9, 13), (40, 10, 7, 7), (96, 12, 14, 14), (48, 12, 5, 20),
                                      (40, 10, 3, 5)])
def test_16bit_is_the_fp32_kernel_rounded_once(layout, C, gc, H, W, dtype):
    # bf16 and fp16 run the fp32 loops on exactly converted values, so their output, grad_x and
    # weight grads are the fp32 kernel's results rounded once (to nearest even): bit for bit, NaN
    # where NaN (NaN payloads may differ: torch's vector conversion keeps them, c10's scalar one does
    # not). The shapes take each conversion route: plane rows below 8 values (the plane converted in
    # one run), 8 - 15 values (two vectors) and longer (the compiler's loop for bf16, F16C vectors for
    # fp16); channels_last runs of gc = 10 and 12 channels.
    from helpers import make_params, make_x
    case = Case(N=2, C=C, H=H, W=W, gc=gc, band=9, dtype=dtype, layout=layout)
    x, params = make_x(case), make_params(case)
    big = 0.9 * torch.finfo(dtype).max
    x[0, C - 5, H // 2, W // 2] = float("nan")  # a conv channel: NaN spreads through its taps
    x[1, 2, :, W // 3] = big                      # near the top of the range
    x[1, C - 2 * gc, 0, :] = -big
    x[0, C - 3, 0, :] = torch.finfo(dtype).tiny / 4  # subnormals
    grad_out = torch.randn(x.shape).to(dtype)
    fp32 = [t.float() if t is not None else None for t in params]
    y16 = torch.ops.inception_dwconv.fused_forward(x, *params, 1)
    y32 = torch.ops.inception_dwconv.fused_forward(x.float(), *fp32, 1)
    assert y16.isnan().any(), "the NaN must reach the output"
    _assert_same_16bit(y16, y32.to(dtype))
    x[0, C - 5, H // 2, W // 2] = 1.0  # weight grads: every value finite
    g16 = torch.ops.inception_dwconv.fused_backward(grad_out, x, params[0], params[2], params[4], 1, True, True)
    g32 = torch.ops.inception_dwconv.fused_backward(grad_out.float(), x.float(), fp32[0], fp32[2], fp32[4], 1,
                                                    True, True)
    for a, b in zip(g16, g32):
        _assert_same_16bit(a, b.to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("layout", ["nchw", "strided"])
@pytest.mark.parametrize("H,W,K,dilation", [(7, 7, 11, 1), (7, 7, 9, 1), (5, 8, 11, 1), (6, 3, 5, 1), (7, 7, 5, 2),
                                             (4, 4, 3, 3), (3, 2, 9, 1)])
def test_non_finite_inputs_reach_what_the_conv_reaches(H, W, K, dilation, layout, dtype):
    # Maps whose rows fit in one vector take the 1xK and Kx1 branches as banded products (kernels.h,
    # band_plane), which multiply x[h][k] into every lane of an output row (1xK) and a row of x into
    # every output row (Kx1), and dense fp32 ones the 3x3 branch as rows shifted by one value
    # (square3_plane, the lane shifted in from the next row masked); the outputs that x does not
    # reach must not see a NaN or inf from it.
    # NaN and inf inputs (forward) and grad_out values (grad_x) at the edges of each branch's map:
    # the output's NaN and inf positions must be the fp64 eager reference's, and the finite values
    # close to it.
    from helpers import assert_close, make_params, make_x, reference_fp64
    case = Case(N=2, C=40, H=H, W=W, gc=10, band=K, dilation=dilation, dtype=dtype, layout=layout)
    x, params = make_x(case), make_params(case)
    grad_out = torch.randn(x.shape, dtype=torch.float64).to(dtype)
    for t in (x, grad_out):
        for branch in range(3):
            c = 10 + 10 * branch
            t[0, c, H // 2, 0] = float("nan")
            t[1, c + 3, 0, W - 1] = float("inf")
            t[1, c + 5, H - 1, 0] = -float("inf")
    y = torch.ops.inception_dwconv.fused_forward(x, *params, dilation)
    gx = torch.ops.inception_dwconv.fused_backward(grad_out, x, params[0], params[2], params[4], dilation,
                                                   True, False)[0]
    y_ref, gx_ref, _ = reference_fp64(x, params, dilation, grad_out)
    for got, ref, what in ((y, y_ref, "output"), (gx, gx_ref, "grad_x")):
        assert torch.equal(got.isnan(), ref.isnan()), f"{case}: {what} NaN positions"
        assert torch.equal(got.isinf(), ref.isinf()) and torch.equal(got.isposinf(), ref.isposinf()), \
            f"{case}: {what} inf positions"
        assert ref.isnan().any() and ref.isinf().any() and ref[:, 10:].isfinite().any()
        finite = ref.isfinite()
        assert_close(got[finite], ref[finite], dtype, f"{case}: {what} finite values")


def _assert_same_16bit(a, b):
    assert torch.equal(a.isnan(), b.isnan())
    keep = ~a.isnan()
    assert torch.equal(a[keep].view(torch.int16), b[keep].view(torch.int16))


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize("C,gc,H,W", [(40, 10, 9, 12), (40, 10, 7, 7), (96, 12, 14, 14), (48, 12, 5, 20)])
def test_cpu_autocast_forward_in_one_pass(monkeypatch, layout, C, gc, H, W):
    # An fp32 x under CPU autocast to bf16 takes one kernel pass (fused_forward_autocast_bf16, and
    # fused_backward_autocast_bf16 for a gradient) that must give the composed result (casts, bf16
    # op, cast back, exact identity channels) and its gradients bit for bit, NaN where NaN.
    torch.manual_seed(5)
    mod = inception_dwconv.InceptionDWConv2d(C, band_kernel_size=9, branch_ratio=gc / C, backend="cpu")
    x = torch.randn(2, C + 6, H, W) * 3
    x = x[:, 3:3 + C] if layout == "strided" else x[:, :C].contiguous()
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x[0, C - 2, H // 2, W // 2] = float("nan")
    x[1, 1, 0, :] = 3.0e38
    check_autocast_one_pass(monkeypatch, mod, x, torch.bfloat16)
    x[0, C - 2, H // 2, W // 2] = 0.5  # finite weight grads
    x[1, 1, 0, :] = 2.0
    grad_out = torch.randn(x.shape)
    grad_out[:, 0] = -0.0  # identity channels pass through exactly
    check_autocast_one_pass_grads(monkeypatch, mod, x, torch.bfloat16, grad_out)


@pytest.mark.parametrize("n_threads", [2, 4])
def test_cpu_autocast_backward_channel_blocks(monkeypatch, n_threads):
    # The one-pass autocast backward with channel blocks (one 7x7 channels_last image, 32 channels
    # a branch: two blocks of 16 on 2 threads, four of 8 on 4): bit for bit the composition on as
    # many threads (which takes the same blocks), and the one-pass result on 1 thread (no blocks).
    torch.manual_seed(6)
    mod = inception_dwconv.InceptionDWConv2d(160, band_kernel_size=9, branch_ratio=0.2, backend="cpu")
    x = torch.randn(1, 160, 7, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    grad_out = torch.randn(x.shape)

    def grads():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = mod(x)
        return torch.autograd.grad(y, [x, *mod.parameters()], grad_out)

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = grads()
        torch.set_num_threads(n_threads)
        for a, b in zip(grads(), single):
            assert torch.equal(a, b), "the autocast backward changed bits with the channel blocks"
        check_autocast_one_pass_grads(monkeypatch, mod, x, torch.bfloat16, grad_out)
    finally:
        torch.set_num_threads(threads)


def test_raw_op_checks():
    # The dispatcher op checks its own inputs (TORCH_CHECK -> RuntimeError) for direct callers.
    x = torch.randn(1, 8, 5, 5)
    w3, w1k, wk1 = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 1, 5), torch.randn(2, 1, 5, 1)
    op = torch.ops.inception_dwconv.fused_forward
    # the messages' numbers are matched too: a build that linked its own static libstdc++
    # printed them as nothing (or crashed; see setup.py, libstdcxx_link_args)
    with pytest.raises(RuntimeError, match="4-D .* got 3-D"):
        op(x[0], w3, None, w1k, None, wk1, None, 1)
    with pytest.raises(RuntimeError, match=r"odd kernel sizes, got \[2, 1, 2, 2\]"):
        op(x, torch.randn(2, 1, 2, 2), None, w1k, None, wk1, None, 1)
    with pytest.raises(RuntimeError, match="x has 5 channels but the conv branches need 3 \\* 2 = 6"):
        op(torch.randn(1, 5, 5, 5), w3, None, w1k, None, wk1, None, 1)
    with pytest.raises(RuntimeError, match="dtype"):
        op(x.double(), w3, None, w1k, None, wk1, None, 1)
    with pytest.raises(RuntimeError, match="x has dtype Int; a floating-point dtype is needed"):
        op(x.int(), w3.int(), None, w1k.int(), None, wk1.int(), None, 1)
    with pytest.raises(RuntimeError, match="dilation must be >= 1, got 0"):
        op(x, w3, None, w1k, None, wk1, None, 0)
    with pytest.raises(RuntimeError, match=r"bias_w must have shape \(2\), got \[3\]"):
        op(x, w3, None, w1k, torch.randn(3), wk1, None, 1)
    with pytest.raises(RuntimeError, match="grad_out"):
        torch.ops.inception_dwconv.fused_backward(torch.randn(1, 8, 5, 4), x, w3, w1k, wk1, 1, True, True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks the ELF libstdc++ of Linux builds")
def test_extension_uses_the_process_libstdcxx():
    # A private static libstdc++ inside _C (a compiler with only libstdc++.a, as on one GPU image)
    # broke every number formatted in an error message; setup.py links the shared one instead.
    import ctypes
    import importlib.util
    so = importlib.util.find_spec("inception_dwconv._C").origin
    symbol = "_ZNSo9_M_insertIlEERSoT_"  # std::ostream::_M_insert<long>
    ours = ctypes.cast(getattr(ctypes.CDLL(so), symbol), ctypes.c_void_p).value
    process = ctypes.cast(getattr(ctypes.CDLL("libstdc++.so.6"), symbol), ctypes.c_void_p).value
    assert ours == process, f"{so} carries its own copy of libstdc++ ({ours:#x} vs {process:#x})"


def test_baseline_isa_kernels_match_reference():
    # The AVX2 loops run on this machine; the baseline-ISA build of the same loops must be right too.
    code = (
        "import dataclasses, sys, torch\n"
        "sys.path.insert(0, %r)\n"
        "import inception_dwconv\n"
        "assert torch.ops.inception_dwconv.cpu_isa() == 'generic'\n"
        "from backend_checks import check_backend\n"
        "from helpers import Case\n"
        "for layout in ('nchw', 'channels_last', 'strided'):\n"
        "    for dtype in (torch.float32, torch.bfloat16, torch.float64):\n"
        "        for case in (Case(N=2, C=96, H=14, W=14, gc=12), Case(N=2, C=40, H=40, W=35, gc=10, band=9),\n"
        "                     Case(N=1, C=40, H=13, W=11, gc=10, square=5, band=7, dilation=2),\n"
        # channels_last rows of whole 64-byte blocks with gc even: the conv vectors stored straight
        # into y, those that straddle two pixels as two halves (kernels.h, conv_rows)
        "                     Case(N=2, C=40, H=8, W=8, gc=10), Case(N=2, C=17, H=8, W=8, gc=5, band=5),\n"
        # rows of at most one 16-byte vector: the 1xK branch as a banded product (band_plane), and
        # the Kx1 branch too where H is at most a vector as well
        "                     Case(N=2, C=40, H=5, W=4, gc=10, band=9), Case(N=1, C=40, H=6, W=3, gc=10, band=5,\n"
        "                     dilation=2), Case(N=2, C=40, H=3, W=4, gc=10, band=9)):\n"
        "            check_backend(dataclasses.replace(case, dtype=dtype, layout=layout), 'cpu')\n"
        "print('ok')\n" % os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, INCEPTION_DWCONV_CPU_ISA="generic")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_isa_report():
    assert torch.ops.inception_dwconv.cpu_isa() in ("avx2", "generic")


def test_linux_build_is_parallel():
    """setup.py builds without OpenMP only when the compiler cannot; on Linux with GCC (CI, the GPU
    machines) a serial build would mean its probe broke, halving speed with nothing else failing."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the OpenMP probe is only pinned down on Linux")
    if os.environ.get("INCEPTION_DWCONV_OPENMP", "").strip() == "0":
        pytest.skip("INCEPTION_DWCONV_OPENMP=0 asked for a serial build")
    assert torch.ops.inception_dwconv.cpu_parallel() == "openmp"
