#pragma once
// Shared by the fused-attention tests (test_flash_attention.cpp, the CUDA
// kernels' test_cuda_attention.cpp, test_cuda_flash_emulated.cpp and
// test_cuda_flash_geometry.cpp): the masks written from their definitions,
// the option sweep's parameters, shapes, and the comparisons.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/attention_params.h"
#include "core/ops.h"
#include "core/tensor.h"

namespace attnlab::flash_testing {

inline const FlashMask kMasks[] = {FlashMask::none, FlashMask::causal, FlashMask::window, FlashMask::sinks};

// Whether query position pos may not see key j, written from the definitions
// in core/attention_params.h (independently of the kernels' interval form).
inline bool hidden(const FlashAttentionParams& p, int64_t pos, int64_t j) {
  switch (p.mask) {
    case FlashMask::none: return false;
    case FlashMask::causal: return j > pos;
    case FlashMask::window: return j > pos || j <= pos - p.window;
    case FlashMask::sinks: return j > pos || (j >= p.sinks && j <= pos - p.window);
  }
  return false;
}

// The option sweeps' parameters: window 9, 3 sinks, ALiBi slopes 2^-(1+h),
// softcap 2.5, sigmoid bias -1.5.
inline FlashAttentionParams params(FlashMask mask, bool alibi, bool softcap, FlashScore score, int64_t H,
                                   int64_t q_offset = 0) {
  FlashAttentionParams p;
  p.mask = mask;
  p.window = 9;
  p.sinks = 3;
  p.score = score;
  p.q_offset = q_offset;
  if (score == FlashScore::sigmoid) p.sigmoid_bias = -1.5;
  if (alibi)
    for (int64_t h = 0; h < H; ++h) p.alibi_slopes.push_back(std::pow(2.0, -1.0 - static_cast<double>(h)));
  if (softcap) p.softcap = 2.5;
  return p;
}

struct Shapes {
  int64_t B, H, Hkv, Tq, Tk, D, Dv, q_offset;
};

inline std::string describe(const Shapes& s, const FlashAttentionParams& p, DType t) {
  return detail::cat(dtype_name(t), " B=", s.B, " H=", s.H, " Hkv=", s.Hkv, " Tq=", s.Tq, " Tk=", s.Tk, " D=", s.D,
                     " Dv=", s.Dv, " ", p.str());
}

// max |a - b| <= rtol * max |b| over the finite entries of b (relative to the
// tensor's scale: entries that cancel to near zero need no digits they never
// had); a non-finite entry of b (lse = -inf) must be matched exactly.
inline ::testing::AssertionResult close_to_scale(const Tensor& a, const Tensor& b, double rtol, const char* what) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << what << ": shapes " << a.str() << " vs " << b.str();
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double scale = 0, err = 0;
  size_t at = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (!std::isfinite(y[i])) {
      if (!(x[i] == y[i]))
        return ::testing::AssertionFailure() << what << ": at " << i << " got " << x[i] << ", want " << y[i];
      continue;
    }
    scale = std::max(scale, std::fabs(y[i]));
    double e = std::fabs(x[i] - y[i]);
    if (!(e <= err)) {  // also catches NaN
      err = e;
      at = i;
    }
  }
  if (err <= rtol * std::max(scale, 1e-30)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": max error " << err << " at " << at << " (" << x[at] << " vs "
                                       << y[at] << "), scale " << scale << ", rtol " << rtol;
}


// Every output and gradient of one forward + backward.
struct Results {
  Tensor out, lse, entropy, sink_mass, dq, dk, dv;
};

// ops::flash_attention, then its backward from dout = g (and dentropy = dh
// when defined), on whatever device the inputs are on.
inline Results run(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& dh,
                   const FlashAttentionParams& p) {
  ops::FlashAttentionOut f = ops::flash_attention(q, k, v, p);
  ops::FlashAttentionGrads gr =
      ops::flash_attention_backward(q, k, v, f.out, f.lse, g, p, dh.defined() ? f.entropy : Tensor(), dh);
  return {f.out, f.lse, f.entropy, f.sink_mass, gr.dq, gr.dk, gr.dv};
}

// got against want, each to the scale of want: outputs to `tol`, gradients to
// `grad_tol`, and a bf16 run's lse (f32 from the same rounded inputs on both
// sides) to 1e-4.
inline void expect_results_close(const Results& got, const Results& want, const FlashAttentionParams& p, DType dt,
                                 double tol, double grad_tol) {
  EXPECT_TRUE(close_to_scale(got.out, want.out, tol, "out"));
  if (p.score == FlashScore::softmax) {
    EXPECT_TRUE(close_to_scale(got.lse, want.lse, dt == DType::bf16 ? 1e-4 : tol, "lse"));
  }
  if (p.entropy) {
    EXPECT_TRUE(close_to_scale(got.entropy, want.entropy, tol, "entropy"));
  }
  if (p.sink_mass) {
    EXPECT_TRUE(close_to_scale(got.sink_mass, want.sink_mass, tol, "sink_mass"));
  }
  EXPECT_TRUE(close_to_scale(got.dq, want.dq, grad_tol, "dq"));
  EXPECT_TRUE(close_to_scale(got.dk, want.dk, grad_tol, "dk"));
  EXPECT_TRUE(close_to_scale(got.dv, want.dv, grad_tol, "dv"));
}

}  // namespace attnlab::flash_testing
