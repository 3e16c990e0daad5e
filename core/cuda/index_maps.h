#pragma once
// Index maps the CUDA kernels evaluate per element, planned once on the host:
// broadcasting (binary ops, masked_fill, where), the sum of a tensor down to a
// broadcastable shape (sum_to), and transposing two dims. Plain C++ apart from
// ATTNLAB_HOST_DEVICE, so host tests check the arithmetic without a GPU.
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/macros.h"
#include "core/shape.h"

namespace attnlab::cuda {

constexpr int kMaxBroadcastDims = 12;

// The output's dims (outermost first) after dropping size-1 dims and merging
// neighbours that every input traverses alike; stride 0 marks a stretched input dim.
template <int N, class Index = int64_t>
struct Broadcast {
  int ndim = 0;
  Index size[kMaxBroadcastDims] = {};
  Index stride[N][kMaxBroadcastDims] = {};

  // off[k] = element offset in input k of output element i.
  ATTNLAB_HOST_DEVICE void offsets(Index i, Index (&off)[N]) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    ATTNLAB_UNROLL
    for (int d = kMaxBroadcastDims - 1; d > 0; --d) {
      if (d >= ndim) continue;
      Index q = i / size[d], r = i - q * size[d];
      for (int k = 0; k < N; ++k) off[k] += r * stride[k][d];
      i = q;
    }
    // The outermost dim needs no division: what is left is its coordinate.
    for (int k = 0; k < N; ++k) off[k] += i * stride[k][0];
  }

  // The same map in a narrower index type (32-bit division is much cheaper on a GPU).
  template <class To>
  Broadcast<N, To> narrow() const {
    Broadcast<N, To> b;
    b.ndim = ndim;
    for (int d = 0; d < ndim; ++d) {
      b.size[d] = static_cast<To>(size[d]);
      for (int k = 0; k < N; ++k) b.stride[k][d] = static_cast<To>(stride[k][d]);
    }
    return b;
  }
};

// Contiguous strides of `s` right-aligned to rank r (missing leading dims are
// size 1), with 0 where the dim is 1 and so stretches.
inline std::vector<int64_t> broadcast_strides(const Shape& s, size_t r) {
  std::vector<int64_t> stride(r, 0);
  int64_t step = 1;
  for (size_t k = 0; k < s.size(); ++k) {
    size_t src = s.size() - 1 - k, dst = r - 1 - k;
    stride[dst] = s[src] == 1 ? 0 : step;
    step *= s[src];
  }
  return stride;
}

// The map from `out` (which every input broadcasts to) into each input.
template <int N>
Broadcast<N> collapse_broadcast(const Shape& out, const std::array<Shape, N>& inputs, const char* op) {
  size_t r = out.size();
  std::array<std::vector<int64_t>, N> in_stride, stride;
  for (int k = 0; k < N; ++k) in_stride[k] = broadcast_strides(inputs[k], r);
  std::vector<int64_t> size;
  for (size_t d = 0; d < r; ++d) {
    if (out[d] == 1) continue;
    bool merge = !size.empty();
    for (int k = 0; k < N && merge; ++k) merge = stride[k].back() == in_stride[k][d] * out[d];
    if (merge) {
      // The outer dim continues this one for every input: one longer dim.
      size.back() *= out[d];
      for (int k = 0; k < N; ++k) stride[k].back() = in_stride[k][d];
      continue;
    }
    size.push_back(out[d]);
    for (int k = 0; k < N; ++k) stride[k].push_back(in_stride[k][d]);
  }
  if (size.empty()) {
    size = {1};
    for (int k = 0; k < N; ++k) stride[k] = {0};
  }
  if (size.size() > static_cast<size_t>(kMaxBroadcastDims)) {
    std::string shapes;
    for (int k = 0; k < N; ++k) shapes += (k ? " and " : "") + shape_str(inputs[k]);
    throw Error(detail::cat("cuda::", op, ": ", shapes, " broadcast to ", shape_str(out), " over ", size.size(),
                            " independent dims; at most ", kMaxBroadcastDims, " are supported"));
  }
  Broadcast<N> b;
  b.ndim = static_cast<int>(size.size());
  for (int d = 0; d < b.ndim; ++d) {
    b.size[d] = size[static_cast<size_t>(d)];
    for (int k = 0; k < N; ++k) b.stride[k][d] = stride[k][static_cast<size_t>(d)];
  }
  return b;
}

// Offset of flat index i over dims (size, stride), the last dim innermost.
ATTNLAB_HOST_DEVICE int64_t offset_in(int64_t i, int ndim, const int64_t* size, const int64_t* stride) {
  int64_t off = 0;
  for (int d = ndim - 1; d >= 0; --d) {
    int64_t q = i / size[d];
    off += (i - q * size[d]) * stride[d];
    i = q;
  }
  return off;
}

// sum_to(x, out): x's collapsed dims split into those `out` keeps (they
// enumerate out's elements in order) and those it sums over. Output element o
// is the sum over r < reduced of x[base(o) + offset(r)], r in x's element order.
struct SumToPlan {
  int kept_ndim = 0, reduced_ndim = 0;
  int64_t kept_size[kMaxBroadcastDims] = {}, kept_stride[kMaxBroadcastDims] = {};
  int64_t reduced_size[kMaxBroadcastDims] = {}, reduced_stride[kMaxBroadcastDims] = {};
  int64_t reduced = 1;  // x elements per output element

  ATTNLAB_HOST_DEVICE int64_t base(int64_t o) const { return offset_in(o, kept_ndim, kept_size, kept_stride); }
  ATTNLAB_HOST_DEVICE int64_t offset(int64_t r) const {
    return offset_in(r, reduced_ndim, reduced_size, reduced_stride);
  }
  // out is x's trailing block: a [rows, cols] column sum (a bias gradient).
  bool is_column_sum() const {
    return kept_ndim == 1 && reduced_ndim == 1 && kept_stride[0] == 1 && reduced_stride[0] == kept_size[0];
  }
};

inline SumToPlan plan_sum_to(const Shape& x, const Shape& out) {
  // x plays the broadcast output; input 0 is x itself (its contiguous strides
  // over the collapsed dims), input 1 is out (stride 0 where it is summed over).
  Broadcast<2> b = collapse_broadcast<2>(x, {x, out}, "sum_to");
  SumToPlan p;
  for (int d = 0; d < b.ndim; ++d) {
    if (b.size[d] == 1) continue;  // only when x has one element
    if (b.stride[1][d] != 0) {
      p.kept_size[p.kept_ndim] = b.size[d];
      p.kept_stride[p.kept_ndim++] = b.stride[0][d];
    } else {
      p.reduced_size[p.reduced_ndim] = b.size[d];
      p.reduced_stride[p.reduced_ndim++] = b.stride[0][d];
      p.reduced *= b.size[d];
    }
  }
  return p;
}

// transpose(x, d0, d1), d0 < d1: x viewed as [A, n0, B, n1, C] becomes
// [A, n1, B, n0, C]; src(o) is the x element that output element o copies.
struct TransposePlan {
  int64_t a = 1, n0 = 1, b = 1, n1 = 1, c = 1;

  ATTNLAB_HOST_DEVICE int64_t src(int64_t o) const {
    int64_t ic = o % c;
    o /= c;
    int64_t i0 = o % n0;
    o /= n0;
    int64_t ib = o % b;
    o /= b;
    int64_t i1 = o % n1;
    int64_t ia = o / n1;
    return (((ia * n0 + i0) * b + ib) * n1 + i1) * c + ic;
  }
};

inline TransposePlan plan_transpose(const Shape& s, int64_t d0, int64_t d1) {
  if (d0 > d1) std::swap(d0, d1);
  auto prod = [&](int64_t from, int64_t to) {
    int64_t p = 1;
    for (int64_t d = from; d < to; ++d) p *= s[static_cast<size_t>(d)];
    return p;
  };
  TransposePlan p;
  p.a = prod(0, d0);
  p.n0 = s[static_cast<size_t>(d0)];
  p.b = prod(d0 + 1, d1);
  p.n1 = s[static_cast<size_t>(d1)];
  p.c = prod(d1 + 1, static_cast<int64_t>(s.size()));
  return p;
}

}  // namespace attnlab::cuda
