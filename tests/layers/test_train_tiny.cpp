// End to end on the CPU: a tiny GPT memorises a fixed random batch with AdamW.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/functions.h"
#include "layers/gpt.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"

using namespace attnlab;

namespace {
Tensor random_ids(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Generator gen(seed);
  std::vector<int64_t> v(static_cast<size_t>(B * T));
  for (auto& x : v) x = static_cast<int64_t>(gen.next_u64() % static_cast<uint64_t>(V));
  return Tensor::from(v, {B, T});
}

std::vector<double> train(const GPTConfig& c, int steps, int accum) {
  GPT model(c, 1);
  AdamWOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.1;
  o.beta2 = 0.95;
  AdamW opt(model.named_parameters(), o);
  LRSchedule sched{ScheduleKind::cosine, o.lr, 5, steps, 0.1, 0.2};
  Tensor ids = random_ids(4, 16, c.vocab_size, 2), tgt = random_ids(4, 16, c.vocab_size, 3);
  std::vector<Tensor> mid = {ids.slice(0, 2), ids.slice(2, 4)}, mtg = {tgt.slice(0, 2), tgt.slice(2, 4)};
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    opt.set_lr(sched.lr_at(step));
    opt.zero_grad();
    double loss = 0;
    for (int a = 0; a < accum; ++a) {
      Var l = accum == 1 ? model.loss(ids, tgt) : model.loss(mid[a], mtg[a]);
      ag::scale(l, 1.0 / accum).backward();
      loss += l.data().item<double>() / accum;
    }
    clip_grad_norm(model.parameters(), 1.0);
    opt.step();
    losses.push_back(loss);
  }
  return losses;
}
}  // namespace

TEST(TrainTiny, AdamWLowersTheLoss) {
  for (bool gpt2 : {true, false}) {
    GPTConfig c;
    c.vocab_size = 32;
    c.n_layer = 2;
    c.n_head = 4;
    c.d_model = 32;
    c.block_size = 16;
    if (gpt2) {
      c.pos_emb = PosEmbKind::learned;
      c.layers = {AttnOptions{}};
      c.layers[0].pos = PosKind::nope;
    } else {
      c.pos_emb = PosEmbKind::none;
      c.mlp = MLPKind::swiglu;
      c.norm = NormKind::rms;
      c.bias = false;
      c.layers = {AttnOptions{}};
      c.layers[0].n_kv_head = 2;
    }
    auto losses = train(c, 30, 1);
    EXPECT_NEAR(losses.front(), std::log(32.0), 0.2);
    EXPECT_LT(losses.back(), 0.25 * losses.front()) << "first " << losses.front() << " last " << losses.back();
  }
}

TEST(TrainTiny, GradientAccumulationMatchesTheFullBatch) {
  GPTConfig c;
  c.vocab_size = 32;
  c.n_layer = 1;
  c.n_head = 2;
  c.d_model = 16;
  c.block_size = 16;
  auto full = train(c, 3, 1), accum = train(c, 3, 2);
  for (size_t i = 0; i < full.size(); ++i) EXPECT_NEAR(full[i], accum[i], 1e-4) << i;
}
