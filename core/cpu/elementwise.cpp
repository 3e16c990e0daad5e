#include <omp.h>

#include <algorithm>

#include "core/cpu/broadcast.h"
#include "core/cpu/cpu_ops.h"
#include "core/cpu/dispatch.h"

namespace attnlab::cpu {

namespace {

// out[i] = f(i) over a flat range, threaded when large.
template <class F>
void for_each_index(int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// Reads any dtype as "is this element non-zero".
std::vector<uint8_t> nonzero_flags(const Tensor& t) {
  std::vector<uint8_t> flags(static_cast<size_t>(t.numel()));
  dispatch_any(t.dtype(), [&]<class M>() {
    const M* p = t.data<M>();
    for (int64_t i = 0; i < t.numel(); ++i) flags[static_cast<size_t>(i)] = static_cast<float>(p[i]) != 0.0f;
  });
  return flags;
}

}  // namespace

void unary(UnaryOp op, const Tensor& x, Tensor& out) {
  dispatch_float(x.dtype(), unary_name(op), [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    dispatch_unary(op, [&]<UnaryOp OP>() {
      for_each_index(x.numel(), [=](int64_t i) { po[i] = fn::unary<OP>(px[i]); });
    });
  });
}

void unary_backward(UnaryOp op, const Tensor& x, const Tensor& dy, Tensor& dx) {
  dispatch_float(x.dtype(), unary_name(op), [&]<class T>() {
    const T* px = x.data<T>();
    const T* pdy = dy.data<T>();
    T* pdx = dx.data<T>();
    dispatch_unary(op, [&]<UnaryOp OP>() {
      for_each_index(x.numel(), [=](int64_t i) { pdx[i] = pdy[i] * fn::unary_grad<OP>(px[i]); });
    });
  });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  dispatch_float(a.dtype(), binary_name(op), [&]<class T>() {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    dispatch_binary(op, [&]<BinaryOp OP>() {
      if (a.shape() == b.shape()) {
        for_each_index(out.numel(), [=](int64_t i) { po[i] = fn::binary<OP>(pa[i], pb[i]); });
        return;
      }
      BroadcastPlan plan(out.shape(), {a.shape(), b.shape()});
      int64_t inner = plan.inner(), sa = plan.inner_stride(0), sb = plan.inner_stride(1);
#pragma omp parallel for schedule(static) if (out.numel() > kParallelGrain)
      for (int64_t r = 0; r < plan.rows(); ++r) {
        const T* ra = pa + plan.row_offset(0, r);
        const T* rb = pb + plan.row_offset(1, r);
        T* ro = po + r * inner;
        for (int64_t j = 0; j < inner; ++j) ro[j] = fn::binary<OP>(ra[j * sa], rb[j * sb]);
      }
    });
  });
}

void sum_to(const Tensor& x, Tensor& out) {
  dispatch_float(x.dtype(), "sum_to", [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    int64_t n_out = out.numel();
    // Fast path: out is x's trailing block (a bias gradient): sum rows, threaded over columns.
    bool trailing = out.dim() <= x.dim() && n_out > 0 && x.numel() % n_out == 0;
    for (int64_t d = 1; trailing && d <= out.dim(); ++d) trailing = out.size(-d) == x.size(-d);
    if (trailing) {
      // Rows are summed whole (contiguous, vectorized) into one partial per thread.
      int64_t rows = x.numel() / n_out;
      int threads = x.numel() > kParallelGrain ? std::min<int>(omp_get_max_threads(), static_cast<int>(rows)) : 1;
      Tensor partial = Tensor::zeros({threads, n_out}, x.dtype());
      T* pp = partial.data<T>();
#pragma omp parallel num_threads(threads)
      {
        int me = omp_get_thread_num();
        T* acc = pp + me * n_out;
        for (int64_t r = me; r < rows; r += threads) {
          const T* row = px + r * n_out;
          for (int64_t j = 0; j < n_out; ++j) acc[j] += row[j];
        }
      }
      for (int64_t j = 0; j < n_out; ++j) {
        T sum = 0;
        for (int t = 0; t < threads; ++t) sum += pp[t * n_out + j];
        po[j] = sum;
      }
      return;
    }
    std::fill(po, po + n_out, T(0));
    BroadcastPlan plan(x.shape(), {out.shape()});
    int64_t inner = plan.inner(), so = plan.inner_stride(0);
    for (int64_t r = 0; r < plan.rows(); ++r) {
      T* ro = po + plan.row_offset(0, r);
      const T* rx = px + r * inner;
      for (int64_t j = 0; j < inner; ++j) ro[j * so] += rx[j];
    }
  });
}

void scale(const Tensor& x, double alpha, Tensor& out) {
  dispatch_float(x.dtype(), "scale", [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    T s = static_cast<T>(alpha);
    for_each_index(x.numel(), [=](int64_t i) { po[i] = s * px[i]; });
  });
}

void add_scalar(const Tensor& x, double value, Tensor& out) {
  dispatch_float(x.dtype(), "add_scalar", [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    T v = static_cast<T>(value);
    for_each_index(x.numel(), [=](int64_t i) { po[i] = px[i] + v; });
  });
}

void axpy(Tensor& y, double alpha, const Tensor& x) {
  dispatch_float(y.dtype(), "axpy", [&]<class T>() {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    T s = static_cast<T>(alpha);
    for_each_index(y.numel(), [=](int64_t i) { py[i] += s * px[i]; });
  });
}

void masked_fill(const Tensor& x, const Tensor& mask, double value, Tensor& out) {
  std::vector<uint8_t> flags = nonzero_flags(mask);
  dispatch_float(x.dtype(), "masked_fill", [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const uint8_t* pm = flags.data();
    T v = static_cast<T>(value);
    BroadcastPlan plan(x.shape(), {mask.shape()});
    int64_t inner = plan.inner(), sm = plan.inner_stride(0);
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t r = 0; r < plan.rows(); ++r) {
      const uint8_t* rm = pm + plan.row_offset(0, r);
      for (int64_t j = 0; j < inner; ++j) {
        int64_t i = r * inner + j;
        po[i] = rm[j * sm] ? v : px[i];
      }
    }
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  std::vector<uint8_t> flags = nonzero_flags(cond);
  dispatch_float(a.dtype(), "where", [&]<class T>() {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    const uint8_t* pc = flags.data();
    T* po = out.data<T>();
    BroadcastPlan plan(out.shape(), {cond.shape(), a.shape(), b.shape()});
    int64_t inner = plan.inner();
    int64_t sc = plan.inner_stride(0), sa = plan.inner_stride(1), sb = plan.inner_stride(2);
#pragma omp parallel for schedule(static) if (out.numel() > kParallelGrain)
    for (int64_t r = 0; r < plan.rows(); ++r) {
      const uint8_t* rc = pc + plan.row_offset(0, r);
      const T* ra = pa + plan.row_offset(1, r);
      const T* rb = pb + plan.row_offset(2, r);
      for (int64_t j = 0; j < inner; ++j) po[r * inner + j] = rc[j * sc] ? ra[j * sa] : rb[j * sb];
    }
  });
}

}  // namespace attnlab::cpu
