#include "layers/gpt_config.h"

#include "core/error.h"

namespace attnlab {

PosEmbKind parse_pos_emb_kind(const std::string& name) {
  if (name == "none") return PosEmbKind::none;
  if (name == "learned") return PosEmbKind::learned;
  if (name == "sinusoidal") return PosEmbKind::sinusoidal;
  throw Error(detail::cat("model: unknown pos_emb '", name, "' (expected none, learned or sinusoidal)"));
}

const char* pos_emb_kind_name(PosEmbKind k) {
  switch (k) {
    case PosEmbKind::none: return "none";
    case PosEmbKind::learned: return "learned";
    case PosEmbKind::sinusoidal: return "sinusoidal";
  }
  return "?";
}

AttnOptions GPTConfig::layer_options(int64_t layer) const {
  AttnOptions o = layers.empty() ? AttnOptions{} : layers[static_cast<size_t>(layer) % layers.size()];
  o.layer = layer;
  if (o.train_len == 0) o.train_len = block_size;
  return o;
}

AttnOptions GPTConfig::attn_options(int64_t layer) const {
  return resolve_attn_options(layer_options(layer), d_model, n_head);
}

void GPTConfig::validate() const {
  ATTNLAB_CHECK(vocab_size > 0, "model: vocab_size must be positive, got ", vocab_size);
  ATTNLAB_CHECK(n_layer > 0, "model: n_layer must be positive, got ", n_layer);
  ATTNLAB_CHECK(n_head > 0, "model: n_head must be positive, got ", n_head);
  ATTNLAB_CHECK(d_model > 0, "model: d_model must be positive, got ", d_model);
  ATTNLAB_CHECK(d_mlp >= 0, "model: d_mlp must be >= 0 (0: 4 * d_model), got ", d_mlp);
  ATTNLAB_CHECK(norm_eps > 0, "model: norm_eps must be positive, got ", norm_eps);
  ATTNLAB_CHECK(block_size > 0, "model: block_size must be positive, got ", block_size);
  ATTNLAB_CHECK(dropout >= 0 && dropout < 1, "model: dropout must be in [0, 1), got ", dropout);
  ATTNLAB_CHECK(init_std > 0, "model: init_std must be positive, got ", init_std);
  ATTNLAB_CHECK(aux_loss_weight >= 0, "model: aux_loss_weight must be >= 0, got ", aux_loss_weight);
  for (int64_t i = 0; i < n_layer; ++i) {
    try {
      attn_options(i);
    } catch (const Error& e) {
      throw Error(detail::cat("model: layer ", i, ": ", e.what()));
    }
  }
}

}  // namespace attnlab
