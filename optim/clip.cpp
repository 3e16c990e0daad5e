#include "optim/clip.h"

#include <cmath>

#include "core/cuda/multi_tensor.h"
#include "core/ops.h"

#ifdef ATTNLAB_HAS_CUDA
#include "core/cuda/optim_kernels.h"
#endif

namespace attnlab {

namespace {
template <class T>
double sum_squares(const T* g, int64_t n) {
  double s = 0;
#pragma omp parallel for simd reduction(+ : s) schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(g[i]) * static_cast<double>(g[i]);
  return s;
}

double sum_squares(const Tensor& g) {
  if (g.dtype() == DType::f32) return sum_squares(g.data<float>(), g.numel());
  if (g.dtype() == DType::f64) return sum_squares(g.data<double>(), g.numel());
  return ops::sum_all(ops::mul(g, g)).item<double>();
}

bool multi_tensor_dtype(DType d) { return d == DType::f32 || d == DType::f64; }

// The gradients of one device and dtype, with their multi-tensor table on that
// device (f32/f64): the norm is one launch pair and one host read, the scaling
// one launch, both over the same table.
struct DeviceGrads {
  Device device;
  DType dtype;
  std::vector<Tensor> grads;
  cuda::MultiTensorTable table;
  Tensor words;

  void pack() {
    if (!multi_tensor_dtype(dtype)) return;
    std::vector<std::vector<const void*>> rows;
    std::vector<int64_t> numels;
    for (const Tensor& g : grads) {
      rows.push_back({g.raw_data()});
      numels.push_back(g.numel());
    }
    table = cuda::pack_multi_tensor(rows, numels, 1);
    words = Tensor::from(table.words, {static_cast<int64_t>(table.words.size())}, device);
  }

  double sum_squares() const {
#ifdef ATTNLAB_HAS_CUDA
    if (multi_tensor_dtype(dtype)) {
      Tensor out = Tensor::empty({1}, DType::f64, device);
      cuda::sum_squares_multi(dtype, table, words, out);
      return out.item<double>();  // the one host read
    }
#endif
    double s = 0;
    for (const Tensor& g : grads) s += ops::sum_all(ops::mul(g, g)).item<double>();
    return s;
  }

  void scale(double coef) const {
#ifdef ATTNLAB_HAS_CUDA
    if (multi_tensor_dtype(dtype)) return cuda::scale_multi(dtype, table, words, coef);  // axpy's arithmetic
#endif
    for (Tensor g : grads) ops::axpy(g, coef - 1.0, g);
  }
};

// The defined gradients: the CPU ones, and the device ones grouped by device
// and dtype in first-seen order.
struct GradGroups {
  std::vector<Tensor> cpu;
  std::vector<DeviceGrads> device;

  explicit GradGroups(const std::vector<Var>& params) {
    for (const Var& p : params) {
      const Tensor& g = p.grad();
      if (!g.defined()) continue;
      if (g.device().is_cpu()) {
        cpu.push_back(g);
        continue;
      }
      auto it = device.begin();
      while (it != device.end() && !(it->device == g.device() && it->dtype == g.dtype())) ++it;
      if (it == device.end()) it = device.insert(device.end(), DeviceGrads{g.device(), g.dtype(), {}, {}, {}});
      it->grads.push_back(g);
    }
    for (DeviceGrads& d : device) d.pack();
  }

  double sum_squares() const {
    double s = 0;
    for (const Tensor& g : cpu) s += attnlab::sum_squares(g);
    for (const DeviceGrads& d : device) s += d.sum_squares();
    return s;
  }
};
}  // namespace

double grad_norm(const std::vector<Var>& params) { return std::sqrt(GradGroups(params).sum_squares()); }

double clip_grad_norm(const std::vector<Var>& params, double max_norm) {
  ATTNLAB_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be positive, got ", max_norm);
  GradGroups groups(params);
  double norm = std::sqrt(groups.sum_squares());
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  double coef = max_norm / (norm + 1e-6);
  for (Tensor g : groups.cpu) ops::axpy(g, coef - 1.0, g);  // g += (coef - 1) g, i.e. g *= coef, in place
  for (const DeviceGrads& d : groups.device) d.scale(coef);
  return norm;
}

}  // namespace attnlab
