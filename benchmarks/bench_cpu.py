"""The CPU benchmark: the kernel microbenchmark CLI (inception_dwconv.bench) with the CPU defaults.

    python benchmarks/bench_cpu.py [extra CLI options, e.g. --threads 4]

InceptionNeXt-T stage shapes at N=8, fp32, NCHW and channels_last, fwd and fwdbwd, backends
reference (eager) and cpu (the fused C++ kernels, when built), plus the "copy" floor row the CLI
emits for every workload. Writes benchmarks/results/cpu-latest.csv and cpu-latest.json.
Takes well under a minute on an idle 2-core machine (repeat counts are modest on purpose).
Exit status: the CLI's (0 all ok, 1 some row WRONG/error, 2 bad arguments).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

from inception_dwconv import available_backends  # noqa: E402
from inception_dwconv import bench  # noqa: E402

RESULTS = os.path.join(HERE, "results")


def build_argv(results_dir: str = RESULTS):
    backends = ["reference"] + (["cpu"] if "cpu" in available_backends("cpu") else [])
    return [
        "--device", "cpu",
        "--preset", "tiny", "--batch", "8",
        "--dtype", "fp32",
        "--layout", "nchw,channels_last",
        "--mode", "fwd,fwdbwd",
        "--backends", ",".join(backends),
        "--warmup", "5", "--repeat", "30", "--max-seconds", "5",
        "--csv", os.path.join(results_dir, "cpu-latest.csv"),
        "--json", os.path.join(results_dir, "cpu-latest.json"),
    ]


def main(extra=None) -> int:
    argv = build_argv()
    if "cpu" not in argv[argv.index("--backends") + 1].split(","):
        print("bench_cpu: the fused cpu backend is not built here; benchmarking the reference only",
              file=sys.stderr)
    return bench.main(argv + list(sys.argv[1:] if extra is None else extra))


if __name__ == "__main__":
    sys.exit(main())
