#include "core/ops.h"

#include <algorithm>
#include <cmath>

#include "core/cpu/cpu_ops.h"
#ifdef ATTNLAB_HAS_CUDA
#include "core/cuda/cuda_ops.h"
#endif

namespace attnlab::ops {

namespace {

[[noreturn]] void no_cuda_kernel(const char* op) {
#ifdef ATTNLAB_HAS_CUDA
  throw Error(detail::cat(op, ": no CUDA kernel yet; move the tensors to the CPU"));
#else
  throw Error(detail::cat(op, ": attnlab was built without CUDA (ATTNLAB_CUDA=OFF)"));
#endif
}

}  // namespace

// Ops with kernels on both devices.
#ifdef ATTNLAB_HAS_CUDA
#define ATTNLAB_DISPATCH(device, fn, ...) \
  ((device).is_cpu() ? cpu::fn(__VA_ARGS__) : cuda::fn(__VA_ARGS__))
#else
#define ATTNLAB_DISPATCH(device, fn, ...) \
  ((device).is_cpu() ? cpu::fn(__VA_ARGS__) : no_cuda_kernel(#fn))
#endif
// Ops whose CUDA kernel has not been written yet.
#define ATTNLAB_DISPATCH_CPU(device, fn, ...) \
  ((device).is_cpu() ? cpu::fn(__VA_ARGS__) : no_cuda_kernel(#fn))

namespace {

void check_defined(const char* op, const Tensor& t, const char* name) {
  ATTNLAB_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
}

// Float compute dtypes: f32/f64 everywhere, bf16 on CUDA.
void check_float(const char* op, const Tensor& t, const char* name) {
  check_defined(op, t, name);
  bool ok = t.dtype() == DType::f32 || t.dtype() == DType::f64 ||
            (t.dtype() == DType::bf16 && t.device().is_cuda());
  ATTNLAB_CHECK(ok, op, ": ", name, " must be a float tensor (f32/f64; bf16 on CUDA), got ", t.str());
}

void check_index(const char* op, const Tensor& t, const char* name) {
  check_defined(op, t, name);
  ATTNLAB_CHECK(t.dtype() == DType::i32 || t.dtype() == DType::i64, op, ": ", name,
                " must be i32 or i64, got ", t.str());
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  ATTNLAB_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch: ", a.str(), " vs ", b.str());
}

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  ATTNLAB_CHECK(a.device() == b.device(), op, ": device mismatch: ", a.str(), " vs ", b.str());
}

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  ATTNLAB_CHECK(a.shape() == b.shape(), op, ": shape mismatch: ", a.str(), " vs ", b.str());
}

// Same dtype, device and shape: the common case for element-wise pairs.
void check_like(const char* op, const Tensor& a, const Tensor& b) {
  check_same_device(op, a, b);
  check_same_dtype(op, a, b);
  check_same_shape(op, a, b);
}

void check_matrix_rows(const char* op, const Tensor& x) {
  ATTNLAB_CHECK(x.dim() >= 1, op, ": needs at least 1 dim, got ", x.str());
}

Shape drop_last(const Shape& s) { return Shape(s.begin(), s.end() - 1); }

}  // namespace

// ---- fills and copies ----

void fill(Tensor& t, double value) {
  check_defined("fill", t, "tensor");
  ATTNLAB_DISPATCH(t.device(), fill, t, value);
}

void copy(Tensor& dst, const Tensor& src) {
  check_defined("copy", dst, "dst");
  check_defined("copy", src, "src");
  ATTNLAB_CHECK(dst.numel() == src.numel(), "copy: ", src.str(), " into ", dst.str(),
                ": element counts differ");
  if (dst.device().is_cpu() && src.device().is_cpu())
    cpu::copy(dst, src);
  else
    ATTNLAB_DISPATCH(Device::cuda(), copy, dst, src);
}

void uniform(Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi) {
  check_float("uniform", t, "tensor");
  ATTNLAB_DISPATCH(t.device(), uniform, t, seed, offset, lo, hi);
}

void normal(Tensor& t, uint64_t seed, uint64_t offset, double mean, double std) {
  check_float("normal", t, "tensor");
  ATTNLAB_DISPATCH(t.device(), normal, t, seed, offset, mean, std);
}

// ---- matmul ----

namespace {

Shape matmul_shape(const char* op, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  check_same_device(op, a, b);
  check_same_dtype(op, a, b);
  ATTNLAB_CHECK(a.dim() >= 2 && b.dim() >= 2, op, ": needs 2+ dims, got ", a.str(), " and ", b.str());
  int64_t m = trans_a ? a.size(-1) : a.size(-2), ka = trans_a ? a.size(-2) : a.size(-1);
  int64_t kb = trans_b ? b.size(-1) : b.size(-2), n = trans_b ? b.size(-2) : b.size(-1);
  ATTNLAB_CHECK(ka == kb, op, ": inner dims differ: a ", a.str(), (trans_a ? " (transposed)" : ""),
                " has K=", ka, ", b ", b.str(), (trans_b ? " (transposed)" : ""), " has K=", kb);
  Shape batch(a.shape().begin(), a.shape().end() - 2);
  if (b.dim() > 2) {
    Shape bbatch(b.shape().begin(), b.shape().end() - 2);
    ATTNLAB_CHECK(batch == bbatch, op, ": batch dims differ: ", a.str(), " vs ", b.str());
  }
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  return out_shape;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const char* op = "matmul";
  check_float(op, a, "a");
  check_float(op, b, "b");
  Tensor out = Tensor::empty(matmul_shape(op, a, b, trans_a, trans_b), a.dtype(), a.device());
  ATTNLAB_DISPATCH(a.device(), matmul, a, b, trans_a, trans_b, out);
  return out;
}

Tensor matmul_bf16_f32(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const char* op = "matmul_bf16_f32";
  for (const Tensor* t : {&a, &b}) {
    check_defined(op, *t, t == &a ? "a" : "b");
    ATTNLAB_CHECK(t->dtype() == DType::bf16, op, ": ", t == &a ? "a" : "b", " must be bf16, got ", t->str());
  }
  Tensor out = Tensor::empty(matmul_shape(op, a, b, trans_a, trans_b), DType::f32, a.device());
  if (a.device().is_cpu()) {
    cpu::matmul(a.to(DType::f32), b.to(DType::f32), trans_a, trans_b, out);
    return out;
  }
  ATTNLAB_DISPATCH(a.device(), matmul, a, b, trans_a, trans_b, out);
  return out;
}

LinearOut linear(const Tensor& x, const Tensor& w, const Tensor& bias, bool gelu) {
  const char* op = "linear";
  check_defined(op, x, "x");
  check_defined(op, w, "w");
  ATTNLAB_CHECK(w.dim() == 2 && x.dim() >= 2 && x.size(-1) == w.size(1), op, ": x ", x.str(),
                " must be [..., in] and w [out, in], got w ", w.str());
  const bool mixed = x.dtype() == DType::bf16 && w.dtype() == DType::bf16;
  const DType out_dtype = mixed ? DType::f32 : x.dtype();
  if (bias.defined()) {
    check_same_device(op, x, bias);
    ATTNLAB_CHECK(bias.dtype() == out_dtype && bias.dim() == 1 && bias.size(0) == w.size(0), op, ": bias ",
                  bias.str(), " must be ", dtype_name(out_dtype), " [", w.size(0), "] for w ", w.str());
  }
#ifdef ATTNLAB_HAS_CUDA
  if (x.device().is_cuda()) {
    if (!mixed) {
      check_float(op, x, "x");
      check_float(op, w, "w");
    }
    const Shape out_shape = matmul_shape(op, x, w, false, true);
    LinearOut r{Tensor::empty(out_shape, out_dtype, x.device()),
                gelu ? Tensor::empty(out_shape, out_dtype, x.device()) : Tensor()};
    if (cuda::linear_epilogue(x, w, bias, r.y, gelu ? &r.pre : nullptr)) return r;
  }
#endif
  // The separate ops: on the CPU, and for layouts the epilogue declines.
  Tensor pre = mixed ? matmul_bf16_f32(x, w, false, true) : matmul(x, w, false, true);
  if (bias.defined()) pre = add(pre, bias);
  if (!gelu) return {pre, Tensor()};
  return {unary(UnaryOp::gelu_tanh, pre), pre};
}

// ---- element-wise ----

Tensor unary(UnaryOp op, const Tensor& x) {
  check_float(unary_name(op), x, "x");
  Tensor out = Tensor::empty_like(x);
  ATTNLAB_DISPATCH(x.device(), unary, op, x, out);
  return out;
}

Tensor unary_backward(UnaryOp op, const Tensor& x, const Tensor& dy) {
  check_float(unary_name(op), x, "x");
  check_defined(unary_name(op), dy, "dy");
  check_like(unary_name(op), x, dy);
  Tensor dx = Tensor::empty_like(x);
  ATTNLAB_DISPATCH(x.device(), unary_backward, op, x, dy, dx);
  return dx;
}

Shape broadcast_shape(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    ATTNLAB_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ",
                  shape_str(b), " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_float(name, a, "a");
  check_float(name, b, "b");
  check_same_device(name, a, b);
  check_same_dtype(name, a, b);
  Tensor out = Tensor::empty(broadcast_shape(a.shape(), b.shape(), name), a.dtype(), a.device());
  ATTNLAB_DISPATCH(a.device(), binary, op, a, b, out);
  return out;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  check_float("sum_to", x, "x");
  if (x.shape() == shape) return x;
  ATTNLAB_CHECK(broadcast_shape(shape, x.shape(), "sum_to") == x.shape(), "sum_to: ", shape_str(shape),
                " does not broadcast to ", x.str());
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  ATTNLAB_DISPATCH(x.device(), sum_to, x, out);
  return out;
}

Tensor scale(const Tensor& x, double alpha) {
  check_float("scale", x, "x");
  Tensor out = Tensor::empty_like(x);
  ATTNLAB_DISPATCH(x.device(), scale, x, alpha, out);
  return out;
}

Tensor add_scalar(const Tensor& x, double value) {
  check_float("add_scalar", x, "x");
  Tensor out = Tensor::empty_like(x);
  ATTNLAB_DISPATCH(x.device(), add_scalar, x, value, out);
  return out;
}

void axpy(Tensor& y, double alpha, const Tensor& x) {
  check_float("axpy", y, "y");
  check_defined("axpy", x, "x");
  check_like("axpy", y, x);
  ATTNLAB_DISPATCH(y.device(), axpy, y, alpha, x);
}

// ---- reductions ----

Tensor sum_last(const Tensor& x) {
  check_float("sum_last", x, "x");
  check_matrix_rows("sum_last", x);
  Tensor out = Tensor::empty(drop_last(x.shape()), x.dtype(), x.device());
  ATTNLAB_DISPATCH(x.device(), sum_last, x, 1.0, out);
  return out;
}

Tensor mean_last(const Tensor& x) {
  check_float("mean_last", x, "x");
  check_matrix_rows("mean_last", x);
  ATTNLAB_CHECK(x.size(-1) > 0, "mean_last: empty last dim in ", x.str());
  Tensor out = Tensor::empty(drop_last(x.shape()), x.dtype(), x.device());
  ATTNLAB_DISPATCH(x.device(), sum_last, x, 1.0 / static_cast<double>(x.size(-1)), out);
  return out;
}

std::pair<Tensor, Tensor> max_last(const Tensor& x) {
  check_float("max_last", x, "x");
  check_matrix_rows("max_last", x);
  ATTNLAB_CHECK(x.size(-1) > 0, "max_last: empty last dim in ", x.str());
  Tensor values = Tensor::empty(drop_last(x.shape()), x.dtype(), x.device());
  Tensor indices = Tensor::empty(drop_last(x.shape()), DType::i64, x.device());
  ATTNLAB_DISPATCH(x.device(), max_last, x, values, indices);
  return {values, indices};
}

Tensor sum_all(const Tensor& x) {
  check_float("sum_all", x, "x");
  Tensor out = Tensor::empty({}, x.dtype(), x.device());
  ATTNLAB_DISPATCH(x.device(), sum_all, x, 1.0, out);
  return out;
}

Tensor mean_all(const Tensor& x) {
  check_float("mean_all", x, "x");
  ATTNLAB_CHECK(x.numel() > 0, "mean_all: empty tensor ", x.str());
  Tensor out = Tensor::empty({}, x.dtype(), x.device());
  ATTNLAB_DISPATCH(x.device(), sum_all, x, 1.0 / static_cast<double>(x.numel()), out);
  return out;
}

Tensor max_all(const Tensor& x) {
  ATTNLAB_CHECK(x.defined() && x.numel() > 0, "max_all: empty tensor ", x.str());
  return max_last(x.reshape({1, x.numel()})).first.reshape({});
}

Tensor scatter_last(const Tensor& idx, const Tensor& src, int64_t n) {
  check_index("scatter_last", idx, "idx");
  check_float("scatter_last", src, "src");
  check_same_device("scatter_last", idx, src);
  check_same_shape("scatter_last", idx, src);
  Shape shape = src.shape();
  shape.push_back(n);
  Tensor out = Tensor::empty(shape, src.dtype(), src.device());
  ATTNLAB_DISPATCH(src.device(), scatter_last, idx, src, out);
  return out;
}

// ---- softmax ----

Tensor softmax(const Tensor& x) {
  check_float("softmax", x, "x");
  check_matrix_rows("softmax", x);
  Tensor out = Tensor::empty_like(x);
  ATTNLAB_DISPATCH(x.device(), softmax, x, false, out);
  return out;
}

Tensor log_softmax(const Tensor& x) {
  check_float("log_softmax", x, "x");
  check_matrix_rows("log_softmax", x);
  Tensor out = Tensor::empty_like(x);
  ATTNLAB_DISPATCH(x.device(), softmax, x, true, out);
  return out;
}

Tensor softmax_backward(const Tensor& y, const Tensor& dy) {
  check_float("softmax_backward", y, "y");
  check_like("softmax_backward", y, dy);
  Tensor dx = Tensor::empty_like(y);
  ATTNLAB_DISPATCH(y.device(), softmax_backward, y, dy, false, dx);
  return dx;
}

Tensor log_softmax_backward(const Tensor& y, const Tensor& dy) {
  check_float("log_softmax_backward", y, "y");
  check_like("log_softmax_backward", y, dy);
  Tensor dx = Tensor::empty_like(y);
  ATTNLAB_DISPATCH(y.device(), softmax_backward, y, dy, true, dx);
  return dx;
}

// ---- norms ----

namespace {
void check_norm_args(const char* op, const Tensor& x, const Tensor& w, const Tensor& b) {
  check_float(op, x, "x");
  check_matrix_rows(op, x);
  check_float(op, w, "weight");
  check_same_device(op, x, w);
  check_same_dtype(op, x, w);
  ATTNLAB_CHECK(w.dim() == 1 && w.size(0) == x.size(-1), op, ": weight ", w.str(),
                " does not match the last dim of x ", x.str());
  if (b.defined()) check_like(op, w, b);
}
}  // namespace

NormOut layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  check_norm_args("layer_norm", x, w, b);
  NormOut out{Tensor::empty_like(x), Tensor::empty(drop_last(x.shape()), x.dtype(), x.device()),
              Tensor::empty(drop_last(x.shape()), x.dtype(), x.device())};
  ATTNLAB_DISPATCH(x.device(), layer_norm, x, w, b, eps, out.y, out.mean, out.rstd);
  return out;
}

NormGrads layer_norm_backward(const Tensor& x, const Tensor& w, const NormOut& fwd, const Tensor& dy,
                              bool has_bias) {
  check_norm_args("layer_norm_backward", x, w, Tensor());
  check_like("layer_norm_backward", x, dy);
  NormGrads g{Tensor::empty_like(x), Tensor::empty_like(w), has_bias ? Tensor::empty_like(w) : Tensor()};
  ATTNLAB_DISPATCH(x.device(), layer_norm_backward, x, w, fwd.mean, fwd.rstd, dy, g.dx, g.dw,
                       has_bias ? &g.db : nullptr);
  return g;
}

NormOut rms_norm(const Tensor& x, const Tensor& w, double eps) {
  check_norm_args("rms_norm", x, w, Tensor());
  NormOut out{Tensor::empty_like(x), Tensor(), Tensor::empty(drop_last(x.shape()), x.dtype(), x.device())};
  ATTNLAB_DISPATCH(x.device(), rms_norm, x, w, eps, out.y, out.rstd);
  return out;
}

NormGrads rms_norm_backward(const Tensor& x, const Tensor& w, const NormOut& fwd, const Tensor& dy) {
  check_norm_args("rms_norm_backward", x, w, Tensor());
  check_like("rms_norm_backward", x, dy);
  NormGrads g{Tensor::empty_like(x), Tensor::empty_like(w), Tensor()};
  ATTNLAB_DISPATCH(x.device(), rms_norm_backward, x, w, fwd.rstd, dy, g.dx, g.dw);
  return g;
}

// ---- embedding ----

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  check_float("embedding", weight, "weight");
  check_index("embedding", ids, "ids");
  check_same_device("embedding", weight, ids);
  ATTNLAB_CHECK(weight.dim() == 2, "embedding: weight must be [vocab, dim], got ", weight.str());
  Shape shape = ids.shape();
  shape.push_back(weight.size(1));
  Tensor out = Tensor::empty(shape, weight.dtype(), weight.device());
  ATTNLAB_DISPATCH(weight.device(), embedding, weight, ids, out);
  return out;
}

Tensor embedding_backward(const Tensor& ids, const Tensor& dy, int64_t vocab) {
  check_index("embedding_backward", ids, "ids");
  check_float("embedding_backward", dy, "dy");
  check_same_device("embedding_backward", ids, dy);
  Shape expect = ids.shape();
  expect.push_back(dy.size(-1));
  ATTNLAB_CHECK(dy.shape() == expect, "embedding_backward: dy ", dy.str(), " does not match ids ",
                ids.str());
  Tensor dw = Tensor::empty({vocab, dy.size(-1)}, dy.dtype(), dy.device());
  ATTNLAB_DISPATCH(dy.device(), embedding_backward, ids, dy, dw);
  return dw;
}

// ---- cross entropy ----

CrossEntropyOut cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                              bool with_grad) {
  check_float("cross_entropy", logits, "logits");
  check_index("cross_entropy", targets, "targets");
  check_same_device("cross_entropy", logits, targets);
  ATTNLAB_CHECK(logits.dim() == 2 && targets.dim() == 1 && targets.size(0) == logits.size(0),
                "cross_entropy: expected logits [N, V] and targets [N], got ", logits.str(), " and ",
                targets.str());
  CrossEntropyOut out;
  out.loss = Tensor::empty({}, logits.dtype(), logits.device());
  if (with_grad) out.dlogits = Tensor::empty_like(logits);
  ATTNLAB_DISPATCH(logits.device(), cross_entropy, logits, targets, ignore_index, out.loss,
                       with_grad ? &out.dlogits : nullptr, out.count);
  return out;
}

// ---- layout ----

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  check_defined("transpose", x, "x");
  d0 = wrap_dim(d0, x.dim(), "transpose");
  d1 = wrap_dim(d1, x.dim(), "transpose");
  Shape shape = x.shape();
  std::swap(shape[static_cast<size_t>(d0)], shape[static_cast<size_t>(d1)]);
  if (d0 == d1) return x.clone();
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  ATTNLAB_DISPATCH(x.device(), transpose, x, d0, d1, out);
  return out;
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  ATTNLAB_CHECK(!xs.empty(), "concat: no tensors");
  check_defined("concat", xs[0], "xs[0]");
  dim = wrap_dim(dim, xs[0].dim(), "concat");
  Shape shape = xs[0].shape();
  shape[static_cast<size_t>(dim)] = 0;
  for (const Tensor& x : xs) {
    check_defined("concat", x, "an input");
    check_same_device("concat", xs[0], x);
    check_same_dtype("concat", xs[0], x);
    bool ok = x.dim() == xs[0].dim();
    for (int64_t d = 0; ok && d < x.dim(); ++d) ok = d == dim || x.size(d) == xs[0].size(d);
    ATTNLAB_CHECK(ok, "concat: ", x.str(), " does not match ", xs[0].str(), " outside dim ", dim);
    shape[static_cast<size_t>(dim)] += x.size(dim);
  }
  Tensor out = Tensor::empty(shape, xs[0].dtype(), xs[0].device());
  ATTNLAB_DISPATCH(out.device(), concat, xs, dim, out);
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  check_defined("split", x, "x");
  dim = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    ATTNLAB_CHECK(s >= 0, "split: negative size ", s);
    total += s;
  }
  ATTNLAB_CHECK(total == x.size(dim), "split: sizes add up to ", total, " but dim ", dim, " of ",
                x.str(), " is ", x.size(dim));
  std::vector<Tensor> outs;
  for (int64_t s : sizes) {
    Shape shape = x.shape();
    shape[static_cast<size_t>(dim)] = s;
    outs.push_back(Tensor::empty(shape, x.dtype(), x.device()));
  }
  ATTNLAB_DISPATCH(x.device(), split, x, dim, outs);
  return outs;
}

// ---- rotary position embedding ----

Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin, bool inverse) {
  check_float("rope", x, "x");
  check_defined("rope", cos, "cos");
  check_defined("rope", sin, "sin");
  check_like("rope", cos, sin);
  check_same_device("rope", x, cos);
  check_same_dtype("rope", x, cos);
  ATTNLAB_CHECK(x.dim() >= 2 && cos.dim() == 2 && cos.size(0) == x.size(-2) && cos.size(1) >= 1 &&
                    2 * cos.size(1) <= x.size(-1),
                "rope: tables ", cos.str(), " / ", sin.str(), " do not match x ", x.str(),
                " (want x [..., T, D] and tables [T, h] with 1 <= h <= D / 2)");
  Tensor out = Tensor::empty_like(x);
  ATTNLAB_DISPATCH(x.device(), rope, x, cos, sin, inverse, out);
  return out;
}

// ---- masking and scans ----

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_float("masked_fill", x, "x");
  check_defined("masked_fill", mask, "mask");
  check_same_device("masked_fill", x, mask);
  ATTNLAB_CHECK(broadcast_shape(x.shape(), mask.shape(), "masked_fill") == x.shape(), "masked_fill: mask ",
                mask.str(), " does not broadcast to ", x.str());
  Tensor out = Tensor::empty_like(x);
  ATTNLAB_DISPATCH(x.device(), masked_fill, x, mask, value, out);
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined("where", cond, "cond");
  check_float("where", a, "a");
  check_float("where", b, "b");
  check_same_device("where", a, b);
  check_same_device("where", a, cond);
  check_same_dtype("where", a, b);
  Shape shape = broadcast_shape(broadcast_shape(a.shape(), b.shape(), "where"), cond.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  ATTNLAB_DISPATCH(a.device(), where, cond, a, b, out);
  return out;
}

Tensor cumsum(const Tensor& x, int64_t dim, bool reverse) {
  check_float("cumsum", x, "x");
  dim = wrap_dim(dim, x.dim(), "cumsum");
  Tensor out = Tensor::empty_like(x);
  ATTNLAB_DISPATCH(x.device(), cumsum, x, dim, reverse, out);
  return out;
}

// ---- fused attention ----

namespace {

// The saved log-sum-exp is kept in the compute dtype: f32 for bf16 inputs. The
// backward recomputes P = exp(s - lse) from it, and a bf16 lse (8 significant
// bits) would scale whole rows of P by up to exp(|lse| 2^-9), about 2% at
// lse = 10: a bias in every gradient, far above bf16's rounding of the outputs.
DType lse_dtype(DType q) { return q == DType::bf16 ? DType::f32 : q; }

// Shapes (q [B, H, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv]) and parameters.
void check_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                     const FlashAttentionParams& p) {
  check_float(op, q, "q");
  check_float(op, k, "k");
  check_float(op, v, "v");
  check_same_device(op, q, k);
  check_same_device(op, q, v);
  check_same_dtype(op, q, k);
  check_same_dtype(op, q, v);
  auto shapes = [&] { return detail::cat("q ", q.str(), ", k ", k.str(), ", v ", v.str()); };
  ATTNLAB_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op,
                ": expected q [B, H, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv], got ", shapes());
  ATTNLAB_CHECK(q.size(0) == k.size(0) && q.size(0) == v.size(0), op, ": batch sizes differ: ", shapes());
  ATTNLAB_CHECK(k.size(1) == v.size(1) && k.size(2) == v.size(2), op,
                ": k and v differ in heads or length: ", shapes());
  ATTNLAB_CHECK(q.size(3) == k.size(3), op, ": q and k head dims differ: ", shapes());
  ATTNLAB_CHECK(q.size(3) > 0 && v.size(3) > 0, op, ": empty head dim: ", shapes());
  ATTNLAB_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, op, ": kv heads (", k.size(1),
                ") must divide query heads (", q.size(1), "): ", shapes());
  const bool windowed = p.mask == FlashMask::window || p.mask == FlashMask::sinks;
  ATTNLAB_CHECK(!windowed || p.window > 0, op, ": mask ", flash_mask_name(p.mask), " needs window > 0, got ",
                p.window);
  ATTNLAB_CHECK(p.mask != FlashMask::sinks || p.sinks >= 0, op, ": sinks must be >= 0, got ", p.sinks);
  ATTNLAB_CHECK(p.q_offset >= 0, op, ": q_offset must be >= 0, got ", p.q_offset);
  ATTNLAB_CHECK(std::isfinite(p.scale) && p.scale >= 0, op, ": scale must be finite and >= 0 (0: 1/sqrt(D)), got ",
                p.scale);
  ATTNLAB_CHECK(std::isfinite(p.softcap) && p.softcap >= 0, op, ": softcap must be finite and >= 0 (0: off), got ",
                p.softcap);
  ATTNLAB_CHECK(p.alibi_slopes.empty() || static_cast<int64_t>(p.alibi_slopes.size()) == q.size(1), op, ": ",
                p.alibi_slopes.size(), " ALiBi slopes for ", q.size(1), " query heads (", shapes(), ")");
  for (double s : p.alibi_slopes) ATTNLAB_CHECK(std::isfinite(s), op, ": ALiBi slope ", s, " is not finite");
  ATTNLAB_CHECK(std::isfinite(p.sigmoid_bias), op, ": sigmoid_bias must be finite, got ", p.sigmoid_bias);
  ATTNLAB_CHECK(!p.entropy || p.score == FlashScore::softmax, op,
                ": the entropy output needs the softmax score, got ", flash_score_name(p.score));
  ATTNLAB_CHECK(!p.sink_mass || p.score == FlashScore::softmax, op,
                ": the sink_mass output needs the softmax score, got ", flash_score_name(p.score));
}

}  // namespace

FlashAttentionOut flash_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const FlashAttentionParams& params) {
  const char* op = "flash_attention";
  check_attention(op, q, k, v, params);
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), Dv = v.size(3);
  FlashAttentionOut r;
  r.out = Tensor::empty({B, H, Tq, Dv}, q.dtype(), q.device());
  if (params.score == FlashScore::softmax) r.lse = Tensor::empty({B, H, Tq}, lse_dtype(q.dtype()), q.device());
  if (params.entropy) r.entropy = Tensor::empty({B, H, Tq}, q.dtype(), q.device());
  if (params.sink_mass) r.sink_mass = Tensor::empty({B, H, Tq}, q.dtype(), q.device());
  ATTNLAB_DISPATCH(q.device(), flash_attention, q, k, v, params, r.out, r.lse.defined() ? &r.lse : nullptr,
                   r.entropy.defined() ? &r.entropy : nullptr, r.sink_mass.defined() ? &r.sink_mass : nullptr);
  return r;
}

FlashAttentionGrads flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const Tensor& out, const Tensor& lse, const Tensor& dout,
                                             const FlashAttentionParams& params, const Tensor& entropy,
                                             const Tensor& dentropy) {
  const char* op = "flash_attention_backward";
  check_attention(op, q, k, v, params);
  const Shape out_shape{q.size(0), q.size(1), q.size(2), v.size(3)};
  check_float(op, dout, "dout");
  check_same_device(op, q, dout);
  check_same_dtype(op, q, dout);
  ATTNLAB_CHECK(dout.shape() == out_shape, op, ": dout ", dout.str(), " is not ", shape_str(out_shape),
                " (q ", q.str(), ", v ", v.str(), ")");
  if (params.score == FlashScore::softmax) {
    check_float(op, out, "out");
    check_like(op, dout, out);
    check_float(op, lse, "lse");
    check_same_device(op, q, lse);
    ATTNLAB_CHECK(lse.dtype() == lse_dtype(q.dtype()), op, ": lse ", lse.str(), " must be ",
                  dtype_name(lse_dtype(q.dtype())), " for q ", q.str());
    ATTNLAB_CHECK(lse.shape() == Shape(out_shape.begin(), out_shape.end() - 1), op, ": lse ", lse.str(),
                  " does not match out ", out.str());
  }
  ATTNLAB_CHECK(entropy.defined() == dentropy.defined(), op, ": entropy and dentropy come together, got ",
                entropy.defined() ? "no dentropy" : "no entropy");
  if (entropy.defined()) {
    ATTNLAB_CHECK(params.score == FlashScore::softmax, op, ": the entropy gradient needs the softmax score, got ",
                  flash_score_name(params.score));
    for (const Tensor* t : {&entropy, &dentropy}) {
      check_float(op, *t, t == &entropy ? "entropy" : "dentropy");
      check_same_device(op, q, *t);
      check_same_dtype(op, q, *t);
      ATTNLAB_CHECK(t->shape() == lse.shape(), op, ": ", t == &entropy ? "entropy " : "dentropy ", t->str(),
                    " does not match lse ", lse.str());
    }
  }
  FlashAttentionGrads g{Tensor::empty_like(q), Tensor::empty_like(k), Tensor::empty_like(v)};
  const Tensor* ent = entropy.defined() ? &entropy : nullptr;
  const Tensor* dent = dentropy.defined() ? &dentropy : nullptr;
#ifdef ATTNLAB_HAS_CUDA
  if (q.device().is_cuda()) {  // one schedule there: no FlashBackwardSchedule argument
    cuda::flash_attention_backward(q, k, v, out, lse, dout, params, g.dq, g.dk, g.dv, ent, dent);
    return g;
  }
#endif
  ATTNLAB_DISPATCH_CPU(q.device(), flash_attention_backward, q, k, v, out, lse, dout, params, g.dq, g.dk, g.dv,
                       cpu::FlashBackwardSchedule::automatic, ent, dent);
  return g;
}

}  // namespace attnlab::ops

namespace attnlab {

const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::gelu_tanh: return "gelu_tanh";
    case UnaryOp::relu: return "relu";
    case UnaryOp::relu2: return "relu2";
    case UnaryOp::silu: return "silu";
    case UnaryOp::sigmoid: return "sigmoid";
    case UnaryOp::softplus: return "softplus";
    case UnaryOp::tanh: return "tanh";
    case UnaryOp::exp: return "exp";
    case UnaryOp::log: return "log";
    case UnaryOp::square: return "square";
    case UnaryOp::neg: return "neg";
    case UnaryOp::sqrt: return "sqrt";
    case UnaryOp::abs: return "abs";
  }
  return "?";
}

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "add";
    case BinaryOp::sub: return "sub";
    case BinaryOp::mul: return "mul";
    case BinaryOp::div: return "div";
  }
  return "?";
}

}  // namespace attnlab

// ---- linear attention family ----

namespace attnlab::ops {

namespace {

// q, k [..., T, Dk], v [..., T, Dv] with equal leading dims; `per_step` ([..., T]:
// beta, scalar gates) and `gate` ([..., T] or [..., T, Dk]) and state0 ([..., Dk, Dv])
// are checked when defined.
void check_linear_attn(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& per_step,
                       const Tensor& g, int64_t chunk, const Tensor& state0) {
  check_float(op, q, "q");
  check_like(op, q, k);
  check_float(op, v, "v");
  check_same_device(op, q, v);
  check_same_dtype(op, q, v);
  ATTNLAB_CHECK(q.dim() >= 2 && v.dim() == q.dim(), op, ": expected q, k [..., T, Dk] and v [..., T, Dv], got q ",
                q.str(), ", v ", v.str());
  Shape lead = drop_last(q.shape());
  ATTNLAB_CHECK(drop_last(v.shape()) == lead, op, ": v ", v.str(), " does not match q ", q.str(),
                " outside the last dim");
  ATTNLAB_CHECK(chunk >= 1, op, ": chunk must be >= 1, got ", chunk);
  if (per_step.defined()) {
    check_same_device(op, q, per_step);
    check_same_dtype(op, q, per_step);
    ATTNLAB_CHECK(per_step.shape() == lead, op, ": beta ", per_step.str(), " must be ", shape_str(lead),
                  " (one per step)");
  }
  if (g.defined()) {
    check_same_device(op, q, g);
    check_same_dtype(op, q, g);
    ATTNLAB_CHECK(g.shape() == lead || g.shape() == q.shape(), op, ": gates ", g.str(), " must be ",
                  shape_str(lead), " (one per step) or ", shape_str(q.shape()), " (one per key dim)");
  }
  if (state0.defined()) {
    check_same_device(op, q, state0);
    check_same_dtype(op, q, state0);
    Shape s = drop_last(lead);
    s.push_back(q.size(-1));
    s.push_back(v.size(-1));
    ATTNLAB_CHECK(state0.shape() == s, op, ": state0 ", state0.str(), " must be ", shape_str(s));
  }
}

Shape state_shape(const Tensor& q, const Tensor& v) {
  Shape s(q.shape().begin(), q.shape().end() - 2);
  s.push_back(q.size(-1));
  s.push_back(v.size(-1));
  return s;
}

}  // namespace

LinearAttnOut linear_attention_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                       int64_t chunk, const Tensor& state0) {
  const char* op = "linear_attention_chunked";
  check_linear_attn(op, q, k, v, Tensor(), g, chunk, state0);
  LinearAttnOut out{Tensor::empty(v.shape(), v.dtype(), v.device()),
                    Tensor::empty(state_shape(q, v), v.dtype(), v.device())};
  ATTNLAB_DISPATCH(q.device(), linear_attention_chunked, q, k, v, g, chunk, state0, out.o, out.state);
  return out;
}

LinearAttnGrads linear_attention_chunked_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                                  const Tensor& g, int64_t chunk, const Tensor& state0,
                                                  const Tensor& dout) {
  const char* op = "linear_attention_chunked_backward";
  check_linear_attn(op, q, k, v, Tensor(), g, chunk, state0);
  check_defined(op, dout, "dout");
  check_like(op, v, dout);
  LinearAttnGrads gr{Tensor::empty_like(q), Tensor::empty_like(k), Tensor::empty_like(v),
                     g.defined() ? Tensor::empty_like(g) : Tensor()};
  ATTNLAB_DISPATCH(q.device(), linear_attention_chunked_backward, q, k, v, g, chunk, state0, dout, gr.dq,
                   gr.dk, gr.dv, gr.dg);
  return gr;
}

LinearAttnOut delta_rule_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                 const Tensor& g, int64_t chunk, const Tensor& state0) {
  const char* op = "delta_rule_chunked";
  check_defined(op, beta, "beta");
  check_linear_attn(op, q, k, v, beta, g, chunk, state0);
  ATTNLAB_CHECK(!g.defined() || g.shape() == beta.shape(), op, ": the delta rule's gates ", g.str(),
                " must be one per step, like beta ", beta.str());
  LinearAttnOut out{Tensor::empty(v.shape(), v.dtype(), v.device()),
                    Tensor::empty(state_shape(q, v), v.dtype(), v.device())};
  ATTNLAB_DISPATCH(q.device(), delta_rule_chunked, q, k, v, beta, g, chunk, state0, out.o, out.state);
  return out;
}

DeltaRuleGrads delta_rule_chunked_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                           const Tensor& g, int64_t chunk, const Tensor& state0,
                                           const Tensor& dout) {
  const char* op = "delta_rule_chunked_backward";
  check_defined(op, beta, "beta");
  check_linear_attn(op, q, k, v, beta, g, chunk, state0);
  ATTNLAB_CHECK(!g.defined() || g.shape() == beta.shape(), op, ": the delta rule's gates ", g.str(),
                " must be one per step, like beta ", beta.str());
  check_defined(op, dout, "dout");
  check_like(op, v, dout);
  DeltaRuleGrads gr{Tensor::empty_like(q), Tensor::empty_like(k), Tensor::empty_like(v), Tensor::empty_like(beta),
                    g.defined() ? Tensor::empty_like(g) : Tensor()};
  ATTNLAB_DISPATCH(q.device(), delta_rule_chunked_backward, q, k, v, beta, g, chunk, state0, dout, gr.dq,
                   gr.dk, gr.dv, gr.dbeta, gr.dg);
  return gr;
}

}  // namespace attnlab::ops
