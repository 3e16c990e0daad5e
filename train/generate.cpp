#include "train/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace attnlab {

uint32_t sample_token(const float* logits, int64_t vocab, const SampleOptions& opts, Generator& gen) {
  if (opts.temperature <= 0) return static_cast<uint32_t>(std::max_element(logits, logits + vocab) - logits);
  std::vector<int64_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  int64_t k = opts.top_k > 0 ? std::min(opts.top_k, vocab) : vocab;
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                    [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  double top = logits[ids[0]], total = 0;
  std::vector<double> p(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) total += p[static_cast<size_t>(i)] = std::exp((logits[ids[static_cast<size_t>(i)]] - top) / opts.temperature);
  double u = gen.next_uniform() * total;
  for (int64_t i = 0; i < k; ++i) {
    u -= p[static_cast<size_t>(i)];
    if (u <= 0) return static_cast<uint32_t>(ids[static_cast<size_t>(i)]);
  }
  return static_cast<uint32_t>(ids[static_cast<size_t>(k - 1)]);
}

std::vector<uint32_t> generate(GPT& model, const std::vector<uint32_t>& prompt, const SampleOptions& opts,
                               Generator& gen) {
  ATTNLAB_CHECK(!prompt.empty(), "sample: the prompt encodes to no tokens");
  NoGradGuard no_grad;
  model.eval();
  const int64_t block = model.config().block_size, vocab = model.config().vocab_size;
  const Device device = model.device();
  std::vector<uint32_t> seq = prompt;
  GPTCache cache = model.new_cache();
  auto feed = [&](size_t from) {
    std::vector<int64_t> ids(seq.begin() + static_cast<std::ptrdiff_t>(from), seq.end());
    Var logits = model.forward_step(Tensor::from(ids, {1, static_cast<int64_t>(ids.size())}, device), cache);
    return logits.data().reshape({-1, vocab}).to(Device::cpu());  // [T_new, V], sampled on the host
  };
  // A prompt longer than the context keeps its end.
  size_t start = seq.size() > static_cast<size_t>(block) ? seq.size() - static_cast<size_t>(block) : 0;
  Tensor logits = feed(start);
  for (int64_t i = 0; i < opts.tokens; ++i) {
    const float* last = logits.data<float>() + (logits.size(0) - 1) * vocab;
    seq.push_back(sample_token(last, vocab, opts, gen));
    if (cache.pos() + 1 > block) {
      cache.clear();
      logits = feed(seq.size() - static_cast<size_t>(block / 2));
    } else {
      logits = feed(seq.size() - 1);
    }
  }
  return std::vector<uint32_t>(seq.begin() + static_cast<std::ptrdiff_t>(prompt.size()), seq.end());
}

}  // namespace attnlab
