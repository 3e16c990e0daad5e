// A training step served entirely from the caching allocator's free lists
// (core/allocator.h): after the first step of a tiny GPT (forward, backward,
// clipping, AdamW, zero_grad; the trainer's order, with zero_grad once before
// the first step) identical steps never reach the system allocator again. Run
// on the CPU and on CUDA (cudaMalloc), where a device exists.
#include <gtest/gtest.h>

#include <vector>

#include "core/allocator.h"
#include "core/cuda_testing.h"
#include "layers/gpt.h"
#include "layers/testing.h"
#include "optim/adamw.h"
#include "optim/clip.h"

using namespace attnlab;

namespace {

// system_allocs after each of `steps` identical training steps on `device`.
std::vector<size_t> system_allocs_per_step(Device device, bool gpt2_style, int steps) {
  AttnOptions o;
  o.impl = AttnImpl::reference;  // composed from ops: runs on both backends
  GPTConfig cfg = test_util::tiny_gpt_config(gpt2_style, o);
  GPT model(cfg, 3);
  model.to(device);
  Tensor ids = test_util::random_ids(2, 9, cfg.vocab_size, 1).to(device);
  Tensor targets = test_util::random_ids(2, 9, cfg.vocab_size, 2).to(device);
  NamedParams params = model.named_parameters();
  std::vector<Var> vars;
  for (const auto& np : params) vars.push_back(np.second);
  AdamW opt(params, AdamWOptions{});
  Allocator& alloc = allocator_for(device);
  std::vector<size_t> out;
  opt.zero_grad();  // as the trainer does: gradient buffers exist from the first backward on
  for (int s = 0; s < steps; ++s) {
    Var loss = model.loss(ids, targets);
    loss.backward();
    clip_grad_norm(vars, 0.5);
    opt.step();
    opt.zero_grad();
    (void)loss.data().item<float>();  // the trainer's one host read of the loss
    out.push_back(alloc.stats().system_allocs);
  }
  return out;
}

void expect_steady(Device device) {
  for (bool gpt2_style : {true, false}) {
    std::vector<size_t> a = system_allocs_per_step(device, gpt2_style, 4);
    for (size_t s = 1; s < a.size(); ++s)
      EXPECT_EQ(a[s], a[0]) << device.str() << (gpt2_style ? " gpt2-style" : " llama-style") << ": step " << s + 1
                            << " reached the system allocator";
  }
}

}  // namespace

TEST(SteadyStateAllocs, CpuStepsAfterTheFirstAllocateNothing) { expect_steady(Device::cpu()); }

TEST(SteadyStateAllocs, CudaStepsAfterTheFirstCallNoCudaMalloc) {
  SKIP_WITHOUT_CUDA();
  expect_steady(cuda_testing::kGpu);
}
