#include "optim/sgd.h"

#ifdef ATTNLAB_HAS_CUDA
#include "core/cuda/optim_kernels.h"
#endif

namespace attnlab {

namespace {

template <class T>
void sgd_loop(T* p, const T* g, T* buf, int64_t n, double lr, double wd, double momentum, double dampening,
              bool nesterov, bool first) {
  const T lr_t = T(lr), wd_t = T(wd), mom = T(momentum), damp = T(1 - dampening);
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i] + wd_t * p[i];
    if (buf) {
      T b = first ? d : mom * buf[i] + damp * d;
      buf[i] = b;
      d = nesterov ? d + mom * b : b;
    }
    p[i] -= lr_t * d;
  }
}

}  // namespace

SGD::SGD(const NamedVars& params, const SGDOptions& options)
    : SGD(make_param_groups(params, options.weight_decay, options.decay_filter), options) {}

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& options)
    : Optimizer("SGD", std::move(groups), options.lr,
                options.momentum != 0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{}),
      opt_(options) {
  ATTNLAB_CHECK(opt_.lr >= 0, "SGD: lr must be >= 0, got ", opt_.lr);
  ATTNLAB_CHECK(opt_.momentum >= 0, "SGD: momentum must be >= 0, got ", opt_.momentum);
  ATTNLAB_CHECK(opt_.weight_decay >= 0, "SGD: weight_decay must be >= 0, got ", opt_.weight_decay);
  ATTNLAB_CHECK(!opt_.nesterov || (opt_.momentum > 0 && opt_.dampening == 0),
                "SGD: nesterov needs momentum > 0 and dampening = 0");
}

void SGD::update(Slot& s, double lr) {
  Tensor& p = s.param.data();
  const Tensor& g = s.param.grad();
  bool has_buf = !s.buffers.empty(), first = step_count() == 1;
  if (p.dtype() == DType::f32)
    sgd_loop(p.data<float>(), g.data<float>(), has_buf ? s.buffers[0].data<float>() : nullptr, p.numel(), lr,
             s.weight_decay, opt_.momentum, opt_.dampening, opt_.nesterov, first);
  else
    sgd_loop(p.data<double>(), g.data<double>(), has_buf ? s.buffers[0].data<double>() : nullptr, p.numel(), lr,
             s.weight_decay, opt_.momentum, opt_.dampening, opt_.nesterov, first);
}

void SGD::update_device(const std::vector<Slot*>& slots, const cuda::MultiTensorTable& table, const Tensor& words,
                        double lr) {
#ifdef ATTNLAB_HAS_CUDA
  cuda::sgd_multi(slots.front()->param.dtype(), table, words,
                  {lr, slots.front()->weight_decay, opt_.momentum, opt_.dampening, opt_.nesterov, step_count() == 1});
#else
  Optimizer::update_device(slots, table, words, lr);
#endif
}

}  // namespace attnlab
