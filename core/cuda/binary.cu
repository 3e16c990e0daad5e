// Binary element-wise ops with NumPy broadcasting: a same-shape fast path and a
// general kernel that maps each output index to its (possibly stretched) inputs.
#include <limits>

#include "core/cuda/cuda_ops.h"
#include "core/cuda/kernel_utils.cuh"

namespace attnlab::cuda {

namespace {

constexpr int kMaxDims = 12;

// The output's dims (outermost first) after dropping size-1 dims and merging
// neighbours that both inputs traverse alike; stride 0 marks a stretched input dim.
template <class Index>
struct Broadcast {
  int ndim = 0;
  Index size[kMaxDims] = {};
  Index a_stride[kMaxDims] = {};
  Index b_stride[kMaxDims] = {};
};

struct Dims {
  int ndim = 0;
  int64_t size[kMaxDims], a_stride[kMaxDims], b_stride[kMaxDims];
};

// Contiguous strides of `s` right-aligned to rank r (missing leading dims are
// size 1), with 0 where the dim is 1 and so stretches.
std::vector<int64_t> broadcast_strides(const Shape& s, size_t r) {
  std::vector<int64_t> stride(r, 0);
  int64_t step = 1;
  for (size_t k = 0; k < s.size(); ++k) {
    size_t src = s.size() - 1 - k, dst = r - 1 - k;
    stride[dst] = s[src] == 1 ? 0 : step;
    step *= s[src];
  }
  return stride;
}

Dims collapse(const Shape& out, const Shape& a, const Shape& b) {
  size_t r = out.size();
  std::vector<int64_t> as = broadcast_strides(a, r), bs = broadcast_strides(b, r);
  std::vector<int64_t> size, sa, sb;
  for (size_t d = 0; d < r; ++d) {
    if (out[d] == 1) continue;
    if (!size.empty() && sa.back() == as[d] * out[d] && sb.back() == bs[d] * out[d]) {
      // The outer dim continues this one for both inputs: one longer dim.
      size.back() *= out[d];
      sa.back() = as[d];
      sb.back() = bs[d];
      continue;
    }
    size.push_back(out[d]);
    sa.push_back(as[d]);
    sb.push_back(bs[d]);
  }
  if (size.empty()) size = {1}, sa = {0}, sb = {0};
  ATTNLAB_CHECK(size.size() <= static_cast<size_t>(kMaxDims), "cuda::binary: ", shape_str(a),
                " and ", shape_str(b), " broadcast over ", size.size(),
                " independent dims; at most ", kMaxDims, " are supported");
  Dims d;
  d.ndim = static_cast<int>(size.size());
  for (int k = 0; k < d.ndim; ++k)
    d.size[k] = size[static_cast<size_t>(k)], d.a_stride[k] = sa[static_cast<size_t>(k)],
    d.b_stride[k] = sb[static_cast<size_t>(k)];
  return d;
}

template <class Index>
Broadcast<Index> narrow_to(const Dims& d) {
  Broadcast<Index> bc;
  bc.ndim = d.ndim;
  for (int k = 0; k < d.ndim; ++k) {
    bc.size[k] = static_cast<Index>(d.size[k]);
    bc.a_stride[k] = static_cast<Index>(d.a_stride[k]);
    bc.b_stride[k] = static_cast<Index>(d.b_stride[k]);
  }
  return bc;
}

template <BinaryOp OP, class T>
__global__ void binary_same_kernel(T* out, const T* a, const T* b, int64_t n) {
  using C = compute_t<T>;
  for (int64_t i = grid_start(); i < n; i += grid_stride())
    out[i] = T(fn::binary<OP>(static_cast<C>(a[i]), static_cast<C>(b[i])));
}

template <BinaryOp OP, class T, class Index>
__global__ void binary_broadcast_kernel(T* out, const T* a, const T* b, Index n,
                                        Broadcast<Index> bc) {
  using C = compute_t<T>;
  for (Index i = static_cast<Index>(grid_start()); i < n; i += static_cast<Index>(grid_stride())) {
    Index rem = i, ai = 0, bi = 0;
#pragma unroll
    for (int d = kMaxDims - 1; d > 0; --d) {
      if (d >= bc.ndim) continue;
      Index q = rem / bc.size[d], r = rem - q * bc.size[d];
      ai += r * bc.a_stride[d];
      bi += r * bc.b_stride[d];
      rem = q;
    }
    // The outermost dim needs no division: what is left is its coordinate.
    ai += rem * bc.a_stride[0];
    bi += rem * bc.b_stride[0];
    out[i] = T(fn::binary<OP>(static_cast<C>(a[ai]), static_cast<C>(b[bi])));
  }
}

template <BinaryOp OP, class T, class Index>
void launch_broadcast(const Tensor& a, const Tensor& b, Tensor& out, const Dims& d) {
  int64_t n = out.numel();
  binary_broadcast_kernel<OP, T, Index><<<blocks_for(n), kThreads>>>(
      static_cast<T*>(out.raw_data()), static_cast<const T*>(a.raw_data()),
      static_cast<const T*>(b.raw_data()), static_cast<Index>(n), narrow_to<Index>(d));
  ATTNLAB_CUDA_CHECK_LAUNCH("binary_broadcast_kernel");
}

}  // namespace

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(out.device().index);
  dispatch_float(out.dtype(), "binary", [&]<class T>() {
    dispatch_binary(op, [&]<BinaryOp OP>() {
      if (a.numel() == n && b.numel() == n) {
        // Nothing stretches: the three buffers line up element for element.
        binary_same_kernel<OP, T><<<blocks_for(n), kThreads>>>(
            static_cast<T*>(out.raw_data()), static_cast<const T*>(a.raw_data()),
            static_cast<const T*>(b.raw_data()), n);
        ATTNLAB_CUDA_CHECK_LAUNCH("binary_same_kernel");
        return;
      }
      Dims d = collapse(out.shape(), a.shape(), b.shape());
      // 32-bit index arithmetic (much cheaper division) whenever it cannot overflow.
      if (n < std::numeric_limits<int32_t>::max())
        launch_broadcast<OP, T, uint32_t>(a, b, out, d);
      else
        launch_broadcast<OP, T, uint64_t>(a, b, out, d);
    });
  });
}

}  // namespace attnlab::cuda
