#pragma once
// Multi-head softmax attention, composed from autograd primitives (the
// reference path every fused kernel is checked against).
//
// Heads: n_head query heads share n_kv_head key/value heads in consecutive
// groups of n_head / n_kv_head (Ainslie et al., "GQA: Training Generalized
// Multi-Query Transformer Models from Multi-Head Checkpoints"); n_kv_head =
// n_head is MHA, 1 is MQA. Positions: rope (rope.h) on q and k, or nope.
// Parameters (PyTorch layout [out, in]): wq [H*D, C], wk [Hkv*D, C],
// wv [Hkv*D, C], wo [C, H*D], each with an optional bias.
#include <memory>

#include "layers/attention/attention.h"
#include "layers/attention/rope.h"
#include "layers/linear.h"

namespace attnlab {

class SoftmaxAttention : public Attention {
 public:
  SoftmaxAttention(int64_t d_model, const AttnOptions& resolved, bool bias);
  Var forward(const Var& x) override;
  Var forward_step(const Var& x, AttnCache& cache) override;

  const Linear& wq() const { return *wq_; }
  const Linear& wk() const { return *wk_; }
  const Linear& wv() const { return *wv_; }
  const Linear& wo() const { return *wo_; }

 private:
  Var run(const Var& x, AttnCache* cache);
  // [B, T, n*D] -> [B, n, T, D]
  Var split_heads(const Var& x, int64_t n) const;
  Tensor mask_for(int64_t Tq, int64_t Tk, int64_t q_offset, Device device);

  std::shared_ptr<Linear> wq_, wk_, wv_, wo_;
  std::unique_ptr<RopeTable> rope_;
  // The training-time mask depends on T only: kept for the last T seen.
  int64_t mask_T_ = -1;
  Tensor mask_;
};

}  // namespace attnlab
