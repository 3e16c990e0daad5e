#pragma once
// Differentiable functions: one per op in core/ops.h. Forward and backward both
// call ops, so every function runs on any device that has the kernels.
#include <vector>

#include "autograd/var.h"
#include "core/functors.h"

namespace attnlab::ag {

Var matmul(const Var& a, const Var& b, bool trans_a = false, bool trans_b = false);
// A Linear layer: x w^T + bias (bias may be an undefined Var), then gelu_tanh
// when `gelu`; one fused op (ops::linear). Autocast rounds x and w as matmul does.
Var linear(const Var& x, const Var& w, const Var& bias, bool gelu = false);

Var unary(UnaryOp op, const Var& x);
inline Var gelu(const Var& x) { return unary(UnaryOp::gelu_tanh, x); }
inline Var relu(const Var& x) { return unary(UnaryOp::relu, x); }
inline Var relu2(const Var& x) { return unary(UnaryOp::relu2, x); }
inline Var silu(const Var& x) { return unary(UnaryOp::silu, x); }
inline Var sigmoid(const Var& x) { return unary(UnaryOp::sigmoid, x); }
inline Var softplus(const Var& x) { return unary(UnaryOp::softplus, x); }
inline Var tanh(const Var& x) { return unary(UnaryOp::tanh, x); }
inline Var exp(const Var& x) { return unary(UnaryOp::exp, x); }
inline Var log(const Var& x) { return unary(UnaryOp::log, x); }
inline Var square(const Var& x) { return unary(UnaryOp::square, x); }
inline Var neg(const Var& x) { return unary(UnaryOp::neg, x); }
inline Var sqrt(const Var& x) { return unary(UnaryOp::sqrt, x); }
inline Var abs(const Var& x) { return unary(UnaryOp::abs, x); }

// NumPy broadcasting; gradients are summed back to each input's shape.
Var binary(BinaryOp op, const Var& a, const Var& b);
inline Var add(const Var& a, const Var& b) { return binary(BinaryOp::add, a, b); }
inline Var sub(const Var& a, const Var& b) { return binary(BinaryOp::sub, a, b); }
inline Var mul(const Var& a, const Var& b) { return binary(BinaryOp::mul, a, b); }
inline Var div(const Var& a, const Var& b) { return binary(BinaryOp::div, a, b); }
Var scale(const Var& x, double alpha);
Var add_scalar(const Var& x, double value);

Var sum_last(const Var& x);
Var mean_last(const Var& x);
Var max_last(const Var& x);  // gradient flows to the (first) maximum
Var sum_all(const Var& x);
Var mean_all(const Var& x);
Var max_all(const Var& x);

Var softmax(const Var& x);
Var log_softmax(const Var& x);

Var layer_norm(const Var& x, const Var& w, const Var& b, double eps);  // b may be undefined
Var rms_norm(const Var& x, const Var& w, double eps);

Var embedding(const Var& weight, const Tensor& ids);
// Mean cross-entropy over targets != ignore_index; logits [N, V], targets [N].
Var cross_entropy(const Var& logits, const Tensor& targets, int64_t ignore_index = -100);

Var reshape(const Var& x, const Shape& shape);
Var transpose(const Var& x, int64_t d0, int64_t d1);
Var concat(const std::vector<Var>& xs, int64_t dim);
// [start, start + len) along `dim`.
Var narrow(const Var& x, int64_t dim, int64_t start, int64_t len);
std::vector<Var> split(const Var& x, const std::vector<int64_t>& sizes, int64_t dim);

Var masked_fill(const Var& x, const Tensor& mask, double value);
Var where(const Tensor& cond, const Var& a, const Var& b);
Var cumsum(const Var& x, int64_t dim);

}  // namespace attnlab::ag
