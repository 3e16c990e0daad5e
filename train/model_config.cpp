#include "train/model_config.h"

#include <algorithm>

#include "core/error.h"
#include "layers/attention/registry.h"

namespace attnlab {

namespace {

[[noreturn]] void not_available(const AttnConfig& a, const std::string& key, const std::string& value) {
  throw Error(detail::cat(a.name.empty() ? "attn" : "attn." + a.name, ".", key, " = ", value,
                          ": not implemented yet in this build of attnlab"));
}

AttnOptions attn_options_from(const AttnConfig& a) {
  std::vector<std::string> kinds = attention_kinds();
  if (std::find(kinds.begin(), kinds.end(), a.kind) == kinds.end()) not_available(a, "kind", a.kind);
  if (a.pos != "rope" && a.pos != "nope") not_available(a, "pos", a.pos);
  if (a.qk_norm != "none") not_available(a, "qk_norm", a.qk_norm);
  if (a.softcap != 0) not_available(a, "softcap", std::to_string(a.softcap));
  if (a.scale != 0) not_available(a, "scale", std::to_string(a.scale));
  AttnOptions o;
  o.kind = a.kind;
  o.n_head = a.n_head;
  o.n_kv_head = a.n_kv_head;
  o.d_head = a.d_head;
  o.pos = parse_pos_kind(a.pos);
  o.rope_theta = a.rope_theta;
  o.rope_fraction = a.rope_fraction;
  o.mask = parse_mask_kind(a.mask);
  o.window = a.window;
  return o;
}

}  // namespace

GPTConfig gpt_config_from(const Config& cfg) {
  const ModelConfig& m = cfg.model;
  GPTConfig g;
  g.vocab_size = m.vocab_size;
  g.n_layer = m.n_layer;
  g.n_head = m.n_head;
  g.d_model = m.d_model;
  g.d_mlp = m.d_mlp;
  g.mlp = parse_mlp_kind(m.mlp);
  g.norm = parse_norm_kind(m.norm);
  g.norm_eps = m.norm_eps;
  g.pos_emb = parse_pos_emb_kind(m.pos_emb);
  g.block_size = m.block_size;
  g.tie_embeddings = m.tie_embeddings;
  g.bias = m.bias;
  g.dropout = m.dropout;
  g.init_std = m.init_std;
  for (const AttnConfig& a : cfg.layer_attn) g.layers.push_back(attn_options_from(a));
  g.validate();
  return g;
}

}  // namespace attnlab
