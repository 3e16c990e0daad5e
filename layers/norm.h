#pragma once
#include <memory>
#include <string>

#include "layers/module.h"

namespace attnlab {

enum class NormKind { layer, rms };
NormKind parse_norm_kind(const std::string& name);  // "layer" | "rms"
const char* norm_kind_name(NormKind k);

// LayerNorm over the last dim: weight (ones), optional bias (zeros).
class LayerNorm : public Layer {
 public:
  LayerNorm(int64_t dim, double eps = 1e-5, bool bias = true);
  Var forward(const Var& x) override;
  const Var& weight() const { return weight_; }
  const Var& bias() const { return bias_; }

 private:
  double eps_;
  Var weight_, bias_;
};

// RMSNorm (Zhang & Sennrich, "Root Mean Square Layer Normalization"): x / rms(x) * weight.
class RMSNorm : public Layer {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-5);
  Var forward(const Var& x) override;
  const Var& weight() const { return weight_; }

 private:
  double eps_;
  Var weight_;
};

// `bias` applies to LayerNorm only.
std::shared_ptr<Layer> make_norm(NormKind kind, int64_t dim, double eps, bool bias);

}  // namespace attnlab
