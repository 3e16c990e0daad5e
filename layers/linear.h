#pragma once
#include <memory>

#include "layers/module.h"
#include "layers/sigma_reparam.h"

namespace attnlab {

// A trainable low-rank (or otherwise small) update of a Linear's weight, used for
// fine-tuning with the base weights frozen (layers/lora/). The output becomes
// y = x W^T + b + delta(x), delta(x) = x dW^T for the weight update dW that
// weight_delta() returns (so merging W + dW gives the same layer).
class LinearAdapter : public Module {
 public:
  virtual Var delta(const Var& x) = 0;
  // dW [out, in] of the current adapter parameters (no gradient recorded).
  virtual Tensor weight_delta() const = 0;
};

// y = x W^T + b. W is [out, in] (PyTorch's layout); x may carry any leading
// dims ([B, T, in]): the shared 2-D weight folds them into one GEMM.
// Parameters start at zero; the owning model initialises them (GPT::init_weights).
class Linear : public Layer {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Var forward(const Var& x) override;
  // gelu_tanh(forward(x)), the activation fused into the GEMM's epilogue (ops::linear).
  Var forward_gelu(const Var& x);

  const Var& weight() const { return weight_; }
  const Var& bias() const { return bias_; }  // undefined without bias
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  // Adds an adapter (at most one). Its parameters are registered on this Linear
  // under their own names (`wq.lora_A` beside `wq.weight`), so the base names
  // stay unchanged and a base checkpoint still loads by name.
  void set_adapter(std::shared_ptr<LinearAdapter> adapter);
  const std::shared_ptr<LinearAdapter>& adapter() const { return adapter_; }
  // σReparam (layers/sigma_reparam.h, defined in sigma_reparam.cpp): from now on
  // forward() uses Ŵ = γ/σ(W) W. Registers the parameter sigma_gamma [1] and the
  // buffers sigma_u [out], sigma_v [in].
  void enable_sigma_reparam();
  // Once W is initialised: u ~ N(0, I) from `gen`, power iteration until σ
  // settles, then γ = σ(W) or 1.
  void init_sigma_reparam(Generator& gen, SigmaGammaInit gamma_init);
  bool has_sigma_reparam() const { return sigma_gamma_.defined(); }
  const Var& sigma_gamma() const { return sigma_gamma_; }  // undefined without σReparam
  const Var& sigma_u() const { return sigma_u_; }
  const Var& sigma_v() const { return sigma_v_; }
  // The matrix forward() multiplies by: W, or Ŵ with σReparam (a training-mode
  // call advances u, v one power-iteration step; eval leaves them alone).
  Var effective_weight();

 private:
  Var apply(const Var& x, bool gelu);

  int64_t in_, out_;
  Var weight_, bias_;
  std::shared_ptr<LinearAdapter> adapter_;
  Var sigma_gamma_, sigma_u_, sigma_v_;
};

}  // namespace attnlab
