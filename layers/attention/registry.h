#pragma once
// Attention variants by name (AttnOptions::kind). Built-in kinds are listed in
// registry.cpp; code outside the library may add its own with register_attention.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "layers/attention/attention.h"

namespace attnlab {

// Receives options already resolved (resolve_attn_options).
using AttentionFactory =
    std::function<std::shared_ptr<Attention>(int64_t d_model, const AttnOptions& resolved, bool bias)>;

void register_attention(const std::string& kind, AttentionFactory factory);
std::vector<std::string> attention_kinds();
// Resolves `opts` against the model's d_model and n_head and builds the variant;
// an unknown kind is an attnlab::Error listing the known ones.
std::shared_ptr<Attention> make_attention(int64_t d_model, int64_t model_n_head, const AttnOptions& opts,
                                          bool bias);

}  // namespace attnlab
