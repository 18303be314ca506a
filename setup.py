"""Builds inception_dwconv._C: the C++ CPU kernels always, the CUDA kernels when a CUDA toolkit and
a CUDA build of torch are present.

Environment:
  INCEPTION_DWCONV_CUDA=1   require the CUDA part (fail if it cannot be built)
  INCEPTION_DWCONV_CUDA=0   skip the CUDA part
  (unset)                   build it when nvcc is found and torch.version.cuda is set
  TORCH_CUDA_ARCH_LIST      GPU architectures (default here: "8.0;9.0")
  MAX_JOBS                  parallel compile jobs
  INCEPTION_DWCONV_OPENMP=0 build the CPU kernels without OpenMP (they then run on one thread);
                            by default OpenMP is used when the compiler accepts -fopenmp
  INCEPTION_DWCONV_LIBSTDCXX_CHECK=0
                            skip the link probe that keeps a static libstdc++ out of the
                            extension (libstdcxx_link_args below)
"""
import glob
import os
import shutil
import sys
import tempfile

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
_OPENMP_PROBE = """
#include <omp.h>
int threads() {
  int n = 0;
#pragma omp parallel
  {
#pragma omp atomic
    n += 1;
  }
  return n + omp_get_max_threads();
}
"""


def _new_compiler():
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler
    cc = new_compiler()
    customize_compiler(cc)
    return cc


def _build_probe(cc, tmp, name, source, compile_args, link_args, target_lang=None) -> str:
    """Compiles `source` and links it into the shared object tmp/name.so, which it returns; raises
    on a compile or link error."""
    src = os.path.join(tmp, name + ".cpp")
    with open(src, "w") as f:
        f.write(source)
    so = os.path.join(tmp, name + ".so")
    objs = cc.compile([src], output_dir=os.path.join(tmp, name), extra_postargs=list(compile_args))
    cc.link_shared_object(objs, so, target_lang=target_lang, extra_postargs=list(link_args))
    return so


def compiler_accepts(flags, source="int f() { return 0; }\n") -> bool:
    """Whether the C++ compiler setuptools will use compiles and links `source` with `flags`
    (Apple clang, for one, has no -fopenmp)."""
    try:
        cc = _new_compiler()
    except Exception:  # noqa: BLE001 - no way to ask: assume yes, as before the probe existed
        return True
    with tempfile.TemporaryDirectory() as tmp:
        try:
            _build_probe(cc, tmp, "probe", source, flags, flags)
        except Exception:  # noqa: BLE001 - any compile or link failure means no
            return False
    return True


def openmp_flags():
    if os.environ.get("INCEPTION_DWCONV_OPENMP", "").strip() == "0":
        return []
    flags = ["/openmp"] if os.name == "nt" else ["-fopenmp"]
    if os.name == "nt" or compiler_accepts(flags, _OPENMP_PROBE):
        return flags
    print("inception_dwconv: the C++ compiler does not build OpenMP code (-fopenmp); the CPU kernels "
          "are built without it and will run on one thread. torch.ops.inception_dwconv.cpu_parallel() "
          "says which build you have.", file=sys.stderr)
    return []


_LIBSTDCXX_PROBE = """
#include <sstream>
#include <string>
extern "C" int probe_format(long v) {
  std::ostringstream ss;
  ss << v;
  return static_cast<int>(ss.str().size());
}
"""
_OSTREAM_LONG = "_ZNSo9_M_insertIlEERSoT_"  # std::ostream::_M_insert<long>, defined in libstdc++


def _own_libstdcxx(cc, tmp, name, link_args):
    """Links the probe as the extension will be linked (a C++ shared object) and says whether it
    carries its own copy of libstdc++ (True), uses the process's (False), or cannot tell (None)."""
    import ctypes
    so = _build_probe(cc, tmp, name, _LIBSTDCXX_PROBE, ["-fPIC"], link_args, target_lang="c++")
    try:  # a build on another C++ library (libc++) has no such symbol: nothing to tell
        a = ctypes.cast(getattr(ctypes.CDLL(so), _OSTREAM_LONG), ctypes.c_void_p).value
        b = ctypes.cast(getattr(ctypes.CDLL("libstdc++.so.6"), _OSTREAM_LONG), ctypes.c_void_p).value
    except (AttributeError, OSError):
        return None
    return None if not (a and b) else a != b


def libstdcxx_link_args():
    """Link arguments that keep the extension on the libstdc++ that torch's process loads.

    A compiler that finds no shared libstdc++ (seen on a GPU image whose g++ wrapper had only
    libstdc++.a in its library path) links a private static copy into the extension. Both copies
    then serve one process, and the first std::ostream that formats a number in the extension -
    the message of a failed argument check - crashes (its locale facets belong to the other
    copy). This links a probe the way the extension is linked and, if the probe carries its own
    copy, names the process's shared libstdc++ on the link line, which then provides those
    symbols. Linux only; anywhere else, or if the probe cannot be built, nothing is added."""
    if not sys.platform.startswith("linux") or os.environ.get("INCEPTION_DWCONV_LIBSTDCXX_CHECK") == "0":
        return []
    try:
        with open("/proc/self/maps") as f:
            loaded = sorted({line.split()[-1] for line in f if "/libstdc++.so" in line})
        with tempfile.TemporaryDirectory() as tmp:
            cc = _new_compiler()
            if not _own_libstdcxx(cc, tmp, "plain", []):
                return []
            if loaded and _own_libstdcxx(cc, tmp, "fixed", [loaded[0]]) is False:
                print(f"inception_dwconv: the C++ compiler links libstdc++ statically; linking "
                      f"{loaded[0]} instead (the libstdc++ this Python process uses)", file=sys.stderr)
                return [loaded[0]]
    except Exception as exc:  # noqa: BLE001 - the probe is a safeguard, not a requirement
        print(f"inception_dwconv: could not check how libstdc++ is linked ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return []
    print("inception_dwconv: WARNING: the C++ compiler links a private static copy of libstdc++ into "
          "the extension and no shared libstdc++ could replace it; error messages from the "
          "extension may crash the process. Set CXX to a compiler with a shared libstdc++.",
          file=sys.stderr)
    return []


openmp = openmp_flags()
# The C++ standard is the one BuildExtension picks for this torch. fp-contract=fast lets the
# compiler fuse multiply-adds (ISO C++ mode turns that off by default); the kernels' short copy
# loops must stay loops, not memcpy calls (csrc/cpu/kernels.h, copy_run; the flag is GCC's: a
# compiler that does not know it, clang for one, is not given it).
cxx_flags = ["-O3", "-ffp-contract=fast", *openmp]
if compiler_accepts(["-fno-tree-loop-distribute-patterns", "-Werror"]):
    cxx_flags.append("-fno-tree-loop-distribute-patterns")
link_flags = list(openmp) + libstdcxx_link_args()
# INCEPTION_DWCONV_SANITIZE=address: the C++ sources built with AddressSanitizer, for
# scripts/asan_cpu.sh (the process that loads the library must preload libasan).
if os.environ.get("INCEPTION_DWCONV_SANITIZE", "").strip() == "address":
    cxx_flags += ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"]
    link_flags += ["-fsanitize=address"]

if want_cuda() and cuda_sources:
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    ext = CUDAExtension(
        "inception_dwconv._C",
        cpu_sources + cuda_sources,
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--use_fast_math", "-lineinfo"]},
        extra_link_args=link_flags,
    )
else:
    ext = CppExtension("inception_dwconv._C", cpu_sources, extra_compile_args=cxx_flags, extra_link_args=link_flags)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExtension})
