#include "data/loader.h"

#include <utility>

#include "core/error.h"

namespace attnlab {

TokenLoader::TokenLoader(TokenShard shard, std::string name, const LoaderOptions& options)
    : shard_(std::move(shard)), name_(std::move(name)), opt_(options), gen_(options.seed) {
  ATTNLAB_CHECK(opt_.batch > 0 && opt_.seq_len > 0, name_, ": loader batch ", opt_.batch,
                " and sequence length ", opt_.seq_len, " must be positive");
  ATTNLAB_CHECK(opt_.world_size >= 1 && opt_.rank >= 0 && opt_.rank < opt_.world_size, name_,
                ": loader rank ", opt_.rank, " is not in [0, world_size ", opt_.world_size, ")");
  const int64_t n = num_tokens();
  ATTNLAB_CHECK(n >= opt_.seq_len + 1, name_, ": shard has ", n,
                " tokens, too few for one window of sequence length ", opt_.seq_len, " (needs ",
                opt_.seq_len + 1, ")");
}

TokenLoader::TokenLoader(const std::string& shard_path, const LoaderOptions& options)
    : TokenLoader(read_shard(shard_path), shard_path, options) {}

int64_t TokenLoader::num_windows() const { return (num_tokens() - 1) / opt_.seq_len; }

int64_t TokenLoader::batches_per_pass() const {
  const int64_t per_step = opt_.batch * opt_.world_size;
  return (num_windows() + per_step - 1) / per_step;
}

void TokenLoader::copy_window(uint64_t start, int64_t* x, int64_t* y) const {
  const uint32_t* t = shard_.tokens.data() + start;
  for (int64_t i = 0; i < opt_.seq_len; ++i) {
    x[i] = t[i];
    y[i] = t[i + 1];
  }
}

Batch TokenLoader::next() {
  const int64_t B = opt_.batch, T = opt_.seq_len, W = opt_.world_size, r = opt_.rank;
  Batch b{Tensor::empty({B, T}, DType::i64), Tensor::empty({B, T}, DType::i64)};
  int64_t* x = b.x.data<int64_t>();
  int64_t* y = b.y.data<int64_t>();
  if (opt_.mode == LoaderMode::train) {
    const uint64_t starts = static_cast<uint64_t>(num_tokens() - T);  // in [0, n - T - 1]
    for (int64_t k = 0; k < B * W; ++k) {
      // Multiply-shift maps 64 random bits onto [0, starts); the bias is below starts / 2^64.
      const uint64_t start =
          static_cast<uint64_t>((static_cast<unsigned __int128>(gen_.next_u64()) * starts) >> 64);
      const int64_t row = k - r * B;
      if (row >= 0 && row < B) copy_window(start, x + row * T, y + row * T);
    }
  } else {
    const uint64_t nwin = static_cast<uint64_t>(num_windows());
    for (int64_t i = 0; i < B; ++i) {
      const uint64_t w = (position_ + static_cast<uint64_t>(r + i * W)) % nwin;
      copy_window(w * static_cast<uint64_t>(T), x + i * T, y + i * T);
    }
    position_ = (position_ + static_cast<uint64_t>(B * W)) % nwin;
  }
  return b;
}

void TokenLoader::reset() {
  gen_.set_state(opt_.seed, 0);
  position_ = 0;
}

LoaderState TokenLoader::state() const { return {gen_.seed(), gen_.offset(), position_}; }

void TokenLoader::set_state(const LoaderState& s) {
  gen_.set_state(s.seed, s.offset);
  position_ = s.position % static_cast<uint64_t>(num_windows());
}

}  // namespace attnlab
