"""Runs the CUDA backend's forward + backward over a few small shapes, for compute-sanitizer:

    compute-sanitizer --tool memcheck  python scripts/cuda_sanitize.py
    compute-sanitizer --tool racecheck python scripts/cuda_sanitize.py
    compute-sanitizer --tool initcheck python scripts/cuda_sanitize.py

Shapes are kept small (sanitizers slow kernels down 10-100x) but cover both tile orders (NCHW and
channels_last), the specialised 3x3 + K=11 / K=9 kernels, the general path (dilation 2, square 5),
the global-memory path (a halo too large for shared memory), and partial tiles / H, W < K.
Exits non-zero if an output is not finite or differs from the eager reference.
"""
import sys

import torch

import inception_dwconv  # noqa: F401  (loads the extension, registers the ops)
from inception_dwconv.reference import inception_dwconv_reference

OPS = torch.ops.inception_dwconv

# (N, C, H, W, gc, square, band, dilation)
SHAPES = [
    (2, 96, 14, 14, 12, 3, 11, 1),   # InceptionNeXt-T stage 3 (K=11 specialisation)
    (2, 40, 13, 15, 10, 3, 9, 1),    # atto ratio, partial tiles (K=9 specialisation)
    (1, 16, 3, 5, 4, 3, 11, 1),      # H, W smaller than K
    (2, 24, 9, 11, 6, 5, 7, 2),      # general path: square 5, band 7, dilation 2
    (1, 6, 12, 20, 2, 3, 101, 3),    # halo too large for shared memory: global-memory path
]


def tolerance(dtype):
    return {torch.float32: (1e-4, 1e-4), torch.bfloat16: (3e-2, 3e-2)}[dtype]


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 2
    failures = 0
    gen = torch.Generator().manual_seed(0)
    for (n, c, h, w, gc, ks, kb, d) in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            for layout in ("nchw", "channels_last"):
                def rnd(*shape, scale=1.0):
                    return (torch.randn(*shape, generator=gen) * scale).to(dtype).cuda()
                x = rnd(n, c, h, w)
                if layout == "channels_last":
                    x = x.contiguous(memory_format=torch.channels_last)
                p = [rnd(gc, 1, ks, ks, scale=1 / ks), rnd(gc), rnd(gc, 1, 1, kb, scale=kb ** -0.5), rnd(gc),
                     rnd(gc, 1, kb, 1, scale=kb ** -0.5), rnd(gc)]
                y = OPS.fused_forward(x, *p, d)
                g = torch.randn_like(y)
                gx, *gw = OPS.fused_backward(g, x, p[0], p[2], p[4], d, True, True)
                torch.cuda.synchronize()
                xr = x.float().requires_grad_(True)
                pr = [q.float().requires_grad_(True) for q in p]
                yr = inception_dwconv_reference(xr, *pr, dilation=d)
                grads = torch.autograd.grad(yr, [xr] + pr, g.float())
                rtol, atol = tolerance(dtype)
                tag = f"{n}x{c}x{h}x{w} gc{gc} k{ks}/{kb} d{d} {dtype} {layout}"
                checks = [("forward", y, yr), ("grad_x", gx, grads[0])]
                checks += [(f"grad_param{i}", a, b) for i, (a, b) in enumerate(zip(gw, grads[1:]))]
                for name, a, b in checks:
                    ok = torch.isfinite(a).all() and torch.allclose(a.float(), b.float(), rtol=rtol,
                                                                    atol=atol * max(1.0, b.abs().max().item()))
                    if not ok:
                        failures += 1
                        print(f"FAIL {tag} {name}: max abs err {(a.float() - b.float()).abs().max().item():.3e}")
                print(f"done {tag}")
    print("OK" if failures == 0 else f"{failures} FAILURES")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
