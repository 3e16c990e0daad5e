#pragma once
// MoBA (Lu et al., "MoBA: Mixture of Block Attention for Long-Context LLMs"),
// Sec. 2.2-2.3: the keys are split into blocks of moba_block positions; query i
// scores each block b by q_i . mean(K_b) (mean pooling of the block's keys) and
// attends the top-k blocks, where its own block is always one of the k (and is
// attended causally) and blocks after its own are never chosen. Blocks before
// the query's own are complete, so the full forward and cached decoding choose
// the same blocks. The choice is discrete: gradients flow through the attention
// on the chosen keys only, as in the paper.
#include "core/tensor.h"

namespace attnlab {

// q [B, H, Tq, D] at positions q_offset .., k [B, Hkv, Tk, D] at positions
// 0 .. Tk - 1 (query head h reads kv head h / (H / Hkv)) -> i32 mask
// [B, Hkv, H / Hkv, Tq, Tk], non-zero where the key is hidden. Ties between
// blocks go to the earlier block.
Tensor moba_mask(const Tensor& q, const Tensor& k, int64_t block, int64_t topk, int64_t q_offset);

}  // namespace attnlab
