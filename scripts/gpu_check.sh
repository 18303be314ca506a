#!/usr/bin/env bash
# The GPU check, time-boxed stage by stage (for a machine with a CUDA GPU and torch already
# installed, no network). Stages, run in the order given (default: all of them, in this order):
#   build     pip install -e . against the torch that is there, CUDA part for this GPU's arch only
#   profile   scripts/gpu_profile.py: host vs kernel time per call, per backend
#   test      the whole test suite on the GPU (pytest-xdist when present; failures logged live)
#   sanitize  compute-sanitizer memcheck + racecheck over scripts/cuda_sanitize.py
#   sweep     scripts/triton_sweep.py: Triton tile plans timed against the current heuristic
#   bench     the benchmark CLI: every GPU backend vs eager and the copy floor
#   models    benchmarks/bench_models.py: InceptionNeXt-T training / inference images/s per mixer
#   cpu       the CPU benchmark on that machine's cores (CPU_THREADS, default all of them; batch 8
#             and batch 1): how the CPU kernels scale past the 2 cores of the development VM
#   bash scripts/gpu_check.sh [stage ...]
# Logs go to benchmarks/results/gpu-<date>/, or to $OUT when set (the device tool): there as
# summary.txt plus logs.tgz (rewritten after each stage, so a run cut short keeps what it did).
# With 15 minutes of device time (machine start included) and a machine that goes back after 30 s
# idle, plan on one call of at most 10 minutes, the most needed stages first. The whole suite ran
# on an H200 at 775aaf9 (benchmarks/results/gpu-h200-20261127-run2); after it, e.g.
#   TESTS="tests/test_cuda.py tests/test_cpu.py tests/test_triton.py::test_autocast_in_one_pass \
#   tests/test_api.py::test_cuda_graph_capture tests/test_api.py::test_autocast_one_pass_op_contract_and_compile \
#   tests/test_api.py::test_gradient_penalty_under_autocast tests/test_api.py::test_forward_mode_ad" \
#   BUILD_S=60 TEST_S=120 BENCH_S=160 SWEEP_S=100 \
#   MODELS_S=100 PROFILE_S=50 PROFILE_ARGS="--backends cuda,triton --modes fwdbwd --stages 7 --host-profile 50" \
#   bash scripts/gpu_check.sh build test bench sweep models profile                (<= 590 s)
# (the benchmark's amp-bf16 rows, with a triton-composed row each, need the longer BENCH_S; a
# benchmark cut short by its limit still writes the rows it measured). The cpu stage took 9 s on
# the 2-core development VM (CPU_THREADS=2); CPU_THREADS=16,4 on the GPU machine's 16 cores, last
# in the list, measures the CPU kernels' scaling there.
# Environment: BUILD_S TEST_S PROFILE_S SANITIZE_S SWEEP_S BENCH_S MODELS_S CPU_S (stage limits, seconds),
#   CPU_THREADS (the cpu stage's thread counts, comma list),
#   PROFILE_ARGS / MODELS_ARGS (gpu_profile.py / bench_models.py flags), PYTHON, MAX_JOBS,
#   TESTS (pytest paths), XDIST_N (workers), BENCH_WORKLOADS (bench flags), BENCH_DTYPES (bench
#   --dtype list; amp-bf16: fp32 tensors under autocast, the one-pass autocast kernels).
set -uo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
stages=${*:-build profile test sanitize sweep bench models}
if [ -n "${OUT:-}" ]; then dir=$(mktemp -d); else dir=benchmarks/results/gpu-$(date -u +%Y%m%dT%H%M%SZ); fi
mkdir -p "$dir"
t0=$SECONDS
log() { echo "== [$((SECONDS - t0)) s] $*" | tee -a "$dir/summary.txt"; }
save() { [ -n "${OUT:-}" ] && { cp "$dir/summary.txt" "$OUT/"; tar czf "$OUT/logs.tgz" -C "$dir" .; }; true; }
# step NAME LIMIT_S LOGFILE CMD...: run CMD under its time limit, output to LOGFILE, log rc, save
step() {
  local name=$1 limit=$2 file=$3; shift 3
  log "$name"
  timeout "$limit" "$@" > "$dir/$file" 2>&1
  log "$name rc=$?"
  save
}

{
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null
  $PY -c "import sys, torch, triton; p = torch.cuda.get_device_properties(0); print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__); print('device', p.name, 'sm_%d%d' % (p.major, p.minor), p.multi_processor_count, 'SMs')"
  nvcc --version 2>/dev/null | tail -1
  echo "stages: $stages"
} 2>&1 | tee "$dir/summary.txt"

stage_build() {
  # this GPU's architecture only: half the nvcc time of the default "8.0;9.0"
  arch=$($PY -c "import torch; print('%d.%d' % torch.cuda.get_device_capability(0))" 2>/dev/null)
  log "build (TORCH_CUDA_ARCH_LIST=${arch:-default})"
  TORCH_CUDA_ARCH_LIST=${arch:-8.0;9.0} INCEPTION_DWCONV_CUDA=1 MAX_JOBS=${MAX_JOBS:-16} \
    timeout "${BUILD_S:-300}" $PY -m pip install --no-build-isolation --no-deps -e . > "$dir/build.log" 2>&1
  rc=$?
  log "build rc=$rc"
  if [ $rc -ne 0 ]; then
    tail -30 "$dir/build.log" >> "$dir/summary.txt"
    log "CUDA build failed: building the CPU part only, so the Triton and CPU checks still run"
    INCEPTION_DWCONV_CUDA=0 MAX_JOBS=${MAX_JOBS:-16} timeout 200 \
      $PY -m pip install --no-build-isolation --no-deps -e . >> "$dir/build.log" 2>&1
    log "cpu-only build rc=$?"
  fi
  $PY -c "import inception_dwconv as i; print('available backends:', i.available_backends())" 2>&1 | tee -a "$dir/summary.txt"
  save
}

stage_profile() {
  step profile "${PROFILE_S:-150}" profile.log $PY scripts/gpu_profile.py ${PROFILE_ARGS:-} --out "$dir/profile.txt"
}

stage_test() {
  log "tests"
  xdist=$($PY -c "import xdist" 2>/dev/null && echo "-n ${XDIST_N:-14}")
  to=$($PY -c "import pytest_timeout" 2>/dev/null && echo "--timeout 150")
  # failures and durations are written as they happen (scripts/pytest_live_log.py)
  LIVE_LOG_DIR="$dir" PYTHONPATH=scripts timeout "${TEST_S:-300}" $PY -m pytest -q -rfE -p no:cacheprovider \
    -p pytest_live_log $xdist $to ${TESTS:-tests} > "$dir/pytest.log" 2>&1
  log "pytest rc=$? : $(tail -1 "$dir/pytest.log")"
  grep -E "^(FAILED|ERROR)" "$dir/pytest.log" | head -30 | tee -a "$dir/summary.txt"
  [ -f "$dir/durations.txt" ] && sort -rn "$dir/durations.txt" | head -5 | sed 's/^/  slowest: /' >> "$dir/summary.txt"
  save
}

stage_sanitize() {
  command -v compute-sanitizer >/dev/null || { log "compute-sanitizer not found"; return; }
  for tool in memcheck racecheck; do
    timeout "${SANITIZE_S:-120}" compute-sanitizer --tool $tool --error-exitcode 9 $PY scripts/cuda_sanitize.py \
      > "$dir/sanitize-$tool.log" 2>&1
    log "compute-sanitizer $tool rc=$? : $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$dir/sanitize-$tool.log" | tail -1)"
  done
  save
}

stage_sweep() {
  step "triton plan sweep" "${SWEEP_S:-300}" sweep.log $PY scripts/triton_sweep.py --out "$dir/sweep.txt"
}

stage_bench() {
  backends="reference,$($PY -c "import inception_dwconv as i; print(','.join(b for b in ('triton','cuda') if b in i.available_backends()))")"
  step benchmark "${BENCH_S:-300}" bench.txt $PY -m inception_dwconv.bench --device cuda \
    ${BENCH_WORKLOADS:---preset tiny --batch 128} --dtype "${BENCH_DTYPES:-fp32,bf16,amp-bf16}" --layout nchw,channels_last \
    --mode fwd,fwdbwd --backends "$backends" --csv "$dir/bench.csv"
}

stage_models() {
  step "model benchmark" "${MODELS_S:-300}" models.txt $PY benchmarks/bench_models.py --device cuda \
    ${MODELS_ARGS:---dtype fp32,bf16 --layout channels_last --iters 10} --out "$dir"
}

stage_cpu() {
  # each thread count at batch 8 (the development VM's benchmark) and batch 1, fused vs eager vs copy
  for threads in $(echo "${CPU_THREADS:-$(nproc)}" | tr ',' ' '); do
    for batch in 8 1; do
      step "cpu benchmark, $threads threads, batch $batch" "${CPU_S:-120}" "cpu-t$threads-b$batch.txt" \
        $PY -m inception_dwconv.bench --device cpu --threads "$threads" --preset tiny --batch "$batch" \
        --layout nchw,channels_last --mode fwd,fwdbwd --backends reference,cpu --max-seconds 2 \
        --csv "$dir/cpu-t$threads-b$batch.csv"
    done
  done
}

for s in $stages; do
  case $s in
    build|profile|test|sanitize|sweep|bench|models|cpu) "stage_$s";;
    *) log "unknown stage: $s";;
  esac
done
log "done"
save
[ -f "$dir/profile.txt" ] && tail -20 "$dir/profile.txt"
cat "$dir/summary.txt"
exit 0
