#include "layers/attention/softmax_attention.h"

#include <cmath>
#include <limits>

#include "autograd/functions.h"
#include "layers/attention/mask.h"

namespace attnlab {

SoftmaxAttention::SoftmaxAttention(int64_t d_model, const AttnOptions& resolved, bool bias)
    : Attention(resolve_attn_options(resolved, d_model, resolved.n_head)) {
  const AttnOptions& o = opts_;
  wq_ = register_module("wq", std::make_shared<Linear>(d_model, o.n_head * o.d_head, bias));
  wk_ = register_module("wk", std::make_shared<Linear>(d_model, o.n_kv_head * o.d_head, bias));
  wv_ = register_module("wv", std::make_shared<Linear>(d_model, o.n_kv_head * o.d_head, bias));
  wo_ = register_module("wo", std::make_shared<Linear>(o.n_head * o.d_head, d_model, bias));
  if (o.pos == PosKind::rope) rope_ = std::make_unique<RopeTable>(rope_rotated_dims(o), o.rope_theta);
}

Var SoftmaxAttention::split_heads(const Var& x, int64_t n) const {
  return ag::transpose(ag::reshape(x, {x.size(0), x.size(1), n, opts_.d_head}), 1, 2);
}

Tensor SoftmaxAttention::mask_for(int64_t Tq, int64_t Tk, int64_t q_offset, Device device) {
  if (q_offset != 0 || Tq != Tk) return make_attn_mask(opts_.mask, opts_.window, Tq, Tk, q_offset, device);
  if (mask_T_ != Tq || (mask_.defined() && mask_.device() != device)) {
    mask_ = make_attn_mask(opts_.mask, opts_.window, Tq, Tk, 0, device);
    mask_T_ = Tq;
  }
  return mask_;
}

Var SoftmaxAttention::forward(const Var& x) { return run(x, nullptr); }

Var SoftmaxAttention::forward_step(const Var& x, AttnCache& cache) { return run(x, &cache); }

Var SoftmaxAttention::run(const Var& x, AttnCache* cache) {
  ATTNLAB_CHECK(x.dim() == 3, "attention: input must be [B, T, C], got ", x.data().str());
  const int64_t B = x.size(0), T = x.size(1), H = opts_.n_head, Hkv = opts_.n_kv_head, D = opts_.d_head;
  const int64_t G = H / Hkv, pos0 = cache ? cache->pos : 0;

  Var q = split_heads(wq_->forward(x), H);  // [B, H, T, D]
  Var k = split_heads(wk_->forward(x), Hkv);  // [B, Hkv, T, D]
  Var v = split_heads(wv_->forward(x), Hkv);
  if (rope_) {
    q = rope_->apply(q, pos0);
    k = rope_->apply(k, pos0);
  }
  if (cache) {
    if (cache->pos > 0) {
      ATTNLAB_CHECK(cache->state.count("k") && cache->state.count("v"), "attention: the cache is at position ",
                    cache->pos, " but holds no keys/values (a cache from another attention kind?)");
      k = ag::concat({Var(cache->state.at("k")), k}, 2);
      v = ag::concat({Var(cache->state.at("v")), v}, 2);
    }
    cache->state["k"] = k.data();
    cache->state["v"] = v.data();
    cache->pos += T;
  }
  const int64_t Tk = k.size(2);

  // Scaling q (T*D elements) is cheaper than scaling the scores (T*Tk).
  q = ag::scale(q, 1.0 / std::sqrt(static_cast<double>(D)));
  // The G query heads of one kv group are consecutive, so [B, H, T, D] viewed as
  // [B, Hkv, G*T, D] multiplies each group's keys once, without repeating them.
  Var s = ag::matmul(ag::reshape(q, {B, Hkv, G * T, D}), k, false, true);  // [B, Hkv, G*T, Tk]
  Tensor mask = mask_for(T, Tk, pos0, x.device());
  if (mask.defined())
    s = ag::masked_fill(ag::reshape(s, {B, Hkv, G, T, Tk}), mask, -std::numeric_limits<double>::infinity());
  Var a = ag::reshape(ag::softmax(s), {B, Hkv, G * T, Tk});
  Var o = ag::reshape(ag::matmul(a, v), {B, H, T, D});
  o = ag::reshape(ag::transpose(o, 1, 2), {B, T, H * D});
  return wo_->forward(o);
}

}  // namespace attnlab
