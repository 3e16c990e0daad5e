// One caching allocator per CUDA device, over cudaMalloc/cudaFree.
#include <array>
#include <cstddef>
#include <mutex>
#include <utility>

#include "core/allocator.h"
#include "core/cuda/runtime.h"
#include "core/device.h"

namespace attnlab {

namespace {

constexpr int kMaxDevices = 16;

// CachingAllocator's hooks are plain function pointers without a device, so
// each device gets its own pair of hooks that makes that device current first.
template <int Index>
void* system_alloc(size_t nbytes) {
  cuda::DeviceGuard guard(Index);
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, nbytes);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // not sticky: clear it, let the caller free its cache and retry
    return nullptr;
  }
  if (err != cudaSuccess) cuda::throw_cuda_error(err, "cudaMalloc", __FILE__, __LINE__);
  return p;
}

template <int Index>
void system_free(void* p) {
  cuda::DeviceGuard guard(Index);
  ATTNLAB_CUDA_CHECK(cudaFree(p));
}

template <int... I>
constexpr std::array<std::pair<CachingAllocator::SystemAlloc, CachingAllocator::SystemFree>,
                     sizeof...(I)>
make_hooks(std::integer_sequence<int, I...>) {
  return {{{&system_alloc<I>, &system_free<I>}...}};
}

constexpr auto kHooks = make_hooks(std::make_integer_sequence<int, kMaxDevices>{});

}  // namespace

Allocator& cuda_allocator(int index) {
  int count = cuda_device_count();
  ATTNLAB_CHECK(count > 0, "cuda:", index, ": no CUDA device is available");
  ATTNLAB_CHECK(index >= 0 && index < count, "cuda:", index, ": no such device (", count,
                " present)");
  ATTNLAB_CHECK(index < kMaxDevices, "cuda:", index, ": attnlab supports at most ", kMaxDevices,
                " devices per process");
  // Leaked on purpose, like the CPU allocator: tensors in static storage may
  // outlive any destructor order, and the CUDA context may already be gone at exit.
  static std::array<CachingAllocator*, kMaxDevices> allocators{};
  static std::once_flag once[kMaxDevices];
  std::call_once(once[index], [index] {
    allocators[static_cast<size_t>(index)] =
        new CachingAllocator(kHooks[static_cast<size_t>(index)].first,
                             kHooks[static_cast<size_t>(index)].second);
  });
  return *allocators[static_cast<size_t>(index)];
}

}  // namespace attnlab
