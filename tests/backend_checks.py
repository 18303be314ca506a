"""One routine that checks a backend against the fp64 eager reference on a Case: output, grad_x,
weight and bias grads, memory format, and that every element was written. Shared by the
per-backend test files."""
import torch

import inception_dwconv
from helpers import assert_close, assert_rel_norm, make_params, make_x, reference_fp64


def check_backend(case, backend, grads=True):
    x = make_x(case, requires_grad=grads)
    params = make_params(case, requires_grad=grads)
    y = inception_dwconv.inception_dwconv(x, *params, dilation=case.dilation, backend=backend)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    if y.numel() == 0:
        pass  # an empty tensor is contiguous in every format
    elif case.layout in ("channels_last", "strided_cl") and case.C > 1 and case.H * case.W > 1:
        assert y.is_contiguous(memory_format=torch.channels_last), f"{case}: output lost channels_last"
    elif case.layout in ("nchw", "strided"):
        assert y.is_contiguous(), f"{case}: output is not contiguous NCHW"
    assert not torch.isnan(y).any(), f"{case}: output has NaN (unwritten elements?)"
    g = torch.Generator().manual_seed(case.seed + 7)
    grad_out = torch.randn(x.shape, generator=g, dtype=torch.float64).to(case.dtype).to(x.device)
    y_ref, gx_ref, gp_ref = reference_fp64(x, params, case.dilation, grad_out if grads else None)
    assert_close(y, y_ref, case.dtype, f"{case} [{backend}] output")
    if not grads:
        return
    leaves = [x] + [p for p in params if p is not None]
    got = torch.autograd.grad(y, leaves, grad_out)
    gx, rest = got[0], list(got[1:])
    assert not torch.isnan(gx).any(), f"{case}: grad_x has NaN"
    assert_close(gx, gx_ref, case.dtype, f"{case} [{backend}] grad_x")
    names = ["grad_weight_hw", "grad_bias_hw", "grad_weight_w", "grad_bias_w", "grad_weight_h", "grad_bias_h"]
    for name, p, ref in zip(names, params, gp_ref):
        if p is None:
            continue
        got_p = rest.pop(0)
        assert got_p.shape == p.shape and got_p.dtype == p.dtype, f"{case}: {name} shape/dtype"
        if case.N * case.H * case.W == 0:
            assert (got_p == 0).all(), f"{case}: {name} must be zero for an empty input"
        else:
            assert_rel_norm(got_p, ref, case.dtype, f"{case} [{backend}] {name}")


def check_autocast_one_pass(monkeypatch, mod, x, low):
    """An fp32 x (with a NaN in it) under autocast to `low` through `mod` takes the one-pass route
    (ops.call_forward_autocast) and gives what the composition gives (casts, the low-precision op,
    cast back, exact identity channels), bit for bit, NaN where NaN. Returns y."""
    from inception_dwconv import functional, ops
    device_type = x.device.type
    c_id = x.shape[1] - 3 * mod.dwconv_hw.weight.shape[0]
    params = [p.detach() for p in mod.parameters()]
    used = []
    real = ops.call_forward_autocast
    monkeypatch.setattr(ops, "call_forward_autocast", lambda *a: used.append(1) or real(*a))
    with torch.no_grad(), torch.autocast(device_type, dtype=low):
        y = mod(x)
    assert used and y.dtype == torch.float32
    with torch.autocast(device_type, dtype=low), monkeypatch.context() as m:
        m.setattr(ops, "call_forward_autocast", lambda *a: None)
        composed = functional._forward_autocast(x, params, 1, mod.backend, low)
    assert y.stride() == composed.stride()
    assert torch.equal(y.isnan(), composed.isnan()) and y.isnan().any()
    assert torch.equal(y.nan_to_num(), composed.nan_to_num())
    assert torch.equal(y[:, :c_id], x[:, :c_id])  # identity: exact fp32
    return y


def check_autocast_one_pass_grads(monkeypatch, mod, x, low, grad_out):
    """With a gradient: the one-pass backward against the composition's autograd graph, bit for bit
    (y, grad_x and every parameter gradient)."""
    from inception_dwconv import ops
    x.requires_grad_()

    def run():
        with torch.autocast(x.device.type, dtype=low):
            y = mod(x)
        return [y] + list(torch.autograd.grad(y, [x, *mod.parameters()], grad_out))

    one_pass = run()
    assert "AutocastOnePass" in one_pass[0].grad_fn.name()
    with monkeypatch.context() as m:
        m.setattr(ops, "call_forward_autocast", lambda *a: None)
        composed = run()
    for a, b in zip(one_pass, composed):
        assert a.dtype == b.dtype and torch.equal(a, b)
