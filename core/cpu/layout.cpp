#include <cstring>

#include "core/cpu/cpu_ops.h"
#include "core/cpu/dispatch.h"

namespace attnlab::cpu {

namespace {
int64_t prod(const Shape& s, int64_t from, int64_t to) {
  int64_t p = 1;
  for (int64_t d = from; d < to; ++d) p *= s[static_cast<size_t>(d)];
  return p;
}
}  // namespace

// x viewed as [A, n0, B, n1, C] (d0 < d1) becomes [A, n1, B, n0, C]; C-element
// runs stay contiguous, so the copy is by bytes and works for every dtype.
void transpose(const Tensor& x, int64_t d0, int64_t d1, Tensor& out) {
  if (d0 > d1) std::swap(d0, d1);
  const Shape& s = x.shape();
  int64_t a = prod(s, 0, d0), n0 = s[static_cast<size_t>(d0)], b = prod(s, d0 + 1, d1);
  int64_t n1 = s[static_cast<size_t>(d1)], c = prod(s, d1 + 1, x.dim());
  size_t run = static_cast<size_t>(c) * dtype_size(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
#pragma omp parallel for collapse(2) schedule(static) if (x.numel() > kParallelGrain)
  for (int64_t ia = 0; ia < a; ++ia)
    for (int64_t i1 = 0; i1 < n1; ++i1)
      for (int64_t ib = 0; ib < b; ++ib)
        for (int64_t i0 = 0; i0 < n0; ++i0) {
          int64_t from = (((ia * n0 + i0) * b + ib) * n1 + i1);
          int64_t to = (((ia * n1 + i1) * b + ib) * n0 + i0);
          std::memcpy(dst + static_cast<size_t>(to) * run, src + static_cast<size_t>(from) * run, run);
        }
}

// Every input is [outer, size_i * inner]; out rows are the inputs' rows side by side.
void concat(const std::vector<Tensor>& xs, int64_t dim, Tensor& out) {
  size_t elem = dtype_size(out.dtype());
  int64_t outer = prod(out.shape(), 0, dim), inner = prod(out.shape(), dim + 1, out.dim());
  size_t out_row = static_cast<size_t>(out.size(dim) * inner) * elem;
  char* dst = static_cast<char*>(out.raw_data());
  size_t col = 0;
  for (const Tensor& x : xs) {
    size_t row = static_cast<size_t>(x.size(dim) * inner) * elem;
    const char* src = static_cast<const char*>(x.raw_data());
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(dst + static_cast<size_t>(o) * out_row + col, src + static_cast<size_t>(o) * row, row);
    col += row;
  }
}

void split(const Tensor& x, int64_t dim, std::vector<Tensor>& outs) {
  size_t elem = dtype_size(x.dtype());
  int64_t outer = prod(x.shape(), 0, dim), inner = prod(x.shape(), dim + 1, x.dim());
  size_t in_row = static_cast<size_t>(x.size(dim) * inner) * elem;
  const char* src = static_cast<const char*>(x.raw_data());
  size_t col = 0;
  for (Tensor& o_t : outs) {
    size_t row = static_cast<size_t>(o_t.size(dim) * inner) * elem;
    char* dst = static_cast<char*>(o_t.raw_data());
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(dst + static_cast<size_t>(o) * row, src + static_cast<size_t>(o) * in_row + col, row);
    col += row;
  }
}

}  // namespace attnlab::cpu
