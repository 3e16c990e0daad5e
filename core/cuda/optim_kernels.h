#pragma once
// Multi-tensor CUDA kernels of the optimizers (optim/adamw.cpp, optim/sgd.cpp)
// and of gradient clipping (optim/clip.cpp): one launch over every tensor of a
// table (core/cuda/multi_tensor.h) whose packed words live on the device. The
// element-wise arithmetic is the CPU loop's, operation for operation and in the
// parameter's dtype (f32 or f64), with no fused multiply-adds on the device, so
// CPU and GPU agree to rounding (bit for bit where g++ does not contract the
// CPU loop into FMAs). Only compiled when ATTNLAB_HAS_CUDA. No Eigen here.
#include "core/cuda/multi_tensor.h"
#include "core/tensor.h"

namespace attnlab::cuda {

// The per-step scalars of optim/adamw.cpp's loop.
struct AdamWConsts {
  double decay, beta1, beta2, step_size, inv_sqrt_bc2, eps;
};
// The per-step scalars of optim/sgd.cpp's loop.
struct SGDConsts {
  double lr, weight_decay, momentum, dampening;
  bool nesterov, first;
};

// `words`: the table's words on the device (i64, table.words.size() elements);
// every pointer in it is on words' device and of `dtype` (f32 or f64).
// Rows {p, g, exp_avg, exp_avg_sq}.
void adamw_multi(DType dtype, const MultiTensorTable& table, const Tensor& words, const AdamWConsts& c);
// Rows {p, g, momentum_buffer} (momentum != 0) or {p, g}.
void sgd_multi(DType dtype, const MultiTensorTable& table, const Tensor& words, const SGDConsts& c);
// Rows {g}: out (f64 [1] on the device) <- the sum of g^2 over every element, in
// double. Deterministic: a fixed-order sum per chunk, then the chunks' sums in
// chunk order by one block (no atomics).
void sum_squares_multi(DType dtype, const MultiTensorTable& table, const Tensor& words, Tensor& out);
// Rows {g}: g <- g + (coef - 1) g, as ops::axpy(g, coef - 1, g) computes it.
void scale_multi(DType dtype, const MultiTensorTable& table, const Tensor& words, double coef);

}  // namespace attnlab::cuda
