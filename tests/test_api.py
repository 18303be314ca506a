"""Public API: the module, the functional form, the op contract (opcheck, gradcheck,
torch.compile), backend choice, and clear errors on bad input."""
import contextlib
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.prune  # noqa: F401 (torch.nn.utils does not import it)
from torch import nn

import inception_dwconv
from inception_dwconv import backends, InceptionDWConv2d, available_backends, ops
from helpers import Case, make_params, make_x

CPU_BACKENDS = [b for b in ("reference", "cpu") if b in available_backends()]
# The GPU backends, with the device they run on here: CUDA tensors on a GPU machine; without one,
# the Triton backend runs on CPU tensors under the interpreter (tests/conftest.py).
GPU_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
GPU_BACKENDS = [b for b in ("triton", "cuda") if b in available_backends()]
ALL_BACKENDS = [(b, "cpu") for b in CPU_BACKENDS] + [(b, GPU_DEVICE) for b in GPU_BACKENDS]


class ReleasedInceptionDWConv2d(nn.Module):
    """Written here from the released semantics (identity first, then 3x3, 1xK, Kx1), independent of
    the package: the module users have today."""

    def __init__(self, in_channels, square_kernel_size=3, band_kernel_size=11, branch_ratio=0.125):
        super().__init__()
        gc = int(in_channels * branch_ratio)
        self.dwconv_hw = nn.Conv2d(gc, gc, square_kernel_size, padding=square_kernel_size // 2, groups=gc)
        self.dwconv_w = nn.Conv2d(gc, gc, (1, band_kernel_size), padding=(0, band_kernel_size // 2), groups=gc)
        self.dwconv_h = nn.Conv2d(gc, gc, (band_kernel_size, 1), padding=(band_kernel_size // 2, 0), groups=gc)
        self.split_indexes = (in_channels - 3 * gc, gc, gc, gc)

    def forward(self, x):
        x_id, x_hw, x_w, x_h = torch.split(x, self.split_indexes, dim=1)
        return torch.cat((x_id, self.dwconv_hw(x_hw), self.dwconv_w(x_w), self.dwconv_h(x_h)), dim=1)


def assert_same_grads(y, inputs, y_rel, inputs_rel):
    """The gradients of y and y_rel for one random grad_out, input by input, to fp64 precision."""
    grad_out = torch.randn_like(y)
    g = torch.autograd.grad(y, inputs, grad_out)
    g_rel = torch.autograd.grad(y_rel, inputs_rel, grad_out)
    assert len(g) == len(g_rel)
    for a, b in zip(g, g_rel):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("C,K,ratio", [(96, 11, 0.125), (40, 9, 0.25), (100, 11, 0.125)])
def test_state_dict_round_trip_and_same_numbers(C, K, ratio, backend):
    released = ReleasedInceptionDWConv2d(C, band_kernel_size=K, branch_ratio=ratio).double()
    ours = InceptionDWConv2d(C, band_kernel_size=K, branch_ratio=ratio, backend=backend).double()
    assert ours.split_indexes == released.split_indexes
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in released.state_dict().items()}
    ours.load_state_dict(released.state_dict())
    x = torch.randn(2, C, 13, 11, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(ours(x), released(x), rtol=1e-12, atol=1e-12)
    # and back: our (perturbed) weights load into the released module
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p))
    released.load_state_dict(ours.state_dict())
    x2 = x.detach().clone().requires_grad_()
    y, y_rel = ours(x), released(x2)
    torch.testing.assert_close(y, y_rel, rtol=1e-12, atol=1e-12)
    assert_same_grads(y, [x, *ours.parameters()], y_rel, [x2, *released.parameters()])


class _Doubled(nn.Module):
    def forward(self, w):
        return 2 * w


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_module_reads_parameters_as_the_convs_have_them_now(backend):
    """The module reads its convs' weights from nn.Module's parameter dicts (the fast path), so a
    parameter replaced, a bias removed, or a weight computed by a parametrization must still be
    what it uses: the released module, changed the same way, gives the same output and grads."""
    torch.manual_seed(0)
    released = ReleasedInceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25).double()
    ours = InceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25, backend=backend).double()
    ours.load_state_dict(released.state_dict())
    for m in (released, ours):
        with torch.no_grad():
            m.dwconv_w.weight = nn.Parameter(torch.ones_like(m.dwconv_w.weight) * 0.5)
        m.dwconv_h.bias = None
        torch.nn.utils.parametrize.register_parametrization(m.dwconv_hw, "weight", _Doubled())
    x = torch.randn(2, 40, 9, 12, dtype=torch.float64)
    torch.testing.assert_close(ours(x), released(x), rtol=1e-12, atol=1e-12)
    xg, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    y, y_rel = ours(xg), released(xr)
    assert_same_grads(y, [xg, *ours.parameters()], y_rel, [xr, *released.parameters()])


def _released_and_ours(backend):
    torch.manual_seed(0)
    released = ReleasedInceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25).double()
    ours = InceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25, backend=backend).double()
    ours.load_state_dict(released.state_dict())
    return released, ours


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_pruned_convs_follow_their_hooks(backend):
    """torch.nn.utils.prune recomputes a conv's weight in a forward pre-hook of the conv. The
    released module calls its convs, so training weight_orig changes its output; ours must follow
    (it once kept using the weight computed at pruning time), and warn that it runs unfused."""
    released, ours = _released_and_ours(backend)
    for m in (released, ours):
        torch.nn.utils.prune.l1_unstructured(m.dwconv_hw, "weight", amount=0.5)
        with torch.no_grad():
            m.dwconv_hw.weight_orig.add_(0.75)  # after pruning: only the hook sees this
    x = torch.randn(2, 40, 9, 12, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    with pytest.warns(RuntimeWarning, match="hooks"):
        y = ours(x)
    y_rel = released(x2)
    torch.testing.assert_close(y, y_rel, rtol=1e-12, atol=1e-12)
    assert_same_grads(y, [x, *ours.parameters()], y_rel, [x2, *released.parameters()])
    # The scripted forward calls the op directly and could not run the hook: scripting refuses.
    with pytest.raises(RuntimeError, match="cannot script"):
        torch.jit.script(ours)
    # Pruning made permanent: no hooks left, the fused path again, same numbers, no warning.
    for m in (released, ours):
        torch.nn.utils.prune.remove(m.dwconv_hw, "weight")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(ours(x), released(x2), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.jit.script(ours)(x), released(x2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_forward_hooks_on_convs_run_as_in_the_released_module(backend, monkeypatch):
    released, ours = _released_and_ours(backend)
    seen = {}

    def hook(name):
        def fn(module, inputs, output):
            seen.setdefault(name, []).append((inputs[0].detach().clone(), output.detach().clone()))
            return output * 2  # a hook may replace the output
        return fn

    handles = [released.dwconv_w.register_forward_hook(hook("released")),
               ours.dwconv_w.register_forward_hook(hook("ours"))]
    x = torch.randn(2, 40, 9, 12, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="hooks"):
        y = ours(x)
    torch.testing.assert_close(y, released(x), rtol=1e-12, atol=1e-12)
    assert len(seen["ours"]) == len(seen["released"]) == 1
    for a, b in zip(seen["ours"][0], seen["released"][0]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for handle in handles:
        handle.remove()
    # Hooks registered for every module (torch.nn.modules.module.register_module_forward_hook)
    # see the convs called too.
    calls = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, inputs, output: calls.append(type(module).__name__))
    try:
        ours(x)
    finally:
        handle.remove()
    assert calls.count("Conv2d") == 3
    # Without hooks the fused function runs, once per call.
    import inception_dwconv.module as module_mod
    fused_calls = []
    real = module_mod.inception_dwconv
    monkeypatch.setattr(module_mod, "inception_dwconv", lambda *a, **k: fused_calls.append(1) or real(*a, **k))
    torch.testing.assert_close(ours(x), released(x), rtol=1e-12, atol=1e-12)
    assert fused_calls == [1]


class _HalvedWeightConv2d(nn.Conv2d):
    """A conv with a forward of its own (as QAT convs fake-quantize their weight in forward)."""

    def forward(self, x):
        return self._conv_forward(x, self.weight * 0.5, self.bias)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_convs_with_their_own_forward_are_called(backend):
    released, ours = _released_and_ours(backend)
    for m in (released, ours):
        old = m.dwconv_w
        new = _HalvedWeightConv2d(old.in_channels, old.out_channels, old.kernel_size, padding=old.padding,
                                  groups=old.groups).double()
        new.load_state_dict(old.state_dict())
        m.dwconv_w = new
    x = torch.randn(2, 40, 9, 12, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="forward other than"):
        y = ours(x)
    torch.testing.assert_close(y, released(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("x_dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_autocast_gives_what_the_released_module_gives(backend, x_dtype, layout):
    # Under torch.autocast the released module's Conv2d layers run in the autocast dtype while the
    # identity slice keeps x's dtype and torch.cat promotes; fp32 parameters get fp32 grads.
    torch.manual_seed(3)
    released = ReleasedInceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25)
    ours = InceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25, backend=backend)
    ours.load_state_dict(released.state_dict())
    x = torch.randn(2, 40, 9, 12).to(x_dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x_rel = x.detach().clone().requires_grad_()
    x = x.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, y_rel = ours(x), released(x_rel)
    assert y.dtype == y_rel.dtype == x_dtype
    assert torch.equal(y[:, :10], x[:, :10].detach())  # identity channels: exact, in x's dtype
    torch.testing.assert_close(y, y_rel)  # bf16-rounded conv outputs: one rounding each
    grad_out = torch.randn_like(y)
    g = torch.autograd.grad(y, [x, *ours.parameters()], grad_out)
    g_rel = torch.autograd.grad(y_rel, [x_rel, *released.parameters()], grad_out)
    for a, b in zip(g, g_rel):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)


def test_module_layout_and_timm_keyword():
    m = InceptionDWConv2d(in_chs=96)
    assert m.split_indexes == (60, 12, 12, 12)
    assert isinstance(m.dwconv_hw, nn.Conv2d) and m.dwconv_hw.weight.shape == (12, 1, 3, 3)
    assert m.dwconv_w.weight.shape == (12, 1, 1, 11) and m.dwconv_h.weight.shape == (12, 1, 11, 1)
    assert m.dwconv_w.padding == (0, 5) and m.dwconv_h.padding == (5, 0)
    assert [n for n, _ in m.named_parameters()] == [
        "dwconv_hw.weight", "dwconv_hw.bias", "dwconv_w.weight", "dwconv_w.bias", "dwconv_h.weight", "dwconv_h.bias"]
    d = InceptionDWConv2d(40, 3, 9, 0.25, dilation=2, dtype=torch.float64)
    assert d.dwconv_hw.weight.dtype == torch.float64
    assert d.dwconv_w.dilation == (1, 2) and d.dwconv_w.padding == (0, 8) and d.dwconv_hw.padding == (2, 2)
    x = torch.randn(1, 40, 9, 10, dtype=torch.float64)
    ref = torch.cat((x[:, :10], d.dwconv_hw(x[:, 10:20]), d.dwconv_w(x[:, 20:30]), d.dwconv_h(x[:, 30:])), 1)
    torch.testing.assert_close(d(x), ref)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_gradcheck_fp64(backend, layout):
    # Slow mode (full Jacobians) on a small shape; fast mode (random projections) on a larger one.
    case = Case(N=1, C=10, H=5, W=4, gc=3, square=3, band=5, dtype=torch.float64, layout=layout)
    x, params = make_x(case, True), make_params(case, True)
    assert torch.autograd.gradcheck(lambda *a: inception_dwconv.inception_dwconv(*a, backend=backend), (x, *params))
    case = Case(N=2, C=40, H=9, W=8, gc=10, square=3, band=9, dtype=torch.float64, layout=layout)
    x, params = make_x(case, True), make_params(case, True)
    assert torch.autograd.gradcheck(lambda *a: inception_dwconv.inception_dwconv(*a, backend=backend), (x, *params),
                                    fast_mode=True)
    case2 = Case(N=1, C=9, H=5, W=6, gc=3, square=3, band=3, dilation=2, dtype=torch.float64, layout=layout, bias=False)
    x2, p2 = make_x(case2, True), make_params(case2, True)
    assert torch.autograd.gradcheck(
        lambda x, a, b, c: inception_dwconv.inception_dwconv(x, a, None, b, None, c, None, dilation=2, backend=backend),
        (x2, p2[0], p2[2], p2[4]))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
def test_opcheck(backend, layout):
    case = Case(N=2, C=40, H=7, W=6, gc=10, band=9, layout=layout)
    x, params = make_x(case, True), make_params(case, True)
    torch.library.opcheck(ops.forward, (x, *params, 1, backend))
    grad_out = torch.randn(x.shape)
    for ci, cw in ((True, True), (True, False), (False, True)):
        torch.library.opcheck(ops.backward, (grad_out, x.detach(), params[0].detach(), params[2].detach(),
                                             params[4].detach(), 1, backend, ci, cw))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_torch_compile_fullgraph_forward_backward(backend):
    torch._dynamo.reset()
    model = nn.Sequential(nn.Conv2d(40, 40, 1), InceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25,
                                                                  backend=backend), nn.GELU())
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 40, 12, 12).contiguous(memory_format=torch.channels_last)
    y = compiled(x)
    y_eager = model(x)
    torch.testing.assert_close(y, y_eager)
    g = torch.autograd.grad(y.square().sum(), list(model.parameters()))
    g_eager = torch.autograd.grad(y_eager.square().sum(), list(model.parameters()))
    for a, b in zip(g, g_eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# (backend, device, autocast dtype) with one-pass autocast kernels here
AUTOCAST_ONE_PASS = [(b, dev, low) for b, dev in [("cpu", "cpu"), ("triton", GPU_DEVICE), ("cuda", GPU_DEVICE)]
                     for low in (torch.bfloat16, torch.float16)
                     if b in available_backends() and ops.has_autocast_kernels(b, low)]


@pytest.mark.parametrize("backend,device,low", AUTOCAST_ONE_PASS, ids=str)
def test_autocast_one_pass_op_contract_and_compile(backend, device, low):
    """The one-pass autocast route as custom ops (forward_autocast / backward_autocast): opcheck,
    and torch.compile(fullgraph=True) of the module under autocast traces that one op (no casts
    around it) and gives the eager one-pass result and gradients bit for bit."""
    torch.manual_seed(8)
    case = Case(N=2, C=40, H=7, W=6, gc=10, band=9, layout="channels_last", device=device)
    x, params = make_x(case, True), make_params(case, True)
    torch.library.opcheck(ops.forward_autocast, (x, *params, 1, backend, low))
    grad_out = torch.randn(x.shape, device=device)
    torch.library.opcheck(ops.backward_autocast, (grad_out, x.detach(), params[0].detach(), params[2].detach(),
                                                  params[4].detach(), 1, backend, low, True, True))
    mod = InceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25, backend=backend).to(device)
    xin = torch.randn(2, 40, 12, 12, device=device).contiguous(memory_format=torch.channels_last)
    xin.requires_grad_()

    def step(f):
        with torch.autocast(device.split(":")[0], dtype=low):
            y = f(xin)
        return [y, *torch.autograd.grad(y, [xin, *mod.parameters()], torch.ones_like(y))]

    graphs = []

    def record(gm, example_inputs):
        graphs.append(str(gm.graph))
        return gm.forward

    eager = step(mod)
    assert "AutocastOnePass" in eager[0].grad_fn.name()
    torch._dynamo.reset()
    traced = step(torch.compile(mod, backend=record, fullgraph=True))
    calls = [line for line in graphs[0].splitlines() if "call_" in line]
    assert len(graphs) == 1 and len(calls) == 1 and "inception_dwconv.forward_autocast" in calls[0]
    torch._dynamo.reset()
    compiled = step(torch.compile(mod, fullgraph=True))
    for a, b, c in zip(eager, traced, compiled):
        assert a.dtype == b.dtype == c.dtype == torch.float32
        assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.skipif(not GPU_BACKENDS, reason="no GPU backend here")
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_op_contract_gpu_backends(backend):
    """opcheck (fake tensors, autograd registration, schema) and torch.compile fullgraph forward +
    backward for the GPU backends, on their device."""
    case = Case(N=2, C=40, H=7, W=6, gc=10, band=9, layout="channels_last", device=GPU_DEVICE)
    x, params = make_x(case, True), make_params(case, True)
    torch.library.opcheck(ops.forward, (x, *params, 1, backend))
    grad_out = torch.randn(x.shape, device=GPU_DEVICE)
    torch.library.opcheck(ops.backward, (grad_out, x.detach(), params[0].detach(), params[2].detach(),
                                         params[4].detach(), 1, backend, True, True))
    torch._dynamo.reset()
    model = nn.Sequential(nn.Conv2d(40, 40, 1), InceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25,
                                                                  backend=backend), nn.GELU()).to(GPU_DEVICE)
    compiled = torch.compile(model, fullgraph=True)
    xin = torch.randn(2, 40, 12, 12, device=GPU_DEVICE).contiguous(memory_format=torch.channels_last)
    y, y_eager = compiled(xin), model(xin)
    torch.testing.assert_close(y, y_eager, rtol=1e-5, atol=1e-5)
    g = torch.autograd.grad(y.square().sum(), list(model.parameters()))
    g_eager = torch.autograd.grad(y_eager.square().sum(), list(model.parameters()))
    for a, b in zip(g, g_eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "autocast-bf16"])
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_cuda_graph_capture(backend, amp):
    """Forward + autograd.grad captured in a CUDA graph (the way to remove the per-call host time,
    e.g. torch.compile(mode="reduce-overhead")) and replayed on new inputs: eager's output and
    gradients bit for bit (the kernels are deterministic)."""
    torch.manual_seed(9)
    mod = InceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25, backend=backend).cuda()
    x = torch.randn(2, 40, 12, 12, device="cuda").contiguous(memory_format=torch.channels_last).requires_grad_()
    g = torch.randn(x.shape, device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            y = mod(x)
        return [y, *torch.autograd.grad(y, [x, *mod.parameters()], g)]

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (compilation, allocator) off the capture
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = step()
    with torch.no_grad():
        x.copy_(torch.randn(x.shape, device="cuda"))
        g.copy_(torch.randn(x.shape, device="cuda"))
    graph.replay()
    torch.cuda.synchronize()
    for a, b in zip(captured, step()):
        assert torch.equal(a, b)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated in torch 2.14, still used
@pytest.mark.skipif(not GPU_BACKENDS, reason="no GPU backend here")
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_torchscript_gpu_backends(backend):
    """torch.jit.script with a GPU backend, on its device: eager's output and grads, bit for bit."""
    torch.manual_seed(6)
    mod = InceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25, backend=backend).to(GPU_DEVICE)
    x = torch.randn(2, 40, 7, 6, device=GPU_DEVICE).contiguous(memory_format=torch.channels_last)
    gy = torch.randn(x.shape, device=GPU_DEVICE)
    scripted = torch.jit.script(mod)
    xe, xs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ye, ys = mod(xe), scripted(xs)
    assert torch.equal(ys, ye)
    g_eager = torch.autograd.grad(ye, [xe] + list(mod.parameters()), gy)
    g_script = torch.autograd.grad(ys, [xs] + list(scripted.parameters()), gy)
    for a, b in zip(g_script, g_eager):
        assert torch.equal(a, b)


class _NoOpFunctionMode(torch.overrides.TorchFunctionMode):
    """Any active function mode sends eager calls through the custom ops (ops.call_forward)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("route", ["eager", "custom_op"])
def test_only_needed_grads_are_computed(monkeypatch, route):
    calls = []
    from inception_dwconv.backends import reference as ref_backend
    real = ref_backend.backward

    def spy(*args):
        calls.append(args[-2:])
        return real(*args)

    monkeypatch.setattr(ref_backend, "backward", spy)
    case = Case(N=1, C=8, H=5, W=5, gc=2, band=5)
    x = make_x(case, requires_grad=True)
    params = make_params(case, requires_grad=False)
    mode = _NoOpFunctionMode() if route == "custom_op" else contextlib.nullcontext()
    with mode:
        inception_dwconv.inception_dwconv(x, *params, backend="reference").sum().backward()
    assert calls[-1] == (True, False)
    x.requires_grad_(False)
    params[2].requires_grad_(True)
    with mode:
        inception_dwconv.inception_dwconv(x, *params, backend="reference").sum().backward()
    assert calls[-1] == (False, True)
    assert params[0].grad is None and params[2].grad is not None


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_eager_route_gives_the_custom_op_bits(monkeypatch, backend, layout):
    # inception_dwconv() on plain tensors skips the custom-op wrappers (ops.call_forward); the
    # result and every gradient must be the custom op's, bit for bit, and the route must be taken.
    case = Case(N=2, C=40, H=9, W=7, gc=10, band=9, layout=layout)
    x, params = make_x(case, True), make_params(case, True)
    grad_out = torch.randn(x.shape)
    via_op = ops.forward(x, *params, 1, backend)
    grads_op = torch.autograd.grad(via_op, [x, *[p for p in params if p is not None]], grad_out)
    used = []
    real = ops.forward
    monkeypatch.setattr(ops, "forward", lambda *a: used.append(a) or real(*a))
    eager = inception_dwconv.inception_dwconv(x, *params, backend=backend)
    grads_eager = torch.autograd.grad(eager, [x, *[p for p in params if p is not None]], grad_out)
    assert not used, "a plain eager call went through the custom op"
    assert torch.equal(eager, via_op) and eager.stride() == via_op.stride()
    for a, b in zip(grads_eager, grads_op):
        assert torch.equal(a, b)
    with torch.no_grad():
        assert torch.equal(inception_dwconv.inception_dwconv(x, *params, backend=backend), via_op)
    with _NoOpFunctionMode():
        inception_dwconv.inception_dwconv(x, *params, backend=backend)
    assert used, "a call under a function mode must go through the custom op"


COMPILED_CPU = [b for b in CPU_BACKENDS if b == "cpu"]


def _python_route(monkeypatch):
    """Eager calls of the compiled backends through the Python autograd.Function instead of the C++
    node (csrc/autograd.cpp)."""
    monkeypatch.setattr(ops, "_cpp_autograd_op", lambda: None)


@pytest.mark.parametrize("backend", COMPILED_CPU)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("wanted", ["all", "x", "weights", "w_w", "b_h"])
def test_cpp_autograd_node_gives_the_python_functions_grads(monkeypatch, backend, bias, wanted):
    # Eager calls of the compiled backends that need a gradient record a C++ autograd node; it must
    # give the Python autograd.Function's gradients bit for bit, None for what is not wanted, with
    # and without biases (the node counts only the biases that are tensors among its inputs).
    if wanted == "b_h" and not bias:
        pytest.skip("no bias to want")
    case = Case(N=2, C=40, H=9, W=7, gc=10, band=9, bias=bias)
    names = ["x", "w_hw", "b_hw", "w_w", "b_w", "w_h", "b_h"]
    grad_out = torch.randn(case.N, case.C, case.H, case.W)

    def run():
        x, params = make_x(case), make_params(case)
        inputs = [x, *params]
        for name, t in zip(names, inputs):
            if t is not None:
                t.requires_grad_(wanted == "all" or wanted == name or (wanted == "weights" and name[0] in "wb"))
        y = inception_dwconv.inception_dwconv(x, *params, backend=backend)
        y.backward(grad_out)
        return y, [None if t is None else t.grad for t in inputs]

    y_cpp, grads_cpp = run()
    assert "FusedInceptionDWConv" in y_cpp.grad_fn.name()
    with monkeypatch.context() as m:
        _python_route(m)
        y_py, grads_py = run()
    assert "FusedInceptionDWConv" not in y_py.grad_fn.name()
    assert torch.equal(y_cpp, y_py)
    for name, a, b in zip(names, grads_cpp, grads_py):
        assert (a is None) == (b is None), name
        if a is not None:
            assert torch.equal(a, b), name
    assert any(g is not None for g in grads_cpp)


# (the triton backend's python route only on a GPU: under the interpreter it is slow, and the same
# formulas as its custom_op route)
DOUBLE_BACKWARD_ROUTES = ([("cpu", "cpp"), ("cpu", "python")] if COMPILED_CPU else []) + [
    (b, "python") for b in CPU_BACKENDS + GPU_BACKENDS
    if b not in ("cpu", "cuda") and (b != "triton" or torch.cuda.is_available())] + [
    (b, "custom_op") for b in CPU_BACKENDS + GPU_BACKENDS]


def _call(backend, route):
    if route == "custom_op":  # the torch.library op itself, as torch.compile and subclasses reach it
        return lambda x, *p, dilation=1: ops.forward(x, *p, dilation, backend)
    return lambda x, *p, dilation=1: inception_dwconv.inception_dwconv(x, *p, dilation=dilation, backend=backend)


@pytest.mark.parametrize("backend,route", DOUBLE_BACKWARD_ROUTES, ids=str)
def test_double_backward(monkeypatch, backend, route):
    # The backward is differentiable (second derivatives through the custom ops' formulas): fp64
    # gradgradcheck on every route, NCHW and channels_last, with and without biases and dilation.
    if route == "python":
        _python_route(monkeypatch)
    device = "cpu" if backend in CPU_BACKENDS else GPU_DEVICE
    # under the Triton interpreter a call costs ~0.2 s: random projections instead of full Jacobians
    fast = backend == "triton" and device == "cpu"
    f = _call(backend, route)
    case = Case(N=1, C=10, H=5, W=4, gc=3, square=3, band=5, dtype=torch.float64, device=device)
    x, params = make_x(case, True), make_params(case, True)
    assert torch.autograd.gradgradcheck(f, (x, *params), fast_mode=fast)
    if fast:  # the same formulas as the reference backend's; one case is enough there
        return
    case = Case(N=1, C=9, H=4, W=6, gc=3, square=3, band=3, dilation=2, dtype=torch.float64, device=device,
                layout="channels_last", bias=False)
    x, params = make_x(case, True), make_params(case, True)
    assert torch.autograd.gradgradcheck(lambda x, a, b, c: f(x, a, None, b, None, c, None, dilation=2),
                                        (x, params[0], params[2], params[4]), fast_mode=fast)


@pytest.mark.parametrize("backend,device", ALL_BACKENDS, ids=str)
def test_nested_torch_func_grad(backend, device):
    # torch.func.grad of torch.func.grad (the transforms' own autograd.Functions, differentiable in
    # turn): the reference's value in fp64, not zero.
    torch.manual_seed(2)
    case = Case(N=1, C=16, H=5, W=5, gc=4, band=5, dtype=torch.float64, device=device)
    x, params = make_x(case), make_params(case)
    ref = inception_dwconv.reference.inception_dwconv_reference

    def outer(fn):
        inner = torch.func.grad(lambda x, w: fn(x, params[0], params[1], w, *params[3:]).pow(3).sum())
        return torch.func.grad(lambda x, w: inner(x, w).square().sum(), argnums=(0, 1))

    ours = outer(lambda *a: inception_dwconv.inception_dwconv(*a, backend=backend))(x, params[2])
    theirs = outer(lambda *a: ref(*a, 1))(x, params[2])
    for a, b in zip(ours, theirs):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend,route", [r for r in DOUBLE_BACKWARD_ROUTES if r[0] in CPU_BACKENDS], ids=str)
def test_gradient_penalty_matches_the_released_module(monkeypatch, backend, route):
    # An input-gradient penalty (WGAN-GP, R1): d/dparams of |dL/dx|^2 against the released module,
    # including a constant grad_out, where dL/dx still depends on the weights.
    if route == "python":
        _python_route(monkeypatch)
    torch.manual_seed(4)
    released = ReleasedInceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25).double()
    f = _call(backend, route)
    x = torch.randn(2, 40, 7, 6, dtype=torch.float64, requires_grad=True)
    for grad_out in (torch.randn(2, 40, 7, 6, dtype=torch.float64), None):
        def penalty(y):
            g = grad_out if grad_out is not None else torch.ones_like(y)
            gx, = torch.autograd.grad(y, [x], g, create_graph=True)
            return gx.square().sum() + y.square().sum()
        params = list(released.parameters())
        ours = torch.autograd.grad(penalty(f(x, *params)), [x, *params])
        theirs = torch.autograd.grad(penalty(released(x)), [x, *params])
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend,device,low", AUTOCAST_ONE_PASS, ids=str)
def test_gradient_penalty_under_autocast(monkeypatch, backend, device, low):
    # create_graph=True through the one-pass autocast route (an R1 / WGAN-GP penalty under AMP):
    # its backward then differentiates the composition it equals. Against the composed route
    # (INCEPTION_DWCONV_AUTOCAST=compose): y and dL/dx the same bits, the penalty's gradients the
    # same but for where autograd adds the two terms of a weight's gradient (fp32 here, in the
    # autocast dtype there); and against the released module under autocast.
    torch.manual_seed(8)
    released = ReleasedInceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25).to(device)
    mod = InceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25, backend=backend).to(device)
    mod.load_state_dict(released.state_dict())
    x = torch.randn(2, 40, 7, 6, device=device, requires_grad=True)
    grad_out = torch.randn(2, 40, 7, 6, device=device)

    def run(module):
        with torch.autocast(device.split(":")[0], dtype=low):
            y = module(x)
        gx, = torch.autograd.grad(y, [x], grad_out, create_graph=True)
        penalty = gx.square().sum() + y.square().sum()
        return y, gx, torch.autograd.grad(penalty, [x, *module.parameters()])

    y, gx, grads = run(mod)
    assert "AutocastOnePass" in y.grad_fn.name()
    monkeypatch.setenv(ops.AUTOCAST_ENV_VAR, "compose")
    y_c, gx_c, grads_c = run(mod)
    assert "AutocastOnePass" not in y_c.grad_fn.name()
    assert torch.equal(y, y_c) and torch.equal(gx, gx_c)
    assert torch.equal(grads[0], grads_c[0])
    for a, b in zip(grads[1:], grads_c[1:]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-2 * b.abs().max().item())
    _, gx_r, grads_r = run(released)
    torch.testing.assert_close(gx, gx_r, rtol=2e-2, atol=2e-2)
    for a, b in zip(grads, grads_r):
        torch.testing.assert_close(a, b, rtol=0, atol=2e-2 * b.abs().max().item())


@pytest.mark.parametrize("backend", COMPILED_CPU)
def test_cpp_autograd_node_keeps_autograd_rules(backend):
    # The C++ node saves its tensors as autograd's saved variables: saved-tensor hooks (activation
    # offloading, checkpointing) see them, in-place changes to x are caught, and a freed graph is
    # not run twice.
    case = Case(N=2, C=16, H=5, W=6, gc=4, band=5)
    x, params = make_x(case, True), make_params(case, True)
    grad_out = torch.randn(case.N, case.C, case.H, case.W)
    packed = []

    def pack(t):
        packed.append(t)
        return t.clone()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = inception_dwconv.inception_dwconv(x, *params, backend=backend)
    assert "FusedInceptionDWConv" in y.grad_fn.name()
    assert len(packed) == 4 and packed[0] is x
    grads = torch.autograd.grad(y, [x, *params], grad_out, retain_graph=True)
    expected = torch.autograd.grad(inception_dwconv.reference.inception_dwconv_reference(x, *params, 1),
                                   [x, *params], grad_out)
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.autograd.grad(y, [x], grad_out)  # retained once
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(y, [x], grad_out)
    x2 = make_x(case, True)
    x_leaf = x2.clone()  # a non-leaf, so that it may be changed in place
    y = inception_dwconv.inception_dwconv(x_leaf, *params, backend=backend)
    x_leaf.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward(grad_out)
    with torch.inference_mode():
        z = inception_dwconv.inception_dwconv(x, *params, backend=backend)
    assert z.grad_fn is None and torch.equal(z, inception_dwconv.inception_dwconv(x.detach(), *params,
                                                                                 backend=backend).detach())


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_torch_func_grad(backend):
    # torch.func transforms take the eager route's autograd.Function (forward + setup_context).
    case = Case(N=2, C=16, H=6, W=5, gc=4, band=5, dtype=torch.float64)
    x, params = make_x(case), make_params(case)
    ref = inception_dwconv.reference.inception_dwconv_reference

    def loss(fn):
        return lambda x, w: fn(x, params[0], params[1], w, params[3], params[4], params[5]).square().sum()

    ours = torch.func.grad(loss(lambda *a: inception_dwconv.inception_dwconv(*a, backend=backend)), argnums=(0, 1))
    theirs = torch.func.grad(loss(lambda *a: ref(*a, 1)), argnums=(0, 1))
    for a, b in zip(ours(x, params[2]), theirs(x, params[2])):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend,device", ALL_BACKENDS, ids=str)
def test_torch_func_vmap(backend, device, monkeypatch):
    # The custom ops' vmap rules: a vmapped x (any dim) with shared parameters is one call with
    # the vmapped dim folded into N; per-sample parameters take one call per sample. Either way the
    # result is the per-sample calls', bit for bit.
    case = Case(N=2, C=16, H=6, W=5, gc=4, band=5, device=device)
    params = make_params(case)
    xs = torch.randn(3, 2, 16, 6, 5, device=device)
    calls = []
    mod = backends.get(backend)
    real_forward = mod.forward
    monkeypatch.setattr(mod, "forward", lambda *a, **k: calls.append(a[0].shape) or real_forward(*a, **k))

    def op(x, w_w=params[2]):
        return inception_dwconv.inception_dwconv(x, params[0], params[1], w_w, params[3], params[4], params[5],
                                                 backend=backend)

    per_sample = torch.stack([op(x) for x in xs])
    calls.clear()
    assert torch.equal(torch.func.vmap(op)(xs), per_sample)
    assert calls == [(6, 16, 6, 5)]  # folded: one call
    assert torch.equal(torch.func.vmap(op, in_dims=2, out_dims=1)(xs.movedim(0, 2)), per_sample.movedim(0, 1))
    w_ws = torch.randn(3, *params[2].shape, device=device)
    calls.clear()
    batched = torch.func.vmap(op)(xs, w_ws)
    assert len(calls) == 3
    assert torch.equal(batched, torch.stack([op(x, w) for x, w in zip(xs, w_ws)]))
    with torch.autocast(device.split(":")[0], dtype=torch.bfloat16):  # composed inside torch.func
        assert torch.equal(torch.func.vmap(op)(xs), torch.stack([op(x) for x in xs]))


@pytest.mark.parametrize("backend,device", ALL_BACKENDS, ids=str)
def test_per_sample_gradients(backend, device):
    # vmap over torch.func.grad (per-sample gradients, as in DP-SGD): the input gradient is folded
    # into one call, the per-sample weight gradients take one call per sample; fp64, against the
    # reference per sample.
    case = Case(N=1, C=16, H=6, W=5, gc=4, band=5, dtype=torch.float64, device=device)
    params = make_params(case)
    xs = torch.randn(4, 1, 16, 6, 5, dtype=torch.float64, device=device)
    ref = inception_dwconv.reference.inception_dwconv_reference

    def loss(fn):
        return lambda x, w, b: fn(x, params[0], params[1], w, b, params[4], params[5]).square().sum()

    ours = loss(lambda *a: inception_dwconv.inception_dwconv(*a, backend=backend))
    theirs = loss(lambda *a: ref(*a, 1))
    got = torch.func.vmap(torch.func.grad(ours, argnums=(0, 1, 2)), in_dims=(0, None, None))(xs, params[2], params[3])
    for i, x in enumerate(xs):
        want = torch.func.grad(theirs, argnums=(0, 1, 2))(x, params[2], params[3])
        for a, b in zip(got, want):
            torch.testing.assert_close(a[i], b, rtol=1e-10, atol=1e-10)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated in torch 2.14, still used
@pytest.mark.parametrize("backend", CPU_BACKENDS + ["auto"])
@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript(backend, how):
    """torch.jit.script / trace of the module, saved and loaded again: same output and grads as
    eager, bit for bit, and no TracerWarning from the input checks."""
    import io
    import warnings
    torch.manual_seed(3)
    mod = InceptionDWConv2d(20, band_kernel_size=7, branch_ratio=0.25, backend=backend).double()
    x = torch.randn(2, 20, 9, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    gy = torch.randn(2, 20, 9, 6, dtype=torch.float64)
    xe = x.clone().requires_grad_(True)
    ye = mod(xe)
    grads_e = torch.autograd.grad(ye, [xe] + list(mod.parameters()), gy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        jitted = torch.jit.script(mod) if how == "script" else torch.jit.trace(mod, x)
    buf = io.BytesIO()
    torch.jit.save(jitted, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    for m in (jitted, loaded):
        xs = x.clone().requires_grad_(True)
        ys = m(xs)
        assert torch.equal(ys, ye)
        assert ys.is_contiguous(memory_format=torch.channels_last)
        grads = torch.autograd.grad(ys, [xs] + list(m.parameters()), gy)
        for a, b in zip(grads, grads_e):
            assert torch.equal(a, b)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("backend,device", ALL_BACKENDS, ids=str)
def test_forward_mode_ad(backend, device, layout):
    # torch.func.jvp and torch.autograd.forward_ad dual tensors (the autograd.Functions' jvp: the op
    # is bilinear, so the tangent is F(tx; W) + F(x; tW, tb) with identity channels tx), in fp64
    # against the released split/conv/cat module's own forward-mode derivatives.
    torch.manual_seed(5)
    released = ReleasedInceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25).double().to(device)
    params = [p.detach() for p in released.parameters()]
    x = torch.randn(2, 40, 7, 6, dtype=torch.float64, device=device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    tx, tp = torch.randn_like(x), [torch.randn_like(p) for p in params]

    def theirs(x, *p):
        return torch.func.functional_call(released, dict(zip(("dwconv_hw.weight", "dwconv_hw.bias",
                                                                  "dwconv_w.weight", "dwconv_w.bias",
                                                                  "dwconv_h.weight", "dwconv_h.bias"), p)), (x,))

    def ours(x, *p):
        return inception_dwconv.inception_dwconv(x, *p, backend=backend)

    want_y, want_t = torch.func.jvp(theirs, (x, *params), (tx, *tp))
    assert want_t[:, 10:].abs().max() > 0  # gc = 10: identity channels 0-9
    y, t = torch.func.jvp(ours, (x, *params), (tx, *tp))
    torch.testing.assert_close(y, want_y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(t, want_t, rtol=1e-12, atol=1e-12)
    assert torch.equal(t[:, :10], tx[:, :10])  # identity channels: the tangent of x, exactly
    _, t_x_only = torch.func.jvp(lambda x: ours(x, *params), (x,), (tx,))
    torch.testing.assert_close(t_x_only, torch.func.jvp(lambda x: theirs(x, *params), (x,), (tx,))[1],
                               rtol=1e-12, atol=1e-12)
    _, t_bias_only = torch.func.jvp(lambda b: ours(x, params[0], b, *params[2:]), (params[1],), (tp[1],))
    assert torch.equal(t_bias_only[:, :10], torch.zeros_like(tx[:, :10]))
    assert torch.equal(t_bias_only[:, 20:], torch.zeros_like(tx[:, 20:]))
    torch.testing.assert_close(t_bias_only[:, 10:20], tp[1].view(1, -1, 1, 1).expand(2, -1, 7, 6))

    # dual tensors, through the module, whose parameters need gradients (on the compiled CPU
    # backend that would be the C++ autograd node, which has no jvp): tangent and gradients both
    mod = InceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25, backend=backend).double().to(device)
    mod.load_state_dict(released.state_dict())
    with torch.autograd.forward_ad.dual_level():
        y_dual = mod(torch.autograd.forward_ad.make_dual(x, tx))
        y, t = torch.autograd.forward_ad.unpack_dual(y_dual)
        grads = torch.autograd.grad(y.square().sum(), list(mod.parameters()))
    torch.testing.assert_close(t, t_x_only, rtol=1e-12, atol=1e-12)
    want = torch.autograd.grad(released(x).square().sum(), list(released.parameters()))
    for a, b in zip(grads, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_forward_mode_ad_never_silently_drops_tangents():
    # A torch.library custom op without a jvp drops tangents silently (torch 2.14): under
    # torch.compile the package routes forward-mode AD around it (a graph break, then the eager
    # result; fullgraph=True: Dynamo's own error). Before, the compiled tangent was zero.
    torch.manual_seed(7)
    backend = CPU_BACKENDS[-1]
    mod = InceptionDWConv2d(16, band_kernel_size=5, backend=backend)
    x, tx = torch.randn(2, 16, 5, 6), torch.randn(2, 16, 5, 6)
    want = torch.func.jvp(mod, (x,), (tx,))[1]
    assert want[:, 4:].abs().max() > 0
    torch._dynamo.reset()
    got = torch.compile(lambda x, t: torch.func.jvp(mod, (x,), (t,)))(x, tx)[1]
    torch.testing.assert_close(got, want)
    torch._dynamo.reset()
    with pytest.raises(Exception, match="jvp"):
        torch.compile(lambda x, t: torch.func.jvp(mod, (x,), (t,)), fullgraph=True)(x, tx)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_jacfwd_and_forward_over_reverse_hessian(backend):
    # jacfwd (vmap over jvp) and a Hessian by forward-over-reverse (jacfwd of jacrev: the backward
    # op's own jvp), against the reference's, fp64.
    torch.manual_seed(6)
    case = Case(N=1, C=12, H=4, W=5, gc=3, band=5, dtype=torch.float64)
    x, params = make_x(case), make_params(case)
    ref = inception_dwconv.reference.inception_dwconv_reference

    def with_w(fn):
        return lambda x, w: fn(x, params[0], params[1], w, *params[3:])

    ours = with_w(lambda *a: inception_dwconv.inception_dwconv(*a, backend=backend))
    theirs = with_w(lambda *a: ref(*a, 1))
    for argnums in (0, 1):
        torch.testing.assert_close(torch.func.jacfwd(ours, argnums=argnums)(x, params[2]),
                                   torch.func.jacrev(theirs, argnums=argnums)(x, params[2]), rtol=1e-12, atol=1e-12)

    def loss(fn):
        return lambda x, w: (fn(x, w) ** 2 * torch.linspace(0.5, 2, x.shape[1]).view(1, -1, 1, 1)).sum()

    for argnums in ((0, 1), 1):
        h = torch.func.jacfwd(torch.func.jacrev(loss(ours), argnums=argnums), argnums=argnums)(x, params[2])
        want = torch.func.hessian(loss(theirs), argnums=argnums)(x, params[2])
        for a, b in zip(torch.utils._pytree.tree_leaves(h), torch.utils._pytree.tree_leaves(want)):
            assert b.abs().max() > 0
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_torch_export(backend):
    """torch.export records the custom op (not the backend's internals) and the exported program
    gives the module's output bit for bit, also for another batch size when N is dynamic."""
    torch.manual_seed(4)
    mod = InceptionDWConv2d(20, band_kernel_size=7, branch_ratio=0.25, backend=backend)
    x = torch.randn(3, 20, 9, 6)
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(mod, (x,), dynamic_shapes={"x": {0: batch}})
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "inception_dwconv.forward.default" in targets, targets
    for n in (3, 5):
        xn = torch.randn(n, 20, 9, 6)
        assert torch.equal(ep.module()(xn), mod(xn))


@pytest.mark.filterwarnings("ignore::FutureWarning")   # the TorchScript-based exporter is deprecated
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("dynamo", [True, False])
def test_onnx_export(dynamo):
    """torch.onnx.export (both exporters) of the module gives a model of standard ONNX ops that
    ONNX Runtime runs to the module's output."""
    import io
    import warnings
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(5)
    mod = InceptionDWConv2d(20, band_kernel_size=7, branch_ratio=0.25).eval()
    x = torch.randn(2, 20, 9, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            data = torch.onnx.export(mod, (x,), dynamo=True).model_proto.SerializeToString()
        else:
            buf = io.BytesIO()
            torch.onnx.export(mod, (x,), buf, dynamo=False)
            data = buf.getvalue()
    graph = onnx.load_from_string(data).graph
    assert {n.domain for n in graph.node} <= {"", "ai.onnx"}, {n.domain for n in graph.node}
    assert sum(n.op_type == "Conv" for n in graph.node) == 3
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(y), mod(x), rtol=1e-5, atol=1e-5)


def test_torchscript_backend_not_for_the_device():
    """A scripted module whose backend does not run on the input's device says so."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(InceptionDWConv2d(8, backend="cuda"))
    with pytest.raises(Exception, match="does not run on this device"):
        scripted(torch.randn(1, 8, 5, 5))


def test_backend_choice(monkeypatch):
    backends = available_backends()
    assert backends[0] == "reference"
    from inception_dwconv.backends import resolve
    expected_cpu = "cpu" if "cpu" in backends else "reference"
    monkeypatch.delenv("INCEPTION_DWCONV_BACKEND", raising=False)
    assert resolve("auto", "cpu") == expected_cpu
    monkeypatch.setenv("INCEPTION_DWCONV_BACKEND", "reference")
    assert resolve("auto", "cpu") == "reference"
    assert resolve("cpu" if "cpu" in backends else "reference", "cpu") != "auto"
    monkeypatch.setenv("INCEPTION_DWCONV_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="unknown backend"):
        resolve("auto", "cpu")


def test_extension_absent_still_works():
    code = ("import os; os.environ['INCEPTION_DWCONV_NO_EXTENSION'] = '1'\n"
            "import torch, inception_dwconv as i\n"
            "b = i.available_backends()\n"
            "assert b == ['reference'] or 'cpu' not in b, b\n"
            "m = i.InceptionDWConv2d(16, branch_ratio=0.25)\n"
            "y = m(torch.randn(1, 16, 5, 5)); assert y.shape == (1, 16, 5, 5)\n"
            "try:\n    i.InceptionDWConv2d(16, branch_ratio=0.25, backend='cpu')(torch.randn(1, 16, 5, 5))\n"
            "except RuntimeError as e:\n    assert 'not available' in str(e); print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------

def _args(C=16, gc=4, ks=3, K=5, dtype=torch.float32):
    return [torch.randn(2, C, 6, 6, dtype=dtype), torch.randn(gc, 1, ks, ks, dtype=dtype), torch.randn(gc, dtype=dtype),
            torch.randn(gc, 1, 1, K, dtype=dtype), torch.randn(gc, dtype=dtype), torch.randn(gc, 1, K, 1, dtype=dtype),
            torch.randn(gc, dtype=dtype)]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bad_inputs(backend):
    f = inception_dwconv.inception_dwconv
    a = _args()
    with pytest.raises(ValueError, match="4-D"):
        f(a[0][0], *a[1:], backend=backend)
    with pytest.raises(ValueError, match="channel"):
        f(torch.randn(2, 11, 6, 6), *a[1:], backend=backend)
    for bad in (torch.int32, torch.int64, torch.bool, torch.complex64, torch.uint8):
        with pytest.raises(TypeError, match="dtype"):
            f(a[0].to(bad), *a[1:], backend=backend)
    with pytest.raises(TypeError, match="dtype"):
        f(a[0].double(), *a[1:], backend=backend)
    with pytest.raises(TypeError, match="bias_w"):
        f(*a[:4], a[4].double(), *a[5:], backend=backend)
    with pytest.raises(ValueError, match="even kernel"):
        f(*_args(ks=2), backend=backend)
    with pytest.raises(ValueError, match="even kernel"):
        f(*_args(K=4), backend=backend)
    with pytest.raises(ValueError, match="same channel count"):
        b = _args()
        f(b[0], b[1], b[2], torch.randn(3, 1, 1, 5), None, b[5], b[6], backend=backend)
    with pytest.raises(ValueError, match="shape"):
        f(*a[:2], torch.randn(5), *a[3:], backend=backend)
    with pytest.raises(ValueError, match="dilation"):
        f(*a, dilation=0, backend=backend)
    with pytest.raises(TypeError, match="dilation"):
        f(*a, dilation=1.5, backend=backend)
    with pytest.raises(ValueError, match="unknown backend"):
        f(*a, backend="fast")
    with pytest.raises(TypeError, match="torch.Tensor"):
        f(a[0].numpy(), *a[1:], backend=backend)


def test_fast_input_check_agrees_with_the_full_checks():
    """functional._inputs_ok (the per-call fast path) accepts exactly what the full checks accept:
    random mixes of valid arguments and single breakages of each constraint."""
    from inception_dwconv import functional as fn
    gen = torch.Generator().manual_seed(0)
    rnd = lambda n: int(torch.randint(0, n, (1,), generator=gen))  # noqa: E731
    base = _args(C=16, gc=4, ks=3, K=5)
    breakers = [
        lambda a, d: (a[0][0], d),                                   # 3-D x
        lambda a, d: (a[0].unsqueeze(0), d),                         # 5-D x
        lambda a, d: (a[0][:, :11], d),                              # too few channels
        lambda a, d: (a[0].to(torch.int32), d),
        lambda a, d: (a[0].to(torch.complex64), d),
        lambda a, d: (a[0].double(), d),                             # dtype mismatch with the weights
        lambda a, d: (a[0].numpy(), d),
        lambda a, d: (torch.randn(2, 16, 6, 6, device="meta"), d),   # device mismatch
        lambda a, d: (a[0], 0),
        lambda a, d: (a[0], True),
        lambda a, d: (a[0], 1.0),
    ]
    agree = 0
    for trial in range(400):
        a = [t.clone() for t in base]
        d = 1 + rnd(3)
        kind = rnd(4)
        if kind == 1:  # break x or dilation
            a[0], d = breakers[rnd(len(breakers))](a, d)
        elif kind == 2:  # break one weight or bias
            i = 1 + rnd(6)
            t = a[i]
            a[i] = [None, t.double(), t[:3], t.unsqueeze(0), t.squeeze(1) if t.dim() == 4 else t[None],
                    torch.randn(4, 1, 2, 2), torch.randn(4, 1, 3, 5), torch.randn(4, 2, 3, 3), t.numpy(),
                    torch.randn(4, 1, 1, 4), torch.randn(4, 1, 4, 1), torch.randn(0, 1, 3, 3), t.to("meta")][rnd(13)]
            if a[i] is None and i in (1, 3, 5):  # a missing weight is not an input this API takes
                a[i] = t
        elif kind == 3:  # valid but different: no biases, other kernel sizes, more identity channels
            ks, K = 1 + 2 * rnd(3), 1 + 2 * rnd(6)
            a = _args(C=12 + rnd(9), gc=4, ks=ks, K=K)
            for i in (2, 4, 6):
                if rnd(2):
                    a[i] = None
        fast = fn._inputs_ok(*a, d)
        try:
            fn._check_inputs_in_full(*a, d)
            full = True
        except (TypeError, ValueError):
            full = False
        assert fast == full, (trial, kind, [getattr(t, "shape", t) for t in a], d)
        agree += 1
    assert agree == 400


def test_bad_device_and_backend_availability():
    a = _args()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="not available"):
            inception_dwconv.backends.resolve("cuda", "cuda")
    with pytest.raises(ValueError, match="does not run on cpu"):
        inception_dwconv.inception_dwconv(*a, backend="cuda")
    meta = [t.to("meta") for t in a]
    with pytest.raises(ValueError, match="same device"):
        inception_dwconv.inception_dwconv(a[0], meta[1], *a[2:], backend="reference")


def test_module_bad_arguments():
    with pytest.raises(ValueError, match="gc = int"):
        InceptionDWConv2d(4, branch_ratio=0.125)  # gc = 0
    with pytest.raises(ValueError, match="3 \\* gc"):
        InceptionDWConv2d(16, branch_ratio=0.5)
    with pytest.raises(ValueError, match="odd"):
        InceptionDWConv2d(16, band_kernel_size=10)
    with pytest.raises(ValueError, match="unknown backend"):
        InceptionDWConv2d(16, backend="gpu")
    with pytest.raises(TypeError, match="in_channels"):
        InceptionDWConv2d()
