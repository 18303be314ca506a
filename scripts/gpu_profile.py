"""Where the time of one call goes, per backend: CPU time to enqueue a call, wall time per call,
and GPU kernel time per call (torch.profiler), with the kernels that take most of it.

    python scripts/gpu_profile.py [--batch 128] [--backends reference,cuda,triton] [--modes fwd,fwdbwd]
                                  [--dtypes fp32,bf16] [--layouts nchw,channels_last] [--out FILE]

When "wall" is well above "gpu", the call is bound by host work (Python, autograd, launches), and
a kernel change will not show in the benchmark; when they are close, the kernels are the cost.
"triton-fused" is the Triton backend with launch.BACKWARD_MODE = "fused" (grad_x and the weight
partials in one kernel) instead of the default split backward (grad_x by the forward kernel, weight
grads by their own kernel).
InceptionNeXt-T stage shapes. Needs a CUDA GPU (the profiler's CUDA activity).
"""
import argparse
import collections
import cProfile
import pstats
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

import inception_dwconv
from _tee import Tee
from inception_dwconv.reference import inception_dwconv_reference

STAGES = ((96, 56), (192, 28), (384, 14), (768, 7))
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def make(N, C, H, dtype, layout):
    gc = C // 8
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(N, C, H, H, device="cuda", dtype=dtype).contiguous(memory_format=fmt)
    g = torch.randn_like(x)
    params = []
    for kh, kw in ((3, 3), (1, 11), (11, 1)):
        params += [torch.randn(gc, 1, kh, kw, device="cuda", dtype=dtype) * 0.2,
                   torch.randn(gc, device="cuda", dtype=dtype) * 0.2]
    return x, g, params


def select(backend):
    """The backend's registry name; for "triton" / "triton-fused", also sets the Triton backward mode."""
    if not backend.startswith("triton"):
        return backend
    from inception_dwconv.backends.triton import launch
    launch.BACKWARD_MODE = "fused" if backend == "triton-fused" else "split"
    return "triton"


def step_fn(backend, mode, x, g, params):
    backend = select(backend)
    if backend == "reference":
        def f(xx, pp):
            return inception_dwconv_reference(xx, *pp, 1)
    else:
        def f(xx, pp):
            return inception_dwconv.inception_dwconv(xx, *pp, backend=backend)
    if mode == "fwd":
        def run():
            with torch.no_grad():
                f(x, params)
        return run
    xg = x.detach().clone().requires_grad_(True)
    pg = [p.detach().clone().requires_grad_(True) for p in params]

    def run():
        y = f(xg, pg)
        torch.autograd.grad(y, [xg] + pg, g)
    return run


def measure(run, iters=20):
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        run()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    enqueue_ms = (t1 - t0) / iters * 1e3
    wall_ms = (t2 - t0) / iters * 1e3
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            run()
        torch.cuda.synchronize()
    per_kernel = collections.Counter()
    count = collections.Counter()
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            per_kernel[ev.name] += ev.device_time
            count[ev.name] += 1
    gpu_ms = sum(per_kernel.values()) / iters / 1e3
    n_kernels = sum(count.values()) / iters
    top = [(name[:60], t / iters / 1e3) for name, t in per_kernel.most_common(3)]
    return enqueue_ms, wall_ms, gpu_ms, n_kernels, top


def host_profile(emit, backend, x, g, params, calls):
    """cProfile of the host side of a forward call and of a direct backend backward call (the
    autograd engine runs a CUDA backward on its own thread, where cProfile does not look), on the
    main thread: where the enqueue time of one call goes."""
    name = select(backend)
    mod = inception_dwconv.backends.get(name)
    w_hw, b_hw, w_w, b_w, w_h, b_h = params
    calls_by_part = {
        "forward": lambda: inception_dwconv.inception_dwconv(x, *params, backend=name),
        "backward": lambda: mod.backward(g, x, w_hw, w_w, w_h, 1, True, True),
    }
    for part, fn in calls_by_part.items():
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for _ in range(calls):
            fn()
        prof.disable()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        emit(f"## host profile: {backend} {part}, {x.shape[-1]}x{x.shape[-1]} {x.dtype}: "
             f"{(t1 - t0) / calls * 1e3:.3f} ms per call under cProfile; per call, in us: own time, "
             f"with callees, calls")
        stats = pstats.Stats(prof).stats  # {(file, line, name): (cc, ncalls, tottime, cumtime, callers)}
        for (file, line, func), (_, ncalls, tottime, cumtime, _) in sorted(
                stats.items(), key=lambda kv: -kv[1][2])[:15]:
            where = func if file == "~" else f"{file.split('site-packages/')[-1]}:{line}({func})"
            emit(f"   {tottime / calls * 1e6:8.1f} {cumtime / calls * 1e6:8.1f} {ncalls / calls:5.1f}  {where}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--backends", default="reference,cuda,triton,triton-fused")
    ap.add_argument("--modes", default="fwd,fwdbwd")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--layouts", default="nchw,channels_last")
    ap.add_argument("--stages", default="56,28,14,7", help="comma list of map sizes (H = W) to run")
    ap.add_argument("--host-profile", type=int, default=0, metavar="CALLS",
                    help="then cProfile the host side of CALLS forward calls and CALLS direct backward "
                         "calls per backend at the smallest stage (fp32, NCHW)")
    ap.add_argument("--out", default=None, help="also write the lines to this file")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    avail = inception_dwconv.available_backends()
    backends = [b for b in args.backends.split(",")
                if b == "reference" or b in avail or (b == "triton-fused" and "triton" in avail)]
    emit = Tee(args.out)

    emit(f"# {torch.cuda.get_device_name()} torch {torch.__version__}; times per call in ms; "
         f"gpu = sum of kernel times (profiler); top = the 3 kernels with most time")
    emit("shape dtype layout backend mode | enqueue wall gpu kernels | top")
    stages = [(C, H) for C, H in STAGES if str(H) in args.stages.split(",")]
    for C, H in stages:
        for dname in args.dtypes.split(","):
            for layout in args.layouts.split(","):
                x, g, params = make(args.batch, C, H, DTYPES[dname], layout)
                for backend in backends:
                    for mode in args.modes.split(","):
                        try:
                            enq, wall, gpu, nk, top = measure(step_fn(backend, mode, x, g, params))
                        except Exception as exc:  # noqa: BLE001 - report and go on
                            emit(f"{args.batch}x{C}x{H}x{H} {dname} {layout} {backend} {mode} | error: "
                                 f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}")
                            continue
                        tops = "; ".join(f"{n} {t:.3f}" for n, t in top)
                        emit(f"{args.batch}x{C}x{H}x{H} {dname} {layout} {backend} {mode} | "
                             f"{enq:.3f} {wall:.3f} {gpu:.3f} {nk:.0f} | {tops}")
                del x, g, params
    if args.host_profile > 0 and stages:
        C, H = stages[-1]
        x, g, params = make(args.batch, C, H, torch.float32, "nchw")
        for backend in backends:
            host_profile(emit, backend, x, g, params, args.host_profile)


if __name__ == "__main__":
    main()
