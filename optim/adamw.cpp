#include "optim/adamw.h"

#include <cmath>

#ifdef ATTNLAB_HAS_CUDA
#include "core/cuda/optim_kernels.h"
#endif

namespace attnlab {

namespace {

struct AdamWStep {
  double decay, beta1, beta2, step_size, inv_sqrt_bc2, eps;
};

// One fused pass over a parameter; the arithmetic is in T, as PyTorch's.
template <class T>
void adamw_loop(T* p, const T* g, T* m, T* v, int64_t n, const AdamWStep& s) {
  const T decay = T(s.decay), b1 = T(s.beta1), b2 = T(s.beta2), c1 = T(1 - s.beta1), c2 = T(1 - s.beta2);
  const T step_size = T(s.step_size), inv_sqrt_bc2 = T(s.inv_sqrt_bc2), eps = T(s.eps);
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    T gi = g[i];
    T mi = b1 * m[i] + c1 * gi;
    T vi = b2 * v[i] + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}

AdamWStep step_constants(const AdamWOptions& o, double lr, double weight_decay, int64_t step) {
  double t = static_cast<double>(step);
  return {1.0 - lr * weight_decay, o.beta1, o.beta2, lr / (1.0 - std::pow(o.beta1, t)),
          1.0 / std::sqrt(1.0 - std::pow(o.beta2, t)), o.eps};
}

void check_options(const AdamWOptions& o) {
  ATTNLAB_CHECK(o.lr >= 0, "AdamW: lr must be >= 0, got ", o.lr);
  ATTNLAB_CHECK(o.beta1 >= 0 && o.beta1 < 1, "AdamW: beta1 must be in [0, 1), got ", o.beta1);
  ATTNLAB_CHECK(o.beta2 >= 0 && o.beta2 < 1, "AdamW: beta2 must be in [0, 1), got ", o.beta2);
  ATTNLAB_CHECK(o.eps > 0, "AdamW: eps must be positive, got ", o.eps);
  ATTNLAB_CHECK(o.weight_decay >= 0, "AdamW: weight_decay must be >= 0, got ", o.weight_decay);
}

}  // namespace

AdamW::AdamW(const NamedVars& params, const AdamWOptions& options)
    : AdamW(make_param_groups(params, options.weight_decay, options.decay_filter), options) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options)
    : Optimizer("AdamW", std::move(groups), options.lr, {"exp_avg", "exp_avg_sq"}), opt_(options) {
  check_options(opt_);
}

void AdamW::update(Slot& s, double lr) {
  AdamWStep st = step_constants(opt_, lr, s.weight_decay, step_count());
  Tensor& p = s.param.data();
  const Tensor& g = s.param.grad();
  if (p.dtype() == DType::f32)
    adamw_loop(p.data<float>(), g.data<float>(), s.buffers[0].data<float>(), s.buffers[1].data<float>(), p.numel(), st);
  else
    adamw_loop(p.data<double>(), g.data<double>(), s.buffers[0].data<double>(), s.buffers[1].data<double>(),
               p.numel(), st);
}

void AdamW::update_device(const std::vector<Slot*>& slots, const cuda::MultiTensorTable& table, const Tensor& words,
                          double lr) {
#ifdef ATTNLAB_HAS_CUDA
  AdamWStep st = step_constants(opt_, lr, slots.front()->weight_decay, step_count());
  cuda::adamw_multi(slots.front()->param.dtype(), table, words,
                    {st.decay, st.beta1, st.beta2, st.step_size, st.inv_sqrt_bc2, st.eps});
#else
  Optimizer::update_device(slots, table, words, lr);
#endif
}

}  // namespace attnlab
