#include "layers/mlp.h"

#include "autograd/functions.h"

namespace attnlab {

MLPKind parse_mlp_kind(const std::string& name) {
  if (name == "gelu") return MLPKind::gelu;
  if (name == "relu2") return MLPKind::relu2;
  if (name == "swiglu") return MLPKind::swiglu;
  throw Error(detail::cat("mlp: unknown kind '", name, "' (expected gelu, relu2 or swiglu)"));
}

const char* mlp_kind_name(MLPKind k) {
  switch (k) {
    case MLPKind::gelu: return "gelu";
    case MLPKind::relu2: return "relu2";
    case MLPKind::swiglu: return "swiglu";
  }
  return "?";
}

MLP::MLP(MLPKind kind, int64_t d_model, int64_t d_hidden, bool bias) : kind_(kind) {
  if (kind == MLPKind::swiglu) {
    gate_ = register_module("gate", std::make_shared<Linear>(d_model, d_hidden, bias));
    up_ = register_module("up", std::make_shared<Linear>(d_model, d_hidden, bias));
    down_ = register_module("down", std::make_shared<Linear>(d_hidden, d_model, bias));
  } else {
    fc_ = register_module("fc", std::make_shared<Linear>(d_model, d_hidden, bias));
    proj_ = register_module("proj", std::make_shared<Linear>(d_hidden, d_model, bias));
  }
}

Var MLP::forward(const Var& x) {
  switch (kind_) {
    case MLPKind::gelu: return proj_->forward(fc_->forward_gelu(x));
    case MLPKind::relu2: return proj_->forward(ag::relu2(fc_->forward(x)));
    case MLPKind::swiglu: return down_->forward(ag::mul(ag::silu(gate_->forward(x)), up_->forward(x)));
  }
  return x;
}

const Linear& MLP::out_proj() const { return kind_ == MLPKind::swiglu ? *down_ : *proj_; }

}  // namespace attnlab
