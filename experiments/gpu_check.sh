#!/usr/bin/env bash
# One-shot check on a GPU machine: devices, the GPU benchmark, a fast subset of the test suite.
#
# Run from the repository root, in an environment that already has jax with CUDA, torch with
# CUDA, flax, optax, pytest and hypothesis:
#
#     PYTHONPATH=. bash experiments/gpu_check.sh
#
# Steps: (a) nvidia-smi -L and jax.devices(), failing fast when JAX sees no GPU (ALLOW_CPU=1 goes
# on regardless); (b) experiments/benchmark_gpu.py (timeout 300 s; it starts no layer after
# 210 s, so it normally ends well before); (c) the pytest subset (timeout 240 s, cut to what is
# left of DEADLINE=470 s after (a) and (b), at least 60 s, so the script stays under 8 minutes),
# its output tee'd to $GPU_OUT/pytest.txt. The tests run even when the benchmark fails or times
# out; the exit status is 0 only when both passed, else the benchmark's status (124 = timed out)
# or, with the benchmark fine, pytest's.
#
# Environment overrides (for trying it out on a CPU machine):
#   ALLOW_CPU=1                          run without a GPU
#   GPU_OUT=/tmp/gpu                     output folder (default experiments/results/gpu)
#   BENCH_ARGS="--quick --no-torch"      extra benchmark_gpu.py arguments
#   PYTHON=python3                       the interpreter (default python)
#   DEADLINE=470                         seconds the whole script may take (caps the tests' timeout)
set -euo pipefail

PYTHON=${PYTHON:-python}
GPU_OUT=${GPU_OUT:-experiments/results/gpu}
BENCH_ARGS=${BENCH_ARGS:-}
DEADLINE=${DEADLINE:-470}
export PYTHONPATH=${PYTHONPATH:-.}
mkdir -p "$GPU_OUT"
start=$SECONDS

echo "== (a) devices"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L || true
else
    echo "nvidia-smi: not found"
fi
devices=$("$PYTHON" -c 'import jax; print(jax.devices()[0].platform, jax.devices())')
echo "${devices#* }"
platform=${devices%% *}
if [[ "$platform" != "gpu" && "$platform" != "cuda" ]]; then
    if [[ "${ALLOW_CPU:-0}" != "1" ]]; then
        echo "gpu_check: JAX sees no GPU (default device platform: $platform); ALLOW_CPU=1 to go on" >&2
        exit 2
    fi
    echo "gpu_check: no GPU (platform $platform), going on because ALLOW_CPU=1"
fi

rc_note() {  # "3" or "124 (timed out)"
    if [[ $1 == 124 || $1 == 137 ]]; then echo "$1 (timed out)"; else echo "$1"; fi
}

echo "== (b) benchmark -> $GPU_OUT"
bench_rc=0
# shellcheck disable=SC2086  # BENCH_ARGS is a list of words
timeout -k 5 300 "$PYTHON" experiments/benchmark_gpu.py --no-progress --out "$GPU_OUT" \
    $BENCH_ARGS || bench_rc=$?
echo "gpu_check: benchmark exit code $(rc_note "$bench_rc")"

# 240 s, or less where the steps before left less of the DEADLINE (470 s: the script < 8 min)
test_limit=$((DEADLINE - (SECONDS - start)))
test_limit=$((test_limit > 240 ? 240 : (test_limit < 60 ? 60 : test_limit)))
echo "== (c) tests (timeout $test_limit s) -> $GPU_OUT/pytest.txt"
set +e
# test_gpu_precision first: on a timeout the GPU-specific check has run. SIGINT first: pytest
# then prints the tests it passed and the slowest durations before exiting. On a GPU the suite
# is compile-bound (host CPU), so with pytest-xdist present it runs on TEST_WORKERS processes
# (default 8), each allocating GPU memory on demand rather than preallocating 75 % of it.
# HYPOTHESIS_PROFILE=quick: 5 examples per property (the suite's default draws 25).
workers=()
if "$PYTHON" -c 'import xdist' 2>/dev/null && [[ ${TEST_WORKERS:-8} != 0 ]]; then
    workers=(-n "${TEST_WORKERS:-8}")
fi
XLA_PYTHON_CLIENT_PREALLOCATE=false HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-quick} \
timeout -s INT -k 10 "$test_limit" "$PYTHON" -m pytest -q --maxfail=25 -p no:cacheprovider -p no:benchmark \
    --durations=15 "${workers[@]}" \
    tests/properties/test_gpu_precision.py tests/conv/test_conv.py tests/conv/test_auto.py \
    tests/properties/test_transforms.py tests/conv/test_general.py \
    tests/conv/test_conv_transpose.py tests/pool/test_max_pool.py tests/pool/test_avg_pool.py \
    tests/pool/test_adaptive.py tests/pool/test_fractional.py tests/resampling \
    tests/conv/test_unfold.py tests/conv/test_local.py tests/properties/test_forward_mode.py \
    tests/package/test_seeds.py \
    2>&1 | tee "$GPU_OUT/pytest.txt"
rcs=("${PIPESTATUS[@]}")
set -e
test_rc=${rcs[0]}
if [[ $test_rc == 0 && ${rcs[1]} != 0 ]]; then
    test_rc=${rcs[1]}  # tee failed: the log is incomplete
fi
echo "gpu_check: pytest exit code $(rc_note "$test_rc")"

echo "== done in $((SECONDS - start)) s: benchmark $(rc_note "$bench_rc"), pytest $(rc_note "$test_rc")"
if [[ $bench_rc != 0 ]]; then
    exit "$bench_rc"
fi
exit "$test_rc"
