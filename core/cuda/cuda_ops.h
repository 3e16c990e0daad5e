#pragma once
// CUDA kernels behind core/ops.h. Same contract as core/cpu/cpu_ops.h: core/ops.cpp
// has validated shapes and dtypes and allocated `out`; these only launch.
// Only compiled when ATTNLAB_HAS_CUDA. No Eigen here (nvcc and Eigen disagree).
#include <cstdint>

#include "core/functors.h"
#include "core/tensor.h"

namespace attnlab::cuda {

void fill(Tensor& t, double value);
// Any device pair (host<->device, device<->device); converts dtype on the fly.
void copy(Tensor& dst, const Tensor& src);
void uniform(Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi);
void normal(Tensor& t, uint64_t seed, uint64_t offset, double mean, double std);

void unary(UnaryOp op, const Tensor& x, Tensor& out);
void unary_backward(UnaryOp op, const Tensor& x, const Tensor& dy, Tensor& dx);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);  // out: broadcast shape
void scale(const Tensor& x, double alpha, Tensor& out);
void add_scalar(const Tensor& x, double value, Tensor& out);
void axpy(Tensor& y, double alpha, const Tensor& x);

// Waits for all work on the current device (tests and host reads).
void synchronize();

}  // namespace attnlab::cuda
