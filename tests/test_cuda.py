"""The fused CUDA kernels (csrc/cuda) against the fp64 eager reference.

Skipped unless the CUDA backend is available (a GPU, and the extension built with its CUDA sources).
The raw dispatcher ops are called directly (torch.ops.inception_dwconv.fused_forward/backward);
autograd and the public API are checked with gradcheck.
"""
import os

import pytest
import torch

import inception_dwconv
from inception_dwconv._layout import empty_output

from backend_checks import check_autocast_one_pass, check_autocast_one_pass_grads
from helpers import (ATTO_STAGES, TINY_STAGES, Case, assert_close, assert_rel_norm, make_params, make_x,
                     reference_fp64)

pytestmark = pytest.mark.skipif("cuda" not in inception_dwconv.available_backends(),
                                reason="CUDA backend not available (needs a GPU and the extension built with CUDA)")

OPS = torch.ops.inception_dwconv
DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
LAYOUTS = ["nchw", "channels_last", "strided", "strided_cl"]


def poison_allocator():
    """Fills freed caching-allocator blocks (large and small pools) with NaN, so that any output
    element the kernels fail to write shows up as NaN."""
    bufs = [torch.full((1 << 24,), float("nan"), device="cuda")]
    bufs += [torch.full((1 << 18,), float("nan"), device="cuda") for _ in range(8)]
    bufs += [torch.full((1 << 12,), float("nan"), device="cuda") for _ in range(64)]
    del bufs


def stage_cases(stages, ratio, band, dtype, layout):
    return [Case(N=2, C=c, H=h, W=h, gc=int(c * ratio), square=3, band=band, dtype=dtype, layout=layout,
                 device="cuda") for c, h in stages]


GRID = [case for dtype in DTYPES for layout in LAYOUTS
        for case in (stage_cases(TINY_STAGES, 1 / 8, 11, dtype, layout)
                     + stage_cases(ATTO_STAGES, 1 / 4, 9, dtype, layout))]

ODD = []
for dtype in (torch.float32, torch.float64, torch.bfloat16):
    for layout in ("nchw", "channels_last", "strided", "strided_cl"):
        ODD += [
            Case(N=2, C=16, H=3, W=5, gc=4, dtype=dtype, layout=layout, device="cuda"),  # H, W < K
            Case(N=2, C=40, H=13, W=17, gc=10, dtype=dtype, layout=layout, device="cuda"),  # gc = 10
            Case(N=1, C=3, H=9, W=7, gc=1, dtype=dtype, layout=layout, device="cuda"),  # gc = 1, no identity
            Case(N=0, C=16, H=8, W=8, gc=4, dtype=dtype, layout=layout, device="cuda"),  # empty batch
            Case(N=2, C=24, H=13, W=17, gc=6, square=5, dilation=2, dtype=dtype, layout=layout, device="cuda"),
            Case(N=2, C=20, H=10, W=12, gc=5, square=3, band=7, dilation=3, dtype=dtype, layout=layout,
                 device="cuda", bias=False),
            Case(N=1, C=7, H=1, W=1, gc=2, dtype=dtype, layout=layout, device="cuda"),
            # halo too large for shared memory: the global-memory path
            Case(N=1, C=6, H=20, W=33, gc=2, square=3, band=101, dilation=3, dtype=dtype, layout=layout,
                 device="cuda"),
        ]


def run_case(case, grad_layout="contiguous"):
    torch.manual_seed(case.seed)
    x = make_x(case)
    params = make_params(case)
    w_hw, b_hw, w_w, b_w, w_h, b_h = params
    gen = torch.Generator().manual_seed(case.seed + 7)
    grad_out = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(case.dtype).to("cuda")
    if grad_layout == "channels_last":
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)
    y_ref, gx_ref, gp_ref = reference_fp64(x, params, case.dilation, grad_out)

    poison_allocator()
    y = OPS.fused_forward(x, w_hw, b_hw, w_w, b_w, w_h, b_h, case.dilation)
    poison_allocator()
    res = OPS.fused_backward(grad_out, x, w_hw, w_w, w_h, case.dilation, True, True)
    torch.cuda.synchronize()

    expected_strides = empty_output(x).stride()
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.stride() == expected_strides, f"{case}: output strides {y.stride()} != {expected_strides}"
    assert_close(y, y_ref, case.dtype, f"{case} forward")

    assert len(res) == 7
    gx = res[0]
    assert gx.stride() == expected_strides, f"{case}: grad_x strides {gx.stride()} != {expected_strides}"
    assert_close(gx, gx_ref, case.dtype, f"{case} grad_x")

    # bias grads of every branch (returned even without a bias): sums of the branch's grad_out
    gc = case.gc
    g64 = grad_out.double().cpu()
    c_id = case.C - 3 * gc
    bias_refs = [g64[:, c_id + i * gc:c_id + (i + 1) * gc].sum(dim=(0, 2, 3)) for i in range(3)]
    names = ["weight_hw", "bias_hw", "weight_w", "bias_w", "weight_h", "bias_h"]
    for i, (name, got) in enumerate(zip(names, res[1:])):
        ref_param = params[i]
        if i % 2 == 0:
            assert got.shape == ref_param.shape and got.is_contiguous()
            expected = gp_ref[i]
        else:
            assert got.shape == (gc,)
            expected = bias_refs[i // 2]
        assert got.dtype == case.dtype, f"{case} {name}: dtype {got.dtype}"
        if case.N == 0:
            assert torch.count_nonzero(got) == 0, f"{case} {name}: grads of an empty batch must be zero"
        else:
            assert_rel_norm(got, expected, case.dtype, f"{case} grad {name}")


@pytest.mark.parametrize("case", GRID, ids=str)
def test_stage_shapes(case):
    run_case(case)


@pytest.mark.parametrize("case", ODD, ids=str)
def test_odd_shapes(case):
    run_case(case)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_grad_out_in_other_layout(layout):
    run_case(Case(N=2, C=96, H=14, W=14, gc=12, layout=layout, device="cuda"),
             grad_layout="channels_last" if layout == "nchw" else "contiguous")


def test_grad_out_expanded():
    """grad_out of y.sum() is a stride-0 expanded tensor."""
    case = Case(N=2, C=40, H=9, W=11, gc=10, band=9, dtype=torch.float64, device="cuda")
    x = make_x(case)
    params = make_params(case)
    grad_out = torch.ones((), dtype=case.dtype, device="cuda").expand(x.shape)
    _, gx_ref, gp_ref = reference_fp64(x, params, 1, grad_out.contiguous())
    res = OPS.fused_backward(grad_out, x, params[0], params[2], params[4], 1, True, True)
    assert_close(res[0], gx_ref, case.dtype, "grad_x")
    for got, ref in zip(res[1::2], gp_ref[0::2]):
        assert_rel_norm(got, ref, case.dtype, "grad weight")


@pytest.mark.parametrize("compute_input,compute_weight", [(True, False), (False, True), (False, False)])
def test_backward_flags(compute_input, compute_weight):
    case = Case(N=2, C=40, H=9, W=11, gc=10, device="cuda")
    x = make_x(case)
    w_hw, _, w_w, _, w_h, _ = make_params(case)
    res = OPS.fused_backward(torch.randn_like(x), x, w_hw, w_w, w_h, 1, compute_input, compute_weight)
    assert len(res) == int(compute_input) + 6 * int(compute_weight)


def test_noncontiguous_weights():
    case = Case(N=2, C=96, H=14, W=14, gc=12, device="cuda")
    x = make_x(case)
    params = make_params(case)
    # same values, other strides: a transposed copy viewed back
    w_hw = params[0].transpose(2, 3).contiguous().transpose(2, 3)
    assert not w_hw.is_contiguous()
    y = OPS.fused_forward(x, w_hw, params[1], params[2], params[3], params[4], params[5], 1)
    y_ref, _, _ = reference_fp64(x, params, 1)
    assert_close(y, y_ref, case.dtype, "forward, non-contiguous weight")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_weight_grads_deterministic(dtype, layout):
    case = Case(N=4, C=96, H=56, W=56, gc=12, dtype=dtype, layout=layout, device="cuda")
    x = make_x(case)
    w_hw, _, w_w, _, w_h, _ = make_params(case)
    grad_out = torch.randn_like(x)
    first = OPS.fused_backward(grad_out, x, w_hw, w_w, w_h, 1, True, True)
    for _ in range(19):
        again = OPS.fused_backward(grad_out, x, w_hw, w_w, w_h, 1, True, True)
        for a, b in zip(first, again):
            assert torch.equal(a, b), "backward results differ between runs"


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("stage", [(96, 56), (768, 7)])
def test_forward_race(layout, stage):
    c, h = stage
    case = Case(N=2, C=c, H=h, W=h, gc=c // 8, layout=layout, device="cuda")
    x = make_x(case)
    params = make_params(case)
    first = OPS.fused_forward(x, *params, 1)
    for _ in range(1000):
        y = OPS.fused_forward(x, *params, 1)
        assert torch.equal(y, first), "forward output changed between identical runs"


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize("dilation,square,band", [(1, 3, 5), (2, 3, 3), (1, 5, 7)])
def test_gradcheck_public_api(layout, dilation, square, band):
    case = Case(N=2, C=8, H=6, W=7, gc=2, square=square, band=band, dilation=dilation, dtype=torch.float64,
                layout=layout, device="cuda")
    x = make_x(case, requires_grad=True)
    params = make_params(case, requires_grad=True)

    def fn(x, *p):
        return inception_dwconv.inception_dwconv(x, *p, dilation=dilation, backend="cuda")

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_public_api_matches_reference():
    case = Case(N=2, C=96, H=28, W=28, gc=12, layout="channels_last", device="cuda")
    x = make_x(case, requires_grad=True)
    params = make_params(case, requires_grad=True)
    y = inception_dwconv.inception_dwconv(x, *params, dilation=1, backend="cuda")
    y.square().sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    p_ref = [p.detach().clone().requires_grad_(True) for p in params]
    y_ref = inception_dwconv.inception_dwconv(x_ref, *p_ref, dilation=1, backend="reference")
    y_ref.square().sum().backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-4)
    for p, q in zip(params, p_ref):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-3)


@pytest.mark.skipif(os.environ.get("INCEPTION_DWCONV_BIG_TESTS") != "1",
                    reason="set INCEPTION_DWCONV_BIG_TESTS=1 (needs ~10 GB of GPU memory)")
def test_64bit_indexing():
    """x with more than 2^31 elements: check the last rows against the reference on a crop."""
    gc, C, H, W = 8, 64, 5800, 5800
    assert C * H * W > 2 ** 31
    x = torch.randn(1, C, H, W, dtype=torch.float16, device="cuda")
    case = Case(N=1, C=C, H=H, W=W, gc=gc, dtype=torch.float16, device="cuda")
    params = make_params(case)
    y = OPS.fused_forward(x, *params, 1)
    crop = x[:, :, -20:, :]
    y_crop, _, _ = reference_fp64(crop.cpu(), [None if p is None else p.cpu() for p in params], 1)
    assert_close(y[:, :, -10:, :], y_crop[:, :, -10:, :], torch.float16, "last rows")
    del y
    res = OPS.fused_backward(x, x, params[0], params[2], params[4], 1, True, False)
    assert torch.isfinite(res[0][:, :, -10:, :]).all()


# ---- bad inputs: TORCH_CHECK -> RuntimeError naming the constraint -------------------------------

def _good():
    case = Case(N=2, C=16, H=8, W=8, gc=4, device="cuda")
    return make_x(case), make_params(case)


def _forward(x, p, d=1):
    return OPS.fused_forward(x, p[0], p[1], p[2], p[3], p[4], p[5], d)


def test_bad_x_dims():
    x, p = _good()
    with pytest.raises(RuntimeError, match="4-D"):
        _forward(x[0], p)


def test_bad_dtype_mismatch():
    x, p = _good()
    p[0] = p[0].double()
    with pytest.raises(RuntimeError, match="dtype"):
        _forward(x, p)


def test_bad_unsupported_dtype():
    x, p = _good()
    with pytest.raises(RuntimeError, match="dtype"):
        _forward(x.to(torch.int32), [q if q is None else q.to(torch.int32) for q in p])


def test_bad_device_mismatch():
    x, p = _good()
    p[2] = p[2].cpu()
    with pytest.raises(RuntimeError, match="device"):
        _forward(x, p)


def test_bad_bias_shape():
    x, p = _good()
    p[1] = torch.zeros(5, device="cuda")
    with pytest.raises(RuntimeError, match="bias_hw"):
        _forward(x, p)


def test_bad_weight_shape():
    x, p = _good()
    p[2] = p[2].reshape(4, 1, 11, 1)  # a Kx1 weight where the 1xK goes
    with pytest.raises(RuntimeError, match="weight_w"):
        _forward(x, p)


def test_bad_gc_mismatch():
    x, p = _good()
    p[4] = p[4][:3]
    with pytest.raises(RuntimeError, match="channel count"):
        _forward(x, p)


def test_bad_even_kernel():
    x, p = _good()
    p[0] = torch.randn(4, 1, 4, 4, device="cuda")
    with pytest.raises(RuntimeError, match="odd"):
        _forward(x, p)


def test_bad_non_square():
    x, p = _good()
    p[0] = torch.randn(4, 1, 3, 5, device="cuda")
    with pytest.raises(RuntimeError, match="square"):
        _forward(x, p)


def test_bad_too_few_channels():
    x, p = _good()
    with pytest.raises(RuntimeError, match="3 \\* gc"):
        _forward(x[:, :11], p)


def test_bad_dilation():
    x, p = _good()
    with pytest.raises(RuntimeError, match="dilation"):
        _forward(x, p, 0)


def test_bad_grad_out_shape():
    x, p = _good()
    with pytest.raises(RuntimeError, match="grad_out"):
        OPS.fused_backward(x[:, :, :4], x, p[0], p[2], p[4], 1, True, True)


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16], ids=str)
def test_autocast_in_one_pass(monkeypatch, low, layout):
    """An fp32 x under autocast takes one pass of the CUDA kernels (fused_{forward,backward}_autocast_*:
    fp32 tensors read and written at the autocast precision), which must give what the composition
    gives (casts, the bf16 / fp16 op, cast back, exact identity channels) and its gradients, bit
    for bit, NaN where NaN."""
    torch.manual_seed(12)
    poison_allocator()
    C, gc, H, W = 40, 10, 9, 12
    mod = inception_dwconv.InceptionDWConv2d(C, band_kernel_size=9, branch_ratio=gc / C, backend="cuda").cuda()
    x = torch.randn(2, C + 6, H, W, device="cuda") * 3
    x = x[:, 3:3 + C] if layout == "strided" else x[:, :C].contiguous()
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x[0, C - 2, H // 2, W // 2] = float("nan")
    x[1, C - 1, 0, 0] = 3.4e38 if low is torch.bfloat16 else 7.0e4  # rounds to inf
    assert check_autocast_one_pass(monkeypatch, mod, x, low).isinf().any()
    x[0, C - 2, H // 2, W // 2] = 0.5  # finite gradients
    x[1, C - 1, 0, 0] = 2.0
    check_autocast_one_pass_grads(monkeypatch, mod, x, low, torch.randn(x.shape, device="cuda"))
    params = [p.detach() for p in mod.parameters()]
    with pytest.raises(RuntimeError, match="needs an fp32 x"):
        OPS.fused_forward_autocast_fp16(x.detach().double(), *[p.double() for p in params], 1)
