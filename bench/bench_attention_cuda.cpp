// Causal attention forward + backward on one GPU: our flash kernel
// (ops::flash_attention / ops::flash_attention_backward) in bf16 and f32, in
// TFLOP/s. bench/attention_cuda_pytorch.py times PyTorch's SDPA backends (flash,
// cuDNN, memory-efficient) on the same shapes; the bar is ours >= 0.8x
// cuDNN at causal T 1024, D 64.
//
//   build/bench/bench_attention_cuda [--min-time=1] [--dtype=bf16|f32|all]
//
// FLOPs follow FlashAttention's count: the forward's two GEMMs are 4 B H T^2 D,
// halved for causal; the backward is 2.5x the forward.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/cuda/cuda_ops.h"
#include "core/device.h"
#include "core/ops.h"

namespace attnlab {
namespace {

struct Case {
  int64_t B, H, T, D;
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds of f (synchronised) over at least 10 runs and min_time seconds, after 3 warm-ups.
template <class F>
double median_time(F&& f, double min_time) {
  for (int i = 0; i < 3; ++i) f();
  cuda::synchronize();
  std::vector<double> t;
  double start = now_s();
  while (t.size() < 10 || now_s() - start < min_time) {
    double t0 = now_s();
    f();
    cuda::synchronize();
    t.push_back(now_s() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

Tensor random(const Shape& s, uint64_t seed, DType dtype) {
  Tensor t = Tensor::empty(s, DType::f32, Device::cuda());
  ops::normal(t, seed, 0, 0.0, 1.0);
  return dtype == DType::f32 ? t : t.to(dtype);
}

void bench(DType dtype, double min_time) {
  const Case cases[] = {{16, 12, 1024, 64}, {8, 16, 2048, 64}, {4, 16, 4096, 64}, {16, 12, 1024, 128}};
  for (const Case& c : cases) {
    const Shape s{c.B, c.H, c.T, c.D};
    Tensor q = random(s, 1, dtype), k = random(s, 2, dtype), v = random(s, 3, dtype), g = random(s, 4, dtype);
    FlashAttentionParams p;
    p.mask = FlashMask::causal;
    ops::FlashAttentionOut fwd = ops::flash_attention(q, k, v, p);
    double t_fwd = median_time([&] { ops::flash_attention(q, k, v, p); }, min_time);
    double t_bwd = median_time([&] { ops::flash_attention_backward(q, k, v, fwd.out, fwd.lse, g, p); }, min_time);
    const double f_fwd = 4.0 * c.B * c.H * static_cast<double>(c.T) * c.T * c.D / 2.0, f_bwd = 2.5 * f_fwd;
    std::printf("%-5s B%-3lld H%-3lld T%-5lld D%-4lld %9.3f %9.3f %9.3f %8.1f %8.1f %8.1f\n", dtype_name(dtype),
                static_cast<long long>(c.B), static_cast<long long>(c.H), static_cast<long long>(c.T),
                static_cast<long long>(c.D), 1e3 * t_fwd, 1e3 * t_bwd, 1e3 * (t_fwd + t_bwd), f_fwd / t_fwd / 1e12,
                f_bwd / t_bwd / 1e12, (f_fwd + f_bwd) / (t_fwd + t_bwd) / 1e12);
  }
}

}  // namespace
}  // namespace attnlab

int main(int argc, char** argv) {
  using namespace attnlab;
  double min_time = 1.0;
  std::string dtype = "all";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--min-time=", 0) == 0) min_time = std::atof(a.c_str() + 11);
    else if (a.rfind("--dtype=", 0) == 0) dtype = a.substr(8);
    else {
      std::fprintf(stderr, "usage: bench_attention_cuda [--min-time=SECONDS] [--dtype=bf16|f32|all]\n");
      return 2;
    }
  }
  if (!cuda_available()) {
    std::fprintf(stderr, "bench_attention_cuda: no CUDA device\n");
    return 1;
  }
  std::printf("== causal flash attention on cuda:0, forward and backward ==\n");
  std::printf("%-5s %-24s %9s %9s %9s %8s %8s %8s\n", "dtype", "shape", "fwd ms", "bwd ms", "f+b ms", "fwd TF/s",
              "bwd TF/s", "f+b TF/s");
  try {
    if (dtype == "bf16" || dtype == "all") bench(DType::bf16, min_time);
    if (dtype == "f32" || dtype == "all") bench(DType::f32, min_time);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_attention_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
