#pragma once
// How data parallelism lays gradients out in flat buffers: tensors grouped into
// buckets of about `bucket_elems` elements in the order given (the order their
// gradients become ready, i.e. reverse registration order), each bucket padded
// to a multiple of the world size so that it splits into equal per-rank blocks
// for reduce-scatter / all-gather (ZeRO-1). A tensor never spans two buckets.
#include <cstdint>
#include <vector>

namespace attnlab {

struct BucketLayout {
  struct Bucket {
    int64_t offset = 0;        // in the flat buffer
    int64_t size = 0;          // padded: a multiple of world
    int64_t block = 0;         // size / world: one rank's share
    int64_t shard_offset = 0;  // where this bucket's block sits in a rank's shard buffer
    std::vector<int> members;  // indices of the tensors in it, in layout order
  };
  struct Slot {
    int bucket = 0;
    int64_t offset = 0;  // in the flat buffer
    int64_t numel = 0;
  };
  int world = 1;
  std::vector<Slot> slots;  // per tensor, in the caller's numbering
  std::vector<Bucket> buckets;
  int64_t total = 0;        // flat buffer elements
  int64_t shard_total = 0;  // one rank's shard elements (sum of blocks)

  // The part of tensor i that rank r owns, as [begin, end) of the flat buffer (may be empty).
  std::pair<int64_t, int64_t> owned(int i, int r) const;
};

// `numels[i]`: size of tensor i; `order`: the tensors in layout order (each once).
// A bucket closes once it holds at least `bucket_elems` elements.
BucketLayout plan_buckets(const std::vector<int64_t>& numels, const std::vector<int>& order, int64_t bucket_elems,
                          int world);

}  // namespace attnlab
