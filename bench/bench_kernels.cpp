// Memory throughput (GB/s) of attnlab's fused and memory-bound CPU kernels,
// next to memory-bandwidth roofs measured in the same program.
//
//   OMP_NUM_THREADS=2 build/bench/bench_kernels [--rounds=5] [--min-time=0.3] [--filter=TEXT]
//
// Bytes are the minimum traffic: every input read once and every output
// written once (no write-allocate reads, no second passes over a row). A kernel
// whose working set fits in the last-level cache is compared with the
// cache-resident copy roof, a larger one with the DRAM roof.
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_util.h"
#include "core/ops.h"

namespace attnlab::bench {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

Tensor rand(const Shape& s, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Tensor t = Tensor::empty(s, DType::f32);
  ops::uniform(t, seed, 0, lo, hi);
  return t;
}

Tensor rand_ids(int64_t n, int64_t vocab, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = static_cast<int64_t>(g.next_u64() % static_cast<uint64_t>(vocab));
  return Tensor::from(ids, {n});
}

// ---- memory roofs ----

// A buffer for the roofs, first touched by the threads that use it.
std::shared_ptr<float[]> buffer(int64_t n) {
  std::shared_ptr<float[]> p(new float[static_cast<size_t>(n)]);
  float* q = p.get();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) q[i] = static_cast<float>(i % 7);
  return p;
}

struct Kernel {
  std::string name, shape;
  double bytes;  // minimum traffic
  std::function<void()> fn;
  bool write_mostly = false;  // compared with the write-only (memset) roof
  std::vector<Timing> rounds = {};
};

// Copy-like loops at a DRAM-sized and a cache-resident size. Bytes count each
// array once per pass; the write-allocate read of a stored line is not counted,
// as for the kernels.
void add_roofs(std::vector<Kernel>& dram, std::vector<Kernel>& cache) {
  for (int64_t n : {int64_t(64) << 20, int64_t(1) << 20}) {  // 256 MiB or 4 MiB per array
    auto& out = n > (int64_t(1) << 20) ? dram : cache;
    char size[32];
    std::snprintf(size, sizeof size, "%.0f MiB/array", 4.0 * static_cast<double>(n) / kMiB);
    auto a = buffer(n), b = buffer(n), c = buffer(n);
    double nb = 4.0 * static_cast<double>(n);
    out.push_back({"memcpy, split over threads", size, 2 * nb, [=] {
#pragma omp parallel
                     {
                       int nt = omp_get_num_threads(), me = omp_get_thread_num();
                       int64_t lo = n * me / nt, hi = n * (me + 1) / nt;
                       std::memcpy(b.get() + lo, a.get() + lo, static_cast<size_t>(hi - lo) * sizeof(float));
                     }
                     keep(b[0]);
                   }});
    out.push_back({"STREAM triad a=b+s*c", size, 3 * nb, [=] {
                     float *pa = a.get(), *pb = b.get(), *pc = c.get();
#pragma omp parallel for schedule(static)
                     for (int64_t i = 0; i < n; ++i) pa[i] = pb[i] + 0.5f * pc[i];
                     keep(pa[0]);
                   }});
    if (&out == &cache) continue;
    out.push_back({"in-place b=a+0.5*b", size, 3 * nb, [=] {
                     float *pa = a.get(), *pb = b.get();
#pragma omp parallel for schedule(static)
                     for (int64_t i = 0; i < n; ++i) pb[i] = pa[i] + 0.5f * pb[i];
                     keep(pb[0]);
                   }});
    out.push_back({"memset (write only)", size, nb, [=] {
#pragma omp parallel
                     {
                       int nt = omp_get_num_threads(), me = omp_get_thread_num();
                       int64_t lo = n * me / nt, hi = n * (me + 1) / nt;
                       std::memset(c.get() + lo, 0, static_cast<size_t>(hi - lo) * sizeof(float));
                     }
                     keep(c[0]);
                   }});
  }
}

// ---- kernels ----

// snprintf rather than string concatenation: gcc 12 raises a false -Wrestrict
// on operator+ of std::string (GCC bug 105329).
std::string shape2(int64_t r, int64_t c) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "[%lld, %lld]", static_cast<long long>(r), static_cast<long long>(c));
  return buf;
}

// rope_rotate as it was before ops::rope: split, four products, a sum and a
// difference, concat (layers/attention/rope.cpp before the fused op).
Tensor composed_rope(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  int64_t d = x.size(-1), h = cos.size(-1), rot = 2 * h;
  std::vector<Tensor> parts = rot == d ? ops::split(x, {h, h}, -1) : ops::split(x, {h, h, d - rot}, -1);
  Tensor x1 = parts[0], x2 = parts[1];
  parts[0] = ops::sub(ops::mul(x1, cos), ops::mul(x2, sin));
  parts[1] = ops::add(ops::mul(x2, cos), ops::mul(x1, sin));
  return ops::concat(parts, -1);
}

int run(int argc, char** argv) {
  Args args = parse_args(argc, argv, "bench_kernels");
  print_header("bench_kernels: memory-bound and fused kernels, f32, GB/s of minimum traffic");
  const double cache_limit = 24 * kMiB;  // below ~3/4 of the 32 MiB L3: cache roof
  std::vector<Kernel> dram_roofs, cache_roofs, ks;
  add_roofs(dram_roofs, cache_roofs);
  const double f = 4.0;  // bytes per f32
  const double eps = 1e-5;

  // Norms: 8 x 256 tokens at GPT-2-small width (cache-resident), and 64 x 256 tokens (DRAM).
  for (int64_t rows : {int64_t(2048), int64_t(16384)}) {
    const int64_t d = 768;
    Tensor x = rand({rows, d}, 11), w = rand({d}, 12), b = rand({d}, 13), dy = rand({rows, d}, 14);
    double rd = static_cast<double>(rows * d), R = static_cast<double>(rows), D = static_cast<double>(d);
    ops::NormOut ln = ops::layer_norm(x, w, b, eps);
    ops::NormOut rn = ops::rms_norm(x, w, eps);
    std::string s = shape2(rows, d);
    ks.push_back({"layer_norm fwd", s, f * (2 * rd + 2 * D + 2 * R), [=] { keep(ops::layer_norm(x, w, b, eps)); }});
    ks.push_back({"layer_norm bwd", s, f * (3 * rd + 3 * D + 2 * R),
                  [=] { keep(ops::layer_norm_backward(x, w, ln, dy, true)); }});
    ks.push_back({"rms_norm fwd", s, f * (2 * rd + D + R), [=] { keep(ops::rms_norm(x, w, eps)); }});
    ks.push_back({"rms_norm bwd", s, f * (3 * rd + 2 * D + R),
                  [=] { keep(ops::rms_norm_backward(x, w, rn, dy)); }});
  }

  // Softmax over attention scores: 8 sequences x 12 heads x 256 queries, 256 keys.
  {
    const int64_t rows = 8 * 12 * 256, n = 256;
    Tensor x = rand({rows, n}, 21, -4, 4), dy = rand({rows, n}, 22);
    Tensor y = ops::softmax(x);
    double rn = static_cast<double>(rows * n);
    std::string s = shape2(rows, n);
    ks.push_back({"softmax fwd", s, f * 2 * rn, [=] { keep(ops::softmax(x)); }});
    ks.push_back({"softmax bwd", s, f * 3 * rn, [=] { keep(ops::softmax_backward(y, dy)); }});
    ks.push_back({"log_softmax fwd", s, f * 2 * rn, [=] { keep(ops::log_softmax(x)); }});
  }

  // Fused cross-entropy: N = 8 x 256 tokens; byte-level and GPT-2 vocabularies.
  for (int64_t v : {int64_t(256), int64_t(50304)}) {
    const int64_t rows = 8 * 256;
    Tensor logits = rand({rows, v}, 31, -4, 4);
    Tensor targets = rand_ids(rows, v, 32);
    double rv = static_cast<double>(rows * v), R = static_cast<double>(rows);
    std::string s = shape2(rows, v);
    ks.push_back({"cross_entropy loss+dlogits", s, f * 2 * rv + 8 * R + f,
                  [=] { keep(ops::cross_entropy(logits, targets, -100, true)); }});
    ks.push_back({"cross_entropy loss only", s, f * rv + 8 * R + f,
                  [=] { keep(ops::cross_entropy(logits, targets, -100, false)); }});
  }

  // Element-wise: 8 x 256 tokens at width 768 (cache-resident) and 64 x 256 tokens
  // through a 3072-wide MLP activation (DRAM). GELU is compute-bound (libm tanhf):
  // only the small size, plus the 3072-wide activation of 8 x 256 tokens.
  for (auto [rows, d] : {std::pair<int64_t, int64_t>{2048, 768}, {16384, 3072}}) {
    Tensor a = rand({rows, d}, 41), b = rand({rows, d}, 42), bias = rand({d}, 43), dy = rand({rows, d}, 44);
    double n = static_cast<double>(rows * d);
    std::string s = shape2(rows, d);
    ks.push_back({"binary add", s, f * 3 * n, [=] { keep(ops::add(a, b)); }});
    ks.push_back({"binary mul", s, f * 3 * n, [=] { keep(ops::mul(a, b)); }});
    ks.push_back({"binary add, bias [d] broadcast", s, f * (2 * n + static_cast<double>(d)),
                  [=] { keep(ops::add(a, bias)); }});
    ks.push_back({"scale", s, f * 2 * n, [=] { keep(ops::scale(a, 0.5)); }});
    ks.push_back({"unary relu", s, f * 2 * n, [=] { keep(ops::unary(UnaryOp::relu, a)); }});
    if (rows * d > 2048 * 3072) continue;
    for (int64_t cols : {d, int64_t(3072)}) {
      if (cols != d && d != 768) continue;
      Tensor x = cols == d ? a : rand({rows, cols}, 45), g = cols == d ? dy : rand({rows, cols}, 46);
      double m = static_cast<double>(rows * cols);
      ks.push_back({"unary gelu_tanh", shape2(rows, cols), f * 2 * m, [=] { keep(ops::unary(UnaryOp::gelu_tanh, x)); }});
      ks.push_back({"unary_backward gelu_tanh", shape2(rows, cols), f * 3 * m,
                    [=] { keep(ops::unary_backward(UnaryOp::gelu_tanh, x, g)); }});
    }
  }

  // Embedding gather (token ids into a GPT-2 table) and its scatter-add backward.
  {
    const int64_t vocab = 50304, d = 768, n = 8 * 256;
    Tensor weight = rand({vocab, d}, 51), ids = rand_ids(n, vocab, 52), dy = rand({n, d}, 53);
    double nd = static_cast<double>(n * d), N = static_cast<double>(n);
    ks.push_back({"embedding gather", "[50304, 768] x 2048 ids", f * 2 * nd + 8 * N,
                  [=] { keep(ops::embedding(weight, ids)); }});
    ks.push_back({"embedding_backward", "2048 ids -> [50304, 768]",
                  f * nd + 8 * N + f * static_cast<double>(vocab * d),
                  [=] { keep(ops::embedding_backward(ids, dy, vocab)); }, true});
  }

  // RoPE on the queries of 8 sequences x 12 heads x 256 positions, d_head 64,
  // fully and half rotated: the fused op against the composition it replaced.
  {
    const int64_t B = 8, H = 12, T = 256, D = 64;
    Tensor x = rand({B, H, T, D}, 61);
    for (int64_t rot : {D, D / 2}) {
      Tensor c = rand({T, rot / 2}, 62), sn = rand({T, rot / 2}, 63);
      double bytes = f * (2 * static_cast<double>(B * H * T * D) + static_cast<double>(T * rot));
      char shape[64];
      std::snprintf(shape, sizeof shape, "[8, 12, 256, 64] r=%lld", static_cast<long long>(rot));
      ks.push_back({"rope fused", shape, bytes, [=] { keep(ops::rope(x, c, sn)); }});
      ks.push_back({"rope composed (before)", shape, bytes, [=] { keep(composed_rope(x, c, sn)); }});
    }
  }

  // Each round times every roof and kernel once, so a disturbance from other
  // processes hits one round of a few entries; the best round's median is kept.
  auto selected = [&](const Kernel& k) {
    return args.filter.empty() || (k.name + " " + k.shape).find(args.filter) != std::string::npos;
  };
  for (int r = 0; r < args.rounds; ++r) {
    for (auto* list : {&dram_roofs, &cache_roofs, &ks})
      for (Kernel& k : *list)
        if (list != &ks || selected(k)) k.rounds.push_back(time_it(k.fn, 3, 10, args.min_time));
    std::fprintf(stderr, "round %d/%d done, load average %.2f\n", r + 1, args.rounds, load_average_1min());
  }
  auto gbs = [](const Kernel& k) { return k.bytes / best(k.rounds).median_s / 1e9; };
  // spread: how much slower the worst round's median was than the best's (noise).
  auto spread = [](const Kernel& k) {
    double lo = k.rounds.front().median_s, hi = lo;
    for (const Timing& x : k.rounds) lo = std::min(lo, x.median_s), hi = std::max(hi, x.median_s);
    return hi / lo - 1;
  };

  std::printf("| roof | size | GB/s | spread |\n|---|---|---:|---:|\n");
  // The DRAM roof is the best loop that reads and writes, as the kernels do;
  // write-only memset streams faster and is the roof only of kernels that
  // mostly write (embedding_backward writes the whole [vocab, D] gradient).
  double dram = 0, cache = 0, write = 0;
  for (const Kernel& k : dram_roofs) {
    if (k.name.find("write only") == std::string::npos) dram = std::max(dram, gbs(k));
    else write = gbs(k);
    std::printf("| DRAM: %s | %s | %.1f | %.0f%% |\n", k.name.c_str(), k.shape.c_str(), gbs(k), 100 * spread(k));
  }
  for (const Kernel& k : cache_roofs) {
    cache = std::max(cache, gbs(k));
    std::printf("| cache: %s | %s | %.1f | %.0f%% |\n", k.name.c_str(), k.shape.c_str(), gbs(k), 100 * spread(k));
  }
  std::printf("DRAM roof = %.1f GB/s (best read+write row), DRAM write roof = %.1f GB/s, cache roof = %.1f GB/s\n\n",
              dram, write, cache);

  std::printf("| kernel | shape | MiB moved | median us | GB/s | roof | %% of roof | spread |\n");
  std::printf("|---|---|---:|---:|---:|---|---:|---:|\n");
  for (const Kernel& k : ks) {
    if (!selected(k)) continue;
    bool in_cache = k.bytes < cache_limit;
    double roof = k.write_mostly ? write : in_cache ? cache : dram;
    const char* roof_name = k.write_mostly ? "DRAM write" : in_cache ? "cache" : "DRAM";
    std::printf("| %s | %s | %.1f | %.1f | %.1f | %s | %.0f%% | %.0f%% |\n", k.name.c_str(), k.shape.c_str(),
                k.bytes / kMiB, best(k.rounds).median_s * 1e6, gbs(k), roof_name,
                100 * gbs(k) / roof, 100 * spread(k));
  }
  std::printf("load average (1 min) at end: %.2f\n", load_average_1min());
  return 0;
}

}  // namespace
}  // namespace attnlab::bench

int main(int argc, char** argv) { return attnlab::bench::run(argc, argv); }
