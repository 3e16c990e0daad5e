#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "layers/gpt.h"

namespace attnlab {

struct SampleOptions {
  int64_t tokens = 200;
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: the whole vocabulary
};

// Continues `prompt` by `opts.tokens` tokens with the KV cache. When the
// context fills block_size, the cache is rebuilt from the last half of it.
std::vector<uint32_t> generate(GPT& model, const std::vector<uint32_t>& prompt, const SampleOptions& opts,
                               Generator& gen);

// Draws one token from a row of logits with temperature and top-k.
uint32_t sample_token(const float* logits, int64_t vocab, const SampleOptions& opts, Generator& gen);

}  // namespace attnlab
