#include "core/cpu/cpu_ops.h"
#include "core/cpu/dispatch.h"

namespace attnlab::cpu {

namespace {
// Rows of the last dim: [rows, n].
int64_t last_dim(const Tensor& x) { return x.dim() ? x.size(-1) : 1; }
int64_t rows_of(const Tensor& x) {
  int64_t n = last_dim(x);
  return n ? x.numel() / n : 0;
}
}  // namespace

void sum_last(const Tensor& x, double multiplier, Tensor& out) {
  dispatch_float(x.dtype(), "sum_last", [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    int64_t n = last_dim(x), rows = out.numel();
    T m = static_cast<T>(multiplier);
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      T acc = 0;
      for (int64_t j = 0; j < n; ++j) acc += px[r * n + j];
      po[r] = acc * m;
    }
  });
}

void max_last(const Tensor& x, Tensor& values, Tensor& indices) {
  dispatch_float(x.dtype(), "max_last", [&]<class T>() {
    const T* px = x.data<T>();
    T* pv = values.data<T>();
    int64_t* pi = indices.data<int64_t>();
    int64_t n = last_dim(x), rows = rows_of(x);
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = px + r * n;
      int64_t best = 0;
      for (int64_t j = 1; j < n; ++j)
        if (row[j] > row[best]) best = j;
      pv[r] = row[best];
      pi[r] = best;
    }
  });
}

void sum_all(const Tensor& x, double multiplier, Tensor& out) {
  dispatch_float(x.dtype(), "sum_all", [&]<class T>() {
    const T* px = x.data<T>();
    // Accumulate in double: a float sum over millions of elements drifts.
    double acc = 0;
#pragma omp parallel for reduction(+ : acc) schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t i = 0; i < x.numel(); ++i) acc += static_cast<double>(px[i]);
    out.data<T>()[0] = static_cast<T>(acc * multiplier);
  });
}

void scatter_last(const Tensor& idx, const Tensor& src, Tensor& out) {
  int64_t n = out.size(-1), rows = src.numel();
  dispatch_float(src.dtype(), "scatter_last", [&]<class T>() {
    const T* ps = src.data<T>();
    T* po = out.data<T>();
    std::fill(po, po + out.numel(), T(0));
    dispatch_index(idx.dtype(), "scatter_last", [&]<class I>() {
      const I* pi = idx.data<I>();
      for (int64_t r = 0; r < rows; ++r) {
        int64_t j = static_cast<int64_t>(pi[r]);
        ATTNLAB_CHECK(0 <= j && j < n, "scatter_last: index ", j, " out of range [0, ", n, ")");
        po[r * n + j] = ps[r];
      }
    });
  });
}

void cumsum(const Tensor& x, int64_t dim, bool reverse, Tensor& out) {
  // View x as [outer, len, inner]; scan along len.
  int64_t len = x.size(dim), inner = 1;
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  int64_t outer = len * inner != 0 ? x.numel() / (len * inner) : 0;
  dispatch_float(x.dtype(), "cumsum", [&]<class T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for schedule(static) if (x.numel() > kParallelGrain)
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        T acc = 0;
        for (int64_t s = 0; s < len; ++s) {
          int64_t t = reverse ? len - 1 - s : s;
          int64_t at = (o * len + t) * inner + i;
          acc += px[at];
          po[at] = acc;
        }
      }
    }
  });
}

}  // namespace attnlab::cpu
