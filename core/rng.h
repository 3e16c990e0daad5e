#pragma once
#include <cstdint>

namespace attnlab {

// Counter-based generator state: a seed (the Philox key) and an offset (the
// next Philox counter). Saving and restoring these two numbers restores the
// stream exactly, which is what checkpoints store.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t offset = 0) : seed_(seed), offset_(offset) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed, offset_ = offset; }
  // Reserves `calls` Philox counters and returns the first.
  uint64_t advance(uint64_t calls) {
    uint64_t first = offset_;
    offset_ += calls;
    return first;
  }
  // A host-side draw (data order, sampling): one Philox call per number.
  uint64_t next_u64();
  double next_uniform();

 private:
  uint64_t seed_;
  uint64_t offset_;
};

}  // namespace attnlab
