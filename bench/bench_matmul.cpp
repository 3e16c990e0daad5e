// GEMM throughput of attnlab::ops::matmul (f32, Eigen on the CPU) against
// OpenBLAS cblas_sgemm on the same shapes, in the same process, with the same
// thread count, next to the machine's FLOP/s roof.
//
//   OMP_NUM_THREADS=2 build/bench/bench_matmul [--rounds=5] [--min-time=0.3] [--filter=TEXT]
//
// OpenBLAS is given omp_get_max_threads() threads (openblas_set_num_threads).
// The two libraries are timed in separate blocks with a pause between them, so
// neither one's spinning worker threads steal cores from the other.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/ops.h"

#ifdef ATTNLAB_BENCH_OPENBLAS
#include <cblas.h>
#endif

namespace attnlab::bench {
namespace {

struct Case {
  std::string name;  // where training uses it
  int64_t batch, m, n, k;
  bool ta, tb;
};

std::string op_str(const Case& c) {
  std::string s = c.ta ? "AT*" : "A*";
  s += c.tb ? "BT" : "B";
  return s;
}

std::string dims_str(const Case& c) {
  char buf[96];
  if (c.batch > 1)
    std::snprintf(buf, sizeof buf, "%lldx(%lldx%lld)x(%lldx%lld)", static_cast<long long>(c.batch),
                  static_cast<long long>(c.m), static_cast<long long>(c.k), static_cast<long long>(c.k),
                  static_cast<long long>(c.n));
  else
    std::snprintf(buf, sizeof buf, "(%lldx%lld)x(%lldx%lld)", static_cast<long long>(c.m),
                  static_cast<long long>(c.k), static_cast<long long>(c.k), static_cast<long long>(c.n));
  return buf;
}

// Operands as stored: a is [.., K, M] when transposed, b is [.., N, K] when transposed.
Tensor make_operand(int64_t batch, int64_t rows, int64_t cols, uint64_t seed) {
  Shape s = batch > 1 ? Shape{batch, rows, cols} : Shape{rows, cols};
  Tensor t = Tensor::empty(s, DType::f32);
  ops::uniform(t, seed, 0, -1.0, 1.0);
  return t;
}

#ifdef ATTNLAB_BENCH_OPENBLAS
void openblas_gemm(const Case& c, const float* a, const float* b, float* out, int64_t i) {
  const int m = static_cast<int>(c.m), n = static_cast<int>(c.n), k = static_cast<int>(c.k);
  cblas_sgemm(CblasRowMajor, c.ta ? CblasTrans : CblasNoTrans, c.tb ? CblasTrans : CblasNoTrans, m, n, k,
              1.0f, a + i * c.m * c.k, c.ta ? m : k, b + i * c.k * c.n, c.tb ? k : n, 0.0f, out + i * c.m * c.n,
              n);
}
#endif

int run(int argc, char** argv) {
  Args args = parse_args(argc, argv, "bench_matmul");
  print_header("bench_matmul: f32 GEMM, attnlab::ops::matmul (Eigen) vs OpenBLAS cblas_sgemm");
  const int threads = omp_get_max_threads();

#ifdef ATTNLAB_BENCH_OPENBLAS
  openblas_set_num_threads(threads);
  std::printf("OpenBLAS: %s, core %s, threads %d\n", openblas_get_config(), openblas_get_corename(),
              openblas_get_num_threads());
#else
  std::printf("OpenBLAS: NOT FOUND at configure time; running without the comparison\n");
#endif

  // The roof: cores x GHz x f32 FLOP/cycle. Two FMA pipes per core: AVX-512
  // gives 2 x 16 lanes x 2 = 64 FLOP/cycle (if the pipes are 512 bits wide),
  // AVX2+FMA 2 x 8 x 2 = 32. The FMA loops below check which one this core does.
  double ghz = measure_ghz();
  bool avx512 = cpu_has_flag("avx512f"), avx2fma = cpu_has_flag("avx2") && cpu_has_flag("fma");
  double fma512 = have_vector_width(16) ? measure_fma_gflops(16) : 0;
  double fma256 = have_vector_width(8) ? measure_fma_gflops(8) : 0;
  int flop_per_cycle = avx512 ? 64 : avx2fma ? 32 : 8;
  double roof = threads * ghz * flop_per_cycle;
  std::printf("clock (dependent-add chain, 1 thread): %.2f GHz; flags: avx2 %d fma %d avx512f %d\n", ghz,
              cpu_has_flag("avx2"), cpu_has_flag("fma"), avx512);
  std::printf("measured FMA loop, %d threads: AVX-512 %.1f GFLOP/s (%.1f FLOP/cycle/core), AVX2 %.1f GFLOP/s "
              "(%.1f FLOP/cycle/core)\n",
              threads, fma512, fma512 / threads / ghz, fma256, fma256 / threads / ghz);
  std::printf("roof = %d cores x %.2f GHz x %d FLOP/cycle = %.1f GFLOP/s\n\n", threads, ghz, flop_per_cycle, roof);

  // (2048x256)(256x1024) is the shape: 8x256 tokens through a 256 -> 1024 MLP.
  // The transposed variants are what Linear uses in training (weight stored [out, in]):
  // forward x W^T, backward dx = dy W and dW = dy^T x. The batched cases are attention-like
  // (32 = batch x heads, T = 256, head dim 64).
  std::vector<Case> cases = {
      {"issue shape", 1, 2048, 1024, 256, false, false},
      {"cube", 1, 1024, 1024, 1024, false, false},
      {"Linear fwd x*W^T", 1, 2048, 1024, 256, false, true},
      {"Linear bwd dx=dy*W", 1, 2048, 256, 1024, false, false},
      {"Linear bwd dW=dy^T*x", 1, 1024, 256, 2048, true, false},
      {"cube A*B^T", 1, 1024, 1024, 1024, false, true},
      {"cube A^T*B", 1, 1024, 1024, 1024, true, false},
      {"batched [32,256,64]x[32,64,256]", 32, 256, 256, 64, false, false},
      {"attn scores Q*K^T", 32, 256, 256, 64, false, true},
      {"attn P*V", 32, 256, 64, 256, false, false},
      {"attn bwd dP=dO*V^T", 32, 256, 256, 64, false, true},
      {"attn bwd dV=P^T*dO", 32, 256, 64, 256, true, false},
  };

  // Everything is set up first; then each round times every case once, so a
  // disturbance from other processes hits one round of a few cases, and the
  // best round's median is kept per case and per library.
  struct Bench {
    Case c;
    Tensor a, b, ref;
    double flops = 0, max_rel_diff = 0;
    std::vector<Timing> ours, blas_seq, blas_omp;
  };
  std::vector<Bench> benches;
  for (const Case& c : cases) {
    if (!args.filter.empty() && c.name.find(args.filter) == std::string::npos) continue;
    Bench bn;
    bn.c = c;
    bn.a = c.ta ? make_operand(c.batch, c.k, c.m, 1) : make_operand(c.batch, c.m, c.k, 1);
    bn.b = c.tb ? make_operand(c.batch, c.n, c.k, 2) : make_operand(c.batch, c.k, c.n, 2);
    bn.flops = 2.0 * static_cast<double>(c.batch * c.m * c.n * c.k);
    benches.push_back(bn);
  }

  for (int r = 0; r < args.rounds; ++r) {
    for (Bench& bn : benches) {
      const Case& c = bn.c;
      const Tensor &a = bn.a, &b = bn.b;
      auto run_ours = [&] { keep(ops::matmul(a, b, c.ta, c.tb)); };
      bn.ours.push_back(time_it(run_ours, 3, 10, args.min_time));
#ifdef ATTNLAB_BENCH_OPENBLAS
      if (!bn.ref.defined()) bn.ref = Tensor::empty(ops::matmul(a, b, c.ta, c.tb).shape(), DType::f32);
      const float *pa = a.data<float>(), *pb = b.data<float>();
      float* pr = bn.ref.data<float>();
      // One GEMM per batch item with OpenBLAS threading inside each, or (batched
      // cases) one single-threaded GEMM per item with OpenMP over the batch; the
      // faster of the two is the reference.
      auto run_blas_seq = [&] {
        for (int64_t i = 0; i < c.batch; ++i) openblas_gemm(c, pa, pb, pr, i);
      };
      auto run_blas_omp = [&] {
        openblas_set_num_threads(1);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < c.batch; ++i) openblas_gemm(c, pa, pb, pr, i);
        openblas_set_num_threads(threads);
      };
      pause_ms(200);  // let OpenMP's spinning workers go to sleep
      bn.blas_seq.push_back(time_it(run_blas_seq, 3, 10, args.min_time));
      if (c.batch > 1) {
        pause_ms(200);  // let OpenBLAS's spinning workers go to sleep
        bn.blas_omp.push_back(time_it(run_blas_omp, 3, 10, args.min_time));
      }
      pause_ms(200);
      if (r == 0) {  // the same numbers? (ref holds OpenBLAS's last result)
        Tensor ours = ops::matmul(a, b, c.ta, c.tb);
        const float* po = ours.data<float>();
        double max_ref = 0, max_diff = 0;
        for (int64_t i = 0; i < ours.numel(); ++i) {
          max_ref = std::max(max_ref, static_cast<double>(std::fabs(pr[i])));
          max_diff = std::max(max_diff, static_cast<double>(std::fabs(pr[i] - po[i])));
        }
        bn.max_rel_diff = max_ref > 0 ? max_diff / max_ref : max_diff;
      }
#endif
    }
    std::fprintf(stderr, "round %d/%d done, load average %.2f\n", r + 1, args.rounds, load_average_1min());
  }

  // spread: how much slower the worst round's median was than the best's (noise).
  auto spread = [](const std::vector<Timing>& t) {
    double lo = t.front().median_s, hi = lo;
    for (const Timing& x : t) lo = std::min(lo, x.median_s), hi = std::max(hi, x.median_s);
    return hi / lo - 1;
  };
  std::printf("| case | op | shape | attnlab ms | attnlab GFLOP/s | %% roof | OpenBLAS ms | OpenBLAS GFLOP/s "
              "| %% roof | attnlab/OpenBLAS | >= 0.80 | spread | max rel diff |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n");
  bool all_pass = true;
  for (const Bench& bn : benches) {
    const Case& c = bn.c;
    Timing ours_best = best(bn.ours);
    double g_ours = bn.flops / ours_best.median_s / 1e9;
    std::printf("| %s | %s | %s | %.3f | %.1f | %.0f%% ", c.name.c_str(), op_str(c).c_str(), dims_str(c).c_str(),
                ours_best.median_s * 1e3, g_ours, 100 * g_ours / roof);
#ifdef ATTNLAB_BENCH_OPENBLAS
    Timing blas = best(bn.blas_seq);
    const char* how = "";
    double sp = std::max(spread(bn.ours), spread(bn.blas_seq));
    if (!bn.blas_omp.empty() && best(bn.blas_omp).median_s < blas.median_s) {
      blas = best(bn.blas_omp), how = " (omp over batch)";
      sp = std::max(spread(bn.ours), spread(bn.blas_omp));
    }
    double g_blas = bn.flops / blas.median_s / 1e9;
    double ratio = g_ours / g_blas;
    bool pass = ratio >= 0.80;
    all_pass = all_pass && pass;
    std::printf("| %.3f%s | %.1f | %.0f%% | %.2f | %s | %.0f%% | %.1e |\n", blas.median_s * 1e3, how, g_blas,
                100 * g_blas / roof, ratio, pass ? "yes" : "NO", 100 * sp, bn.max_rel_diff);
#else
    std::printf("| - | - | - | - | - | %.0f%% | - |\n", 100 * spread(bn.ours));
#endif
  }
#ifdef ATTNLAB_BENCH_OPENBLAS
  std::printf("\nbar (attnlab >= 80%% of OpenBLAS on every shape): %s\n", all_pass ? "met" : "NOT met");
#endif
  (void)all_pass;
  std::printf("load average (1 min) at end: %.2f\n", load_average_1min());
  return 0;
}

}  // namespace
}  // namespace attnlab::bench

int main(int argc, char** argv) { return attnlab::bench::run(argc, argv); }
