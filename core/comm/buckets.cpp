#include "core/comm/buckets.h"

#include <algorithm>

#include "core/error.h"

namespace attnlab {

std::pair<int64_t, int64_t> BucketLayout::owned(int i, int r) const {
  const Slot& s = slots.at(static_cast<size_t>(i));
  const Bucket& b = buckets.at(static_cast<size_t>(s.bucket));
  int64_t lo = std::max(s.offset, b.offset + r * b.block);
  int64_t hi = std::min(s.offset + s.numel, b.offset + (r + 1) * b.block);
  return hi > lo ? std::pair{lo, hi} : std::pair{lo, lo};
}

BucketLayout plan_buckets(const std::vector<int64_t>& numels, const std::vector<int>& order, int64_t bucket_elems,
                          int world) {
  ATTNLAB_CHECK(world >= 1, "plan_buckets: world size ", world, " < 1");
  ATTNLAB_CHECK(bucket_elems >= 1, "plan_buckets: bucket size ", bucket_elems, " < 1 element");
  ATTNLAB_CHECK(order.size() == numels.size(), "plan_buckets: ", order.size(), " indices for ", numels.size(),
                " tensors");
  BucketLayout L;
  L.world = world;
  L.slots.assign(numels.size(), {-1, 0, 0});
  int64_t filled = 0;
  auto close = [&] {
    BucketLayout::Bucket& b = L.buckets.back();
    b.size = (filled + world - 1) / world * world;
    b.block = b.size / world;
    b.shard_offset = L.shard_total;
    L.total += b.size;
    L.shard_total += b.block;
    filled = 0;
  };
  for (int i : order) {
    ATTNLAB_CHECK(i >= 0 && static_cast<size_t>(i) < numels.size() && L.slots[static_cast<size_t>(i)].bucket < 0,
                  "plan_buckets: bad or repeated index ", i);
    if (L.buckets.empty() || filled >= bucket_elems) {
      if (!L.buckets.empty()) close();
      L.buckets.push_back({});
      L.buckets.back().offset = L.total;
    }
    BucketLayout::Bucket& b = L.buckets.back();
    L.slots[static_cast<size_t>(i)] = {static_cast<int>(L.buckets.size() - 1), b.offset + filled,
                                       numels[static_cast<size_t>(i)]};
    b.members.push_back(i);
    filled += numels[static_cast<size_t>(i)];
  }
  if (!L.buckets.empty()) close();
  return L;
}

}  // namespace attnlab
