#pragma once
// The per-element updates of the multi-tensor optimizer kernels (core/cuda/optim.cu)
// as ATTNLAB_HOST_DEVICE functors, so host tests run them over a table of host
// pointers and compare with the CPU optimizers (tests/optim/test_multi_tensor.cpp).
// On the device every operation is a rounded IEEE intrinsic (__fmul_rn, ...),
// which nvcc never contracts into an FMA: the CPU loop's operations in its order.
#include "core/cuda/optim_kernels.h"
#include "core/cuda/rounded_math.h"
#include "core/macros.h"

namespace attnlab::cuda {

// optim/adamw.cpp's adamw_loop for one element:
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g;
//   p = p decay - step_size m / (sqrt(v) inv_sqrt_bc2 + eps)
template <class T>
struct AdamWElement {
  T decay, b1, b2, c1, c2, step_size, inv_sqrt_bc2, eps;

  static AdamWElement from(const AdamWConsts& c) {
    return {T(c.decay), T(c.beta1), T(c.beta2), T(1 - c.beta1), T(1 - c.beta2), T(c.step_size), T(c.inv_sqrt_bc2),
            T(c.eps)};
  }
  ATTNLAB_HOST_DEVICE void operator()(T& p, T g, T& m, T& v) const {
    const T mi = rn::add(rn::mul(b1, m), rn::mul(c1, g));
    const T vi = rn::add(rn::mul(b2, v), rn::mul(rn::mul(c2, g), g));
    m = mi;
    v = vi;
    const T denom = rn::add(rn::mul(rn::sqrt(vi), inv_sqrt_bc2), eps);
    p = rn::sub(rn::mul(p, decay), rn::div(rn::mul(step_size, mi), denom));
  }
};

// optim/sgd.cpp's sgd_loop for one element (buf null: no momentum):
//   d = g + wd p;  b = first ? d : mom b + damp d;  d = nesterov ? d + mom b : b;  p = p - lr d
template <class T>
struct SGDElement {
  T lr, wd, mom, damp;
  bool nesterov, first;

  static SGDElement from(const SGDConsts& c) {
    return {T(c.lr), T(c.weight_decay), T(c.momentum), T(1 - c.dampening), c.nesterov, c.first};
  }
  ATTNLAB_HOST_DEVICE void operator()(T& p, T g, T* buf) const {
    T d = rn::add(g, rn::mul(wd, p));
    if (buf) {
      const T b = first ? d : rn::add(rn::mul(mom, *buf), rn::mul(damp, d));
      *buf = b;
      d = nesterov ? rn::add(d, rn::mul(mom, b)) : b;
    }
    p = rn::sub(p, rn::mul(lr, d));
  }
};

// clip_grad_norm's scaling, ops::axpy(g, coef - 1, g): g = g + s g.
template <class T>
ATTNLAB_HOST_DEVICE T scale_element(T g, T s) {
  return rn::add(g, rn::mul(s, g));
}

}  // namespace attnlab::cuda
