#include "core/rng.h"

#include "core/philox.h"

namespace attnlab {

uint64_t Generator::next_u64() {
  philox::U32x4 r = philox::philox4x32_10(advance(1), seed_);
  return (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
}

double Generator::next_uniform() {
  // 53 random bits: uniform in [0, 1) at double precision.
  return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace attnlab
