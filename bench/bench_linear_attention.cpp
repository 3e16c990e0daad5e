// Throughput of the linear-attention family, forward + backward of one attention
// layer (projections included) at T = 256, 1024, 4096 with the tokens per step
// fixed (B * T = 8192): linear kinds should stay flat in T, softmax (the
// quadratic reference) falls. Also the chunkwise kernel alone, and the
// step-by-step recurrence composed of autograd primitives (what the kernel
// replaces) at the shortest T.
// With --cuda: only the chunkwise kernels (ops:: forward + backward, no autograd)
// on the GPU, f32 and bf16, at the same shapes.
//   cmake --build build --target bench_linear_attention
//   bench/run_quiet.sh env OMP_NUM_THREADS=1 build/bench/bench_linear_attention [--quick | --cuda]
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/linear_attention.h"
#include "bench/bench_util.h"
#include "core/ops.h"
#include "layers/attention/linear_attention.h"
#include "layers/attention/registry.h"
#ifdef ATTNLAB_HAS_CUDA
#include "core/cuda/cuda_ops.h"
#endif

using namespace attnlab;

namespace {

constexpr int64_t kDModel = 256, kHeads = 4, kTokens = 8192;

struct Kind {
  const char* name;
  AttnOptions o;
};

std::vector<Kind> kinds() {
  auto mk = [](const char* kind, FeatureMap fm = FeatureMap::automatic) {
    AttnOptions o;
    o.kind = kind;
    o.pos = PosKind::nope;
    o.feature_map = fm;
    o.chunk_size = 64;
    return o;
  };
  AttnOptions taylor = mk("linear", FeatureMap::taylor);
  taylor.feature_dim = 16;
  AttnOptions gated = mk("delta");
  gated.gated = true;
  AttnOptions softmax;
  softmax.pos = PosKind::nope;
  return {{"linear elu1 (denominator)", mk("linear")},
          {"linear cosine (rmsnorm)", mk("linear", FeatureMap::cosine)},
          {"linear taylor f=16 (Based)", taylor},
          {"retention", mk("retention")},
          {"gla", mk("gla")},
          {"delta", mk("delta")},
          {"gated delta", gated},
          {"softmax (reference)", softmax}};
}

Tensor randn(const Shape& s, uint64_t seed, double std = 1.0) {
  Generator gen(seed);
  return Tensor::empty(s, DType::f32).normal_(gen, 0.0, std);
}

// Median seconds per call of f over `reps` calls after one warm-up.
template <class F>
double seconds(int reps, F&& f) {
  return bench::time_it(f, 1, reps, 0.0, reps).median_s;
}

// The chunkwise kernels on the GPU: ops:: forward + backward of [B, H, T, 64]
// inputs, each call waited for (core/cuda/linear_attention*.cu).
int cuda_kernels(int reps) {
#ifdef ATTNLAB_HAS_CUDA
  if (!cuda_available()) {
    std::printf("no CUDA device\n");
    return 1;
  }
  std::printf("%-28s %5s %6s %4s %12s %14s\n", "cuda kernel fwd+bwd", "dtype", "T", "B", "ms/step", "tokens/s");
  struct KernelCase {
    const char* name;
    int gate;  // 0 none, 1 per step, 2 per key dim
    bool delta;
  };
  const Device gpu = Device::cuda();
  for (KernelCase kc : {KernelCase{"linear_attention (no gate)", 0, false}, {"linear_attention (per step)", 1, false},
                        {"linear_attention (per dim)", 2, false}, {"delta_rule", 0, true},
                        {"delta_rule (gated)", 1, true}})
    for (DType dt : {DType::f32, DType::bf16})
      for (int64_t T : {256, 1024, 4096}) {
        const int64_t B = kTokens / T, D = 64;
        auto on_gpu = [&](const Tensor& t) { return t.defined() ? t.to(dt).to(gpu) : Tensor(); };
        Tensor q = on_gpu(randn({B, kHeads, T, D}, 3, 0.1)), kk = on_gpu(randn({B, kHeads, T, D}, 4, 0.1)),
               v = on_gpu(randn({B, kHeads, T, D}, 5)), dout = on_gpu(randn({B, kHeads, T, D}, 8));
        Tensor g = kc.gate == 0 ? Tensor()
                                : on_gpu(ops::scale(ops::unary(UnaryOp::sigmoid,
                                                               randn(kc.gate == 1 ? Shape{B, kHeads, T}
                                                                                  : Shape{B, kHeads, T, D},
                                                                     6)),
                                                    -0.1));
        Tensor beta = on_gpu(ops::unary(UnaryOp::sigmoid, randn({B, kHeads, T}, 7)));
        double s = seconds(reps, [&] {
          if (kc.delta) {
            ops::delta_rule_chunked(q, kk, v, beta, g, 64);
            ops::delta_rule_chunked_backward(q, kk, v, beta, g, 64, Tensor(), dout);
          } else {
            ops::linear_attention_chunked(q, kk, v, g, 64);
            ops::linear_attention_chunked_backward(q, kk, v, g, 64, Tensor(), dout);
          }
          cuda::synchronize();
        });
        std::printf("%-28s %5s %6lld %4lld %12.3f %14.0f\n", kc.name, dtype_name(dt), static_cast<long long>(T),
                    static_cast<long long>(B), s * 1e3, static_cast<double>(kTokens) / s);
        std::fflush(stdout);
      }
  return 0;
#else
  (void)reps;
  std::printf("attnlab was built without CUDA\n");
  return 1;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--cuda") == 0) {
    bench::print_header("bench_linear_attention --cuda: the chunkwise kernels on the GPU");
    return cuda_kernels(5);
  }
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int reps = quick ? 1 : 5;
  bench::print_header("bench_linear_attention: the linear family, forward + backward");
  std::printf("d_model %lld, %lld heads of 64, chunk 64, f32, B*T = %lld tokens per step, median of %d\n\n",
              static_cast<long long>(kDModel), static_cast<long long>(kHeads), static_cast<long long>(kTokens), reps);
  std::printf("%-28s %6s %4s %12s %14s\n", "layer fwd+bwd", "T", "B", "ms/step", "tokens/s");
  for (const Kind& k : kinds()) {
    for (int64_t T : {256, 1024, 4096}) {
      const int64_t B = kTokens / T;
      auto attn = make_attention(kDModel, kHeads, k.o, false);
      Generator gen(1);
      for (auto& [n, p] : attn->named_parameters())
        if (p.dim() == 2) p.data().normal_(gen, 0.0, 0.02);
      Tensor x = randn({B, T, kDModel}, 2);
      double s = seconds(reps, [&] {
        attn->zero_grad();
        Var xv(x, true);
        ag::sum_all(attn->forward(xv)).backward();
      });
      std::printf("%-28s %6lld %4lld %12.2f %14.0f\n", k.name, static_cast<long long>(T), static_cast<long long>(B),
                  s * 1e3, static_cast<double>(kTokens) / s);
      std::fflush(stdout);
    }
  }

  // The kernels alone, [B, H, T, 64] inputs.
  std::printf("\n%-28s %6s %4s %12s %14s\n", "kernel fwd+bwd", "T", "B", "ms/step", "tokens/s");
  struct KernelCase {
    const char* name;
    int gate;  // 0 none, 1 per step, 2 per key dim
    bool delta;
  };
  for (KernelCase kc : {KernelCase{"linear_attention (no gate)", 0, false}, {"linear_attention (per step)", 1, false},
                        {"linear_attention (per dim)", 2, false}, {"delta_rule", 0, true},
                        {"delta_rule (gated)", 1, true}}) {
    for (int64_t T : {256, 1024, 4096}) {
      const int64_t B = kTokens / T, D = 64;
      Tensor q = randn({B, kHeads, T, D}, 3, 0.1), kk = randn({B, kHeads, T, D}, 4, 0.1), v = randn({B, kHeads, T, D}, 5);
      Tensor g = kc.gate == 0 ? Tensor()
                              : ops::scale(ops::unary(UnaryOp::sigmoid, randn(kc.gate == 1 ? Shape{B, kHeads, T}
                                                                                           : Shape{B, kHeads, T, D}, 6)),
                                           -0.1);
      Tensor beta = ops::unary(UnaryOp::sigmoid, randn({B, kHeads, T}, 7));
      double s = seconds(reps, [&] {
        Var qv(q, true), kv(kk, true), vv(v, true), gv = g.defined() ? Var(g, true) : Var(), bv(beta, true);
        Var o = kc.delta ? ag::delta_rule(qv, kv, vv, bv, gv, 64) : ag::linear_attention(qv, kv, vv, gv, 64);
        ag::sum_all(o).backward();
      });
      std::printf("%-28s %6lld %4lld %12.2f %14.0f\n", kc.name, static_cast<long long>(T), static_cast<long long>(B),
                  s * 1e3, static_cast<double>(kTokens) / s);
      std::fflush(stdout);
    }
  }

  // What the chunkwise kernel replaces: the recurrence as autograd primitives.
  {
    const int64_t T = 256, B = kTokens / T, D = 64;
    Tensor q = randn({B, kHeads, T, D}, 3, 0.1), kk = randn({B, kHeads, T, D}, 4, 0.1), v = randn({B, kHeads, T, D}, 5);
    double s = seconds(1, [&] {
      Var qv(q, true), kv(kk, true), vv(v, true);
      Tensor state;
      ag::sum_all(ag::linear_attention_recurrent(qv, kv, vv, Var(), state)).backward();
    });
    std::printf("%-28s %6lld %4lld %12.2f %14.0f\n", "recurrent, composed (no gate)", static_cast<long long>(T),
                static_cast<long long>(B), s * 1e3, static_cast<double>(kTokens) / s);
  }
  std::printf("\nload average (1 min) at the end: %.2f\n", bench::load_average_1min());
  return 0;
}
