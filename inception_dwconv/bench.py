"""Kernel microbenchmark for inception_dwconv (``python -m inception_dwconv.bench`` or the
``inception-dwconv-bench`` console script).

For every workload (stage shape x dtype x layout) it

1. builds the inputs (x, the six conv parameters, a grad_out with x's layout),
2. measures the floor: a device copy of x (``x.clone()``), reported as a ``copy`` row. Forward
   floor = that copy time (read x + write y). Backward floor = bytes (read grad_out, read the
   3*gc conv channels of x, write grad_x) / the copy bandwidth of this run. fwdbwd floor = sum.
3. checks every backend against an fp64 reference on upcast inputs, on that exact workload
   (relative norm ||out - ref|| / ||ref|| of the output and, when a backward mode is asked for,
   of grad_x and of the six parameter grads). A backend that disagrees is reported WRONG (with
   the error) and is not timed; one that raises is reported ``error``.
4. times each backend and mode:

   * ``fwd``: forward only, under ``torch.no_grad()``.
   * ``bwd``: backward only: ``torch.autograd.grad(y, [x, *params], grad_out, retain_graph=True)``
     on a graph built once before timing (so the autograd engine's overhead is included, as in
     training; the grads of x and of all six parameters are computed).
   * ``fwdbwd``: forward with autograd recording + that same ``autograd.grad`` call.

Backends: ``reference`` is the eager split/conv/cat function with plain autograd (what the
released InceptionNeXt module runs; the "eager" every speedup is relative to);
``reference-compiled`` / ``reference-max-autotune`` are ``torch.compile`` of that function
(default mode / mode="max-autotune", dynamic=False, dynamo reset per workload);
``cpu``, ``cuda``, ``triton`` go through ``inception_dwconv.inception_dwconv(..., backend=name)``.

Timing: on CUDA, ``triton.testing.do_bench`` (quantiles 0.5/0.2/0.8, its own warm-up and L2
flush), or ``do_bench_cudagraph`` for launch-bound shapes (``--cuda-graphs``; the ``timer`` column
says which was used). On the CPU, ``time.perf_counter`` around each call (calls shorter than
~2 ms are batched and averaged) after ``--warmup`` runs; median/p20/p80 over ``--repeat``
samples. On both, inputs are rotated over several copies while one copy's working set is
below ``--rotate-mb`` (100 MB) so that they do not sit in cache.

Exit status: 0 when every row is ok, 1 when some row is WRONG or error, 2 on bad arguments.
"""
import argparse
import contextlib
import csv
import datetime
import itertools
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch

from . import backends as _backends
from .functional import inception_dwconv
from .module import branch_channels
from .ops import AUTOCAST_ENV_VAR, has_autocast_kernels
from .reference import inception_dwconv_reference

PRESETS = {
    # name: (channels per stage, spatial size per stage, square kernel, band kernel, branch ratio)
    "atto": ((40, 80, 160, 320), (56, 28, 14, 7), 3, 9, 0.25),
    "tiny": ((96, 192, 384, 768), (56, 28, 14, 7), 3, 11, 0.125),
    "small": ((96, 192, 384, 768), (56, 28, 14, 7), 3, 11, 0.125),
    "base": ((128, 256, 512, 1024), (56, 28, 14, 7), 3, 11, 0.125),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64,
          "amp-bf16": torch.float32, "amp-fp16": torch.float32}
# amp-*: fp32 x and parameters, every backend (eager too) called under torch.autocast to this dtype,
# as in mixed-precision training, where InceptionNeXt's mixers get an fp32 residual stream.
AUTOCAST = {"amp-bf16": torch.bfloat16, "amp-fp16": torch.float16}
LAYOUTS = ("nchw", "channels_last")
MODES = ("fwd", "bwd", "fwdbwd")
BENCH_BACKENDS = ("reference", "reference-compiled", "reference-max-autotune", "cpu", "triton", "cuda")
# Relative-norm tolerance vs the fp64 reference, by input dtype.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 2e-2}
# The eager reference rows are the baseline users have, so they are checked only for gross errors:
# on an H200 (torch 2.11, cuDNN) its fp32 grad of the 1xK weight was 3.1e-4 off the fp64 result at
# batch 128, which the fused-backend tolerance above would have called WRONG and left untimed.
REFERENCE_TOLERANCE = {torch.float32: 1e-3}
QUANTILES = [0.5, 0.2, 0.8]

COLUMNS = [
    "workload", "preset", "stage", "N", "C", "H", "W", "gc", "square", "band", "dilation",
    "backend", "mode", "dtype", "layout", "median_ms", "p20_ms", "p80_ms", "gbps", "floor_ms",
    "pct_of_floor", "speedup_vs_eager", "status", "error", "max_rel_err", "timer", "device",
    "device_name", "threads", "load_avg_1m", "torch", "triton", "cuda", "git_commit", "timestamp",
]


class BenchArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (no usage dump) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


@dataclass
class Workload:
    name: str
    preset: str
    stage: str
    N: int
    C: int
    H: int
    W: int
    gc: int
    square: int
    band: int
    dilation: int

    def numel(self) -> int:
        return self.N * self.C * self.H * self.W


# ----------------------------------------------------------------------------- argument parsing

def _csv_list(text: str, allowed, what: str) -> List[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise BenchArgumentError(f"empty {what} list")
    out = []
    for item in items:
        if item not in allowed:
            raise BenchArgumentError(f"unknown {what} {item!r}; expected one of {', '.join(allowed)}")
        if item not in out:
            out.append(item)
    return out


def _parse_shape(text: str):
    parts = text.split(",")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        dims = []
    if len(dims) != 4 or any(d < 1 for d in dims):
        raise BenchArgumentError(f"bad --shape {text!r}: expected N,C,H,W (four positive integers)")
    return dims


def _gc(C: int, ratio: float, where: str) -> int:
    try:
        return branch_channels(C, ratio)
    except ValueError as exc:
        raise BenchArgumentError(f"{where}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="inception-dwconv-bench",
                description="Microbenchmark of the fused Inception depthwise convolution backends "
                            "against the eager reference and a device-copy floor.")
    w = p.add_argument_group("workloads")
    w.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="InceptionNeXt stage shapes (4 stages); default tiny when no --shape is given")
    w.add_argument("--batch", type=int, default=8, help="batch size N for --preset (default 8)")
    w.add_argument("--shape", action="append", default=[], metavar="N,C,H,W",
                   help="explicit workload (repeatable); uses --square/--band/--ratio/--dilation")
    w.add_argument("--square", type=int, default=3, help="square kernel size for --shape (default 3)")
    w.add_argument("--band", type=int, default=11, help="band kernel size for --shape (default 11)")
    w.add_argument("--ratio", type=float, default=0.125, help="branch ratio for --shape (default 0.125)")
    w.add_argument("--dilation", type=int, default=1, help="dilation for --shape workloads (default 1)")
    w.add_argument("--dtype", default=None, help="comma list of fp32,bf16,fp16,fp64,amp-bf16,amp-fp16 "
                                                 "(amp-*: fp32 tensors under torch.autocast to bf16 / "
                                                 "fp16; default fp32 on cpu, fp32,bf16 on cuda)")
    w.add_argument("--layout", default="nchw,channels_last", help="comma list of nchw,channels_last")
    w.add_argument("--mode", default="fwd,fwdbwd", help="comma list of fwd,bwd,fwdbwd (default fwd,fwdbwd)")
    b = p.add_argument_group("backends and device")
    b.add_argument("--backends", default=None,
                   help=f"comma list of {', '.join(BENCH_BACKENDS)} (default: the available ones of "
                        f"reference, cpu on cpu; reference, reference-compiled, cuda, triton on cuda)")
    b.add_argument("--device", choices=("cuda", "cpu"), default=None,
                   help="default cuda if available, else cpu")
    b.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for a CPU run")
    t = p.add_argument_group("timing")
    t.add_argument("--repeat", type=int, default=10, help="CPU: timed samples per measurement (default 10)")
    t.add_argument("--warmup", type=int, default=3, help="CPU: untimed warm-up calls (default 3)")
    t.add_argument("--max-seconds", type=float, default=10.0,
                   help="CPU: stop sampling a measurement after this long (at least 3 samples; default 10)")
    t.add_argument("--rep-ms", type=int, default=100, help="CUDA: do_bench rep in ms (default 100)")
    t.add_argument("--warmup-ms", type=int, default=25, help="CUDA: do_bench warm-up in ms (default 25)")
    t.add_argument("--cuda-graphs", choices=("auto", "on", "off"), default="auto",
                   help="CUDA: time with do_bench_cudagraph; auto = fwd mode on H*W <= 14*14 (default auto)")
    t.add_argument("--rotate-mb", type=float, default=100.0,
                   help="rotate over input copies while one copy's working set is below this (default 100; "
                        "0 disables)")
    t.add_argument("--seed", type=int, default=0)
    o = p.add_argument_group("output")
    o.add_argument("--csv", default=None, metavar="PATH", help="write one row per measurement")
    o.add_argument("--json", default=None, metavar="PATH", help="write {meta, rows} with one row per measurement")
    o.add_argument("--plot", default=None, metavar="PNG", help="bar chart of speedups over eager (needs matplotlib)")
    o.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def backend_unavailable_reason(name: str, device: str) -> Optional[str]:
    """None when the benchmark backend `name` can run on `device` here, else why not."""
    if name.startswith("reference"):
        if name != "reference" and not hasattr(torch, "compile"):
            return "torch.compile is not available in this torch"
        return None
    mod = _backends.get(name)
    if device not in mod.DEVICE_TYPES:
        return f"it runs on {', '.join(mod.DEVICE_TYPES)}, not {device}"
    if not mod.is_available():
        return mod.why_unavailable() or "not available"
    if name == "triton" and device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return "Triton runs on the CPU only under TRITON_INTERPRET=1"
    return None


def default_backends(device: str) -> List[str]:
    wanted = ("reference", "cpu") if device == "cpu" else ("reference", "reference-compiled", "cuda", "triton")
    return [b for b in wanted if backend_unavailable_reason(b, device) is None]


def resolve_args(args):
    """Validates everything and returns (device, workloads, dtypes, layouts, modes, backends)."""
    if args.device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = args.device
        if device == "cuda" and not torch.cuda.is_available():
            raise BenchArgumentError("--device cuda: no CUDA device is available on this machine")
    for name in ("batch", "repeat", "dilation", "rep_ms", "warmup_ms"):
        if getattr(args, name) < 1:
            raise BenchArgumentError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise BenchArgumentError(f"--warmup must be >= 0, got {args.warmup}")
    if args.threads is not None and args.threads < 1:
        raise BenchArgumentError(f"--threads must be >= 1, got {args.threads}")
    for name in ("square", "band"):
        k = getattr(args, name)
        if k < 1 or k % 2 == 0:
            raise BenchArgumentError(f"--{name} must be a positive odd kernel size, got {k}")
    if not (args.ratio > 0):
        raise BenchArgumentError(f"--ratio must be > 0, got {args.ratio}")

    workloads = []
    for text in args.shape:
        N, C, H, W = _parse_shape(text)
        gc = _gc(C, args.ratio, f"--shape {text}")
        name = f"{N}x{C}x{H}x{W}-gc{gc}-k{args.square}/{args.band}"
        if args.dilation > 1:
            name += f"-d{args.dilation}"
        workloads.append(Workload(name, "", "", N, C, H, W, gc, args.square, args.band, args.dilation))
    preset = args.preset if args.preset is not None else (None if args.shape else "tiny")
    if preset is not None:
        chans, sizes, sq, band, ratio = PRESETS[preset]
        for i, (C, HW) in enumerate(zip(chans, sizes), 1):
            gc = _gc(C, ratio, f"--preset {preset}")
            workloads.append(Workload(f"{preset}-s{i} {args.batch}x{C}x{HW}x{HW}", preset, f"s{i}",
                                      args.batch, C, HW, HW, gc, sq, band, 1))

    dtypes = _csv_list(args.dtype or ("fp32" if device == "cpu" else "fp32,bf16"), DTYPES, "dtype")
    layouts = _csv_list(args.layout, LAYOUTS, "layout")
    modes = _csv_list(args.mode, MODES, "mode")
    if args.backends is None:
        names = default_backends(device)
    else:
        names = _csv_list(args.backends, BENCH_BACKENDS, "backend")
        for n in names:
            why = backend_unavailable_reason(n, device)
            if why is not None:
                raise BenchArgumentError(f"backend {n!r} is not available on {device} here: {why}")
    # the eager reference first, so that speedups can be filled in as rows arrive
    names.sort(key=lambda n: n != "reference")
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise BenchArgumentError("--plot needs matplotlib, which is not installed "
                                     "(pip install matplotlib, or pip install 'inception-dwconv[plot]')")
    return device, workloads, dtypes, layouts, modes, names


# ----------------------------------------------------------------------------- environment

def git_commit() -> str:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=os.path.dirname(os.path.abspath(__file__)),
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    out = r.stdout.strip()
    return out if r.returncode == 0 and out else "unknown"


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _load_average():
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def environment(device: str) -> Dict[str, object]:
    try:
        import triton
        triton_version = triton.__version__
    except Exception:  # noqa: BLE001 - absent or broken: just not reported
        triton_version = ""
    return {
        "device": device,
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "load_avg_1m": _load_average(),
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda": torch.version.cuda or "",
        "git_commit": git_commit(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------- inputs, functions

def make_inputs(wl: Workload, dtype, layout: str, device: str, seed: int):
    # drawn on the device itself: at batch 128 a CPU fp64 draw took seconds per workload on the GPU
    # machine (the same seed gives other numbers on CPU and GPU; each is reproducible)
    g = torch.Generator(device=device).manual_seed(seed)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    shape = (wl.N, wl.C, wl.H, wl.W)
    x = torch.randn(shape, generator=g, device=device, dtype=torch.float32).to(dtype)
    x = x.contiguous(memory_format=fmt)
    grad_out = torch.randn(shape, generator=g, device=device, dtype=torch.float32).to(dtype)
    grad_out = grad_out.contiguous(memory_format=fmt)
    params = []
    for kh, kw in ((wl.square, wl.square), (1, wl.band), (wl.band, 1)):
        bound = 1.0 / math.sqrt(kh * kw)  # nn.Conv2d's default init scale for a depthwise conv
        params.append((torch.rand(wl.gc, 1, kh, kw, generator=g, device=device, dtype=torch.float64) * 2 - 1) * bound)
        params.append((torch.rand(wl.gc, generator=g, device=device, dtype=torch.float64) * 2 - 1) * bound)
    params = [q.to(dtype) for q in params]
    return x, params, grad_out


# Under the amp-* dtypes, each backend with one-pass autocast kernels gets a second row, "<name>"
# plus this suffix, timed with that route switched off (ops.AUTOCAST_ENV_VAR): what it replaces.
COMPOSED = "-composed"


def composed_variants(names: List[str], dtype_name: str) -> List[str]:
    low = AUTOCAST.get(dtype_name)
    if low is None:
        return []
    return [n + COMPOSED for n in names if n in _backends.BACKENDS and has_autocast_kernels(n, low)]


@contextlib.contextmanager
def _autocast_composed(on: bool):
    previous = os.environ.get(AUTOCAST_ENV_VAR)
    if on:
        os.environ[AUTOCAST_ENV_VAR] = "compose"
    try:
        yield
    finally:
        if on:
            if previous is None:
                del os.environ[AUTOCAST_ENV_VAR]
            else:
                os.environ[AUTOCAST_ENV_VAR] = previous


def make_function(name: str, dilation: int, autocast: Optional[torch.dtype] = None) -> Callable:
    """f(x, params) -> y for a benchmark backend name; autocast: called under torch.autocast to
    that dtype (on x's device type); a COMPOSED name with the one-pass autocast route off."""
    if autocast is not None:
        composed = name.endswith(COMPOSED)
        plain = make_function(name[:-len(COMPOSED)] if composed else name, dilation)

        def under_autocast(x, params):
            with torch.autocast(x.device.type, dtype=autocast), _autocast_composed(composed):
                return plain(x, params)
        return under_autocast
    if name.startswith("reference"):
        def ref(x, w_hw, b_hw, w_w, b_w, w_h, b_h):
            return inception_dwconv_reference(x, w_hw, b_hw, w_w, b_w, w_h, b_h, dilation)
        if name == "reference-compiled":
            ref = torch.compile(ref, dynamic=False)
        elif name == "reference-max-autotune":
            ref = torch.compile(ref, mode="max-autotune", dynamic=False)
        return lambda x, params: ref(x, *params)
    return lambda x, params: inception_dwconv(x, *params, dilation=dilation, backend=name)


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    a = actual.detach().double()
    e = expected.detach().double()
    if a.shape != e.shape:
        return float("inf")
    if not torch.isfinite(a).all():
        return float("inf")
    return float((a - e).norm() / e.norm().clamp_min(1e-30))


def fp64_reference(x, params, grad_out, dilation, with_grad: bool):
    x64 = x.detach().double().requires_grad_(with_grad)
    p64 = [q.detach().double().requires_grad_(with_grad) for q in params]
    if not with_grad:
        with torch.no_grad():
            return inception_dwconv_reference(x64, *p64, dilation), None
    y = inception_dwconv_reference(x64, *p64, dilation)
    grads = torch.autograd.grad(y, [x64] + p64, grad_out.double())
    return y.detach(), [g.detach() for g in grads]


GRAD_NAMES = ("grad_x", "grad_w_hw", "grad_b_hw", "grad_w_w", "grad_b_w", "grad_w_h", "grad_b_h")


def check_backend(fn, x, params, grad_out, ref_y, ref_grads, tol):
    """Returns (fwd_error, bwd_error, max_rel_err): error strings are None when within tol.
    bwd_error is None too when ref_grads is None (no backward asked for)."""
    worst = 0.0
    with torch.no_grad():
        y = fn(x, params)
    e = rel_err(y, ref_y)
    worst = max(worst, e)
    if not e <= tol:
        return f"output rel err {e:.2e} > {tol:.0e}", None, worst
    if ref_grads is None:
        return None, None, worst
    xg = x.detach().clone().requires_grad_(True)
    pg = [q.detach().clone().requires_grad_(True) for q in params]
    y = fn(xg, pg)
    e = rel_err(y, ref_y)
    worst = max(worst, e)
    if not e <= tol:
        return None, f"output (autograd) rel err {e:.2e} > {tol:.0e}", worst
    grads = torch.autograd.grad(y, [xg] + pg, grad_out)
    for gname, gv, gr in zip(GRAD_NAMES, grads, ref_grads):
        e = rel_err(gv, gr)
        worst = max(worst, e)
        if not e <= tol:
            return None, f"{gname} rel err {e:.2e} > {tol:.0e}", worst
    return None, None, worst


# ----------------------------------------------------------------------------- timers

def time_cpu(fn, warmup: int, repeat: int, max_seconds: float):
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    inner = max(1, min(1000, int(2e-3 / max(once, 1e-9))))  # samples of at least ~2 ms
    samples = []
    start = time.perf_counter()
    for i in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner * 1e3)
        if i >= 2 and time.perf_counter() - start > max_seconds:
            break
    samples.sort()

    def q(p):  # linear interpolation, as numpy's default
        pos = p * (len(samples) - 1)
        lo, hi = int(math.floor(pos)), int(math.ceil(pos))
        return samples[lo] + (samples[hi] - samples[lo]) * (pos - lo)

    return [q(p) for p in QUANTILES], "perf_counter"


def time_cuda(fn, args, use_graph: bool):
    import triton.testing
    if use_graph:
        try:
            return list(triton.testing.do_bench_cudagraph(fn, rep=args.rep_ms, quantiles=QUANTILES)), \
                "do_bench_cudagraph"
        except Exception as exc:  # noqa: BLE001 - capture failed: fall back to plain do_bench
            torch.cuda.synchronize()
            note = f"do_bench (graph failed: {type(exc).__name__})"
    else:
        note = "do_bench"
    res = triton.testing.do_bench(fn, warmup=args.warmup_ms, rep=args.rep_ms, quantiles=QUANTILES)
    return list(res), note


# ----------------------------------------------------------------------------- the sweep

def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}"[:300]


class Runner:
    def __init__(self, args, device, env):
        self.args = args
        self.device = device
        self.env = env
        self.rows: List[Dict[str, object]] = []
        self.done = 0
        self.total = 0

    def progress(self, text: str):
        if not self.args.quiet:
            print(f"[{self.done}/{self.total}] {text}", file=sys.stderr, flush=True)

    def timed(self, fn, use_graph=False):
        if self.device == "cuda":
            return time_cuda(fn, self.args, use_graph)
        return time_cpu(fn, self.args.warmup, self.args.repeat, self.args.max_seconds)

    def add_row(self, wl, backend, mode, dtype_name, layout, quant=None, timer="", floor_ms=None,
                nbytes=None, status="ok", error="", max_rel_err=None, ref_ms=None):
        med, p20, p80 = quant if quant is not None else (None, None, None)
        row = {
            "workload": wl.name, "preset": wl.preset, "stage": wl.stage, "N": wl.N, "C": wl.C, "H": wl.H,
            "W": wl.W, "gc": wl.gc, "square": wl.square, "band": wl.band, "dilation": wl.dilation,
            "backend": backend, "mode": mode, "dtype": dtype_name, "layout": layout,
            "median_ms": med, "p20_ms": p20, "p80_ms": p80,
            "gbps": (nbytes / (med * 1e-3) / 1e9) if med and nbytes else None,
            "floor_ms": floor_ms,
            "pct_of_floor": (100.0 * floor_ms / med) if med and floor_ms else None,
            "speedup_vs_eager": (ref_ms / med) if med and ref_ms else None,
            "status": status, "error": error, "max_rel_err": max_rel_err, "timer": timer,
        }
        for k in ("median_ms", "p20_ms", "p80_ms", "gbps", "floor_ms", "pct_of_floor", "speedup_vs_eager",
                  "max_rel_err"):
            if isinstance(row[k], float) and math.isfinite(row[k]):
                row[k] = float(f"{row[k]:.5g}")
        row.update(self.env)
        self.rows.append(row)
        self.done += 1
        if status == "ok":
            self.progress(f"{wl.name} {backend} {mode} {dtype_name} {layout}: {med:.4f} ms")
        else:
            self.progress(f"{wl.name} {backend} {mode} {dtype_name} {layout}: {status} {error}")
        return row

    def run(self, workloads, dtypes, layouts, modes, names):
        args = self.args
        self.total = len(workloads) * len(layouts) * sum(
            1 + len(modes) * len(names + composed_variants(names, d)) for d in dtypes)
        need_grad = any(m != "fwd" for m in modes)
        for wl, dtype_name, layout in itertools.product(workloads, dtypes, layouts):
            dtype = DTYPES[dtype_name]
            esize = torch.empty((), dtype=dtype).element_size()
            fwd_bytes = 2 * wl.numel() * esize
            bwd_bytes = (2 * wl.C + 3 * wl.gc) * wl.N * wl.H * wl.W * esize
            mode_bytes = {"fwd": fwd_bytes, "bwd": bwd_bytes, "fwdbwd": fwd_bytes + bwd_bytes}
            try:
                x, params, grad_out = make_inputs(wl, dtype, layout, self.device, args.seed)
                ref_y, ref_grads = fp64_reference(x, params, grad_out, wl.dilation, need_grad)
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory: report, go on
                for backend, mode in [("copy", "fwd")] + list(itertools.product(names, modes)):
                    self.add_row(wl, backend, mode, dtype_name, layout, status="error", error=_short(exc))
                continue
            # rotation: enough copies that the rotated set is >= rotate_mb
            per_copy = x.nbytes * 4
            n_copies = 1
            if args.rotate_mb > 0 and per_copy < args.rotate_mb * 2**20:
                n_copies = max(2, min(32, math.ceil(args.rotate_mb * 2**20 / per_copy)))
            xs = [x] + [x.clone() for _ in range(n_copies - 1)]
            gs = [grad_out] + [grad_out.clone() for _ in range(n_copies - 1)]
            small = wl.H * wl.W <= 14 * 14
            graph_for = {m: (args.cuda_graphs == "on" or (args.cuda_graphs == "auto" and small and m == "fwd"))
                         for m in modes}

            # --- the floor: a device copy of x
            counter = itertools.count()
            try:
                quant, timer = self.timed(lambda: xs[next(counter) % n_copies].clone(), graph_for.get("fwd", False))
                copy_ms = quant[0]
                copy_bw = fwd_bytes / (copy_ms * 1e-3)
                floors = {"fwd": copy_ms, "bwd": bwd_bytes / copy_bw * 1e3}
                floors["fwdbwd"] = floors["fwd"] + floors["bwd"]
                self.add_row(wl, "copy", "fwd", dtype_name, layout, quant, timer, copy_ms, fwd_bytes)
            except Exception as exc:  # noqa: BLE001
                floors = {}
                self.add_row(wl, "copy", "fwd", dtype_name, layout, status="error", error=_short(exc))

            if any(n.startswith("reference-") for n in names):
                torch._dynamo.reset()  # fresh compile per workload; no recompile limit, no dynamic shapes
            ref_times: Dict[str, float] = {}
            for name in names + composed_variants(names, dtype_name):
                tol = TOLERANCE[AUTOCAST.get(dtype_name, dtype)]
                if name.startswith("reference"):
                    tol = max(tol, REFERENCE_TOLERANCE.get(dtype, tol))
                try:
                    fn = make_function(name, wl.dilation, AUTOCAST.get(dtype_name))
                    fwd_err, bwd_err, worst = check_backend(fn, x, params, grad_out, ref_y, ref_grads, tol)
                    check_exc = None
                except Exception as exc:  # noqa: BLE001
                    check_exc, worst = exc, None
                for mode in modes:
                    common = dict(floor_ms=floors.get(mode), nbytes=mode_bytes[mode], max_rel_err=worst)
                    if check_exc is not None:
                        self.add_row(wl, name, mode, dtype_name, layout, status="error",
                                     error="check: " + _short(check_exc), **common)
                        continue
                    err = fwd_err or (bwd_err if mode != "fwd" else None)
                    if err:
                        self.add_row(wl, name, mode, dtype_name, layout, status="WRONG", error=err, **common)
                        continue
                    try:
                        bench_fn = self._bench_fn(fn, mode, xs, params, gs)
                        quant, timer = self.timed(bench_fn, graph_for[mode])
                    except Exception as exc:  # noqa: BLE001
                        self.add_row(wl, name, mode, dtype_name, layout, status="error", error=_short(exc), **common)
                        continue
                    if name == "reference":
                        ref_times[mode] = quant[0]
                    self.add_row(wl, name, mode, dtype_name, layout, quant, timer,
                                 ref_ms=ref_times.get(mode), **common)
            del xs, gs
        return self.rows

    @staticmethod
    def _bench_fn(fn, mode, xs, params, gs):
        n = len(xs)
        counter = itertools.count()
        if mode == "fwd":
            def run_fwd():
                with torch.no_grad():
                    return fn(xs[next(counter) % n], params)
            return run_fwd
        pg = [q.detach().clone().requires_grad_(True) for q in params]
        xg = [x.detach().clone().requires_grad_(True) for x in xs]
        if mode == "fwdbwd":
            def run_fwdbwd():
                i = next(counter) % n
                y = fn(xg[i], pg)
                return torch.autograd.grad(y, [xg[i]] + pg, gs[i])
            return run_fwdbwd
        # bwd: the graphs are built once, outside the timed region
        ys = [fn(xi, pg) for xi in xg]

        def run_bwd():
            i = next(counter) % n
            return torch.autograd.grad(ys[i], [xg[i]] + pg, gs[i], retain_graph=True)
        return run_bwd


# ----------------------------------------------------------------------------- output

def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(rows, out=None):
    out = sys.stdout if out is None else out
    headers = ["workload", "backend", "mode", "dtype", "layout", "median ms", "GB/s", "% floor",
               "x eager", "status"]
    body = []
    for r in rows:
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['error']}"
        body.append([r["workload"], r["backend"], r["mode"], r["dtype"], r["layout"],
                     _fmt(r["median_ms"], ".4f"), _fmt(r["gbps"], ".1f"), _fmt(r["pct_of_floor"], ".1f"),
                     _fmt(r["speedup_vs_eager"], ".2f"), status])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(headers)]
    numeric = {5, 6, 7, 8}

    def line(cells):
        return "  ".join(c.rjust(widths[i]) if i in numeric else c.ljust(widths[i])
                         for i, c in enumerate(cells)).rstrip()
    print(line(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for b in body:
        print(line(b), file=out)


def _ensure_parent(path):
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)


def write_csv(rows, path):
    _ensure_parent(path)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # strict JSON has no inf/nan
    return v


def write_json(rows, path, meta):
    _ensure_parent(path)
    with open(path, "w") as f:
        json.dump({"meta": meta, "columns": COLUMNS,
                   "rows": [{k: _json_value(r.get(k)) for k in COLUMNS} for r in rows]},
                  f, indent=1, allow_nan=False, default=str)
        f.write("\n")


def write_plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok" and r["speedup_vs_eager"] is not None
          and r["backend"] not in ("reference", "copy")]
    modes = [m for m in MODES if any(r["mode"] == m for r in ok)] or ["fwd"]
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    series = list(dict.fromkeys((r["backend"], r["dtype"], r["layout"]) for r in ok))
    fig, axes = plt.subplots(len(modes), 1, figsize=(max(6, 1.6 * len(workloads) + 2), 3.2 * len(modes)),
                             squeeze=False)
    width = 0.8 / max(1, len(series))
    for ax, mode in zip(axes[:, 0], modes):
        for j, s in enumerate(series):
            vals = []
            for wname in workloads:
                match = [r["speedup_vs_eager"] for r in ok if r["mode"] == mode and r["workload"] == wname
                         and (r["backend"], r["dtype"], r["layout"]) == s]
                vals.append(match[0] if match else 0.0)
            ax.bar([i + (j - (len(series) - 1) / 2) * width for i in range(len(workloads))], vals, width,
                   label=" ".join(s))
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(workloads)))
        ax.set_xticklabels(workloads, fontsize=8)
        ax.set_ylabel("speedup over eager")
        ax.set_title(mode)
        if series:
            ax.legend(fontsize=7)
    fig.tight_layout()
    _ensure_parent(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- entry point

def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt

def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        device, workloads, dtypes, layouts, modes, names = resolve_args(args)
    except BenchArgumentError as exc:
        parser.error(str(exc))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    env = environment(device)
    print(f"# device: {device} ({env['device_name']}), threads: {env['threads']}, torch {env['torch']}, "
          f"triton {env['triton'] or '-'}, cuda {env['cuda'] or '-'}, commit {env['git_commit']}")
    print(f"# timer: {'triton.testing.do_bench' if device == 'cuda' else 'time.perf_counter'}"
          f"{' (CUDA graphs: ' + args.cuda_graphs + ')' if device == 'cuda' else ''}; "
          f"backends: {', '.join(names)}; floor: copy of x (fwd), bytes / copy bandwidth (bwd); "
          f"bwd = autograd.grad of a prebuilt graph (retain_graph)")
    load = env["load_avg_1m"]
    if device == "cpu" and load is not None and load > (os.cpu_count() or 1):
        print(f"# warning: load average {load} exceeds the {os.cpu_count()} CPUs: other processes compete "
              f"for the cores and CPU timings will be noisy", file=sys.stderr)
    runner = Runner(args, device, env)
    # A time-boxed run (timeout sends SIGTERM) or Ctrl-C still writes the rows measured so far.
    interrupted = False
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    try:
        rows = runner.run(workloads, dtypes, layouts, modes, names)
    except KeyboardInterrupt:
        rows, interrupted = runner.rows, True
        print(f"# interrupted: {len(rows)} of {runner.total} rows measured; writing those", file=sys.stderr)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print_table(rows)
    meta = dict(env, argv=list(sys.argv[1:] if argv is None else argv), backends=names,
                quantiles=QUANTILES, cuda_graphs=args.cuda_graphs if device == "cuda" else "n/a",
                bwd_mode="torch.autograd.grad(y, [x, *params], grad_out, retain_graph=True) on a prebuilt graph")
    if args.csv:
        write_csv(rows, args.csv)
        print(f"# wrote {args.csv}")
    if args.json:
        write_json(rows, args.json, meta)
        print(f"# wrote {args.json}")
    if args.plot:
        write_plot(rows, args.plot)
        print(f"# wrote {args.plot}")
    if interrupted:
        return 130
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        print(f"# {len(bad)} row(s) not ok (WRONG or error)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
