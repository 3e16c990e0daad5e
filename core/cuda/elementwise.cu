// Same-shape element-wise ops: unary and its backward, scale, add_scalar, axpy.
// The math is core/functors.h's; this file only supplies the loops.
#include "core/cuda/cuda_ops.h"
#include "core/cuda/kernel_utils.cuh"

namespace attnlab::cuda {

namespace {

// out[i] = f(x[i]) computed in compute_t<T>. out may alias x.
template <class T, class F>
__global__ void map1_kernel(T* out, const T* x, int64_t n, F f) {
  using C = compute_t<T>;
  for (int64_t i = grid_start(); i < n; i += grid_stride())
    out[i] = T(f(static_cast<C>(x[i])));
}

// out[i] = f(a[i], b[i]) computed in compute_t<T>. out may alias a or b.
template <class T, class F>
__global__ void map2_kernel(T* out, const T* a, const T* b, int64_t n, F f) {
  using C = compute_t<T>;
  for (int64_t i = grid_start(); i < n; i += grid_stride())
    out[i] = T(f(static_cast<C>(a[i]), static_cast<C>(b[i])));
}

template <UnaryOp OP>
struct UnaryFn {
  template <class C>
  __device__ C operator()(C x) const { return fn::unary<OP>(x); }
};

template <UnaryOp OP>
struct UnaryGradFn {  // dy * f'(x)
  template <class C>
  __device__ C operator()(C x, C dy) const {
    return fn::binary<BinaryOp::mul>(dy, fn::unary_grad<OP>(x));
  }
};

template <class C>
struct ScaleFn {
  C alpha;
  __device__ C operator()(C x) const { return fn::binary<BinaryOp::mul>(alpha, x); }
};

template <class C>
struct AddScalarFn {
  C value;
  __device__ C operator()(C x) const { return fn::binary<BinaryOp::add>(x, value); }
};

template <class C>
struct AxpyFn {
  C alpha;
  __device__ C operator()(C y, C x) const {
    return fn::binary<BinaryOp::add>(y, fn::binary<BinaryOp::mul>(alpha, x));
  }
};

template <class T, class F>
void launch_map1(Tensor& out, const Tensor& x, F f, const char* name) {
  int64_t n = out.numel();
  if (n == 0) return;
  map1_kernel<T><<<blocks_for(n), kThreads>>>(static_cast<T*>(out.raw_data()),
                                              static_cast<const T*>(x.raw_data()), n, f);
  ATTNLAB_CUDA_CHECK_LAUNCH(name);
}

template <class T, class F>
void launch_map2(Tensor& out, const Tensor& a, const Tensor& b, F f, const char* name) {
  int64_t n = out.numel();
  if (n == 0) return;
  map2_kernel<T><<<blocks_for(n), kThreads>>>(static_cast<T*>(out.raw_data()),
                                              static_cast<const T*>(a.raw_data()),
                                              static_cast<const T*>(b.raw_data()), n, f);
  ATTNLAB_CUDA_CHECK_LAUNCH(name);
}

}  // namespace

void unary(UnaryOp op, const Tensor& x, Tensor& out) {
  DeviceGuard guard(out.device().index);
  dispatch_float(out.dtype(), "unary", [&]<class T>() {
    dispatch_unary(op, [&]<UnaryOp OP>() { launch_map1<T>(out, x, UnaryFn<OP>{}, "unary"); });
  });
}

void unary_backward(UnaryOp op, const Tensor& x, const Tensor& dy, Tensor& dx) {
  DeviceGuard guard(dx.device().index);
  dispatch_float(dx.dtype(), "unary_backward", [&]<class T>() {
    dispatch_unary(op, [&]<UnaryOp OP>() {
      launch_map2<T>(dx, x, dy, UnaryGradFn<OP>{}, "unary_backward");
    });
  });
}

void scale(const Tensor& x, double alpha, Tensor& out) {
  DeviceGuard guard(out.device().index);
  dispatch_float(out.dtype(), "scale", [&]<class T>() {
    using C = compute_t<T>;
    launch_map1<T>(out, x, ScaleFn<C>{static_cast<C>(alpha)}, "scale");
  });
}

void add_scalar(const Tensor& x, double value, Tensor& out) {
  DeviceGuard guard(out.device().index);
  dispatch_float(out.dtype(), "add_scalar", [&]<class T>() {
    using C = compute_t<T>;
    launch_map1<T>(out, x, AddScalarFn<C>{static_cast<C>(value)}, "add_scalar");
  });
}

void axpy(Tensor& y, double alpha, const Tensor& x) {
  DeviceGuard guard(y.device().index);
  dispatch_float(y.dtype(), "axpy", [&]<class T>() {
    using C = compute_t<T>;
    launch_map2<T>(y, y, x, AxpyFn<C>{static_cast<C>(alpha)}, "axpy");
  });
}

}  // namespace attnlab::cuda
