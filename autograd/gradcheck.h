#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/var.h"

namespace attnlab {

struct GradcheckResult {
  bool ok = true;
  double max_abs_err = 0;
  std::string message;  // the first mismatch: input, element, analytic vs numeric
};

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-5;
  uint64_t seed = 0;
};

// Compares the analytic gradient of fn at `inputs` (float64, CPU) with central
// differences. The output is reduced to a scalar through a fixed random
// projection, so every output element's gradient is checked at once. Inputs
// listed in `no_grad_inputs` (by index) are passed as constants.
GradcheckResult gradcheck(const std::function<Var(const std::vector<Var>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& opts = {},
                          const std::vector<size_t>& no_grad_inputs = {});

}  // namespace attnlab
