#include "autograd/functions.h"

#include "autograd/autocast.h"
#include "core/ops.h"

namespace attnlab::ag {

namespace {

bool needs(const Var& v) { return v.requires_grad(); }

// Autocast's rule for a GEMM's operands (autograd/autocast.h): under bf16
// autocast f32 operands and incoming gradients are rounded to bf16 and every
// product accumulates in f32; otherwise the plain matmul.
struct GemmPrecision {
  bool mixed;
  GemmPrecision(const Tensor& a, const Tensor& b)
      : mixed(autocast_bf16() && a.dtype() == DType::f32 && b.dtype() == DType::f32) {}
  Tensor operand(const Tensor& t) const { return mixed ? t.to(DType::bf16) : t; }
  Tensor mm(const Tensor& x, const Tensor& y, bool tx = false, bool ty = false) const {
    return mixed ? ops::matmul_bf16_f32(x, y, tx, ty) : ops::matmul(x, y, tx, ty);
  }
};

}  // namespace

// C = op(A) op(B); for each transpose case the adjoint is again a product.
// Under autocast (autograd/autocast.h) f32 operands and the incoming gradient
// are rounded to bf16 and every product accumulates in f32.
Var matmul(const Var& a, const Var& b, bool ta, bool tb) {
  Tensor A = a.data(), B = b.data();
  bool shared_b = B.dim() == 2 && A.dim() > 2;
  ATTNLAB_CHECK(!(shared_b && ta), "matmul: a transposed batched a with a shared 2-D b is not supported (",
                A.str(), ", ", B.str(), ")");
  const GemmPrecision pr(A, B);
  A = pr.operand(A), B = pr.operand(B);  // saved for the backward (bf16: at half the bytes)
  return make_result(pr.mm(A, B, ta, tb), "matmul", {a, b}, [=, na = needs(a), nb = needs(b)](const Tensor& dc) {
    const Tensor g = pr.operand(dc);
    Tensor da, db;
    if (na) {
      if (!ta) da = tb ? pr.mm(g, B) : pr.mm(g, B, false, true);
      else da = tb ? pr.mm(B, g, true, true) : pr.mm(B, g, false, true);
    }
    if (nb) {
      if (shared_b) {
        // One GEMM over the folded batch gives the batch sum directly.
        Tensor A2 = A.reshape({-1, A.size(-1)}), g2 = g.reshape({-1, g.size(-1)});
        db = tb ? pr.mm(g2, A2, true, false) : pr.mm(A2, g2, true, false);
      } else if (!ta) {
        db = tb ? pr.mm(g, A, true, false) : pr.mm(A, g, true, false);
      } else {
        db = tb ? pr.mm(g, A, true, true) : pr.mm(A, g);
      }
    }
    return std::vector<Tensor>{da, db};
  });
}

Var linear(const Var& x, const Var& w, const Var& bias, bool gelu) {
  Tensor X = x.data(), W = w.data();
  const GemmPrecision pr(X, W);
  X = pr.operand(X), W = pr.operand(W);
  const bool has_bias = bias.defined();
  ops::LinearOut r = ops::linear(X, W, has_bias ? bias.data() : Tensor(), gelu);
  std::vector<Var> inputs{x, w};
  if (has_bias) inputs.push_back(bias);
  const Tensor pre = r.pre;
  return make_result(r.y, "linear", std::move(inputs),
                     [=, nx = needs(x), nw = needs(w), nb = has_bias && needs(bias)](const Tensor& dy) {
                       const Tensor dpre = gelu ? ops::unary_backward(UnaryOp::gelu_tanh, pre, dy) : dy;
                       const Tensor g = pr.operand(dpre);
                       std::vector<Tensor> grads(has_bias ? 3 : 2);
                       if (nx) grads[0] = pr.mm(g, W);  // [..., out] @ [out, in]
                       if (nw)  // one GEMM over the folded leading dims: [out, rows] @ [rows, in]
                         grads[1] = pr.mm(g.reshape({-1, g.size(-1)}), X.reshape({-1, X.size(-1)}), true, false);
                       if (nb) grads[2] = ops::sum_to(dpre, {W.size(0)});
                       return grads;
                     });
}

Var unary(UnaryOp op, const Var& x) {
  Tensor X = x.data();
  return make_result(ops::unary(op, X), unary_name(op), {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{ops::unary_backward(op, X, g)};
  });
}

Var binary(BinaryOp op, const Var& a, const Var& b) {
  Tensor A = a.data(), B = b.data();
  return make_result(ops::binary(op, A, B), binary_name(op), {a, b}, [=, na = needs(a), nb = needs(b)](const Tensor& g) {
    Tensor da, db;
    switch (op) {
      case BinaryOp::add:
        if (na) da = g;
        if (nb) db = g;
        break;
      case BinaryOp::sub:
        if (na) da = g;
        if (nb) db = ops::scale(g, -1.0);
        break;
      case BinaryOp::mul:
        if (na) da = ops::mul(g, B);
        if (nb) db = ops::mul(g, A);
        break;
      case BinaryOp::div:  // d(a/b)/db = -a/b^2 = -(a/b)/b
        if (na) da = ops::div(g, B);
        if (nb) db = ops::scale(ops::div(ops::mul(g, ops::div(A, B)), B), -1.0);
        break;
    }
    if (da.defined()) da = ops::sum_to(da, A.shape());
    if (db.defined()) db = ops::sum_to(db, B.shape());
    return std::vector<Tensor>{da, db};
  });
}

Var scale(const Var& x, double alpha) {
  return make_result(ops::scale(x.data(), alpha), "scale", {x},
                     [=](const Tensor& g) { return std::vector<Tensor>{ops::scale(g, alpha)}; });
}

Var add_scalar(const Var& x, double value) {
  return make_result(ops::add_scalar(x.data(), value), "add_scalar", {x},
                     [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

namespace {
// g of shape x.shape[:-1], stretched back over the last dim and scaled.
Tensor expand_last(const Tensor& g, const Shape& shape, double alpha) {
  Shape col = shape;
  col.back() = 1;
  Tensor out = Tensor::zeros(shape, g.dtype(), g.device());
  return ops::add(out, alpha == 1.0 ? g.reshape(col) : ops::scale(g, alpha).reshape(col));
}
}  // namespace

Var sum_last(const Var& x) {
  Shape shape = x.shape();
  return make_result(ops::sum_last(x.data()), "sum_last", {x},
                     [=](const Tensor& g) { return std::vector<Tensor>{expand_last(g, shape, 1.0)}; });
}

Var mean_last(const Var& x) {
  Shape shape = x.shape();
  double inv = 1.0 / static_cast<double>(shape.back());
  return make_result(ops::mean_last(x.data()), "mean_last", {x},
                     [=](const Tensor& g) { return std::vector<Tensor>{expand_last(g, shape, inv)}; });
}

Var max_last(const Var& x) {
  auto [values, indices] = ops::max_last(x.data());
  int64_t n = x.size(-1);
  return make_result(values, "max_last", {x}, [=, idx = indices](const Tensor& g) {
    return std::vector<Tensor>{ops::scatter_last(idx, g, n)};
  });
}

Var sum_all(const Var& x) {
  Shape shape = x.shape();
  return make_result(ops::sum_all(x.data()), "sum_all", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{ops::add(Tensor::zeros(shape, g.dtype(), g.device()), g)};
  });
}

Var mean_all(const Var& x) {
  Shape shape = x.shape();
  double inv = 1.0 / static_cast<double>(x.numel());
  return make_result(ops::mean_all(x.data()), "mean_all", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{ops::add(Tensor::zeros(shape, g.dtype(), g.device()), ops::scale(g, inv))};
  });
}

Var max_all(const Var& x) {
  return reshape(max_last(reshape(x, {1, x.numel()})), {});
}

Var softmax(const Var& x) {
  Tensor y = ops::softmax(x.data());
  return make_result(y, "softmax", {x},
                     [=](const Tensor& g) { return std::vector<Tensor>{ops::softmax_backward(y, g)}; });
}

Var log_softmax(const Var& x) {
  Tensor y = ops::log_softmax(x.data());
  return make_result(y, "log_softmax", {x},
                     [=](const Tensor& g) { return std::vector<Tensor>{ops::log_softmax_backward(y, g)}; });
}

Var layer_norm(const Var& x, const Var& w, const Var& b, double eps) {
  Tensor X = x.data(), W = w.data();
  bool has_bias = b.defined();
  ops::NormOut fwd = ops::layer_norm(X, W, has_bias ? b.data() : Tensor(), eps);
  Tensor y = fwd.y;
  fwd.y = Tensor();  // not needed for backward
  std::vector<Var> inputs{x, w};
  if (has_bias) inputs.push_back(b);
  return make_result(y, "layer_norm", inputs, [=](const Tensor& g) {
    ops::NormGrads gr = ops::layer_norm_backward(X, W, fwd, g, has_bias);
    std::vector<Tensor> out{gr.dx, gr.dw};
    if (has_bias) out.push_back(gr.db);
    return out;
  });
}

Var rms_norm(const Var& x, const Var& w, double eps) {
  Tensor X = x.data(), W = w.data();
  ops::NormOut fwd = ops::rms_norm(X, W, eps);
  Tensor y = fwd.y;
  fwd.y = Tensor();
  return make_result(y, "rms_norm", {x, w}, [=](const Tensor& g) {
    ops::NormGrads gr = ops::rms_norm_backward(X, W, fwd, g);
    return std::vector<Tensor>{gr.dx, gr.dw};
  });
}

Var embedding(const Var& weight, const Tensor& ids) {
  int64_t vocab = weight.size(0);
  return make_result(ops::embedding(weight.data(), ids), "embedding", {weight}, [=](const Tensor& g) {
    return std::vector<Tensor>{ops::embedding_backward(ids, g, vocab)};
  });
}

Var cross_entropy(const Var& logits, const Tensor& targets, int64_t ignore_index) {
  bool with_grad = grad_enabled() && logits.requires_grad();
  ops::CrossEntropyOut ce = ops::cross_entropy(logits.data(), targets, ignore_index, with_grad);
  return make_result(ce.loss, "cross_entropy", {logits}, [dlogits = ce.dlogits](const Tensor& g) {
    // The fused kernel already holds d(mean loss)/d logits; only the upstream scale remains.
    double s = g.item<double>();
    return std::vector<Tensor>{s == 1.0 ? dlogits : ops::scale(dlogits, s)};
  });
}

Var reshape(const Var& x, const Shape& shape) {
  Shape from = x.shape();
  return make_result(x.data().reshape(shape), "reshape", {x},
                     [=](const Tensor& g) { return std::vector<Tensor>{g.reshape(from)}; });
}

Var transpose(const Var& x, int64_t d0, int64_t d1) {
  return make_result(ops::transpose(x.data(), d0, d1), "transpose", {x},
                     [=](const Tensor& g) { return std::vector<Tensor>{ops::transpose(g, d0, d1)}; });
}

Var concat(const std::vector<Var>& xs, int64_t dim) {
  std::vector<Tensor> data;
  std::vector<int64_t> sizes;
  for (const Var& x : xs) {
    data.push_back(x.data());
    sizes.push_back(x.size(dim));
  }
  return make_result(ops::concat(data, dim), "concat", xs,
                     [=](const Tensor& g) { return ops::split(g, sizes, dim); });
}

Var narrow(const Var& x, int64_t dim, int64_t start, int64_t len) {
  int64_t d = wrap_dim(dim, x.dim(), "narrow");
  int64_t n = x.size(d);
  ATTNLAB_CHECK(0 <= start && len >= 0 && start + len <= n, "narrow: [", start, ", ", start + len,
                ") out of range for dim ", d, " of ", x.data().str());
  Tensor piece = ops::split(x.data(), {start, len, n - start - len}, d)[1];
  return make_result(piece, "narrow", {x}, [=](const Tensor& g) {
    Shape before = g.shape(), after = g.shape();
    before[static_cast<size_t>(d)] = start;
    after[static_cast<size_t>(d)] = n - start - len;
    return std::vector<Tensor>{ops::concat(
        {Tensor::zeros(before, g.dtype(), g.device()), g, Tensor::zeros(after, g.dtype(), g.device())}, d)};
  });
}

std::vector<Var> split(const Var& x, const std::vector<int64_t>& sizes, int64_t dim) {
  std::vector<Var> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(narrow(x, dim, start, s));
    start += s;
  }
  ATTNLAB_CHECK(start == x.size(dim), "split: sizes add up to ", start, " but dim ", dim, " of ",
                x.data().str(), " is ", x.size(dim));
  return out;
}

Var masked_fill(const Var& x, const Tensor& mask, double value) {
  return make_result(ops::masked_fill(x.data(), mask, value), "masked_fill", {x},
                     [=](const Tensor& g) { return std::vector<Tensor>{ops::masked_fill(g, mask, 0.0)}; });
}

Var where(const Tensor& cond, const Var& a, const Var& b) {
  Shape sa = a.shape(), sb = b.shape();
  return make_result(ops::where(cond, a.data(), b.data()), "where", {a, b},
                     [=, na = needs(a), nb = needs(b)](const Tensor& g) {
    Tensor zero = Tensor::zeros({}, g.dtype(), g.device());
    Tensor da = na ? ops::sum_to(ops::where(cond, g, zero), sa) : Tensor();
    Tensor db = nb ? ops::sum_to(ops::where(cond, zero, g), sb) : Tensor();
    return std::vector<Tensor>{da, db};
  });
}

Var cumsum(const Var& x, int64_t dim) {
  return make_result(ops::cumsum(x.data(), dim), "cumsum", {x},
                     [=](const Tensor& g) { return std::vector<Tensor>{ops::cumsum(g, dim, true)}; });
}

}  // namespace attnlab::ag
