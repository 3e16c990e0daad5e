#pragma once
// Small timing and machine-description helpers shared by the benchmarks.
// Benchmarks are plain executables (not ctest tests): they print tables.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace attnlab::bench {

// The common command line: --rounds=N --min-time=SECONDS --filter=TEXT.
struct Args {
  int rounds = 5;
  double min_time = 0.3;
  std::string filter;
};

inline Args parse_args(int argc, char** argv, const char* program) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--rounds=", 0) == 0) a.rounds = std::max(1, std::atoi(s.c_str() + 9));
    else if (s.rfind("--min-time=", 0) == 0) a.min_time = std::atof(s.c_str() + 11);
    else if (s.rfind("--filter=", 0) == 0) a.filter = s.substr(9);
    else {
      std::fprintf(stderr, "usage: %s [--rounds=N] [--min-time=SECONDS] [--filter=TEXT]\n", program);
      std::exit(2);
    }
  }
  return a;
}

inline double now_s() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

// Keeps the compiler from discarding a computation whose result is unused.
template <class T>
inline void keep(const T& value) {
  asm volatile("" : : "g"(&value) : "memory");
}

inline void pause_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

struct Timing {
  double median_s = 0;
  double min_s = 0;
  int reps = 0;
};

// Runs `f` `warmup` times, then repeatedly until both `min_reps` runs and
// `min_time_s` seconds are reached (at most `max_reps`); reports the median.
template <class F>
Timing time_it(F&& f, int warmup = 3, int min_reps = 10, double min_time_s = 0.3, int max_reps = 2000) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  double start = now_s();
  while (static_cast<int>(t.size()) < max_reps &&
         (static_cast<int>(t.size()) < min_reps || now_s() - start < min_time_s)) {
    double t0 = now_s();
    f();
    t.push_back(now_s() - t0);
  }
  std::sort(t.begin(), t.end());
  size_t n = t.size();
  Timing r;
  r.median_s = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  r.min_s = t.front();
  r.reps = static_cast<int>(n);
  return r;
}

// The best (lowest) median of several rounds: a round disturbed by other
// processes on the machine shows up as a higher median and is dropped.
inline Timing best(const std::vector<Timing>& rounds) {
  Timing b = rounds.front();
  for (const Timing& r : rounds)
    if (r.median_s < b.median_s) b = r;
  return b;
}

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

inline bool cpu_has_flag(const std::string& flag) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) return (line + " ").find(" " + flag + " ") != std::string::npos;
  return false;
}

inline double load_average_1min() {
  std::ifstream in("/proc/loadavg");
  double l = -1;
  in >> l;
  return l;
}

// Core clock in GHz, measured with a chain of dependent register adds (one
// cycle each): the clock the code actually runs at (boost included), not the
// nominal one. Many short rounds, the fastest kept: a round that another
// process interrupted is simply slower and dropped.
inline double measure_ghz() {
  const int64_t iters = 50'000;  // x 20 dependent adds, ~0.25 ms at 4 GHz
  double best_ghz = 0;
  for (int round = 0; round < 400; ++round) {
    uint64_t x = 0, one = 1;
    double t0 = now_s();
    for (int64_t i = 0; i < iters; ++i) {
      asm volatile(
          "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\t"
          "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\t"
          "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\t"
          "add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0"
          : "+r"(x)
          : "r"(one));
    }
    double dt = now_s() - t0;
    keep(x);
    best_ghz = std::max(best_ghz, 20.0 * static_cast<double>(iters) / dt / 1e9);
  }
  return best_ghz;
}

// Measured f32 FMA throughput (GFLOP/s) of all OpenMP threads running
// independent FMA chains on `width`-float vectors (16: AVX-512, 8: AVX2).
// With enough independent chains (latency 4 x 2 pipes < 16) this is the
// cores' FMA roof. Short rounds, the fastest kept.
inline double measure_fma_gflops(int width) {
  const int64_t iters = 100'000;  // x 16 FMAs per thread, ~1 ms at 4 GHz
  constexpr int chains = 16;
  double best = 0;
  for (int round = 0; round < 200; ++round) {
    int threads = 1;
    double t0 = now_s();
#pragma omp parallel
    {
#pragma omp single
      threads = omp_get_num_threads();
      float sink = 0;
      if (width == 16) {
#if defined(__AVX512F__)
        __m512 acc[chains];
        for (int c = 0; c < chains; ++c) acc[c] = _mm512_set1_ps(0.001f * static_cast<float>(c));
        const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
        for (int64_t i = 0; i < iters; ++i)
          for (int c = 0; c < chains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], m, a);
        for (int c = 0; c < chains; ++c) sink += _mm512_reduce_add_ps(acc[c]);
#endif
      } else {
#if defined(__AVX2__) && defined(__FMA__)
        __m256 acc[chains];
        for (int c = 0; c < chains; ++c) acc[c] = _mm256_set1_ps(0.001f * static_cast<float>(c));
        const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
        for (int64_t i = 0; i < iters; ++i)
          for (int c = 0; c < chains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], m, a);
        float lanes[8];
        for (int c = 0; c < chains; ++c) {
          _mm256_storeu_ps(lanes, acc[c]);
          for (float v : lanes) sink += v;
        }
#endif
      }
      keep(sink);
    }
    double dt = now_s() - t0;
    double flops = 2.0 * width * chains * static_cast<double>(iters) * threads;
    best = std::max(best, flops / dt / 1e9);
  }
  return best;
}

inline bool have_vector_width(int width) {
#if defined(__AVX512F__)
  if (width == 16) return true;
#endif
#if defined(__AVX2__) && defined(__FMA__)
  if (width == 8) return true;
#endif
  return false;
}

inline void print_header(const char* title) {
  std::printf("== %s ==\n", title);
  std::printf("cpu: %s, %u logical CPUs, OpenMP threads %d\n", cpu_model().c_str(),
              std::thread::hardware_concurrency(), omp_get_max_threads());
#ifndef ATTNLAB_BENCH_FLAGS
#define ATTNLAB_BENCH_FLAGS "unknown"
#endif
  std::printf("compiler: gcc %s, flags: %s\n", __VERSION__, ATTNLAB_BENCH_FLAGS);
  std::printf("load average (1 min) at start: %.2f\n", load_average_1min());
}

}  // namespace attnlab::bench
