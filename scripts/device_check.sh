#!/usr/bin/env bash
# Runs on a lent GPU machine (the device tool), from the repository root, with
# .devkit carried (scripts/device_kit.sh made it). Logs go to $OUT.
#   bash scripts/device_check.sh tests   every CUDA test: CPU/GPU parity of each op and
#                                        attention kernel, the GPT and the trainer on CUDA
#   bash scripts/device_check.sh bench   attention kernel vs PyTorch SDPA, GPT-2 124M vs PyTorch
# Each stage fits in one 10-minute call.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/attnlab-device}"
mkdir -p "$out" .devkit/run
tar -C .devkit/run -xJf .devkit/kit.tar.xz
bin=$PWD/.devkit/run/bin
# NCCL (and cuDNN) from PyTorch's wheels; the kit leaves them out.
nvidia_libs=$(find /opt /usr -name 'libnccl.so.2*' -o -name 'libcudnn.so.9*' 2>/dev/null | xargs -r -n1 dirname | sort -u |
              paste -sd:)
export LD_LIBRARY_PATH=$PWD/.devkit/run/lib:/usr/local/cuda/lib64:${nvidia_libs}:${LD_LIBRARY_PATH:-}
export ATTNLAB_SOURCE_DIR=$PWD OMP_NUM_THREADS=8
status=0
step() {  # step NAME COMMAND...: runs it, keeps its log, reports pass/fail
  local name=$1
  shift
  local t0=$SECONDS
  if ! "$@" >"$out/$name.log" 2>&1; then
    echo "FAIL $name ($((SECONDS - t0)) s): tail of $name.log"; tail -n 25 "$out/$name.log"; status=1
  elif $have_gpu && grep -v 'WithoutA\|listed below' "$out/$name.log" | grep -q '^\[  SKIPPED \]'; then
    echo "FAIL $name: tests skipped on a machine with a GPU"; grep '^\[  SKIPPED \]' "$out/$name.log"; status=1
  else echo "PASS $name ($((SECONDS - t0)) s)"; fi
}
have_gpu=false
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 && have_gpu=true
case "${1:-tests}" in
  tests)
    # Whole binaries (their CPU tests pass there too); test_train's CLI tests need
    # the build machine's paths, so only its device and precision tests.
    step core "$bin/test_core"
    step autograd "$bin/test_autograd"
    step layers "$bin/test_layers"
    step optim "$bin/test_optim"
    step train_cuda "$bin/test_train" --gtest_filter='*Cuda*:MixedPrecision.*'
    step nccl_1rank "$bin/test_mpi" --gtest_filter='Nccl.*'
    ;;
  bench)
    step bench_attention_cuda "$bin/bench_attention_cuda" --min-time=0.5
    step attention_pytorch python3 bench/attention_cuda_pytorch.py --min-time 0.5
    step gpt2_124m python3 bench/gpt2_124m.py --attnlab "$bin/attnlab" --steps 30 --warmup 10
    ;;
  *) echo "device_check: unknown stage '$1' (tests or bench)" >&2; exit 2 ;;
esac
exit $status
