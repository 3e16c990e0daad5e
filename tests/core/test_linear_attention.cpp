// The chunkwise gated linear-attention kernel (ops::linear_attention_chunked):
// against the recurrence written as loops for every gate kind and chunk size,
// float64 gradchecks, gradients equal to the step-by-step autograd form, a
// carried initial state, strong decay without overflow, float32, bad input.
#include <gtest/gtest.h>

#include "autograd/gradcheck.h"
#include "autograd/linear_attention.h"
#include "core/ops.h"
#include "core/linear_attention_testing.h"

using namespace attnlab;
using namespace attnlab::testing;

namespace {

enum class G { none, scalar, diag };

struct Inputs {
  Tensor q, k, v, g;
};

// [2, 3, T, Dk] queries/keys, [2, 3, T, Dv] values, gates by kind.
Inputs make_inputs(int64_t T, int64_t Dk, int64_t Dv, G gk, uint64_t seed, DType dt = DType::f64) {
  Inputs in;
  in.q = randn({2, 3, T, Dk}, seed, dt, 0.5);
  in.k = randn({2, 3, T, Dk}, seed + 1, dt, 0.5);
  in.v = randn({2, 3, T, Dv}, seed + 2, dt);
  if (gk == G::scalar) in.g = log_gates({2, 3, T}, seed + 3, 0.02, 0.7, dt);
  if (gk == G::diag) in.g = log_gates({2, 3, T, Dk}, seed + 3, 0.02, 0.7, dt);
  return in;
}

const G kGates[] = {G::none, G::scalar, G::diag};

}  // namespace

TEST(LinearAttentionKernel, ChunkedEqualsTheRecurrenceForEveryChunkSize) {
  const int64_t T = 13;
  for (G gk : kGates) {
    Inputs in = make_inputs(T, 4, 5, gk, 10);
    LoopOut ref = recurrence_loops(in.q, in.k, in.v, in.g);
    for (int64_t C : {1, 3, 5, 8, 13, 64}) {
      auto out = ops::linear_attention_chunked(in.q, in.k, in.v, in.g, C);
      EXPECT_TRUE(all_close(out.o, ref.o, 1e-12, 1e-10)) << "gate " << int(gk) << " chunk " << C;
      EXPECT_TRUE(all_close(out.state, ref.state, 1e-12, 1e-10)) << "gate " << int(gk) << " chunk " << C;
    }
  }
}

TEST(LinearAttentionKernel, LongChunksEqualTheRecurrence) {
  // Chunks longer than the per-dim gates' 16-row sub-blocks (GEMMs between sub-blocks).
  const int64_t T = 50;
  for (G gk : kGates) {
    Inputs in = make_inputs(T, 5, 3, gk, 15);
    LoopOut ref = recurrence_loops(in.q, in.k, in.v, in.g);
    for (int64_t C : {17, 32, 37, 50}) {
      auto out = ops::linear_attention_chunked(in.q, in.k, in.v, in.g, C);
      EXPECT_TRUE(all_close(out.o, ref.o, 1e-12, 1e-10)) << "gate " << int(gk) << " chunk " << C;
      EXPECT_TRUE(all_close(out.state, ref.state, 1e-12, 1e-10)) << "gate " << int(gk) << " chunk " << C;
    }
  }
}

TEST(LinearAttentionKernel, CarriesAnInitialState) {
  // Running [0, 7) then [7, 13) from the returned state equals one run over [0, 13).
  for (G gk : kGates) {
    Inputs in = make_inputs(13, 3, 4, gk, 20);
    auto full = ops::linear_attention_chunked(in.q, in.k, in.v, in.g, 4);
    auto piece = [&](const Tensor& x, int64_t a, int64_t n) { return ops::split(x, {a, n, x.size(2) - a - n}, 2)[1]; };
    auto gp = [&](int64_t a, int64_t n) {
      if (!in.g.defined()) return Tensor();
      return in.g.dim() == 4 ? piece(in.g, a, n) : ops::split(in.g, {a, n, 13 - a - n}, 2)[1];
    };
    auto first = ops::linear_attention_chunked(piece(in.q, 0, 7), piece(in.k, 0, 7), piece(in.v, 0, 7), gp(0, 7), 3);
    auto second = ops::linear_attention_chunked(piece(in.q, 7, 6), piece(in.k, 7, 6), piece(in.v, 7, 6), gp(7, 6), 4,
                                                first.state);
    EXPECT_TRUE(all_close(ops::concat({first.o, second.o}, 2), values(full.o), 1e-12, 1e-10));
    EXPECT_TRUE(all_close(second.state, values(full.state), 1e-12, 1e-10));
    LoopOut ref = recurrence_loops(piece(in.q, 7, 6), piece(in.k, 7, 6), piece(in.v, 7, 6), gp(7, 6), Tensor(),
                                   first.state);
    EXPECT_TRUE(all_close(second.o, ref.o, 1e-12, 1e-10));
  }
}

TEST(LinearAttentionKernel, Gradcheck) {
  GradcheckOptions opts;
  opts.atol = 1e-7;
  opts.rtol = 1e-6;
  for (G gk : kGates) {
    Inputs in = make_inputs(7, 3, 2, gk, 30);
    Tensor s0 = randn({2, 3, 3, 2}, 35);
    std::vector<Tensor> inputs{in.q, in.k, in.v};
    if (in.g.defined()) inputs.push_back(in.g);
    for (int64_t C : {1, 3, 7}) {
      for (bool with_state : {false, true}) {
        auto r = gradcheck(
            [&](const std::vector<Var>& x) {
              return ag::linear_attention(x[0], x[1], x[2], x.size() > 3 ? x[3] : Var(), C,
                                          with_state ? s0 : Tensor());
            },
            inputs, opts);
        EXPECT_TRUE(r.ok) << "gate " << int(gk) << " chunk " << C << " state " << with_state << ": " << r.message;
      }
    }
  }
}

TEST(LinearAttentionKernel, GradcheckLongChunks) {
  GradcheckOptions opts;
  opts.atol = 1e-7;
  opts.rtol = 1e-6;
  Inputs in = make_inputs(35, 2, 2, G::diag, 32);
  auto r = gradcheck([&](const std::vector<Var>& x) { return ag::linear_attention(x[0], x[1], x[2], x[3], 35); },
                     {ops::split(in.q, {1, 1}, 0)[0], ops::split(in.k, {1, 1}, 0)[0], ops::split(in.v, {1, 1}, 0)[0],
                      ops::split(in.g, {1, 1}, 0)[0]},
                     opts);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(LinearAttentionKernel, GradientsEqualTheRecurrentForm) {
  for (int64_t T : {11, 40}) {
    for (G gk : kGates) {
      Inputs in = make_inputs(T, 4, 3, gk, 40);
      Tensor dout = randn({2, 3, T, 3}, 45);
      auto grads = [&](bool recurrent, int64_t C) {
        std::vector<Var> x{Var(in.q.clone(), true), Var(in.k.clone(), true), Var(in.v.clone(), true)};
        Var g = in.g.defined() ? Var(in.g.clone(), true) : Var();
        Tensor state;
        Var o = recurrent ? ag::linear_attention_recurrent(x[0], x[1], x[2], g, state)
                          : ag::linear_attention(x[0], x[1], x[2], g, C);
        o.backward(dout);
        std::vector<Tensor> out{o.data(), x[0].grad(), x[1].grad(), x[2].grad()};
        if (g.defined()) out.push_back(g.grad());
        return out;
      };
      auto ref = grads(true, 0);
      for (int64_t C : {int64_t(1), int64_t(3), int64_t(8), T, int64_t(16), int64_t(33)}) {
        auto got = grads(false, C);
        for (size_t i = 0; i < ref.size(); ++i)
          EXPECT_TRUE(all_close(got[i], values(ref[i]), 1e-11, 1e-9)) << "gate " << int(gk) << " T " << T << " chunk "
                                                                        << C << " #" << i;
      }
    }
  }
}

TEST(LinearAttentionKernel, StrongDecayStaysFinite) {
  // Per-step log-gates of -30 over a 64-step chunk: exp(-B) alone would overflow float32.
  Inputs in = make_inputs(64, 8, 4, G::none, 50, DType::f32);
  for (bool diag : {false, true}) {
    Tensor g = diag ? Tensor::full({2, 3, 64, 8}, -30.0) : Tensor::full({2, 3, 64}, -30.0);
    auto out = ops::linear_attention_chunked(in.q, in.k, in.v, g, 64);
    LoopOut ref = recurrence_loops(in.q, in.k, in.v, g);
    EXPECT_TRUE(all_close(out.o, ref.o, 1e-5, 1e-4));
    auto gr = ops::linear_attention_chunked_backward(in.q, in.k, in.v, g, 64, Tensor(), in.v);
    for (const Tensor& t : {gr.dq, gr.dk, gr.dv, gr.dg})
      for (double x : values(t)) ASSERT_TRUE(std::isfinite(x));
  }
}

TEST(LinearAttentionKernel, Float32MatchesFloat64) {
  for (G gk : kGates) {
    Inputs in = make_inputs(40, 8, 6, gk, 60);
    Inputs f = {in.q.to(DType::f32), in.k.to(DType::f32), in.v.to(DType::f32),
                in.g.defined() ? in.g.to(DType::f32) : Tensor()};
    auto a = ops::linear_attention_chunked(in.q, in.k, in.v, in.g, 16);
    auto b = ops::linear_attention_chunked(f.q, f.k, f.v, f.g, 16);
    EXPECT_TRUE(all_close(b.o, values(a.o), 1e-4, 1e-4));
    auto ga = ops::linear_attention_chunked_backward(in.q, in.k, in.v, in.g, 16, Tensor(), a.o);
    auto gb = ops::linear_attention_chunked_backward(f.q, f.k, f.v, f.g, 16, Tensor(), b.o);
    EXPECT_TRUE(all_close(gb.dq, values(ga.dq), 1e-3, 1e-3));
    EXPECT_TRUE(all_close(gb.dk, values(ga.dk), 1e-3, 1e-3));
    EXPECT_TRUE(all_close(gb.dv, values(ga.dv), 1e-3, 1e-3));
    if (ga.dg.defined()) {
      EXPECT_TRUE(all_close(gb.dg, values(ga.dg), 2e-3, 1e-3));
    }
  }
}

TEST(LinearAttentionKernel, EmptySequenceKeepsTheState) {
  Tensor q = Tensor::zeros({2, 0, 3}, DType::f64), v = Tensor::zeros({2, 0, 4}, DType::f64);
  Tensor s0 = randn({2, 3, 4}, 70);
  auto out = ops::linear_attention_chunked(q, q, v, Tensor(), 8, s0);
  EXPECT_EQ(out.o.shape(), (Shape{2, 0, 4}));
  EXPECT_TRUE(all_close(out.state, values(s0), 0.0));
}

TEST(LinearAttentionKernel, RejectsBadInput) {
  Tensor q = randn({2, 5, 3}, 1), v = randn({2, 5, 4}, 2);
  EXPECT_TRUE(throws_error([&] { ops::linear_attention_chunked(q, randn({2, 5, 4}, 3), v, Tensor(), 4); },
                           {"linear_attention_chunked", "shape mismatch"}));
  EXPECT_TRUE(throws_error([&] { ops::linear_attention_chunked(q, q, randn({2, 6, 4}, 3), Tensor(), 4); },
                           {"linear_attention_chunked", "v", "does not match q"}));
  EXPECT_TRUE(throws_error([&] { ops::linear_attention_chunked(q, q, v, randn({2, 5, 2}, 3), 4); },
                           {"linear_attention_chunked", "gates", "[2, 5]", "[2, 5, 3]"}));
  EXPECT_TRUE(throws_error([&] { ops::linear_attention_chunked(q, q, v, Tensor(), 0); }, {"chunk", ">= 1"}));
  EXPECT_TRUE(throws_error([&] { ops::linear_attention_chunked(q, q, v, Tensor(), 4, randn({2, 4, 3}, 3)); },
                           {"state0", "[2, 3, 4]"}));
  EXPECT_TRUE(throws_error([&] { ops::linear_attention_chunked(q, q, v.to(DType::f32), Tensor(), 4); },
                           {"linear_attention_chunked", "dtype mismatch"}));
}
