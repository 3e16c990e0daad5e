#include <Eigen/Core>
#include <omp.h>

#include "core/cpu/cpu_ops.h"
#include "core/cpu/dispatch.h"

namespace attnlab::cpu {

namespace {

template <class T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMap = Eigen::Map<const RowMajor<T>>;
template <class T>
using Map = Eigen::Map<RowMajor<T>>;

// out = op(a) @ op(b) for one matrix; a stored [rows_a, cols_a] row-major.
template <class T>
void gemm(const T* a, const T* b, T* out, int64_t m, int64_t n, int64_t k, bool ta, bool tb) {
  ConstMap<T> A(a, ta ? k : m, ta ? m : k);
  ConstMap<T> B(b, tb ? n : k, tb ? k : n);
  Map<T> C(out, m, n);
  if (!ta && !tb) C.noalias() = A * B;
  else if (ta && !tb) C.noalias() = A.transpose() * B;
  else if (!ta && tb) C.noalias() = A * B.transpose();
  else C.noalias() = A.transpose() * B.transpose();
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, Tensor& out) {
  int64_t m = out.size(-2), n = out.size(-1);
  int64_t k = trans_a ? a.size(-2) : a.size(-1);
  int64_t batch = out.numel() / std::max<int64_t>(m * n, 1);
  if (out.numel() == 0) return;
  dispatch_float(a.dtype(), "matmul", [&]<class T>() {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    int64_t stride_b = b.dim() > 2 ? k * n : 0;
    if (k == 0) {
      std::fill(po, po + out.numel(), T(0));
      return;
    }
    // A shared 2-D right-hand side: fold the batch into M for one large GEMM.
    if (stride_b == 0 && !trans_a) {
      gemm(pa, pb, po, batch * m, n, k, false, trans_b);
      return;
    }
    // Many small products: one per thread. Few large ones: Eigen threads each.
    if (batch >= omp_get_max_threads() && m * n * k < (int64_t(1) << 24)) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < batch; ++i)
        gemm(pa + i * m * k, pb + i * stride_b, po + i * m * n, m, n, k, trans_a, trans_b);
    } else {
      for (int64_t i = 0; i < batch; ++i)
        gemm(pa + i * m * k, pb + i * stride_b, po + i * m * n, m, n, k, trans_a, trans_b);
    }
  });
}

}  // namespace attnlab::cpu
