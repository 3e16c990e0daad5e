#pragma once
// Shared helpers for the layers tests.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "core/ops.h"
#include "layers/module.h"

namespace attnlab::test_util {

inline Tensor randn(const Shape& shape, uint64_t seed, double std = 1.0, DType dtype = DType::f64) {
  Generator gen(seed);
  return Tensor::empty(shape, dtype).normal_(gen, 0.0, std);
}

// Every parameter ~ N(0, std) (norm weights around 1 so nothing is degenerate).
inline void randomize(Module& m, uint64_t seed, double std = 0.5) {
  Generator gen(seed);
  for (auto& [name, p] : m.named_parameters()) {
    p.data().normal_(gen, 0.0, std);
    if (name.find("ln") != std::string::npos || name.find("norm") != std::string::npos)
      p.data().copy_(ops::add_scalar(p.data(), 1.0));
  }
}

// Gradchecks fn (which calls the module) w.r.t. the input tensors and the named
// parameters. gradcheck owns the Vars it perturbs, so each call points the
// module's parameters at gradcheck's copies, and a grad-ready hook hands the
// parameter's gradient back to gradcheck's Var.
inline GradcheckResult gradcheck_module(Module& m, const std::vector<std::string>& params,
                                        const std::vector<Tensor>& inputs,
                                        const std::function<Var(const std::vector<Var>&)>& fn,
                                        const GradcheckOptions& opts = {}) {
  size_t ni = inputs.size();
  std::vector<Tensor> all = inputs;
  for (const auto& n : params) all.push_back(m.parameter(n).data().clone());
  return gradcheck(
      [&](const std::vector<Var>& v) {
        for (size_t k = 0; k < params.size(); ++k) {
          Var p = m.parameter(params[k]);
          Var target = v[ni + k];
          p.data() = target.data();
          p.grad() = Tensor();
          p.impl()->grad_ready_hooks.clear();
          p.add_grad_ready_hook([target](Var& leaf) mutable { target.grad() = leaf.grad().clone(); });
        }
        return fn(std::vector<Var>(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(ni)));
      },
      all, opts);
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

}  // namespace attnlab::test_util
