#include "layers/norm.h"

#include "autograd/functions.h"

namespace attnlab {

NormKind parse_norm_kind(const std::string& name) {
  if (name == "layer" || name == "layernorm") return NormKind::layer;
  if (name == "rms" || name == "rmsnorm") return NormKind::rms;
  throw Error(detail::cat("norm: unknown kind '", name, "' (expected layer or rms)"));
}

const char* norm_kind_name(NormKind k) { return k == NormKind::layer ? "layer" : "rms"; }

LayerNorm::LayerNorm(int64_t dim, double eps, bool bias) : eps_(eps) {
  weight_ = register_parameter("weight", Tensor::ones({dim}));
  if (bias) bias_ = register_parameter("bias", Tensor::zeros({dim}));
}

Var LayerNorm::forward(const Var& x) { return ag::layer_norm(x, weight_, bias_, eps_); }

RMSNorm::RMSNorm(int64_t dim, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", Tensor::ones({dim}));
}

Var RMSNorm::forward(const Var& x) { return ag::rms_norm(x, weight_, eps_); }

std::shared_ptr<Layer> make_norm(NormKind kind, int64_t dim, double eps, bool bias) {
  if (kind == NormKind::layer) return std::make_shared<LayerNorm>(dim, eps, bias);
  return std::make_shared<RMSNorm>(dim, eps);
}

}  // namespace attnlab
