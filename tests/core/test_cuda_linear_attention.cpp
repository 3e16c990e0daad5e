// The CUDA backend's chunkwise linear attention and delta rule
// (core/cuda/linear_attention_chunks.h, run by linear_attention.cu and
// linear_attention_delta.cu) against the CPU kernels.
//
// On every machine: the shared per-sequence algorithms run on the host with a
// serial executor, once in forward and once in reverse element order inside each
// phase, on a workspace poisoned with NaN, and must equal the CPU kernels (so the
// math, the indexing, the uninitialised-scratch reads and any dependence between
// the elements of one phase are checked without a GPU). With a device: the same
// cases through ops:: on the GPU (f32 and f64 tight, bf16 loosely against f32 on
// the same rounded inputs), run twice for bit-identical results.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/cuda/linear_attention_chunks.h"
#include "core/cuda_testing.h"
#include "core/linear_attention_testing.h"
#include "core/ops.h"
#include "test_helpers.h"

using namespace attnlab;
using namespace attnlab::testing;
using attnlab::cuda::linattn::ChunkDims;
using attnlab::cuda::linattn::DeltaWorkspace;
using attnlab::cuda::linattn::GateKind;
using attnlab::cuda::linattn::GlaWorkspace;

namespace {

namespace la = attnlab::cuda::linattn;

// Runs each phase's elements one after another, forwards or backwards.
struct SerialExecutor {
  bool reverse;
  template <class F>
  void parallel(int64_t n, F&& f) const {
    if (reverse)
      for (int64_t i = n - 1; i >= 0; --i) f(i);
    else
      for (int64_t i = 0; i < n; ++i) f(i);
  }
  template <class F>
  auto sum(int64_t n, F&& f) const {
    decltype(f(int64_t(0))) acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += f(i);
    return acc;
  }
};

struct Case {
  int64_t T, Dk, Dv, chunk;
  GateKind gate;
  bool state0;
  std::string str() const {
    const char* gn = gate == GateKind::none ? "none" : gate == GateKind::scalar ? "scalar" : "diag";
    return "T " + std::to_string(T) + " Dk " + std::to_string(Dk) + " Dv " + std::to_string(Dv) + " chunk " +
           std::to_string(chunk) + " gate " + gn + (state0 ? " state0" : "");
  }
};

// T not a multiple of the chunk, chunk 1, chunk > T, Dk != Dv both ways, every
// gate kind the op takes, with and without an initial state.
std::vector<Case> cases(bool delta) {
  struct Shape4 {
    int64_t T, Dk, Dv, chunk;
  };
  const Shape4 shapes[] = {{7, 5, 3, 3}, {7, 4, 6, 1}, {7, 5, 3, 16}, {12, 3, 5, 4}, {9, 6, 4, 9}};
  std::vector<GateKind> gates{GateKind::none, GateKind::scalar};
  if (!delta) gates.push_back(GateKind::diag);
  std::vector<Case> out;
  for (GateKind gk : gates)
    for (const Shape4& s : shapes)
      for (bool s0 : {false, true}) out.push_back({s.T, s.Dk, s.Dv, s.chunk, gk, s0});
  return out;
}

const Shape kLead{2, 3};

struct Inputs {
  Tensor q, k, v, beta, g, state0, dout;
};

Shape with_lead(std::initializer_list<int64_t> tail) {
  Shape s = kLead;
  s.insert(s.end(), tail);
  return s;
}

// f64 inputs: the delta rule's keys L2-normalised and beta in (0, 1); log-gates
// in [-0.7, -0.02].
Inputs make_inputs(const Case& c, bool delta, uint64_t seed) {
  Inputs in;
  in.q = randn(with_lead({c.T, c.Dk}), seed, DType::f64, 0.5);
  in.k = randn(with_lead({c.T, c.Dk}), seed + 1, DType::f64, delta ? 1.0 : 0.5);
  if (delta) in.k = l2_rows(in.k);
  in.v = randn(with_lead({c.T, c.Dv}), seed + 2, DType::f64);
  if (delta) in.beta = randu(with_lead({c.T}), seed + 3, 0.1, 0.95);
  if (c.gate == GateKind::scalar) in.g = log_gates(with_lead({c.T}), seed + 4);
  if (c.gate == GateKind::diag) in.g = log_gates(with_lead({c.T, c.Dk}), seed + 4);
  if (c.state0) in.state0 = randn(with_lead({c.Dk, c.Dv}), seed + 5, DType::f64, 0.5);
  in.dout = randn(with_lead({c.T, c.Dv}), seed + 6);
  return in;
}

Tensor convert(const Tensor& t, DType dt, Device dev) { return t.defined() ? t.to(dt).to(dev) : Tensor(); }

Inputs convert(const Inputs& in, DType dt, Device dev = Device::cpu()) {
  return {convert(in.q, dt, dev),     convert(in.k, dt, dev),      convert(in.v, dt, dev),   convert(in.beta, dt, dev),
          convert(in.g, dt, dev),     convert(in.state0, dt, dev), convert(in.dout, dt, dev)};
}

struct Results {
  Tensor o, state, dq, dk, dv, dbeta, dg;
};

// Through ops:: on whatever device the inputs are on; results on the CPU.
Results run_ops(const Inputs& in, int64_t chunk, bool delta) {
  Results r;
  auto host = [](const Tensor& t) { return t.defined() ? t.to(Device::cpu()) : Tensor(); };
  if (delta) {
    auto f = ops::delta_rule_chunked(in.q, in.k, in.v, in.beta, in.g, chunk, in.state0);
    auto b = ops::delta_rule_chunked_backward(in.q, in.k, in.v, in.beta, in.g, chunk, in.state0, in.dout);
    r = {host(f.o), host(f.state), host(b.dq), host(b.dk), host(b.dv), host(b.dbeta), host(b.dg)};
  } else {
    auto f = ops::linear_attention_chunked(in.q, in.k, in.v, in.g, chunk, in.state0);
    auto b = ops::linear_attention_chunked_backward(in.q, in.k, in.v, in.g, chunk, in.state0, in.dout);
    r = {host(f.o), host(f.state), host(b.dq), host(b.dk), host(b.dv), Tensor(), host(b.dg)};
  }
  return r;
}

// The shared algorithms on the host (CPU tensors of type R), every block (a
// sequence, or a value slice of `slice_width` columns in the forwards) with
// NaN-poisoned scratch split between a "shared" and a "global" buffer in each of
// the three ways a launch may choose (nothing, the state, all but the delta
// backward's chunk-start states in shared memory), in turn.
template <class R>
Results run_shared(const Inputs& in, const Case& c, bool delta, bool reverse, int64_t slice_width) {
  const ChunkDims dm{c.T, c.Dk, c.Dv, std::min(c.chunk, c.T), c.gate};
  const int64_t N = in.q.numel() / (c.T * c.Dk), T = c.T, Dk = c.Dk, Dv = c.Dv, gw = dm.gate_width();
  const DType dt = in.q.dtype();
  Results r{Tensor::empty(in.v.shape(), dt),
            Tensor::empty(with_lead({Dk, Dv}), dt),
            Tensor::empty_like(in.q),
            Tensor::empty_like(in.k),
            Tensor::empty_like(in.v),
            delta ? Tensor::empty_like(in.beta) : Tensor(),
            in.g.defined() ? Tensor::empty_like(in.g) : Tensor()};
  const R nan = std::numeric_limits<R>::quiet_NaN();
  std::vector<R> shared, global;
  int64_t block = 0;
  auto scratch = [&](const auto& layout) {
    shared.assign(static_cast<size_t>(layout.shared_end), nan);
    global.assign(static_cast<size_t>(layout.size), nan);
    const int64_t splits[] = {0, layout.state_end, layout.shared_end};
    return la::Scratch<R>{shared.data(), global.data(), splits[block++ % 3]};
  };
  SerialExecutor ex{reverse};
  auto ptr = [](const Tensor& t, int64_t off) -> R* { return t.defined() ? t.data<R>() + off : nullptr; };
  for (int64_t n = 0; n < N; ++n) {
    const int64_t oq = n * T * Dk, ov = n * T * Dv, os = n * Dk * Dv, og = n * T * gw;
    for (int64_t x0 = 0; x0 < Dv; x0 += slice_width) {
      const la::ValueSlice vs{x0, std::min(slice_width, Dv - x0)};
      if (delta)
        la::delta_forward(ex, dm, vs, ptr(in.q, oq), ptr(in.k, oq), ptr(in.v, ov), ptr(in.beta, n * T),
                          ptr(in.g, og), ptr(in.state0, os), ptr(r.o, ov), ptr(r.state, os),
                          scratch(DeltaWorkspace(dm, false, vs.W)));
      else
        la::gla_forward(ex, dm, vs, ptr(in.q, oq), ptr(in.k, oq), ptr(in.v, ov), ptr(in.g, og), ptr(in.state0, os),
                        ptr(r.o, ov), ptr(r.state, os), scratch(GlaWorkspace(dm, vs.W)));
    }
    if (delta)
      la::delta_backward(ex, dm, ptr(in.q, oq), ptr(in.k, oq), ptr(in.v, ov), ptr(in.beta, n * T), ptr(in.g, og),
                         ptr(in.state0, os), ptr(in.dout, ov), ptr(r.dq, oq), ptr(r.dk, oq), ptr(r.dv, ov),
                         ptr(r.dbeta, n * T), ptr(r.dg, og), scratch(DeltaWorkspace(dm, true, Dv)));
    else
      la::gla_backward(ex, dm, ptr(in.q, oq), ptr(in.k, oq), ptr(in.v, ov), ptr(in.g, og), ptr(in.state0, os),
                       ptr(in.dout, ov), ptr(r.dq, oq), ptr(r.dk, oq), ptr(r.dv, ov), ptr(r.dg, og),
                       scratch(GlaWorkspace(dm, Dv)));
  }
  return r;
}

// |got - want| <= tol * (1 + |want|)-style check scaled by the reference's size.
void expect_results_close(const Results& got, const Results& want, double tol, const std::string& what) {
  auto one = [&](const Tensor& g, const Tensor& w, const char* name) {
    ASSERT_EQ(g.defined(), w.defined()) << what << " " << name;
    if (!w.defined()) return;
    ASSERT_EQ(g.shape(), w.shape()) << what << " " << name;
    auto wv = values(w);
    double scale = 1.0;
    for (double x : wv) scale = std::max(scale, std::fabs(x));
    EXPECT_TRUE(all_close(values(g), wv, tol * scale, tol)) << what << " " << name;
  };
  one(got.o, want.o, "o");
  one(got.state, want.state, "state");
  one(got.dq, want.dq, "dq");
  one(got.dk, want.dk, "dk");
  one(got.dv, want.dv, "dv");
  one(got.dbeta, want.dbeta, "dbeta");
  one(got.dg, want.dg, "dg");
}

void check_shared_on_host(bool delta) {
  uint64_t seed = delta ? 500 : 100;
  for (const Case& c : cases(delta)) {
    Inputs in = make_inputs(c, delta, seed += 10);
    Results want64 = run_ops(in, c.chunk, delta);
    Inputs in32 = convert(in, DType::f32);
    Results want32 = run_ops(in32, c.chunk, delta);
    for (bool reverse : {false, true})
      for (int64_t width : {c.Dv, int64_t(2)}) {
        std::string what = c.str() + (reverse ? " reversed" : "") + " slices of " + std::to_string(width);
        expect_results_close(run_shared<double>(in, c, delta, reverse, width), want64, 1e-11, what + " f64");
        expect_results_close(run_shared<float>(in32, c, delta, reverse, width), want32, 2e-5, what + " f32");
      }
  }
}

}  // namespace

// ---- host: the shared algorithm and its planning ----

TEST(CudaLinearAttentionPlan, ChunksCoverTheSequence) {
  const ChunkDims d{7, 5, 3, 3, GateKind::diag};
  EXPECT_EQ(d.chunks(), 3);
  EXPECT_EQ(d.start(2), 6);
  EXPECT_EQ(d.len(0), 3);
  EXPECT_EQ(d.len(2), 1);
  EXPECT_EQ(d.gate_width(), 5);
  EXPECT_EQ((ChunkDims{7, 5, 3, 7, GateKind::scalar}.chunks()), 1);
  EXPECT_EQ((ChunkDims{7, 5, 3, 1, GateKind::none}.chunks()), 7);
  EXPECT_EQ((ChunkDims{7, 5, 3, 1, GateKind::none}.gate_width()), 1);
}

TEST(CudaLinearAttentionPlan, WorkspaceRegionsAreDisjointAndSized) {
  const ChunkDims d{10, 5, 3, 4, GateKind::diag};
  const GlaWorkspace g(d, 3);
  const std::vector<std::pair<int64_t, int64_t>> gla{{g.state, 15}, {g.B, 20}, {g.Qg, 20},
                                                     {g.Kg, 20},    {g.A, 16}, {g.dA, 16}};
  int64_t at = 0;
  for (auto [off, n] : gla) {
    EXPECT_EQ(off, at);
    at += n;
  }
  EXPECT_EQ(g.size, at);
  EXPECT_EQ(g.state_end, 15);
  EXPECT_EQ(g.shared_end, g.size);
  EXPECT_EQ(GlaWorkspace(d, 2).B, 10);  // a value slice of 2 columns: state [5, 2]

  const ChunkDims ds{10, 5, 3, 4, GateKind::scalar};
  const DeltaWorkspace f(ds, false, 3), b(ds, true, 3);
  EXPECT_EQ(f.size, 15 + 4 + 16 + 16 + 12);  // state, B, M, P, U
  EXPECT_EQ(f.shared_end, f.size);
  // state, B, db, ey, KK, M, P, dP, dLm, KS, U, dR, Tk, Y, Z, then 3 chunk states
  EXPECT_EQ(b.shared_end, 15 + 3 * 4 + 5 * 16 + 3 * 12 + 3 * 20);
  EXPECT_EQ(b.Z + 20, b.shared_end);
  EXPECT_EQ(b.states, b.shared_end);
  EXPECT_EQ(b.size, b.shared_end + 3 * 15);
}

TEST(CudaLinearAttentionPlan, SharedMemoryTakesAllTheScratchOrTheStateOrNothing) {
  const int64_t K = 1024, optin = 227 * K;
  // state 64 KiB, scratch 100 KiB in all, 2 KiB static: all of it fits.
  EXPECT_EQ(la::shared_split(16 * K, 25 * K, 4, 2 * K, optin), 25 * K);
  // f64: 240 KiB of scratch does not fit beside 2 KiB static, the 128 KiB state does;
  // a 232 KiB state does not either.
  EXPECT_EQ(la::shared_split(16 * K, 30 * K, 8, 2 * K, optin), 16 * K);
  EXPECT_EQ(la::shared_split(29 * K, 30 * K, 8, 2 * K, optin), 0);
  EXPECT_EQ(la::shared_split(0, 0, 8, 0, optin), 0);
  // Exactly at the limit still fits.
  EXPECT_EQ(la::shared_split(K, (optin - 2 * K) / 4, 4, 2 * K, optin), (optin - 2 * K) / 4);
}

TEST(CudaLinearAttentionPlan, ValueSlicesAreWideAndCoverDv) {
  // Many sequences: one slice. Few: slices of >= 16 columns, about the target in all.
  auto s = la::value_split(1000, 64, 264);
  EXPECT_EQ(s.slices, 1);
  EXPECT_EQ(s.W, 64);
  s = la::value_split(8, 128, 264);
  EXPECT_EQ(s.slices, 8);
  EXPECT_EQ(s.W, 16);
  s = la::value_split(8, 40, 264);  // at most 40 / 16 = 2 slices: 20 + 20
  EXPECT_EQ(s.slices, 2);
  EXPECT_EQ(s.W, 20);
  s = la::value_split(100, 100, 264);  // 3 slices wanted: 34 + 34 + 32
  EXPECT_EQ(s.slices, 3);
  EXPECT_EQ(s.slice(2).x0, 68);
  EXPECT_EQ(s.slice(2).W, 32);
  for (int64_t Dv : {0, 1, 15, 16, 17, 33, 100, 257})
    for (int64_t N : {1, 7, 264, 5000}) {
      s = la::value_split(N, Dv, 264);
      int64_t covered = 0;
      for (int64_t i = 0; i < s.slices; ++i) {
        EXPECT_EQ(s.slice(i).x0, covered);
        EXPECT_GE(s.slice(i).W, i + 1 < s.slices ? la::kMinSliceWidth : 0);
        covered += s.slice(i).W;
      }
      EXPECT_EQ(covered, Dv) << "N " << N << " Dv " << Dv;
    }
}

TEST(CudaLinearAttentionShared, GatedLinearAttentionEqualsTheCpuKernel) { check_shared_on_host(false); }

TEST(CudaLinearAttentionShared, DeltaRuleEqualsTheCpuKernel) { check_shared_on_host(true); }

// Chunks of 32 and 64 steps (the layer's default), several of them, wider heads.
TEST(CudaLinearAttentionShared, LongChunksEqualTheCpuKernel) {
  for (bool delta : {false, true})
    for (GateKind gk : {GateKind::scalar, delta ? GateKind::none : GateKind::diag})
      for (int64_t chunk : {32, 64}) {
        const Case c{150, 16, 24, chunk, gk, true};
        Inputs in = make_inputs(c, delta, 77);
        expect_results_close(run_shared<double>(in, c, delta, true, 16), run_ops(in, chunk, delta), 1e-10,
                             c.str() + (delta ? " delta" : " gla"));
      }
}

// ---- device: ops:: on the GPU against the CPU ----

namespace {

void check_on_device(bool delta) {
  uint64_t seed = delta ? 900 : 700;
  for (const Case& c : cases(delta)) {
    Inputs in = make_inputs(c, delta, seed += 10);
    for (DType dt : {DType::f32, DType::f64}) {
      Results want = run_ops(convert(in, dt), c.chunk, delta);
      Inputs gin = convert(in, dt, cuda_testing::kGpu);
      Results got = run_ops(gin, c.chunk, delta);
      expect_results_close(got, want, dt == DType::f64 ? 1e-11 : 2e-5, c.str() + " " + dtype_name(dt));
      // Deterministic: a second run gives the same bits.
      Results again = run_ops(gin, c.chunk, delta);
      cuda_testing::expect_bits_equal(again.o, got.o, c.str() + " o rerun");
      cuda_testing::expect_bits_equal(again.dk, got.dk, c.str() + " dk rerun");
      if (got.dg.defined()) cuda_testing::expect_bits_equal(again.dg, got.dg, c.str() + " dg rerun");
    }
    // bf16 on the GPU against the CPU in f32 on the same rounded inputs.
    Inputs rounded = convert(in, DType::bf16);
    Results want = run_ops(convert(rounded, DType::f32), c.chunk, delta);
    Results got = run_ops(convert(rounded, DType::bf16, cuda_testing::kGpu), c.chunk, delta);
    EXPECT_EQ(got.o.dtype(), DType::bf16);
    expect_results_close(got, want, 3e-2, c.str() + " bf16");
  }
}

}  // namespace

TEST(CudaLinearAttention, GatedLinearAttentionMatchesCpu) {
  SKIP_WITHOUT_CUDA();
  check_on_device(false);
}

TEST(CudaLinearAttention, DeltaRuleMatchesCpu) {
  SKIP_WITHOUT_CUDA();
  check_on_device(true);
}

// Many threads per phase and every placement of the scratch: 64-wide keys, 100
// steps in chunks of 32 (all scratch in shared memory, past the default 48 KiB in
// f64); 128 x 128 heads in chunks of 64 (in f64 only the 128 KiB state fits); a
// state too big for shared memory in f64 (192 x 160 x 8 bytes > 227 KiB).
TEST(CudaLinearAttention, WideHeadsMatchCpu) {
  SKIP_WITHOUT_CUDA();
  const Case shapes[] = {{100, 64, 100, 32, GateKind::scalar, true},
                         {70, 128, 128, 64, GateKind::scalar, true},
                         {20, 192, 160, 8, GateKind::scalar, true}};
  for (bool delta : {false, true})
    for (Case c : shapes)
      for (GateKind gk : {GateKind::scalar, delta ? GateKind::none : GateKind::diag}) {
        c.gate = gk;
        Inputs in = make_inputs(c, delta, delta ? 31 : 37);
        for (DType dt : {DType::f32, DType::f64}) {
          Results want = run_ops(convert(in, dt), c.chunk, delta);
          Results got = run_ops(convert(in, dt, cuda_testing::kGpu), c.chunk, delta);
          expect_results_close(got, want, dt == DType::f64 ? 1e-10 : 1e-4, c.str() + " " + dtype_name(dt));
        }
      }
}

TEST(CudaLinearAttention, EmptySequenceReturnsTheInitialState) {
  SKIP_WITHOUT_CUDA();
  const Case c{0, 4, 3, 8, GateKind::scalar, true};
  for (bool delta : {false, true}) {
    Inputs in = convert(make_inputs(c, delta, 3), DType::f32, cuda_testing::kGpu);
    Results got = run_ops(in, c.chunk, delta);
    EXPECT_EQ(got.o.numel(), 0);
    EXPECT_TRUE(all_close(got.state, values(in.state0), 0.0)) << "delta " << delta;
    in.state0 = Tensor();
    got = run_ops(in, c.chunk, delta);
    EXPECT_TRUE(all_close(got.state, std::vector<double>(static_cast<size_t>(6 * 12), 0.0), 0.0)) << "delta " << delta;
  }
}
