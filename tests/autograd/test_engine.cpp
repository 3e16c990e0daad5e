// The backward engine: accumulation, zero_grad, no_grad, retain_graph,
// grad-ready hooks (once per leaf, after its gradient is complete, later layers
// first), detach, and the errors of a bad backward call.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/var.h"
#include "core/ops.h"
#include "core/test_helpers.h"

using namespace attnlab;
using attnlab::testing::all_close;
using attnlab::testing::randn;
using attnlab::testing::throws_error;
using attnlab::testing::values;

namespace {

Var leaf(const std::vector<double>& v) { return Var(Tensor::from(v), true); }

std::vector<double> grad_of(const Var& v) { return values(v.grad()); }

}  // namespace

TEST(Engine, VarUsedTwiceInOneNodeAccumulates) {
  Var x = leaf({1, -2, 3});
  ag::sum_all(ag::mul(x, x)).backward();
  EXPECT_EQ(grad_of(x), (std::vector<double>{2, -4, 6}));
  Var y = leaf({1, 2});
  ag::sum_all(ag::add(y, y)).backward();  // the same gradient tensor handed to both inputs
  EXPECT_EQ(grad_of(y), (std::vector<double>{2, 2}));
}

TEST(Engine, VarUsedByTwoNodesAccumulates) {
  Var x = leaf({1, 2, 3});
  Var a(Tensor::from<double>({4, 5, 6})), b(Tensor::from<double>({-1, 0, 2}));
  Var loss = ag::add(ag::sum_all(ag::mul(x, a)), ag::sum_all(ag::mul(b, x)));
  loss.backward();
  EXPECT_EQ(grad_of(x), (std::vector<double>{3, 5, 8}));
  EXPECT_FALSE(a.grad().defined()) << "constants get no gradient";
}

TEST(Engine, SharedIntermediateSumsItsConsumers) {
  // h = exp(x); loss = sum(h * h + h): dh = 2h + 1 reaches exp's node from two paths.
  Var x = leaf({0.5, -1.0});
  Var h = ag::exp(x);
  ag::sum_all(ag::add(ag::mul(h, h), h)).backward();
  std::vector<double> hv = values(h.data()), ref;
  for (double e : hv) ref.push_back(e * (2 * e + 1));
  EXPECT_TRUE(all_close(grad_of(x), ref, 1e-12, 1e-12));
  EXPECT_FALSE(h.grad().defined()) << "non-leaf Vars keep no gradient";
}

TEST(Engine, GradsAccumulateAcrossBackwardCalls) {
  Var x = leaf({1, 2});
  ag::sum_all(ag::scale(x, 3.0)).backward();
  ag::sum_all(ag::mul(x, x)).backward();
  EXPECT_EQ(grad_of(x), (std::vector<double>{3 + 2, 3 + 4}));
}

TEST(Engine, ZeroGradKeepsTheBufferAndZerosIt) {
  Var x = leaf({1, 2, 3});
  Var untouched = leaf({1});
  untouched.zero_grad();  // no gradient yet: fine to call
  if (untouched.grad().defined()) {
    EXPECT_EQ(grad_of(untouched), std::vector<double>{0});
  }

  ag::sum_all(ag::mul(x, x)).backward();
  const void* buffer = x.grad().raw_data();
  x.zero_grad();
  EXPECT_EQ(x.grad().raw_data(), buffer);
  EXPECT_EQ(grad_of(x), (std::vector<double>{0, 0, 0}));
  ag::sum_all(ag::scale(x, 2.0)).backward();
  EXPECT_EQ(x.grad().raw_data(), buffer) << "later backwards accumulate in place";
  EXPECT_EQ(grad_of(x), (std::vector<double>{2, 2, 2}));
}

TEST(Engine, FirstGradientIsACopyNotAnAlias) {
  // add's backward hands its upstream gradient to both inputs; accumulating into
  // one leaf must not change the other's.
  Var a = leaf({1, 1}), b = leaf({1, 1});
  Var s = ag::add(a, b);
  s.backward(Tensor::from<double>({1, 2}), true);
  EXPECT_FALSE(a.grad().shares_storage(b.grad()));
  s.backward(Tensor::from<double>({10, 20}));
  EXPECT_EQ(grad_of(a), (std::vector<double>{11, 22}));
  EXPECT_EQ(grad_of(b), (std::vector<double>{11, 22}));
}

TEST(Engine, NoGradRecordsNoGraph) {
  Var x = leaf({1, 2});
  EXPECT_TRUE(grad_enabled());
  {
    NoGradGuard guard;
    EXPECT_FALSE(grad_enabled());
    Var y = ag::mul(x, x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
    EXPECT_EQ(y.grad_fn(), nullptr);
    EXPECT_EQ(values(y.data()), (std::vector<double>{1, 4})) << "the forward still runs";
    {
      NoGradGuard nested;
      EXPECT_FALSE(grad_enabled());
    }
    EXPECT_FALSE(grad_enabled()) << "the inner guard restores the outer state";
    EXPECT_THROW(ag::sum_all(y).backward(), Error);
  }
  EXPECT_TRUE(grad_enabled());
  Var z = ag::mul(x, x);
  EXPECT_TRUE(z.requires_grad());
  EXPECT_NE(z.grad_fn(), nullptr);
  EXPECT_STREQ(z.grad_fn()->name, "mul");
}

TEST(Engine, NothingRequiresGradRecordsNoGraph) {
  Var c(Tensor::from<double>({1, 2}));
  Var y = ag::exp(c);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.grad_fn(), nullptr);
  EXPECT_TRUE(throws_error([&] { ag::sum_all(y).backward(); }, {"backward", "require grad"}));
}

TEST(Engine, RetainGraphFalseFreesTheGraph) {
  Var x = leaf({1, 2});
  Var loss = ag::sum_all(ag::exp(x));
  loss.backward();
  EXPECT_EQ(loss.grad_fn()->backward, nullptr) << "saved tensors are freed";
  EXPECT_TRUE(loss.grad_fn()->inputs.empty());
  EXPECT_TRUE(throws_error([&] { loss.backward(); }, {"backward", "sum_all", "retain_graph"}));
}

TEST(Engine, ASubgraphFreedByAnotherBackwardIsAnError) {
  // Two losses share h = exp(x); the first backward (without retain_graph) frees
  // exp's saved tensors, so the second must fail cleanly rather than crash.
  Var x = leaf({1, 2});
  Var h = ag::exp(x);
  Var l1 = ag::sum_all(h), l2 = ag::sum_all(ag::scale(h, 2.0));
  l1.backward();
  EXPECT_TRUE(throws_error([&] { l2.backward(); }, {"backward", "exp", "retain_graph"}));
  // With retain_graph on the first, both work and gradients add up.
  Var y = leaf({1, 2});
  Var g = ag::exp(y);
  Var m1 = ag::sum_all(g), m2 = ag::sum_all(ag::scale(g, 2.0));
  m1.backward(Tensor(), true);
  m2.backward();
  std::vector<double> yv = values(y.data()), ref;
  for (double e : yv) ref.push_back(3 * std::exp(e));
  EXPECT_TRUE(all_close(grad_of(y), ref, 1e-12, 1e-12));
}

TEST(Engine, RetainGraphTrueAllowsASecondBackward) {
  Var x = leaf({1, 2});
  Var loss = ag::sum_all(ag::mul(ag::exp(x), x));
  loss.backward(Tensor(), true);
  std::vector<double> once = grad_of(x);
  loss.backward(Tensor(), true);
  loss.backward();  // the last one may free
  for (size_t i = 0; i < once.size(); ++i) EXPECT_NEAR(grad_of(x)[i], 3 * once[i], 1e-12);
  EXPECT_THROW(loss.backward(), Error);
}

TEST(Engine, HooksFireOncePerLeafPerBackwardWithTheCompleteGradient) {
  Var w = leaf({1, 2, 3});
  Var a(Tensor::from<double>({1, 1, 1})), b(Tensor::from<double>({2, 0, -1}));
  int calls = 0;
  std::vector<double> seen;
  w.add_grad_ready_hook([&](Var& v) {
    ++calls;
    seen = values(v.grad());
    EXPECT_EQ(v.impl(), w.impl()) << "the hook gets the leaf itself";
  });
  // Two consumers of w: the hook must see a + b, not just one of them.
  Var loss = ag::add(ag::sum_all(ag::mul(w, a)), ag::sum_all(ag::mul(w, b)));
  loss.backward(Tensor(), true);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, (std::vector<double>{3, 1, 0}));
  // Once more per backward; the hook sees the accumulated gradient.
  loss.backward();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(seen, (std::vector<double>{6, 2, 0}));
  // A leaf used twice by one node.
  Var x = leaf({2});
  int xcalls = 0;
  std::vector<double> xseen;
  x.add_grad_ready_hook([&](Var& v) {
    ++xcalls;
    xseen = values(v.grad());
  });
  ag::sum_all(ag::mul(x, x)).backward();
  EXPECT_EQ(xcalls, 1);
  EXPECT_EQ(xseen, std::vector<double>{4});
}

TEST(Engine, HooksOfAnUnreachedLeafDoNotFire) {
  Var used = leaf({1}), unused = leaf({1});
  int fired = 0;
  unused.add_grad_ready_hook([&](Var&) { ++fired; });
  ag::sum_all(ag::exp(used)).backward();
  EXPECT_EQ(fired, 0);
  EXPECT_FALSE(unused.grad().defined());
}

TEST(Engine, SeveralHooksOnOneLeafFireInOrder) {
  Var x = leaf({1});
  std::vector<int> order;
  x.add_grad_ready_hook([&](Var&) { order.push_back(1); });
  x.add_grad_ready_hook([&](Var&) { order.push_back(2); });
  ag::sum_all(ag::square(x)).backward();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(Engine, HooksOfLaterLayersFireFirst) {
  // Three layers: h = tanh(h @ W + b). DDP starts reducing the last layer's
  // gradients while backward continues into the earlier layers.
  Var x(randn({4, 5}, 1));
  struct Layer {
    Var w, b;
  };
  std::vector<Layer> layers;
  std::vector<std::string> fired;
  std::map<std::string, std::vector<double>> at_hook;
  for (int l = 0; l < 3; ++l) {
    Layer layer{Var(randn({5, 5}, 10 + l, DType::f64, 0.5), true), Var(randn({5}, 20 + l), true)};
    for (auto [v, name] : {std::pair{layer.w, "w"}, std::pair{layer.b, "b"}}) {
      std::string id = std::string(name) + std::to_string(l);
      v.add_grad_ready_hook([&, id](Var& g) {
        fired.push_back(id);
        at_hook[id] = values(g.grad());
      });
    }
    layers.push_back(layer);
  }
  Var h = x;
  for (const Layer& layer : layers) h = ag::tanh(ag::add(ag::matmul(h, layer.w), layer.b));
  ag::sum_all(h).backward();
  ASSERT_EQ(fired.size(), 6u) << "each parameter's hook fires exactly once";
  auto pos = [&](const std::string& id) { return std::find(fired.begin(), fired.end(), id) - fired.begin(); };
  for (int l = 0; l < 2; ++l)
    for (const char* later : {"w", "b"})
      for (const char* earlier : {"w", "b"})
        EXPECT_LT(pos(later + std::to_string(l + 1)), pos(earlier + std::to_string(l)))
            << later << l + 1 << " should fire before " << earlier << l;
  // What each hook saw is the final gradient.
  for (int l = 0; l < 3; ++l) {
    EXPECT_EQ(at_hook["w" + std::to_string(l)], values(layers[static_cast<size_t>(l)].w.grad()));
    EXPECT_EQ(at_hook["b" + std::to_string(l)], values(layers[static_cast<size_t>(l)].b.grad()));
  }
}

TEST(Engine, TiedWeightHookFiresOnceAfterBothUses) {
  // An embedding tied to the output projection: one leaf, two distant consumers.
  Var emb(randn({6, 4}, 3), true);
  Tensor ids = Tensor::from<int64_t>({1, 4, 4});
  int calls = 0;
  std::vector<double> seen;
  emb.add_grad_ready_hook([&](Var& v) {
    ++calls;
    seen = values(v.grad());
  });
  Var h = ag::embedding(emb, ids);                   // [3, 4]
  Var logits = ag::matmul(h, emb, false, true);      // [3, 6]
  ag::cross_entropy(logits, Tensor::from<int64_t>({0, 2, 5})).backward();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, values(emb.grad()));
}

TEST(Engine, BackwardOnALeaf) {
  Var x = leaf({5});
  int calls = 0;
  x.add_grad_ready_hook([&](Var&) { ++calls; });
  x.backward();
  EXPECT_EQ(grad_of(x), std::vector<double>{1});
  EXPECT_EQ(calls, 1);
  x.backward(Tensor::from<double>({2}));
  EXPECT_EQ(grad_of(x), std::vector<double>{3});
}

TEST(Engine, DetachCutsTheGraph) {
  Var x = leaf({1, 2, 3});
  Var d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_TRUE(d.data().shares_storage(x.data())) << "same data";
  // loss = sum(detach(x) * x): only the direct path carries a gradient.
  ag::sum_all(ag::mul(d, x)).backward();
  EXPECT_EQ(grad_of(x), (std::vector<double>{1, 2, 3}));
  EXPECT_FALSE(d.grad().defined());
  // Detaching an intermediate stops the gradient before its producer.
  Var y = leaf({2});
  Var mid = ag::exp(y).detach();
  Var out = ag::sum_all(ag::mul(mid, y));
  out.backward();
  EXPECT_NEAR(grad_of(y)[0], std::exp(2.0), 1e-12);
}

TEST(Engine, NonScalarBackwardNeedsAGradient) {
  Var x = leaf({1, 2, 3});
  Var y = ag::scale(x, 2.0);
  EXPECT_TRUE(throws_error([&] { y.backward(); }, {"backward", "non-scalar", "[3]"}));
  EXPECT_TRUE(throws_error([&] { y.backward(Tensor::from<double>({1, 2})); }, {"backward", "[2]", "[3]"}));
  y.backward(Tensor::from<double>({1, 0, -1}));
  EXPECT_EQ(grad_of(x), (std::vector<double>{2, 0, -2}));
  // A one-element non-scalar ([1, 1]) needs no gradient.
  Var z = leaf({4});
  ag::reshape(ag::square(z), {1, 1}).backward();
  EXPECT_EQ(grad_of(z), std::vector<double>{8});
}

TEST(Engine, APathWithoutGradientGivesZeros) {
  // A function whose backward returns no gradient for its input: everything
  // upstream of it gets zeros, and the leaf's hook still fires.
  Var x = leaf({1, 2});
  int calls = 0;
  x.add_grad_ready_hook([&](Var&) { ++calls; });
  Var h = ag::exp(x);
  Var cut = make_result(h.data().clone(), "cut", {h}, [](const Tensor&) { return std::vector<Tensor>{Tensor()}; });
  ag::sum_all(cut).backward();
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(grad_of(x), (std::vector<double>{0, 0}));
}

TEST(Engine, WrongNumberOfGradientsIsAnError) {
  Var x = leaf({1});
  Var bad = make_result(x.data().clone(), "bad_fn", {x}, [](const Tensor& g) { return std::vector<Tensor>{g, g}; });
  EXPECT_TRUE(throws_error([&] { bad.backward(); }, {"bad_fn", "2", "1"}));
}

TEST(Engine, RequiresGradAndLeafFlags) {
  Var c(Tensor::zeros({2}));
  EXPECT_FALSE(c.requires_grad());
  c.set_requires_grad(true);
  EXPECT_TRUE(c.requires_grad());
  EXPECT_TRUE(c.is_leaf());
  Var y = ag::relu(c);
  EXPECT_TRUE(y.requires_grad());
  EXPECT_FALSE(y.is_leaf());
  EXPECT_FALSE(Var().defined());
  EXPECT_FALSE(Var().requires_grad());
  EXPECT_EQ(y.shape(), Shape{2});
  EXPECT_EQ(y.numel(), 2);
  EXPECT_EQ(y.dtype(), DType::f32);
  EXPECT_EQ(y.device(), Device::cpu());
}

TEST(Engine, LongChainsRunWithoutRecursion) {
  // The engine walks the graph with explicit stacks: a deep chain is fine.
  Var x = leaf({1.0});
  Var h = x;
  for (int i = 0; i < 5000; ++i) h = ag::add_scalar(h, 0.001);
  ag::sum_all(h).backward();
  EXPECT_EQ(grad_of(x), std::vector<double>{1.0});
}
