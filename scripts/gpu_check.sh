#!/usr/bin/env bash
# The GPU check, in one command (for a machine with a CUDA GPU and torch already installed, no
# network): build against the torch that is there, run the whole test suite on the GPU,
# compute-sanitizer over the CUDA backend, then the benchmark. Everything is logged under
# benchmarks/results/gpu-<date>/ (and copied to $OUT when set, for the device tool).
#   bash scripts/gpu_check.sh [--quick]      (--quick: skip the sanitizers)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
dir=benchmarks/results/gpu-$stamp
mkdir -p "$dir"
log() { echo "== $*" | tee -a "$dir/summary.txt"; }

{
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
  $PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda); import triton; print('triton', triton.__version__)"
  nvcc --version 2>/dev/null | tail -1
} | tee "$dir/versions.txt"

log "build"
INCEPTION_DWCONV_CUDA=1 MAX_JOBS=${MAX_JOBS:-16} $PY -m pip install --no-build-isolation --no-deps -e . > "$dir/build.log" 2>&1
build_rc=$?
log "build rc=$build_rc"
$PY -c "import inception_dwconv as i; print('available backends:', i.available_backends())" | tee -a "$dir/summary.txt"

log "tests"
$PY -m pytest -q -p no:cacheprovider --maxfail=20 tests > "$dir/pytest.log" 2>&1
log "pytest rc=$? : $(tail -1 "$dir/pytest.log")"

if [ "${1:-}" != "--quick" ] && command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 9 $PY scripts/cuda_sanitize.py > "$dir/sanitize-$tool.log" 2>&1
    log "compute-sanitizer $tool rc=$? : $(grep -E 'ERROR SUMMARY' "$dir/sanitize-$tool.log" | tail -1)"
  done
fi

log "benchmark"
$PY -m inception_dwconv.bench --device cuda --preset tiny --batch 128 --dtype fp32,bf16 \
  --layout nchw,channels_last --mode fwd,bwd \
  --backends "reference,reference-max-autotune,$($PY -c "import inception_dwconv as i; print(','.join(b for b in ('cuda','triton') if b in i.available_backends()))")" \
  --csv "$dir/bench.csv" --json "$dir/bench.json" > "$dir/bench.txt" 2>"$dir/bench.err"
log "bench rc=$?"
tail -40 "$dir/bench.txt"
[ -n "${OUT:-}" ] && cp -r "$dir" "$OUT/"
exit 0
