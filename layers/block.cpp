#include "layers/block.h"

#include "autograd/functions.h"
#include "layers/attention/registry.h"

namespace attnlab {

Block::Block(const GPTConfig& cfg, int64_t layer, std::shared_ptr<Generator> dropout_gen) {
  ln_1_ = register_module("ln_1", make_norm(cfg.norm, cfg.d_model, cfg.norm_eps, cfg.bias));
  attn_ = register_module("attn", make_attention(cfg.d_model, cfg.n_head, cfg.layer_options(layer), cfg.bias));
  ln_2_ = register_module("ln_2", make_norm(cfg.norm, cfg.d_model, cfg.norm_eps, cfg.bias));
  mlp_ = register_module("mlp", std::make_shared<MLP>(cfg.mlp, cfg.d_model, cfg.hidden_dim(), cfg.bias));
  drop_ = register_module("drop", std::make_shared<Dropout>(cfg.dropout, std::move(dropout_gen)));
}

Var Block::forward(const Var& x) {
  Var h = ag::add(x, drop_->forward(attn_->forward(ln_1_->forward(x))));
  return ag::add(h, drop_->forward(mlp_->forward(ln_2_->forward(h))));
}

Var Block::forward_step(const Var& x, AttnCache& cache) {
  Var h = ag::add(x, drop_->forward(attn_->forward_step(ln_1_->forward(x), cache)));
  return ag::add(h, drop_->forward(mlp_->forward(ln_2_->forward(h))));
}

}  // namespace attnlab
