"""Builds inception_dwconv._C: the C++ CPU kernels always, the CUDA kernels when a CUDA toolkit and
a CUDA build of torch are present.

Environment:
  INCEPTION_DWCONV_CUDA=1   require the CUDA part (fail if it cannot be built)
  INCEPTION_DWCONV_CUDA=0   skip the CUDA part
  (unset)                   build it when nvcc is found and torch.version.cuda is set
  TORCH_CUDA_ARCH_LIST      GPU architectures (default here: "8.0;9.0")
  MAX_JOBS                  parallel compile jobs
"""
import glob
import os
import shutil

from setuptools import setup


def find_cuda_home():
    """torch guesses CUDA_HOME from the nvcc on PATH; a wrapper script there (as on this image,
    /usr/local/bin/nvcc -> exec /usr/local/cuda-13.0/bin/nvcc) makes it guess /usr/local, where
    libcudart is missing. Prefer a directory that really holds a toolkit."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return None
    candidates = ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    for home in candidates:
        if os.path.isfile(os.path.join(home, "bin", "nvcc")) and glob.glob(os.path.join(home, "lib*", "libcudart.so*")):
            return home
    return None


_cuda_home = find_cuda_home()
if _cuda_home:
    os.environ["CUDA_HOME"] = _cuda_home

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension, CUDA_HOME  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def want_cuda() -> bool:
    flag = os.environ.get("INCEPTION_DWCONV_CUDA", "").strip()
    have = torch.version.cuda is not None and (CUDA_HOME is not None or shutil.which("nvcc"))
    if flag == "0":
        return False
    if flag == "1":
        if not have:
            raise RuntimeError("INCEPTION_DWCONV_CUDA=1 but no CUDA toolkit (nvcc) or CUDA build of torch was found")
        return True
    return bool(have)


def rel(paths):
    return sorted(os.path.relpath(p, HERE) for p in paths)


cpu_sources = rel(glob.glob(os.path.join(HERE, "csrc", "*.cpp")) + glob.glob(os.path.join(HERE, "csrc", "cpu", "*.cpp")))
cuda_sources = rel(glob.glob(os.path.join(HERE, "csrc", "cuda", "*.cu")))
openmp = ["-fopenmp"] if os.name != "nt" else ["/openmp"]
# The C++ standard is the one BuildExtension picks for this torch. fp-contract=fast lets the
# compiler fuse multiply-adds (ISO C++ mode turns that off by default); the kernels' short copy
# loops must stay loops, not memcpy calls (csrc/cpu/kernels.h, copy_run).
cxx_flags = ["-O3", "-ffp-contract=fast", "-fno-tree-loop-distribute-patterns", *openmp]

if want_cuda() and cuda_sources:
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    ext = CUDAExtension(
        "inception_dwconv._C",
        cpu_sources + cuda_sources,
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--use_fast_math", "-lineinfo"]},
        extra_link_args=openmp,
    )
else:
    ext = CppExtension("inception_dwconv._C", cpu_sources, extra_compile_args=cxx_flags, extra_link_args=openmp)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExtension})
