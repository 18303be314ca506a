"""The Triton backend against the fp64 reference.

Without a CUDA device these run under the Triton interpreter (the conftest sets TRITON_INTERPRET=1
before triton is imported) on small CPU shapes, with a few tests that force GPU-sized tile plans
(many programs, several channel blocks and row-tile loops) so that the GPU decomposition is
exercised too. With a CUDA device the same file also runs the full grid: every dtype x layout x
InceptionNeXt stage shape at N=2, plus odd shapes.
"""
import pytest
import torch

import inception_dwconv
from backend_checks import check_autocast_one_pass, check_autocast_one_pass_grads
from helpers import (ATTO_STAGES, TINY_STAGES, Case, assert_close, assert_rel_norm, make_params,
                     make_x, reference_fp64)
from inception_dwconv._layout import empty_output

pytestmark = pytest.mark.skipif("triton" not in inception_dwconv.available_backends(),
                                reason="triton backend not available (no triton, or no CUDA and no interpreter)")

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"


@pytest.fixture(autouse=True, params=["fused", "split"])
def backward_mode(request, monkeypatch):
    """Every test runs with both backward formulations of the launcher (launch.BACKWARD_MODE):
    one fused launch, or grad_x by the forward kernel plus the separate weight-grad kernel."""
    from inception_dwconv.backends.triton import launch
    monkeypatch.setattr(launch, "BACKWARD_MODE", request.param)
    return request.param


def _launch():
    from inception_dwconv.backends.triton import launch
    return launch


def _run(case: Case, grad_out=None):
    """Forward + backward through the public API; returns (x, params, y, grad_out)."""
    x = make_x(case, requires_grad=True)
    params = make_params(case, requires_grad=True)
    y = inception_dwconv.inception_dwconv(x, *params, dilation=case.dilation, backend="triton")
    if grad_out is None:
        g = torch.Generator().manual_seed(case.seed + 7)
        grad_out = torch.randn(y.shape, generator=g, dtype=torch.float64).to(case.dtype).to(case.device)
    y.backward(grad_out)
    return x, params, y, grad_out


def _check(case: Case, grad_out=None):
    x, params, y, grad_out = _run(case, grad_out)
    y_ref, gx_ref, gp_ref = reference_fp64(x, params, case.dilation, grad_out)
    expect = empty_output(x)
    assert y.shape == expect.shape and y.stride() == expect.stride(), "output strides"
    # outputs and the workspace are allocated with torch.empty: under the `poison` fixture they
    # start as NaN, so an element a kernel forgets to write fails here
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert_close(y, y_ref, case.dtype, f"{case} forward")
    assert_close(x.grad, gx_ref, case.dtype, f"{case} grad_x")
    names = ("weight_hw", "bias_hw", "weight_w", "bias_w", "weight_h", "bias_h")
    for name, p, ref in zip(names, params, gp_ref):
        if p is None:
            continue
        assert p.grad.shape == p.shape and p.grad.dtype == p.dtype
        assert_rel_norm(p.grad, ref, case.dtype, f"{case} grad {name}")


F32, BF16, F16, F64 = torch.float32, torch.bfloat16, torch.float16, torch.float64

# Small cases (interpreter-sized). C=40, gc=10: gc not a multiple of 8, 10 identity channels.
SMALL = [
    # dtype x layout
    *[Case(2, 40, 9, 10, 10, dtype=dt, layout=lay)
      for dt in (F32, BF16) for lay in ("nchw", "channels_last", "strided", "strided_cl")],
    Case(2, 40, 9, 10, 10, dtype=F16, layout="nchw"),
    Case(2, 40, 9, 10, 10, dtype=F16, layout="channels_last"),
    Case(1, 40, 9, 10, 10, dtype=F64),
    # kernel sizes: atto band 9, other odd sizes with dilation 2, 1x1/3 extremes
    Case(2, 40, 8, 8, 10, square=3, band=9),
    Case(1, 24, 12, 7, 8, square=5, band=9, dilation=2),
    Case(1, 24, 12, 11, 8, square=5, band=7, dilation=2, layout="channels_last", dtype=BF16),
    Case(1, 24, 6, 6, 8, square=1, band=3, bias=False),
    Case(1, 24, 10, 9, 8, square=7, band=13, layout="strided"),
    # a map smaller than the kernel
    Case(2, 40, 5, 4, 10, square=3, band=11),
    Case(2, 40, 5, 4, 10, square=3, band=11, layout="channels_last", dtype=BF16),
    Case(1, 40, 1, 1, 10, square=3, band=11),
    # no identity channels; no bias
    Case(1, 30, 7, 9, 10, bias=False),
    Case(1, 30, 7, 9, 10, layout="strided_cl", bias=False),
]


@pytest.mark.parametrize("case", SMALL, ids=str)
def test_forward_backward(case, poison):
    case.device = DEVICE
    _check(case)


def _gpu_plan(monkeypatch, plan=None, wgrad_plan=None):
    """Make the launcher use the GPU tile plans (or given ones) even when interpreting."""
    launch = _launch()
    original = launch._plan
    original_wgrad = launch._wgrad_plan

    def forced(N, C, H, W, gc, channels_last, backward, interpret):
        if plan is not None:
            return plan(backward)
        return original(N, C, H, W, gc, channels_last, backward, False)

    def forced_wgrad(N, C, H, W, gc, channels_last, interpret):
        if wgrad_plan is not None:
            return wgrad_plan
        return original_wgrad(N, C, H, W, gc, channels_last, False)

    monkeypatch.setattr(launch, "_plan", forced)
    monkeypatch.setattr(launch, "_wgrad_plan", forced_wgrad)


@pytest.mark.parametrize("case", [
    Case(1, 40, 14, 14, 10),                                 # nchw: 4 channels x 16x16 tile
    Case(1, 40, 14, 14, 10, layout="channels_last"),         # cl: 16 channels x 8x8 tile
], ids=str)
def test_gpu_tile_plan(case, monkeypatch, poison):
    """The GPU decomposition (several channel blocks per branch, spatial tiles, row loops in the
    backward) run through the interpreter."""
    case.device = DEVICE
    _gpu_plan(monkeypatch)
    _check(case)


def test_small_tiles_many_programs(monkeypatch, poison):
    """Tiles far smaller than the map and the kernel, channel blocks not dividing gc or the
    identity part, row loops that end in a partial group: halos cross several tiles."""
    case = Case(1, 27, 9, 10, 7, square=3, band=11, layout="strided", device=DEVICE)
    # weight grads (split): 4x8 tiles in chunks of 2 (3 chunks), channel blocks of 4 (gc = 7)
    _gpu_plan(monkeypatch, lambda backward: (4, 4, 8, 2 if backward else 1, 4), (4, 4, 8, 1, 2, 4))
    _check(case)


def test_weight_grads_image_groups(monkeypatch, poison, backward_mode):
    """Split backward: programs that sum several images (a partial last group) and one tile each."""
    if backward_mode != "split":
        pytest.skip("the image groups belong to the split backward's weight-grad kernel")
    _gpu_plan(monkeypatch, None, (2, 4, 4, 2, 1, 4))
    _check(Case(3, 40, 9, 10, 10, layout="channels_last", device=DEVICE))
    _check(Case(3, 40, 9, 10, 10, dtype=BF16, device=DEVICE))


def test_int64_offsets(monkeypatch, poison):
    """The 64-bit index path (taken when a tensor has >= 2^31 elements), forced on a small case."""
    launch = _launch()
    monkeypatch.setattr(launch, "_needs_int64", lambda *t: True)
    _check(Case(1, 40, 9, 10, 10, layout="channels_last", device=DEVICE))


def test_expanded_grad_out(poison):
    """y.sum().backward() hands the backward a stride-0 expanded grad_out."""
    case = Case(2, 40, 6, 7, 10, device=DEVICE)
    x = make_x(case, requires_grad=True)
    params = make_params(case, requires_grad=True)
    y = inception_dwconv.inception_dwconv(x, *params, dilation=1, backend="triton")
    y.sum().backward()
    _, gx_ref, gp_ref = reference_fp64(x, params, 1, torch.ones_like(y))
    assert_close(x.grad, gx_ref, case.dtype, "grad_x")
    for p, ref in zip(params, gp_ref):
        assert_rel_norm(p.grad, ref, case.dtype, "weight grads")


@pytest.mark.parametrize("compute_input,compute_weight", [(True, False), (False, True)])
def test_backward_flags(compute_input, compute_weight, poison):
    from inception_dwconv.backends import triton as backend
    case = Case(1, 40, 7, 8, 10, layout="channels_last", device=DEVICE)
    x = make_x(case)
    w_hw, _, w_w, _, w_h, _ = params = make_params(case)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(x)
    out = backend.backward(g, x, w_hw, w_w, w_h, 1, compute_input, compute_weight)
    _, gx_ref, gp_ref = reference_fp64(x, params, 1, g)
    assert len(out) == (1 if compute_input else 6)
    if compute_input:
        assert out[0].stride() == empty_output(x).stride()
        assert_close(out[0], gx_ref, case.dtype, "grad_x")
    else:
        for got, ref in zip(out, gp_ref):
            assert_rel_norm(got, ref, case.dtype, "weight grads")


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_empty_batch(layout, poison):
    case = Case(0, 40, 6, 7, 10, layout=layout, device=DEVICE)
    x = make_x(case, requires_grad=True)
    params = make_params(case, requires_grad=True)
    y = inception_dwconv.inception_dwconv(x, *params, dilation=1, backend="triton")
    assert y.shape == x.shape and y.stride() == empty_output(x).stride()
    y.sum().backward()
    assert x.grad.shape == x.shape
    for p in params:
        assert p.grad.shape == p.shape and torch.count_nonzero(p.grad) == 0


def test_deterministic_weight_grads():
    """No atomics: repeated backward runs give bit-identical grads."""
    case = Case(2, 40, 9, 10, 10, dtype=BF16, layout="channels_last", device=DEVICE)
    from inception_dwconv.backends import triton as backend
    x = make_x(case)
    w_hw, _, w_w, _, w_h, _ = make_params(case)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64).to(x)
    runs = [backend.backward(g, x, w_hw, w_w, w_h, 1, True, True) for _ in range(2 if not CUDA else 20)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)


# ---- the full grid: only with a CUDA device (far too slow for the interpreter) ------------------

def _stage_cases():
    cases = []
    for dt in (F32, BF16, F16):
        for lay in ("nchw", "channels_last", "strided", "strided_cl"):
            for C, H in ATTO_STAGES:
                cases.append(Case(2, C, H, H, C // 4, square=3, band=9, dtype=dt, layout=lay, device="cuda"))
            for C, H in TINY_STAGES:
                cases.append(Case(2, C, H, H, C // 8, square=3, band=11, dtype=dt, layout=lay, device="cuda"))
    return cases


ODD_CASES = [
    Case(3, 40, 5, 4, 10, device="cuda"),
    Case(3, 40, 5, 4, 10, layout="channels_last", dtype=BF16, device="cuda"),
    Case(2, 72, 33, 17, 20, square=5, band=9, dilation=2, device="cuda"),
    Case(2, 72, 33, 17, 20, square=5, band=9, dilation=2, layout="strided_cl", dtype=F16, device="cuda"),
    Case(4, 100, 65, 130, 30, square=7, band=13, layout="channels_last", device="cuda"),
    Case(1, 30, 1, 97, 10, layout="strided", device="cuda"),
    Case(2, 40, 56, 56, 10, dtype=F64, device="cuda"),
]


@pytest.mark.skipif(not CUDA, reason="full grid needs a CUDA device")
@pytest.mark.parametrize("case", _stage_cases() + ODD_CASES, ids=str)
def test_cuda_grid(case, poison, backward_mode):
    if backward_mode == "split" and case.dtype == F16:
        pytest.skip("split backward: fp32 and bf16 cover the grid (fp16 runs in the small cases), "
                    "to keep the GPU run's compile time down")
    _check(case)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # numpy, fp16 inf
@pytest.mark.parametrize("low", [BF16, F16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("layout,gpu_plan", [("nchw", False), ("channels_last", False), ("strided", False),
                                             ("nchw", True), ("channels_last", True)])
def test_autocast_in_one_pass(monkeypatch, poison, backward_mode, low, layout, gpu_plan):
    """An fp32 x under autocast takes one pass of the kernels (launch.forward / backward with
    low=...: fp32 tensors read and written at the autocast precision), which must give what the
    composition gives (casts, the bf16 / fp16 op, cast back, exact identity channels) and its
    gradients, bit for bit, NaN where NaN."""
    if backward_mode == "fused":
        pytest.skip("the one-pass backward is the split formulation; the composition's must be too")
    if gpu_plan:
        _gpu_plan(monkeypatch)
    torch.manual_seed(11)
    C, gc, H, W = 40, 10, 9, 12
    mod = inception_dwconv.InceptionDWConv2d(C, band_kernel_size=9, branch_ratio=gc / C, backend="triton").to(DEVICE)
    x = torch.randn(2, C + 6, H, W, device=DEVICE) * 3
    x = x[:, 3:3 + C] if layout == "strided" else x[:, :C].contiguous()
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x[0, C - 2, H // 2, W // 2] = float("nan")
    x[1, C - 1, 0, 0] = 3.4e38 if low is BF16 else 7.0e4  # rounds to inf
    assert check_autocast_one_pass(monkeypatch, mod, x, low).isinf().any()
    x[0, C - 2, H // 2, W // 2] = 0.5  # finite gradients
    x[1, C - 1, 0, 0] = 2.0
    check_autocast_one_pass_grads(monkeypatch, mod, x, low, torch.randn(x.shape, device=DEVICE))


def test_autocast_kernels_refuse_other_dtypes():
    """The one-pass autocast launchers take fp32 tensors and bf16 / fp16 as the autocast dtype only
    (functional routes nothing else there); a direct caller gets a clear error, not wrong bits."""
    launch = _launch()
    case = Case(1, 40, 5, 6, 10, device=DEVICE)
    x, params = make_x(case), make_params(case)
    with pytest.raises(TypeError, match="float32 tensors"):
        launch.forward(x.double(), *params, 1, low=BF16)
    with pytest.raises(TypeError, match="float32 tensors"):
        launch.backward(x, x, params[0].to(BF16), params[2], params[4], 1, True, True, low=F16)
    with pytest.raises(ValueError, match="autocast dtype"):
        launch.forward(x, *params, 1, low=F64)
