#include "layers/attention/moba.h"

#include <algorithm>
#include <numeric>
#include <vector>

namespace attnlab {

Tensor moba_mask(const Tensor& q, const Tensor& k, int64_t block, int64_t topk, int64_t q_offset) {
  ATTNLAB_CHECK(q.dim() == 4 && k.dim() == 4 && q.size(0) == k.size(0) && q.size(3) == k.size(3) &&
                    q.size(1) % k.size(1) == 0,
                "moba_mask: q ", q.str(), " and k ", k.str(), " must be [B, H, Tq, D] and [B, Hkv, Tk, D]");
  ATTNLAB_CHECK(block > 0 && topk > 0, "moba_mask: block and topk must be positive, got ", block, ", ", topk);
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3), Hkv = k.size(1), Tk = k.size(2);
  const int64_t G = H / Hkv;
  ATTNLAB_CHECK(q_offset + Tq <= Tk, "moba_mask: queries up to position ", q_offset + Tq - 1, " but only ", Tk,
                " keys");
  const std::vector<double> Q = q.to_vector<double>(), K = k.to_vector<double>();
  const int64_t n_blocks = (Tk + block - 1) / block;
  std::vector<int32_t> m(static_cast<size_t>(B * H * Tq * Tk), 1);
  std::vector<double> pooled(static_cast<size_t>(n_blocks * D)), score(static_cast<size_t>(n_blocks));
  std::vector<int64_t> order(static_cast<size_t>(n_blocks));
  std::vector<char> chosen(static_cast<size_t>(n_blocks));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < Hkv; ++g) {
      const double* kb = &K[static_cast<size_t>((b * Hkv + g) * Tk * D)];
      for (int64_t c = 0; c < n_blocks; ++c) {
        const int64_t lo = c * block, hi = std::min(Tk, lo + block);
        for (int64_t d = 0; d < D; ++d) {
          double s = 0;
          for (int64_t j = lo; j < hi; ++j) s += kb[j * D + d];
          pooled[static_cast<size_t>(c * D + d)] = s / static_cast<double>(hi - lo);
        }
      }
      for (int64_t hg = 0; hg < G; ++hg) {
        const int64_t h = g * G + hg;
        for (int64_t i = 0; i < Tq; ++i) {
          const int64_t p = q_offset + i, own = p / block;
          const double* qi = &Q[static_cast<size_t>(((b * H + h) * Tq + i) * D)];
          for (int64_t c = 0; c < own; ++c) {
            double s = 0;
            for (int64_t d = 0; d < D; ++d) s += qi[d] * pooled[static_cast<size_t>(c * D + d)];
            score[static_cast<size_t>(c)] = s;
          }
          std::iota(order.begin(), order.begin() + own, int64_t{0});
          std::stable_sort(order.begin(), order.begin() + own,
                           [&](int64_t x, int64_t y) { return score[static_cast<size_t>(x)] > score[static_cast<size_t>(y)]; });
          std::fill(chosen.begin(), chosen.end(), 0);
          chosen[static_cast<size_t>(own)] = 1;
          for (int64_t r = 0; r < std::min(own, topk - 1); ++r) chosen[static_cast<size_t>(order[static_cast<size_t>(r)])] = 1;
          int32_t* row = &m[static_cast<size_t>(((b * H + h) * Tq + i) * Tk)];
          for (int64_t j = 0; j <= p; ++j) row[j] = chosen[static_cast<size_t>(j / block)] ? 0 : 1;
        }
      }
    }
  return Tensor::from(m, {B, Hkv, G, Tq, Tk}, q.device());
}

}  // namespace attnlab
