"""The main job: benchmark the fused kernels on this machine's device.

    python benchmarks/run.py [extra inception-dwconv-bench options]

With a CUDA device: InceptionNeXt-T stage shapes at batch 128, fp32 and bf16, NCHW and
channels_last, forward and backward, every available GPU backend against the eager reference,
torch.compile(max-autotune) of it and the x.clone() floor -> benchmarks/results/gpu-latest.{csv,json}.
Without one: the CPU benchmark (benchmarks/bench_cpu.py) -> benchmarks/results/cpu-latest.{csv,json}.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import torch  # noqa: E402

from inception_dwconv import available_backends, bench  # noqa: E402

RESULTS = os.path.join(HERE, "results")


def gpu_argv():
    fused = [b for b in ("cuda", "triton") if b in available_backends("cuda")]
    return [
        "--device", "cuda", "--preset", "tiny", "--batch", "128",
        "--dtype", "fp32,bf16", "--layout", "nchw,channels_last", "--mode", "fwd,bwd",
        "--backends", ",".join(["reference", "reference-max-autotune"] + fused),
        "--csv", os.path.join(RESULTS, "gpu-latest.csv"),
        "--json", os.path.join(RESULTS, "gpu-latest.json"),
    ]


def main() -> int:
    os.makedirs(RESULTS, exist_ok=True)
    if torch.cuda.is_available():
        return bench.main(gpu_argv() + sys.argv[1:])
    import bench_cpu
    return bench_cpu.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
