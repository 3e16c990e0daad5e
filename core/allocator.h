#pragma once
#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/device.h"

namespace attnlab {

struct AllocatorStats {
  size_t bytes_in_use = 0;    // handed out and not yet returned
  size_t bytes_cached = 0;    // returned and kept on free lists for reuse
  size_t system_allocs = 0;   // calls that reached the system allocator
  size_t system_frees = 0;
};

// A per-device allocator. Tensors never call malloc/cudaMalloc directly: after
// warm-up a training step is served entirely from the free lists.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void empty_cache() = 0;  // return cached blocks to the system
};

// Caching allocator over size buckets: requests are rounded up to a bucket
// (64-byte multiples below 1 KiB, then four buckets per power of two), so the
// same shapes map to the same buckets and are reused exactly. The system hooks
// are the only device-specific part.
//
// Streams: the allocator does not track them. On CUDA every kernel runs on the
// default stream, so a block freed by the host while kernels that use it are
// still queued is only handed to work queued after them: stream order makes
// the reuse safe. The one other stream is NCCL's (core/comm/nccl), and there
// the Work of a collective holds its tensors until it has seen the collective
// complete (and an abandoned unfinished Work leaks them rather than free them),
// so no block the comm stream may still touch ever reaches a free list. The
// comm stream itself waits for the default stream before each collective, so a
// block reused for a collective's buffers is done with its earlier use. A new
// stream must keep this rule (hold the tensors until an event has passed) or
// this allocator must learn to record streams on free.
// Steady state: system_allocs stops growing once the first training step has
// populated the free lists (tests/optim/test_steady_state_allocs.cpp).
class CachingAllocator : public Allocator {
 public:
  using SystemAlloc = void* (*)(size_t nbytes);
  using SystemFree = void (*)(void* p);
  CachingAllocator(SystemAlloc sys_alloc, SystemFree sys_free);
  ~CachingAllocator() override;

  void* allocate(size_t nbytes) override;
  void deallocate(void* p, size_t nbytes) override;
  AllocatorStats stats() const override;
  void empty_cache() override;

  static size_t bucket_size(size_t nbytes);

 private:
  SystemAlloc sys_alloc_;
  SystemFree sys_free_;
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

Allocator& allocator_for(Device device);

}  // namespace attnlab
