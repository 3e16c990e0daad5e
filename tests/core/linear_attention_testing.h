#pragma once
// Helpers for the linear-attention kernel tests: random inputs with sensible
// ranges, and the recurrences written as plain loops over steps (independent
// of both the chunked kernels and the autograd recurrent form).
#include <cmath>
#include <vector>

#include "core/tensor.h"
#include "core/test_helpers.h"

namespace attnlab::testing {

// Log-gates in [-hi, -lo] (decays exp(g) in (0, 1)).
inline Tensor log_gates(const Shape& shape, uint64_t seed, double lo = 0.02, double hi = 0.7,
                        DType dtype = DType::f64) {
  return randu(shape, seed, -hi, -lo, dtype);
}

// Rows of x [..., T, D] scaled to unit L2 norm (the delta rule's keys).
inline Tensor l2_rows(const Tensor& x) {
  Tensor y = x.to(DType::f64);
  double* p = y.data<double>();
  int64_t d = x.size(-1);
  for (int64_t r = 0; r < x.numel() / d; ++r) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += p[r * d + j] * p[r * d + j];
    for (int64_t j = 0; j < d; ++j) p[r * d + j] /= std::sqrt(s);
  }
  return y.to(x.dtype());
}

struct LoopOut {
  std::vector<double> o, state;
};

// S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T (or the delta rule when beta is
// defined: S_t = exp(g_t) (I - b_t k_t k_t^T) S_{t-1} + b_t k_t v_t^T), o_t = S_t^T q_t.
inline LoopOut recurrence_loops(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                const Tensor& beta = Tensor(), const Tensor& state0 = Tensor()) {
  const int64_t T = q.size(-2), Dk = q.size(-1), Dv = v.size(-1), N = q.numel() / (T * Dk);
  const bool diag = g.defined() && g.dim() == q.dim();
  auto Q = values(q), K = values(k), V = values(v);
  std::vector<double> G = g.defined() ? values(g) : std::vector<double>(), Bt = beta.defined() ? values(beta)
                                                                                               : std::vector<double>();
  LoopOut out{std::vector<double>(static_cast<size_t>(N * T * Dv)), std::vector<double>(static_cast<size_t>(N * Dk * Dv))};
  if (state0.defined()) out.state = values(state0);
  for (int64_t n = 0; n < N; ++n) {
    double* S = &out.state[static_cast<size_t>(n * Dk * Dv)];
    for (int64_t t = 0; t < T; ++t) {
      const double* qt = &Q[static_cast<size_t>((n * T + t) * Dk)];
      const double* kt = &K[static_cast<size_t>((n * T + t) * Dk)];
      const double* vt = &V[static_cast<size_t>((n * T + t) * Dv)];
      for (int64_t a = 0; a < Dk; ++a) {
        double decay = !g.defined() ? 1.0 : std::exp(diag ? G[static_cast<size_t>((n * T + t) * Dk + a)]
                                                           : G[static_cast<size_t>(n * T + t)]);
        for (int64_t b = 0; b < Dv; ++b) S[a * Dv + b] *= decay;
      }
      if (beta.defined()) {
        double bt = Bt[static_cast<size_t>(n * T + t)];
        for (int64_t b = 0; b < Dv; ++b) {
          double kS = 0;
          for (int64_t a = 0; a < Dk; ++a) kS += kt[a] * S[a * Dv + b];
          double u = bt * (vt[b] - kS);
          for (int64_t a = 0; a < Dk; ++a) S[a * Dv + b] += kt[a] * u;
        }
      } else {
        for (int64_t a = 0; a < Dk; ++a)
          for (int64_t b = 0; b < Dv; ++b) S[a * Dv + b] += kt[a] * vt[b];
      }
      for (int64_t b = 0; b < Dv; ++b) {
        double o = 0;
        for (int64_t a = 0; a < Dk; ++a) o += qt[a] * S[a * Dv + b];
        out.o[static_cast<size_t>((n * T + t) * Dv + b)] = o;
      }
    }
  }
  return out;
}

}  // namespace attnlab::testing
