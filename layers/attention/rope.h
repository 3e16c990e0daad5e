#pragma once
// Rotary position embedding (Su et al., "RoFormer: Enhanced Transformer with
// Rotary Position Embedding"). Each pair of dims (i, i + r/2) of the first r
// dims of a head (the "rotate-half" layout of GPT-NeoX and Llama) is rotated by
// the angle pos * theta^(-2i/r); the remaining dims pass through (partial RoPE).
// Because q_m . k_n then depends on m - n only, positions are relative.
#include <map>

#include "autograd/var.h"

namespace attnlab {

// y = R(pos) x for x [..., T, D] with cos, sin [T, r/2] (r <= D even):
//   y1 = x1 cos - x2 sin,  y2 = x2 cos + x1 sin,  y3 = x3
// with x1 = x[..., :r/2], x2 = x[..., r/2:r], x3 = x[..., r:]. One fused pass
// (ops::rope, CPU and CUDA kernels).
Tensor rope_rotate(const Tensor& x, const Tensor& cos, const Tensor& sin);

// Differentiable rope_rotate: R is orthogonal, so the backward is R^T g, the
// same rotation with the sine negated.
Var rope(const Var& x, const Tensor& cos, const Tensor& sin);

// cos/sin tables of one head size and theta, computed in double and cached per
// dtype and device; grown on demand. Rows for positions [pos0, pos0 + T) are views.
// `scale` is linear position interpolation (Chen et al., "Extending Context
// Window of Large Language Models via Positional Interpolation"): position m is
// rotated as m / scale, so a model trained on L positions sees scale * L
// positions in the angles it was trained on. scale = 1 is plain RoPE.
class RopeTable {
 public:
  RopeTable(int64_t rotated_dims, double theta, double scale = 1.0);
  int64_t rotated_dims() const { return rot_; }
  // x [..., T, D]: rotates positions pos0 .. pos0 + T - 1.
  Var apply(const Var& x, int64_t pos0);
  // The [T, r/2] cos and sin rows for positions [pos0, pos0 + T).
  std::pair<Tensor, Tensor> rows(int64_t pos0, int64_t T, DType dtype, Device device);

 private:
  struct Tables {
    Tensor cos, sin;
  };
  int64_t rot_;
  double theta_, scale_;
  int64_t len_ = 0;
  Tensor cos64_, sin64_;  // host f64 masters [len_, r/2]
  std::map<std::pair<DType, std::string>, Tables> cache_;
};

}  // namespace attnlab
