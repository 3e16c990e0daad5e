#pragma once
#include <memory>
#include <string>

#include "layers/linear.h"

namespace attnlab {

// gelu:   proj(gelu_tanh(fc(x)))                       params fc, proj
// relu2:  proj(relu(fc(x))^2)  (So et al., "Primer")   params fc, proj
// swiglu: down(silu(gate(x)) * up(x))  (Shazeer, "GLU Variants Improve Transformer")
//                                                      params gate, up, down
enum class MLPKind { gelu, relu2, swiglu };
MLPKind parse_mlp_kind(const std::string& name);
const char* mlp_kind_name(MLPKind k);

class MLP : public Layer {
 public:
  MLP(MLPKind kind, int64_t d_model, int64_t d_hidden, bool bias);
  Var forward(const Var& x) override;
  MLPKind kind() const { return kind_; }
  // The projection back into the residual stream (proj or down).
  const Linear& out_proj() const;

 private:
  MLPKind kind_;
  std::shared_ptr<Linear> fc_, proj_;         // gelu, relu2
  std::shared_ptr<Linear> gate_, up_, down_;  // swiglu
};

}  // namespace attnlab
