"""Shared test utilities: input factories and the fp64 oracle every backend is compared against."""
import importlib.util
import math
import os
from dataclasses import dataclass

import torch

from inception_dwconv.reference import inception_dwconv_reference

# (rtol, atol) on outputs and grads vs an fp64 reference, per input dtype. fp32: accumulation-order
# differences only. bf16/fp16: inputs and weights are rounded to the dtype before the fp64 reference
# sees them, so the remaining error is the rounding of the output (bf16: 8 mantissa bits, relative
# 2^-8 = 0.0039; fp16: 2^-11) plus fp32 accumulation; atol scales with the magnitude of a sum of
# ~K products of unit normals (~sqrt(K) ~ 4).
TOLERANCES = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.bfloat16: (1.6e-2, 2e-2),
    torch.float16: (2e-3, 2e-3),
}

# Weight grads sum over N*H*W products: error grows with sqrt(count); checked by relative norm.
GRAD_WEIGHT_REL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}


@dataclass
class Case:
    N: int
    C: int
    H: int
    W: int
    gc: int
    square: int = 3
    band: int = 11
    dilation: int = 1
    dtype: torch.dtype = torch.float32
    layout: str = "nchw"  # "nchw", "channels_last", "strided" (a channel slice of a wider tensor)
    bias: bool = True
    device: str = "cpu"
    seed: int = 0

    def __str__(self):
        return (f"{self.N}x{self.C}x{self.H}x{self.W}-gc{self.gc}-k{self.square}/{self.band}-d{self.dilation}-"
                f"{str(self.dtype).replace('torch.', '')}-{self.layout}{'' if self.bias else '-nobias'}")


def make_x(case: Case, requires_grad=False) -> torch.Tensor:
    g = torch.Generator().manual_seed(case.seed)
    shape = (case.N, case.C, case.H, case.W)
    if case.layout == "strided":
        # channel slice of a wider NCHW tensor, rows also strided: nothing about it is contiguous
        wide = torch.randn(case.N, case.C + 5, case.H, case.W * 2, generator=g, dtype=torch.float64)
        x = wide.to(case.dtype).to(case.device)[:, 3:3 + case.C, :, ::2]
    elif case.layout == "strided_cl":
        wide = torch.randn(case.N, case.C + 7, case.H, case.W, generator=g, dtype=torch.float64)
        wide = wide.to(case.dtype).to(case.device).contiguous(memory_format=torch.channels_last)
        x = wide[:, 2:2 + case.C]
    else:
        x = torch.randn(shape, generator=g, dtype=torch.float64).to(case.dtype).to(case.device)
        if case.layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
    assert x.shape == shape
    return x.requires_grad_(requires_grad)


def make_params(case: Case, requires_grad=False):
    """(w_hw, b_hw, w_w, b_w, w_h, b_h) with the nn.Conv2d default init scale, random biases."""
    g = torch.Generator().manual_seed(case.seed + 1)
    gc = case.gc

    def w(kh, kw):
        bound = 1.0 / math.sqrt(kh * kw)
        return (torch.rand(gc, 1, kh, kw, generator=g, dtype=torch.float64) * 2 - 1) * bound

    def b():
        return torch.rand(gc, generator=g, dtype=torch.float64) * 2 - 1 if case.bias else None

    params = [w(case.square, case.square), b(), w(1, case.band), b(), w(case.band, 1), b()]
    out = []
    for p in params:
        if p is not None:
            p = p.to(case.dtype).to(case.device).requires_grad_(requires_grad)
        out.append(p)
    return out


def reference_fp64(x, params, dilation, grad_out=None):
    """fp64 eager reference on the (already rounded) inputs; returns y and, given grad_out,
    (grad_x, [grad per param or None])."""
    x64 = x.detach().double().requires_grad_(grad_out is not None)
    p64 = [None if p is None else p.detach().double().requires_grad_(grad_out is not None) for p in params]
    y = inception_dwconv_reference(x64, *p64, dilation=dilation)
    if grad_out is None:
        return y, None, None
    leaves = [x64] + [p for p in p64 if p is not None]
    grads = torch.autograd.grad(y, leaves, grad_out.double())
    gx, rest = grads[0], list(grads[1:])
    gp = [None if p is None else rest.pop(0) for p in p64]
    return y, gx, gp


def assert_close(actual, expected, dtype, what=""):
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(actual.double().cpu(), expected.double().cpu(), rtol=rtol, atol=atol,
                               msg=lambda m: f"{what}: {m}")


def assert_rel_norm(actual, expected, dtype, what=""):
    a, e = actual.double().cpu(), expected.double().cpu()
    assert torch.isfinite(a).all(), f"{what}: non-finite values"
    err = (a - e).norm() / e.norm().clamp_min(1e-30)
    assert err <= GRAD_WEIGHT_REL[dtype], f"{what}: relative error {err:.3e} > {GRAD_WEIGHT_REL[dtype]:.1e}"


# InceptionNeXt stage shapes (C, H): atto K=9 ratio 1/4; tiny/small/base K=11 ratio 1/8.
ATTO_STAGES = [(40, 56), (80, 28), (160, 14), (320, 7)]
TINY_STAGES = [(96, 56), (192, 28), (384, 14), (768, 7)]
BASE_STAGES = [(128, 56), (256, 28), (512, 14), (1024, 7)]


REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))


def load_script(relpath: str):
    """A script of the repository (benchmarks/, scripts/), not a package module, loaded from its
    file as a module."""
    path = os.path.join(REPO, relpath)
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
