#include "optim/clip.h"

#include <cmath>

#include "core/ops.h"

namespace attnlab {

namespace {
template <class T>
double sum_squares(const T* g, int64_t n) {
  double s = 0;
#pragma omp parallel for simd reduction(+ : s) schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(g[i]) * static_cast<double>(g[i]);
  return s;
}

double sum_squares(const Tensor& g) {
  if (g.device().is_cpu() && g.dtype() == DType::f32) return sum_squares(g.data<float>(), g.numel());
  if (g.device().is_cpu() && g.dtype() == DType::f64) return sum_squares(g.data<double>(), g.numel());
  return ops::sum_all(ops::mul(g, g)).item<double>();
}
}  // namespace

double grad_norm(const std::vector<Var>& params) {
  double s = 0;
  for (const Var& p : params)
    if (p.grad().defined()) s += sum_squares(p.grad());
  return std::sqrt(s);
}

double clip_grad_norm(const std::vector<Var>& params, double max_norm) {
  ATTNLAB_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be positive, got ", max_norm);
  double norm = grad_norm(params);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  double coef = max_norm / (norm + 1e-6);
  for (const Var& p : params) {
    if (!p.grad().defined()) continue;
    Tensor g = p.grad();  // a handle to the same buffer
    ops::axpy(g, coef - 1.0, g);  // g += (coef - 1) g, i.e. g *= coef, in place
  }
  return norm;
}

}  // namespace attnlab
