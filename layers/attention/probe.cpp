#include "layers/attention/probe.h"

#include <limits>

#include "autograd/functions.h"
#include "core/ops.h"

namespace attnlab {

Var weights_entropy(const Var& a) {
  const double tiny = a.dtype() == DType::f64 ? std::numeric_limits<double>::min()
                                              : static_cast<double>(std::numeric_limits<float>::min());
  return ag::neg(ag::sum_last(ag::mul(a, ag::log(ag::add_scalar(a, tiny)))));
}

Tensor visible_keys(const Tensor& mask, int64_t Tq, int64_t Tk) {
  if (!mask.defined()) return Tensor::full({Tq}, static_cast<double>(Tk), DType::f64);
  Tensor hidden = ops::sum_last(mask.to(DType::f64));  // [..., Tq]
  Tensor n = ops::add_scalar(ops::scale(hidden, -1.0), static_cast<double>(mask.size(-1)));
  if (n.dim() <= 2 && n.numel() == Tq) return n.reshape({Tq});
  if (n.dim() <= 1) return ops::add(Tensor::zeros({Tq}, DType::f64, n.device()), n);
  // [Hkv, G, Tq] (per-head masks: factorised sparse heads) or [B, Hkv, G, Tq]
  // (MoBA); the heads of a group are consecutive.
  if (n.dim() == 3) return n.reshape({1, -1, Tq});
  return n.reshape({n.size(0), -1, Tq});
}

}  // namespace attnlab
