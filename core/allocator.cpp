#include "core/allocator.h"

#include <bit>
#include <cstdlib>
#include <new>

#include "core/error.h"

namespace attnlab {

CachingAllocator::CachingAllocator(SystemAlloc sys_alloc, SystemFree sys_free)
    : sys_alloc_(sys_alloc), sys_free_(sys_free) {}

CachingAllocator::~CachingAllocator() { empty_cache(); }

size_t CachingAllocator::bucket_size(size_t nbytes) {
  if (nbytes == 0) nbytes = 1;
  if (nbytes <= 1024) return (nbytes + 63) / 64 * 64;
  // Four buckets per power of two: waste is at most 25%.
  size_t pow2 = std::bit_floor(nbytes);
  size_t step = pow2 / 4;
  return (nbytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t nbytes) {
  size_t size = bucket_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = free_.find(size);
  if (it != free_.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    stats_.bytes_cached -= size;
    stats_.bytes_in_use += size;
    return p;
  }
  void* p = sys_alloc_(size);
  if (!p) {
    // Out of memory: give back what we cache and try once more.
    for (auto& [sz, blocks] : free_)
      for (void* b : blocks) sys_free_(b), stats_.system_frees++;
    free_.clear();
    stats_.bytes_cached = 0;
    p = sys_alloc_(size);
    ATTNLAB_CHECK(p, "allocator: out of memory allocating ", size, " bytes (",
                  stats_.bytes_in_use, " bytes in use)");
  }
  stats_.system_allocs++;
  stats_.bytes_in_use += size;
  return p;
}

void CachingAllocator::deallocate(void* p, size_t nbytes) {
  if (!p) return;
  size_t size = bucket_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  free_[size].push_back(p);
  stats_.bytes_in_use -= size;
  stats_.bytes_cached += size;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [size, blocks] : free_)
    for (void* p : blocks) sys_free_(p), stats_.system_frees++;
  free_.clear();
  stats_.bytes_cached = 0;
}

namespace {
void* cpu_system_alloc(size_t nbytes) {
  // Buckets are multiples of 64, as aligned_alloc requires.
  return std::aligned_alloc(64, nbytes);
}
void cpu_system_free(void* p) { std::free(p); }
}  // namespace

#ifndef ATTNLAB_HAS_CUDA
Allocator& cuda_allocator(int index) {
  throw Error(detail::cat("cuda:", index, ": attnlab was built without CUDA (ATTNLAB_CUDA=OFF)"));
}
#else
Allocator& cuda_allocator(int index);  // core/cuda/allocator.cu
#endif

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) {
    // Leaked on purpose: tensors in static storage may outlive any destructor order.
    static auto* cpu = new CachingAllocator(cpu_system_alloc, cpu_system_free);
    return *cpu;
  }
  return cuda_allocator(device.index);
}

}  // namespace attnlab
