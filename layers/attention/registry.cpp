#include "layers/attention/registry.h"

#include <map>

#include "layers/attention/diff_attention.h"
#include "layers/attention/linear_attention.h"
#include "layers/attention/moh.h"
#include "layers/attention/softmax_attention.h"

namespace attnlab {

namespace {
std::shared_ptr<Attention> make_linear_family(int64_t d, const AttnOptions& o, bool bias) {
  return std::make_shared<LinearAttention>(d, o, bias);
}

// Built-ins are named here (not self-registered from their own files) so the
// static library's linker never drops one.
std::map<std::string, AttentionFactory>& registry() {
  static std::map<std::string, AttentionFactory> r = {
      {"softmax",
       [](int64_t d, const AttnOptions& o, bool bias) { return std::make_shared<SoftmaxAttention>(d, o, bias); }},
      {"diff", [](int64_t d, const AttnOptions& o, bool bias) { return std::make_shared<DiffAttention>(d, o, bias); }},
      {"moh", [](int64_t d, const AttnOptions& o, bool bias) { return std::make_shared<MoHAttention>(d, o, bias); }},
      {"linear", make_linear_family},
      {"retention", make_linear_family},
      {"gla", make_linear_family},
      {"delta", make_linear_family},
  };
  return r;
}
}  // namespace

void register_attention(const std::string& kind, AttentionFactory factory) {
  ATTNLAB_CHECK(!kind.empty() && factory, "register_attention: needs a name and a factory");
  registry()[kind] = std::move(factory);
}

std::vector<std::string> attention_kinds() {
  std::vector<std::string> out;
  for (auto& [k, f] : registry()) out.push_back(k);
  return out;
}

std::shared_ptr<Attention> make_attention(int64_t d_model, int64_t model_n_head, const AttnOptions& opts,
                                          bool bias) {
  auto it = registry().find(opts.kind);
  if (it == registry().end()) {
    std::string known;
    for (auto& k : attention_kinds()) known += (known.empty() ? "" : ", ") + k;
    throw Error(detail::cat("attention: unknown kind '", opts.kind, "' (known: ", known, ")"));
  }
  return it->second(d_model, resolve_attn_options(opts, d_model, model_n_head), bias);
}

}  // namespace attnlab
