#!/usr/bin/env bash
# Compile-only check of the CUDA sources (csrc/cuda/*.cu) with the same flags torch's
# BuildExtension uses for inception_dwconv._C, for sm_80 and sm_90 (one nvcc call per file), objects in a
# temp dir (torch 2.14 headers need -std=c++20, the default of torch.utils.cpp_extension). Needs nvcc and a CUDA build of torch (no GPU). Exits non-zero on the first failure.
#
# Environment: PYTHON (default: python), NVCC (default: nvcc), CUDA_ARCHS (default: "80 90"),
#              PTXAS_VERBOSE=1 to print registers / spills (-Xptxas -v).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
NVCC="${NVCC:-nvcc}"
CUDA_ARCHS="${CUDA_ARCHS:-80 90}"

mapfile -t INCS < <("$PYTHON" - <<'PY' 2>/dev/null
import torch.utils.cpp_extension as ce
for p in ce.include_paths(device_type="cuda"):
    print(p)
PY
)
ABI="$("$PYTHON" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))' 2>/dev/null)"
[ "${#INCS[@]}" -gt 0 ] || { echo "could not get torch include paths from $PYTHON" >&2; exit 2; }

FLAGS=(-std=c++20 -O3 --use_fast_math -lineinfo --expt-relaxed-constexpr
       -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__
       -D__CUDA_NO_HALF2_OPERATORS__ -DTORCH_API_INCLUDE_EXTENSION_H -DTORCH_EXTENSION_NAME=_C
       "-D_GLIBCXX_USE_CXX11_ABI=${ABI}" --compiler-options -fPIC)
for inc in "${INCS[@]}"; do FLAGS+=(-I "$inc"); done
[ "${PTXAS_VERBOSE:-0}" = "1" ] && FLAGS+=(-Xptxas -v)

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
shopt -s nullglob
SRCS=("$ROOT"/csrc/cuda/*.cu)
[ "${#SRCS[@]}" -gt 0 ] || { echo "no csrc/cuda/*.cu found" >&2; exit 2; }
GENCODE=()
for arch in $CUDA_ARCHS; do GENCODE+=(-gencode "arch=compute_${arch},code=sm_${arch}"); done
start=$SECONDS
# one nvcc call per file for all archs: the host-side pass (the expensive torch headers) runs once
for src in "${SRCS[@]}"; do
  obj="$TMP/$(basename "$src" .cu).o"
  t0=$SECONDS
  echo "+ $NVCC ${GENCODE[*]} -c ${src#$ROOT/}"
  "$NVCC" "${FLAGS[@]}" "${GENCODE[@]}" -c "$src" -o "$obj"
  echo "  ok ($((SECONDS - t0)) s)"
done
echo "all CUDA sources compiled for sm_{${CUDA_ARCHS// /,}} in $((SECONDS - start)) s"
