#pragma once
#include <vector>

#include "autograd/var.h"

namespace attnlab {

// sqrt(sum of squares) over every defined gradient (accumulated in double).
double grad_norm(const std::vector<Var>& params);

// Scales every gradient by max_norm / (norm + 1e-6) when the global norm
// exceeds max_norm (PyTorch's clip_grad_norm_), and returns the norm before
// clipping. A non-finite norm leaves the gradients alone: the caller sees it
// and can skip the step.
double clip_grad_norm(const std::vector<Var>& params, double max_norm);

}  // namespace attnlab
