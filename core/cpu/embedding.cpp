#include <algorithm>
#include <omp.h>

#include "core/cpu/cpu_ops.h"
#include "core/cpu/dispatch.h"

namespace attnlab::cpu {

namespace {
template <class I>
int64_t checked_id(const char* op, const I* ids, int64_t i, int64_t vocab) {
  int64_t id = static_cast<int64_t>(ids[i]);
  ATTNLAB_CHECK(0 <= id && id < vocab, op, ": id ", id, " at position ", i, " out of range [0, ",
                vocab, ")");
  return id;
}
}  // namespace

void embedding(const Tensor& weight, const Tensor& ids, Tensor& out) {
  int64_t vocab = weight.size(0), d = weight.size(1), n = ids.numel();
  dispatch_float(weight.dtype(), "embedding", [&]<class T>() {
    const T* pw = weight.data<T>();
    T* po = out.data<T>();
    dispatch_index(ids.dtype(), "embedding", [&]<class I>() {
      const I* pi = ids.data<I>();
      for (int64_t i = 0; i < n; ++i) {
        const T* row = pw + checked_id("embedding", pi, i, vocab) * d;
        std::copy(row, row + d, po + i * d);
      }
    });
  });
}

// Scatter-add: rows are split among threads by vocabulary id, so each
// gradient row has exactly one writer and the sum order is fixed (deterministic).
void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dweight) {
  int64_t vocab = dweight.size(0), d = dweight.size(1), n = ids.numel();
  dispatch_float(dy.dtype(), "embedding_backward", [&]<class T>() {
    const T* pg = dy.data<T>();
    T* pw = dweight.data<T>();
    std::fill(pw, pw + dweight.numel(), T(0));
    dispatch_index(ids.dtype(), "embedding_backward", [&]<class I>() {
      const I* pi = ids.data<I>();
      for (int64_t i = 0; i < n; ++i) checked_id("embedding_backward", pi, i, vocab);
#pragma omp parallel if (n * d > kParallelGrain)
      {
        int nt = omp_get_num_threads(), me = omp_get_thread_num();
        for (int64_t i = 0; i < n; ++i) {
          int64_t id = static_cast<int64_t>(pi[i]);
          if (id % nt != me) continue;
          T* row = pw + id * d;
          const T* g = pg + i * d;
          for (int64_t j = 0; j < d; ++j) row[j] += g[j];
        }
      }
    });
  });
}

}  // namespace attnlab::cpu
