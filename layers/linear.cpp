#include "layers/linear.h"

#include "autograd/functions.h"

namespace attnlab {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias) : in_(in_features), out_(out_features) {
  ATTNLAB_CHECK(in_ > 0 && out_ > 0, "Linear: sizes must be positive, got in=", in_, " out=", out_);
  weight_ = register_parameter("weight", Tensor::zeros({out_, in_}));
  if (bias) bias_ = register_parameter("bias", Tensor::zeros({out_}));
}

Var Linear::forward(const Var& x) { return apply(x, false); }
Var Linear::forward_gelu(const Var& x) { return apply(x, true); }

Var Linear::apply(const Var& x, bool gelu) {
  ATTNLAB_CHECK(x.dim() >= 2 && x.size(-1) == in_, "Linear: input ", x.data().str(), " does not end in ",
                in_, " features");
  // The adapter's delta joins before the activation, so only a plain layer fuses it.
  Var y = ag::linear(x, effective_weight(), bias_, gelu && !adapter_);
  if (adapter_) {
    adapter_->train(is_training());  // not a child: it follows this layer's mode here
    y = ag::add(y, adapter_->delta(x));
    if (gelu) y = ag::gelu(y);
  }
  return y;
}

void Linear::set_adapter(std::shared_ptr<LinearAdapter> adapter) {
  ATTNLAB_CHECK(adapter, "Linear: set_adapter needs an adapter");
  ATTNLAB_CHECK(!adapter_, "Linear: this layer already has an adapter");
  for (auto& [name, p] : adapter->named_parameters()) register_shared_parameter(name, p);
  adapter_ = std::move(adapter);
}

}  // namespace attnlab
