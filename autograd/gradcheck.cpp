#include "autograd/gradcheck.h"

#include <algorithm>
#include <cmath>

#include "core/ops.h"

namespace attnlab {

namespace {
double project(const Tensor& out, const Tensor& r) {
  const double* o = out.data<double>();
  const double* w = r.data<double>();
  double s = 0;
  for (int64_t i = 0; i < out.numel(); ++i) s += o[i] * w[i];
  return s;
}
}  // namespace

GradcheckResult gradcheck(const std::function<Var(const std::vector<Var>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& opts,
                          const std::vector<size_t>& no_grad_inputs) {
  std::vector<Var> vars;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ATTNLAB_CHECK(inputs[i].dtype() == DType::f64 && inputs[i].device().is_cpu(),
                  "gradcheck: input ", i, " must be f64 on the CPU, got ", inputs[i].str());
    bool constant = std::find(no_grad_inputs.begin(), no_grad_inputs.end(), i) != no_grad_inputs.end();
    vars.emplace_back(inputs[i].clone(), !constant);
  }
  Var out = fn(vars);
  Generator gen(opts.seed + 12345);
  Tensor r = Tensor::empty(out.shape(), DType::f64).normal_(gen);
  out.backward(r);

  GradcheckResult res;
  for (size_t i = 0; i < vars.size(); ++i) {
    if (!vars[i].requires_grad()) continue;
    Tensor analytic = vars[i].grad().defined() ? vars[i].grad() : Tensor::zeros_like(inputs[i]);
    double* x = vars[i].data().data<double>();
    const double* a = analytic.data<double>();
    NoGradGuard no_grad;
    for (int64_t j = 0; j < inputs[i].numel(); ++j) {
      double orig = x[j];
      x[j] = orig + opts.eps;
      double fp = project(fn(vars).data(), r);
      x[j] = orig - opts.eps;
      double fm = project(fn(vars).data(), r);
      x[j] = orig;
      double numeric = (fp - fm) / (2 * opts.eps);
      double err = std::abs(a[j] - numeric);
      res.max_abs_err = std::max(res.max_abs_err, err);
      if (res.ok && err > opts.atol + opts.rtol * std::abs(numeric)) {
        res.ok = false;
        res.message = detail::cat("input ", i, " ", inputs[i].str(), " element ", j, ": analytic ", a[j],
                                  " vs numeric ", numeric);
      }
    }
  }
  return res;
}

}  // namespace attnlab
