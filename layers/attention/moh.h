#pragma once
// Mixture-of-Head attention (Jin et al., "MoH: Multi-Head Attention as
// Mixture-of-Head Attention", Sec. 3): multi-head attention written as a sum
// over heads, y = sum_i g_i head_i W_O^i, with per-token head weights g:
//   shared heads i < h_s (always on):  g_i = 2 a_1 * h_s * softmax(W_s x)_i
//   routed heads (h_r = H - h_s):      g_i = 2 a_2 * k * p_i / sum_{topk} p  if i in topk(p),
//                                      else 0,   p = softmax(W_r x)
//   [a_1, a_2] = softmax(W_h x)        (the two-stage routing; absent when either
//                                       group is empty, with h_s = 1 giving g = 1)
// The factors h_s, k and 2 make each active head's weight 1 on average, so MoH
// starts where MHA is; they follow the authors' release (the paper writes the
// unscaled softmax gates). Top-k is a discrete choice: gradients reach W_r
// through the chosen heads' weights.
//
// Load balance (Sec. 3.2): L_b = h_r sum_i f_i P_i over routed heads, f_i the
// fraction of tokens routed to head i, P_i the mean router probability; h_r
// scales it so uniform routing gives k. Recorded by each training-mode forward
// and handed to the model through Module::take_aux_losses (GPT::loss adds it,
// weighted by aux_loss_weight).
//
// Parameters beyond the softmax module's: router_shared.weight [h_s, C] (h_s >= 2),
// router_routed.weight [h_r, C] (h_r >= 1), router_mix.weight [2, C] (both groups).
// Heads compute densely here (the reference); a fused kernel could skip unrouted heads.
#include "layers/attention/softmax_attention.h"

namespace attnlab {

class MoHAttention : public SoftmaxAttention {
 public:
  MoHAttention(int64_t d_model, const AttnOptions& resolved, bool bias);
  // The head weights g [B, T, H] of an input (no gradient), for tests and analysis.
  Tensor head_gates(const Var& x);

 protected:
  Var attend(const Heads& h, const Var& x) override;
  Var take_aux_loss() override;

 private:
  // g [B, T, H]; records the balance loss in aux_ when `record`.
  Var gates(const Var& x, bool record);
  std::shared_ptr<Linear> router_shared_, router_routed_, router_mix_;
  Var aux_;
};

}  // namespace attnlab
