"""End-to-end InceptionNeXt-T throughput: training step and inference, images/s.

Rows: InceptionNeXt-T with each available fused mixer backend, with the "reference" backend (the
eager math behind the op interface), with a plain eager split/conv/cat mixer (what timm and the
released code run), and timm's ConvNeXt-T (when timm is installed) as the paper's baseline.
Each row is measured per dtype (fp32 -- TF32 matmuls/convs on GPU -- or AMP bf16), layout (NCHW or
channels_last) and compile mode (eager or torch.compile).

    # GPU (defaults: batch 128, 224x224, fp32 + bf16, both layouts, eager)
    python benchmarks/bench_models.py --device cuda --compile both
    # CPU smoke run (defaults: batch 8, 128x128, fp32, both layouts, 3 timed iterations)
    python benchmarks/bench_models.py --device cpu

Results go to --out (benchmarks/results/) as models-<device>-<timestamp>.{csv,json} plus a
models-<device>-latest copy, with the device name, torch / triton / CUDA versions and git commit.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import inception_dwconv  # noqa: E402
from inception_dwconv import InceptionDWConv2d  # noqa: E402
from inception_dwconv.models import inception_next_tiny  # noqa: E402
from inception_dwconv.reference import inception_dwconv_reference  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class EagerMixer(InceptionDWConv2d):
    """Same parameters, plain autograd through split / three depthwise convs / cat (the released
    module's computation), bypassing the op interface."""

    def forward(self, x):
        return inception_dwconv_reference(x, self.dwconv_hw.weight, self.dwconv_hw.bias, self.dwconv_w.weight,
                                          self.dwconv_w.bias, self.dwconv_h.weight, self.dwconv_h.bias,
                                          dilation=self.dilation)


def eager_mixer(dim, dilation=1, device=None, dtype=None):
    return EagerMixer(dim, 3, 11, 0.125, dilation=dilation, device=device, dtype=dtype)


def model_specs(device_type, backends_filter=None):
    """(model label, mixer label, factory) for every row."""
    fused = [b for b in inception_dwconv.available_backends(device_type) if b != "reference"]
    if device_type == "cpu":
        fused = [b for b in fused if b != "triton"]  # the Triton interpreter is a testing aid
    specs = [("InceptionNeXt-T", b, lambda b=b: inception_next_tiny(mixer_backend=b)) for b in fused]
    specs.append(("InceptionNeXt-T", "reference", lambda: inception_next_tiny(mixer_backend="reference")))
    specs.append(("InceptionNeXt-T", "eager", lambda: inception_next_tiny(token_mixer=eager_mixer)))
    try:
        import timm
        specs.append(("ConvNeXt-T", "-", lambda: timm.create_model("convnext_tiny", pretrained=False)))
    except ImportError:
        pass
    if backends_filter:
        keep = set(backends_filter)
        specs = [s for s in specs if s[1] in keep or s[0] == "ConvNeXt-T"]
    return specs


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, warmup, iters):
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / iters


def measure(factory, device, dtype_name, layout, compile_mode, batch, size, warmup, iters, optimizer):
    torch.manual_seed(0)
    model = factory().to(device)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (batch,), device=device)
    if optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    net = torch.compile(model) if compile_mode == "compile" else model
    amp = dtype_name == "bf16"

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def train_step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    def infer_step():
        with torch.inference_mode(), autocast():
            net(x)

    model.train()
    t_train = timed(train_step, device, warmup, iters)
    model.eval()
    t_infer = timed(infer_step, device, warmup, iters)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    del model, net, opt
    return batch / t_train, batch / t_infer, peak


def environment(device):
    info = {
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device_type": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "inception_dwconv": inception_dwconv.__version__,
        "available_backends": inception_dwconv.available_backends(),
    }
    try:
        import triton
        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    try:
        import timm
        info["timm"] = timm.__version__
    except ImportError:
        info["timm"] = None
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["tf32"] = True
    else:
        name = platform.processor()
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        name = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        info["device_name"] = name or "cpu"
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                            text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
        info["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        info["git_commit"] = None
    return info


def choose(value, default, allowed=None):
    out = [v.strip() for v in (value or default).split(",") if v.strip()]
    if allowed is not None:
        bad = [v for v in out if v not in allowed]
        if bad:
            raise SystemExit(f"unknown value(s) {bad}; expected from {sorted(allowed)}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (cuda when available)")
    p.add_argument("--batch", type=int, default=None, help="default 128 on GPU, 8 on CPU")
    p.add_argument("--size", type=int, default=None, help="image size; default 224 on GPU, 128 on CPU")
    p.add_argument("--iters", type=int, default=None, help="timed iterations; default 20 on GPU, 3 on CPU")
    p.add_argument("--warmup", type=int, default=None, help="default 5 on GPU (more with compile), 1 on CPU")
    p.add_argument("--dtype", default=None, help="comma list of fp32, bf16 (AMP); default fp32,bf16 on GPU, "
                                                 "fp32 on CPU")
    p.add_argument("--layout", default=None, help="comma list of nchw, channels_last; default both")
    p.add_argument("--compile", nargs="?", const="on", default="off", choices=["off", "on", "both"],
                   help="torch.compile: off (eager), on, or both; bare --compile means on")
    p.add_argument("--backends", default=None, help="comma list of mixer rows to keep (e.g. cuda,triton,eager)")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="results folder ('' to skip)")
    args = p.parse_args(argv)

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device not in ("cuda", "cpu") and not args.device.startswith("cuda:"):
        p.error(f"--device must be cuda, cpu or auto, got {args.device!r}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA GPU is usable here (torch.cuda.is_available() is False)")
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    batch = args.batch or (128 if gpu else 8)
    size = args.size or (224 if gpu else 128)
    iters = args.iters or (20 if gpu else 3)
    dtypes = choose(args.dtype, "fp32,bf16" if gpu else "fp32", DTYPES)
    layouts = choose(args.layout, "nchw,channels_last", {"nchw", "channels_last"})
    compiles = {"off": ["eager"], "on": ["compile"], "both": ["eager", "compile"]}[args.compile]
    backends_filter = choose(args.backends, "") if args.backends else None
    specs = model_specs(device.type, backends_filter)

    env = environment(device)
    print(f"# {env['device_name']} | torch {env['torch']} | CUDA {env['cuda']} | triton {env['triton']} | "
          f"timm {env['timm']} | commit {env['git_commit']}")
    print(f"# batch {batch}, {size}x{size}, {iters} timed iterations, optimizer {args.optimizer}, "
          f"threads {env['threads']}")
    if env["timm"] is None:
        print("# timm not installed: no ConvNeXt-T baseline, ratio column empty")

    rows = []
    for compile_mode in compiles:
        warmup = args.warmup if args.warmup is not None else ((10 if compile_mode == "compile" else 5) if gpu else
                                                               (2 if compile_mode == "compile" else 1))
        for dtype_name in dtypes:
            for layout in layouts:
                for model_name, mixer, factory in specs:
                    row = {"model": model_name, "mixer": mixer, "dtype": dtype_name, "layout": layout,
                           "compile": compile_mode, "batch": batch, "size": size}
                    t0 = time.perf_counter()
                    try:
                        train, infer, peak = measure(factory, device, dtype_name, layout, compile_mode, batch,
                                                     size, warmup, iters, args.optimizer)
                        row.update(train_img_s=round(train, 2), infer_img_s=round(infer, 2),
                                   peak_mem_gib=None if peak is None else round(peak, 2), error=None)
                    except Exception as exc:  # keep going: one failing row must not lose the others
                        row.update(train_img_s=None, infer_img_s=None, peak_mem_gib=None,
                                   error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                        traceback.print_exc(limit=2)
                    finally:
                        if gpu:
                            torch.cuda.empty_cache()
                            torch.cuda.reset_peak_memory_stats(device)
                    row["seconds"] = round(time.perf_counter() - t0, 1)
                    rows.append(row)
                    print(f"  {model_name:16s} {mixer:10s} {dtype_name:5s} {layout:13s} {compile_mode:8s} "
                          f"train {row['train_img_s']}  infer {row['infer_img_s']}  ({row['seconds']}s)"
                          + (f"  {row['error']}" if row["error"] else ""), flush=True)

    # ratios vs ConvNeXt-T in the same (dtype, layout, compile) setting
    base = {(r["dtype"], r["layout"], r["compile"]): r for r in rows
            if r["model"] == "ConvNeXt-T" and r["train_img_s"]}
    for r in rows:
        b = base.get((r["dtype"], r["layout"], r["compile"]))
        ok = b is not None and r["train_img_s"]
        r["train_vs_convnext"] = round(r["train_img_s"] / b["train_img_s"], 3) if ok else None
        r["infer_vs_convnext"] = round(r["infer_img_s"] / b["infer_img_s"], 3) if ok else None

    header = ["model", "mixer", "dtype", "layout", "compile", "train img/s", "infer img/s",
              "train vs ConvNeXt-T", "infer vs ConvNeXt-T"]
    table = [[r["model"], r["mixer"], r["dtype"], r["layout"], r["compile"],
              "-" if r["train_img_s"] is None else f"{r['train_img_s']:.1f}",
              "-" if r["infer_img_s"] is None else f"{r['infer_img_s']:.1f}",
              "-" if r["train_vs_convnext"] is None else f"{r['train_vs_convnext']:.2f}",
              "-" if r["infer_vs_convnext"] is None else f"{r['infer_vs_convnext']:.2f}"] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths)))

    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        meta = {**env, "args": vars(args), "batch": batch, "size": size, "iters": iters}
        for name in (f"models-{device.type}-{stamp}", f"models-{device.type}-latest"):
            with open(out / f"{name}.json", "w") as f:
                json.dump({"environment": meta, "rows": rows}, f, indent=2)
            with open(out / f"{name}.csv", "w", newline="") as f:
                fields = list(rows[0].keys()) + ["device_name", "torch", "triton", "cuda", "git_commit",
                                                 "timestamp"] if rows else []
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                for r in rows:
                    w.writerow({**r, **{k: env.get(k) for k in ("device_name", "torch", "triton", "cuda",
                                                                "git_commit", "timestamp")}})
        print(f"\nwrote {out / f'models-{device.type}-{stamp}'}.{{csv,json}} (and models-{device.type}-latest)")
    return rows


if __name__ == "__main__":
    main()
