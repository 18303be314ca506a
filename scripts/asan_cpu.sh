#!/usr/bin/env bash
# The CPU kernels under AddressSanitizer: builds the extension with -fsanitize=address in a scratch
# copy of this tree (the tracked and untracked, not ignored, files; your own build is left alone)
# and runs the CPU kernel tests against it. The kernels read and write through padded buffers and
# let vector stores spill into the next row of an output plane; an access past a buffer or past the
# output shows up here as an ASan report and a failed run, where the value checks cannot see it.
#
#   bash scripts/asan_cpu.sh [python] [extra pytest arguments]
#
# python defaults to .venv/bin/python (make deps), else python3; it needs torch and pytest. Needs a
# GCC or Clang with libasan. ASan's report of a bad access ends the run; with pytest-xdist (-n N)
# it shows only as a crashed worker: run that test again without -n to read the report. Triton is hidden from the run (its compiled module does not load under
# ASan); the tests here do not use it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=${1:-}
if [[ -z "$py" ]]; then py=.venv/bin/python; [[ -x "$py" ]] || py=python3; fi
# An absolute path (the build and the tests run in another directory); a venv's python is used
# through its own path, not the file its symlink points to.
if [[ "$py" == */* ]]; then py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")"; else py=$(command -v "$py"); fi
shift || true

cxx=${CXX:-c++}
libasan=$("$cxx" -print-file-name=libasan.so)
if [[ "$libasan" != /* || ! -e "$libasan" ]]; then
  echo "asan_cpu: $cxx has no libasan.so; cannot run the AddressSanitizer check" >&2
  exit 2
fi
# libstdc++ preloaded too: ASan's __cxa_throw interceptor finds the real one at start-up only if it
# is loaded by then (the Python executable does not link it), else the first C++ exception, a
# TORCH_CHECK error the tests expect, aborts the process.
libstdcxx=$("$cxx" -print-file-name=libstdc++.so)
preload="$libasan"
[[ "$libstdcxx" == /* && -e "$libstdcxx" ]] && preload="$libasan:$libstdcxx"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git ls-files -z --cached --others --exclude-standard | (cd "$root" && xargs -0 cp --parents -t "$work")
mkdir -p "$work/.asan_hide"
# A module named triton that fails to import: `import triton` raises ImportError, which torch and
# this package treat as "Triton not installed" (also in pytest-xdist's worker processes).
echo 'raise ImportError("triton is hidden from the AddressSanitizer run")' > "$work/.asan_hide/triton.py"

echo "asan_cpu: building the CPU extension with -fsanitize=address in $work"
(cd "$work" && INCEPTION_DWCONV_CUDA=0 INCEPTION_DWCONV_SANITIZE=address MAX_JOBS=${MAX_JOBS:-2} \
  "$py" setup.py -q build_ext --inplace >"$work/build.log" 2>&1) || { tail -40 "$work/build.log"; exit 1; }

echo "asan_cpu: running tests/test_cpu.py with LD_PRELOAD=$preload"
cd "$work"
PYTHONPATH="$work/.asan_hide:$work" LD_PRELOAD="$preload" \
  ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1 \
  "$py" -m pytest -q -p no:cacheprovider tests/test_cpu.py "$@"
