#include "layers/dropout.h"

#include "autograd/functions.h"
#include "core/ops.h"

namespace attnlab {

Dropout::Dropout(double p, std::shared_ptr<Generator> gen) : p_(p), gen_(std::move(gen)) {
  ATTNLAB_CHECK(p_ >= 0.0 && p_ < 1.0, "Dropout: p must be in [0, 1), got ", p_);
  ATTNLAB_CHECK(p_ == 0.0 || gen_, "Dropout: p = ", p_, " needs a Generator");
}

Var Dropout::forward(const Var& x) {
  if (!is_training() || p_ == 0.0) return x;
  // keep = u > p for u ~ U[0, 1): relu(u - p) is non-zero exactly where kept,
  // so `where` turns it into the scaled mask with element-wise ops only.
  Tensor u = Tensor::empty(x.shape(), x.dtype(), x.device()).uniform_(*gen_);
  Tensor keep = ops::unary(UnaryOp::relu, ops::add_scalar(u, -p_));
  Tensor mask = ops::where(keep, Tensor::full({}, 1.0 / (1.0 - p_), x.dtype(), x.device()),
                           Tensor::zeros({}, x.dtype(), x.device()));
  return ag::mul(x, Var(mask));
}

}  // namespace attnlab
