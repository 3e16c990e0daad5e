#pragma once
#include <memory>

#include "layers/attention/attention.h"
#include "layers/dropout.h"
#include "layers/gpt_config.h"
#include "layers/mlp.h"

namespace attnlab {

// Pre-norm transformer block:
//   x = x + drop(attn(ln_1(x)))
//   x = x + drop(mlp(ln_2(x)))
class Block : public Layer {
 public:
  Block(const GPTConfig& cfg, int64_t layer, std::shared_ptr<Generator> dropout_gen);
  Var forward(const Var& x) override;
  // The same with the attention reading and extending a decoding cache.
  Var forward_step(const Var& x, AttnCache& cache);

  Attention& attn() const { return *attn_; }
  MLP& mlp() const { return *mlp_; }

 private:
  std::shared_ptr<Layer> ln_1_, ln_2_;
  std::shared_ptr<Attention> attn_;
  std::shared_ptr<MLP> mlp_;
  std::shared_ptr<Dropout> drop_;
};

}  // namespace attnlab
