#!/usr/bin/env bash
# The GPU check, in one time-boxed command (for a machine with a CUDA GPU and torch already
# installed, no network): build against the torch that is there, run the whole test suite on the
# GPU, the benchmark, then compute-sanitizer over the CUDA backend. Each stage has its own time
# limit so that a slow stage cannot eat the others' logs. Logs go flat into one folder: $OUT when
# set (the device tool fetches it), else benchmarks/results/gpu-<date>/.
#   bash scripts/gpu_check.sh [--quick]      (--quick: skip the sanitizers)
# Environment: BUILD_S, TEST_S, BENCH_S, SANITIZE_S (stage limits, seconds), PYTHON, MAX_JOBS,
#   TESTS (pytest paths), XDIST_N (workers), BENCH_WORKLOADS (bench workload flags).
set -uo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
dir=${OUT:-benchmarks/results/gpu-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$dir"
t0=$SECONDS
log() { echo "== [$((SECONDS - t0)) s] $*" | tee -a "$dir/summary.txt"; }

{
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null
  $PY -c "import sys, torch, triton; p = torch.cuda.get_device_properties(0); print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__); print('device', p.name, 'sm_%d%d' % (p.major, p.minor), p.multi_processor_count, 'SMs')"
  nvcc --version 2>/dev/null | tail -1
} 2>&1 | tee "$dir/summary.txt"

# Build for this GPU's architecture only (half the nvcc time of the default "8.0;9.0").
arch=$($PY -c "import torch; p = torch.cuda.get_device_capability(0); print('%d.%d' % p)" 2>/dev/null)
log "build (TORCH_CUDA_ARCH_LIST=${arch:-default})"
TORCH_CUDA_ARCH_LIST=${arch:-8.0;9.0} INCEPTION_DWCONV_CUDA=1 MAX_JOBS=${MAX_JOBS:-16} \
  timeout "${BUILD_S:-300}" $PY -m pip install --no-build-isolation --no-deps -e . > "$dir/build.log" 2>&1
build_rc=$?
log "build rc=$build_rc"
if [ $build_rc -ne 0 ]; then
  # keep the Triton and CPU checks alive when the CUDA part does not build
  log "CUDA build failed: building the CPU part only"
  INCEPTION_DWCONV_CUDA=0 MAX_JOBS=${MAX_JOBS:-16} timeout 200 \
    $PY -m pip install --no-build-isolation --no-deps -e . >> "$dir/build.log" 2>&1
  log "cpu-only build rc=$?"
fi
$PY -c "import inception_dwconv as i; print('available backends:', i.available_backends())" 2>&1 | tee -a "$dir/summary.txt"

log "tests"
xdist=$($PY -c "import xdist" 2>/dev/null && echo "-n ${XDIST_N:-14}")
to=$($PY -c "import pytest_timeout" 2>/dev/null && echo "--timeout 150")
# GPU-only files first; failures and durations are logged as they happen (scripts/pytest_live_log.py)
LIVE_LOG_DIR="$dir" PYTHONPATH=scripts timeout "${TEST_S:-300}" $PY -m pytest -q -rfE -p no:cacheprovider \
  -p pytest_live_log $xdist $to ${TESTS:-tests/test_cuda.py tests/test_triton.py tests} > "$dir/pytest.log" 2>&1
log "pytest rc=$? : $(tail -1 "$dir/pytest.log")"
grep -E "^(FAILED|ERROR)" "$dir/pytest.log" | head -30 | tee -a "$dir/summary.txt"

log "benchmark"
backends="reference,$($PY -c "import inception_dwconv as i; print(','.join(b for b in ('cuda','triton') if b in i.available_backends()))")"
timeout "${BENCH_S:-240}" $PY -m inception_dwconv.bench --device cuda ${BENCH_WORKLOADS:---preset tiny --batch 128} \
  --dtype fp32,bf16 --layout nchw,channels_last --mode fwd,fwdbwd --backends "$backends" \
  --csv "$dir/bench.csv" > "$dir/bench.txt" 2>&1
log "bench rc=$?"

if [ "${1:-}" != "--quick" ] && command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    timeout "${SANITIZE_S:-120}" compute-sanitizer --tool $tool --error-exitcode 9 $PY scripts/cuda_sanitize.py \
      > "$dir/sanitize.log.$tool" 2>&1
    log "compute-sanitizer $tool rc=$? : $(grep -E 'ERROR SUMMARY' "$dir/sanitize.log.$tool" | tail -1)"
    { echo "### $tool"; cat "$dir/sanitize.log.$tool"; } >> "$dir/sanitize.log"; rm -f "$dir/sanitize.log.$tool"
  done
fi
tail -45 "$dir/bench.txt"
cat "$dir/summary.txt"
exit 0
