#pragma once
#include <cstdint>
#include <string>

#include "core/rng.h"
#include "core/tensor.h"
#include "data/shards.h"

namespace attnlab {

enum class LoaderMode { train, val };

struct LoaderOptions {
  int64_t batch = 1;    // B: rows per rank
  int64_t seq_len = 1;  // T
  uint64_t seed = 0;    // train mode: fixes the window order
  LoaderMode mode = LoaderMode::train;
  int rank = 0;  // data parallel: this process's rank among world_size
  int world_size = 1;
};

// Where a loader is in its stream; plain integers for checkpoints.
struct LoaderState {
  uint64_t seed = 0;      // train: the generator's seed
  uint64_t offset = 0;    // train: the generator's offset
  uint64_t position = 0;  // val: index of the next window
  bool operator==(const LoaderState&) const = default;
};

// Inputs and next-token targets, i64 [B, T] on the CPU.
struct Batch {
  Tensor x;
  Tensor y;  // y[b][t] = the token after x[b][t]
  Batch to(Device d) const { return {x.to(d), y.to(d)}; }  // the same tensors when already there
};

// Cuts a shard's tokens into [B, T] batches.
//
// train: every step draws B * world_size window starts uniformly from
// [0, n - T - 1] with one Generator seeded by `seed`, and rank r takes draws
// [r*B, (r+1)*B). All ranks draw the same numbers, so W ranks with B rows each
// see exactly the batch one rank with W*B rows sees.
//
// val: the non-overlapping windows [k*T, k*T + T] in order from the start,
// wrapping at the end; rank r of W takes every W-th window (r, r+W, ...), so
// W ranks together cover the windows one rank would.
class TokenLoader {
 public:
  // `name` (usually the shard's path) is what errors mention.
  TokenLoader(TokenShard shard, std::string name, const LoaderOptions& options);
  // Reads the shard with read_shard().
  TokenLoader(const std::string& shard_path, const LoaderOptions& options);

  Batch next();
  // Back to the first batch: val restarts at window 0; train restarts its draws.
  void reset();

  LoaderState state() const;
  void set_state(const LoaderState& s);

  const TokenShard& shard() const { return shard_; }
  const LoaderOptions& options() const { return opt_; }
  int64_t num_tokens() const { return static_cast<int64_t>(shard_.tokens.size()); }
  // val: non-overlapping windows in the shard, and the batches that cover them once.
  int64_t num_windows() const;
  int64_t batches_per_pass() const;

 private:
  void copy_window(uint64_t start, int64_t* x, int64_t* y) const;

  TokenShard shard_;
  std::string name_;
  LoaderOptions opt_;
  Generator gen_;
  uint64_t position_ = 0;
};

}  // namespace attnlab
