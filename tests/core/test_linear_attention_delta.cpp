// The chunkwise (gated) delta rule (ops::delta_rule_chunked, UT transform):
// against the recurrence written as loops for every chunk size, float64
// gradchecks, gradients equal to the step-by-step autograd form, a carried
// initial state, gates of 1 equal to no gates, float32, bad input.
#include <gtest/gtest.h>

#include "autograd/gradcheck.h"
#include "autograd/linear_attention.h"
#include "core/linear_attention_testing.h"
#include "core/ops.h"

using namespace attnlab;
using namespace attnlab::testing;

namespace {

struct Inputs {
  Tensor q, k, v, beta, g;
};

// L2-normalised keys, beta in (0, 1), log-decays in [-0.5, -0.01] when gated.
Inputs make_inputs(int64_t T, int64_t Dk, int64_t Dv, bool gated, uint64_t seed, DType dt = DType::f64) {
  Inputs in;
  in.q = randn({2, 3, T, Dk}, seed, dt, 0.5);
  in.k = l2_rows(randn({2, 3, T, Dk}, seed + 1, dt));
  in.v = randn({2, 3, T, Dv}, seed + 2, dt);
  in.beta = randu({2, 3, T}, seed + 3, 0.1, 0.95, dt);
  if (gated) in.g = log_gates({2, 3, T}, seed + 4, 0.01, 0.5, dt);
  return in;
}

}  // namespace

TEST(DeltaRuleKernel, ChunkedEqualsTheRecurrenceForEveryChunkSize) {
  const int64_t T = 13;
  for (bool gated : {false, true}) {
    Inputs in = make_inputs(T, 4, 5, gated, 10);
    LoopOut ref = recurrence_loops(in.q, in.k, in.v, in.g, in.beta);
    for (int64_t C : {1, 3, 5, 8, 13, 64}) {
      auto out = ops::delta_rule_chunked(in.q, in.k, in.v, in.beta, in.g, C);
      EXPECT_TRUE(all_close(out.o, ref.o, 1e-12, 1e-10)) << "gated " << gated << " chunk " << C;
      EXPECT_TRUE(all_close(out.state, ref.state, 1e-12, 1e-10)) << "gated " << gated << " chunk " << C;
    }
  }
}

TEST(DeltaRuleKernel, LongChunksEqualTheRecurrence) {
  const int64_t T = 70;
  for (bool gated : {false, true}) {
    Inputs in = make_inputs(T, 6, 3, gated, 15);
    LoopOut ref = recurrence_loops(in.q, in.k, in.v, in.g, in.beta);
    for (int64_t C : {32, 64, 70}) {
      auto out = ops::delta_rule_chunked(in.q, in.k, in.v, in.beta, in.g, C);
      EXPECT_TRUE(all_close(out.o, ref.o, 1e-11, 1e-9)) << "gated " << gated << " chunk " << C;
      EXPECT_TRUE(all_close(out.state, ref.state, 1e-11, 1e-9)) << "gated " << gated << " chunk " << C;
    }
  }
}

TEST(DeltaRuleKernel, CarriesAnInitialState) {
  for (bool gated : {false, true}) {
    Inputs in = make_inputs(13, 3, 4, gated, 20);
    auto piece = [&](const Tensor& x, int64_t a, int64_t n) {
      if (!x.defined()) return Tensor();
      return ops::split(x, {a, n, 13 - a - n}, 2)[1];
    };
    auto full = ops::delta_rule_chunked(in.q, in.k, in.v, in.beta, in.g, 4);
    auto first = ops::delta_rule_chunked(piece(in.q, 0, 7), piece(in.k, 0, 7), piece(in.v, 0, 7),
                                         piece(in.beta, 0, 7), piece(in.g, 0, 7), 3);
    auto second = ops::delta_rule_chunked(piece(in.q, 7, 6), piece(in.k, 7, 6), piece(in.v, 7, 6),
                                          piece(in.beta, 7, 6), piece(in.g, 7, 6), 4, first.state);
    EXPECT_TRUE(all_close(ops::concat({first.o, second.o}, 2), values(full.o), 1e-12, 1e-10));
    EXPECT_TRUE(all_close(second.state, values(full.state), 1e-12, 1e-10));
  }
}

TEST(DeltaRuleKernel, Gradcheck) {
  GradcheckOptions opts;
  opts.atol = 1e-7;
  opts.rtol = 1e-6;
  for (bool gated : {false, true}) {
    Inputs in = make_inputs(7, 3, 2, gated, 30);
    Tensor s0 = randn({2, 3, 3, 2}, 35);
    std::vector<Tensor> inputs{in.q, in.k, in.v, in.beta};
    if (gated) inputs.push_back(in.g);
    for (int64_t C : {1, 3, 7}) {
      for (bool with_state : {false, true}) {
        // Unnormalised keys are fine for the math; gradcheck perturbs them anyway.
        auto r = gradcheck(
            [&](const std::vector<Var>& x) {
              return ag::delta_rule(x[0], x[1], x[2], x[3], x.size() > 4 ? x[4] : Var(), C,
                                    with_state ? s0 : Tensor());
            },
            inputs, opts);
        EXPECT_TRUE(r.ok) << "gated " << gated << " chunk " << C << " state " << with_state << ": " << r.message;
      }
    }
  }
}

TEST(DeltaRuleKernel, GradientsEqualTheRecurrentForm) {
  const int64_t T = 11;
  for (bool gated : {false, true}) {
    Inputs in = make_inputs(T, 4, 3, gated, 40);
    Tensor dout = randn({2, 3, T, 3}, 45);
    auto grads = [&](bool recurrent, int64_t C) {
      std::vector<Var> x{Var(in.q.clone(), true), Var(in.k.clone(), true), Var(in.v.clone(), true),
                         Var(in.beta.clone(), true)};
      Var g = gated ? Var(in.g.clone(), true) : Var();
      Tensor state;
      Var o = recurrent ? ag::delta_rule_recurrent(x[0], x[1], x[2], x[3], g, state)
                        : ag::delta_rule(x[0], x[1], x[2], x[3], g, C);
      o.backward(dout);
      std::vector<Tensor> out{o.data(), x[0].grad(), x[1].grad(), x[2].grad(), x[3].grad()};
      if (gated) out.push_back(g.grad());
      return out;
    };
    auto ref = grads(true, 0);
    for (int64_t C : {1, 3, 8, 11, 16}) {
      auto got = grads(false, C);
      for (size_t i = 0; i < ref.size(); ++i)
        EXPECT_TRUE(all_close(got[i], values(ref[i]), 1e-11, 1e-9)) << "gated " << gated << " chunk " << C << " #" << i;
    }
  }
}

TEST(DeltaRuleKernel, GatesOfOneEqualNoGates) {
  Inputs in = make_inputs(12, 4, 3, false, 50);
  Tensor zero = Tensor::zeros({2, 3, 12}, DType::f64);
  auto a = ops::delta_rule_chunked(in.q, in.k, in.v, in.beta, Tensor(), 5);
  auto b = ops::delta_rule_chunked(in.q, in.k, in.v, in.beta, zero, 5);
  EXPECT_TRUE(all_close(b.o, values(a.o), 1e-14, 1e-12));
  auto ga = ops::delta_rule_chunked_backward(in.q, in.k, in.v, in.beta, Tensor(), 5, Tensor(), in.v);
  auto gb = ops::delta_rule_chunked_backward(in.q, in.k, in.v, in.beta, zero, 5, Tensor(), in.v);
  for (auto [x, y] : {std::pair{ga.dq, gb.dq}, {ga.dk, gb.dk}, {ga.dv, gb.dv}, {ga.dbeta, gb.dbeta}})
    EXPECT_TRUE(all_close(y, values(x), 1e-13, 1e-11));
}

TEST(DeltaRuleKernel, Float32MatchesFloat64) {
  for (bool gated : {false, true}) {
    Inputs in = make_inputs(70, 8, 6, gated, 60);
    auto f = [](const Tensor& t) { return t.defined() ? t.to(DType::f32) : Tensor(); };
    auto a = ops::delta_rule_chunked(in.q, in.k, in.v, in.beta, in.g, 32);
    auto b = ops::delta_rule_chunked(f(in.q), f(in.k), f(in.v), f(in.beta), f(in.g), 32);
    EXPECT_TRUE(all_close(b.o, values(a.o), 1e-4, 1e-4));
    auto ga = ops::delta_rule_chunked_backward(in.q, in.k, in.v, in.beta, in.g, 32, Tensor(), a.o);
    auto gb = ops::delta_rule_chunked_backward(f(in.q), f(in.k), f(in.v), f(in.beta), f(in.g), 32, Tensor(), b.o);
    EXPECT_TRUE(all_close(gb.dq, values(ga.dq), 1e-3, 1e-3));
    EXPECT_TRUE(all_close(gb.dk, values(ga.dk), 1e-3, 1e-3));
    EXPECT_TRUE(all_close(gb.dv, values(ga.dv), 1e-3, 1e-3));
    EXPECT_TRUE(all_close(gb.dbeta, values(ga.dbeta), 1e-3, 1e-3));
    if (gated) {
      EXPECT_TRUE(all_close(gb.dg, values(ga.dg), 2e-3, 1e-3));
    }
  }
}

TEST(DeltaRuleKernel, RejectsBadInput) {
  Tensor q = randn({2, 5, 3}, 1), v = randn({2, 5, 4}, 2), beta = randu({2, 5}, 3, 0.1, 0.9);
  EXPECT_TRUE(throws_error([&] { ops::delta_rule_chunked(q, q, v, Tensor(), Tensor(), 4); },
                           {"delta_rule_chunked", "beta", "undefined"}));
  EXPECT_TRUE(throws_error([&] { ops::delta_rule_chunked(q, q, v, randn({2, 4}, 4), Tensor(), 4); },
                           {"delta_rule_chunked", "beta", "[2, 5]"}));
  EXPECT_TRUE(throws_error([&] { ops::delta_rule_chunked(q, q, v, beta, randn({2, 5, 3}, 4), 4); },
                           {"delta_rule_chunked", "one per step"}));
}
