#!/usr/bin/env bash
# Packs what a lent GPU machine needs to run attnlab's CUDA tests and benchmarks.
# That machine has nvcc, the CUDA 13 runtime and PyTorch, but none of our Debian
# libraries (HDF5, Boost, GoogleTest, OpenMPI) and cannot fetch them, so the
# binaries are built here and carried: the test binaries, the CLI and the GPU
# benchmarks, with every shared library they load that is not part of the CUDA
# runtime or the C/C++ runtime, into .devkit/kit.tar.xz (the device tool's carry
# limit is 64 MiB).
#
#   scripts/device_kit.sh [BUILD_DIR]     here; BUILD_DIR defaults to build-device
#                                         (configured for sm_90, the H100/H200)
#   then, with the device tool: run carry=[".devkit"] "bash scripts/device_check.sh tests"
#                                                      "bash scripts/device_check.sh bench"
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-device}"
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DATTNLAB_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90
fi
grep -q "^ATTNLAB_CUDA:STRING=\(ON\|AUTO\)" "$build/CMakeCache.txt" ||
  { echo "device_kit: $build is not a CUDA build" >&2; exit 1; }
bins=(tests/test_core tests/test_autograd tests/test_layers tests/test_optim tests/test_train tests/test_mpi
      attnlab bench/bench_attention_cuda)
targets=()
for b in "${bins[@]}"; do targets+=("$(basename "$b" | sed 's/^attnlab$/attnlab_cli/')"); done
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

stage=.devkit/stage
rm -rf .devkit && mkdir -p "$stage/bin" "$stage/lib"
for b in "${bins[@]}"; do
  [[ -x "$build/$b" ]] || { echo "device_kit: $build/$b was not built" >&2; exit 1; }
  strip -o "$stage/bin/$(basename "$b")" "$build/$b"
done
# Libraries the device image lacks: everything ldd resolves outside the C/C++ and
# CUDA runtimes (those come with the image and must match its driver) and NCCL
# (200 MB; PyTorch's copy there is used, NCCL 2's ABI is stable).
for b in "$stage"/bin/*; do
  ldd "$b" | awk '$3 ~ /^\// {print $3}'
done | sort -u | grep -Ev '/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so|/libcuda|/libcudart|/libcublas|/libnvidia|/libnccl|/libcudnn' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
# xz -9: a 64 MiB window, so the CUDA code every binary links in is stored about once.
XZ_OPT=-9 tar -C "$stage" -cJf .devkit/kit.tar.xz bin lib
rm -rf "$stage"
size=$(stat -c %s .devkit/kit.tar.xz)
echo "device_kit: .devkit/kit.tar.xz, $((size / 1024 / 1024)) MiB (carry limit 64 MiB)"
((size < 64 * 1024 * 1024)) || { echo "device_kit: too large to carry" >&2; exit 1; }
