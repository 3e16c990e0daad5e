// A tiny GPT's loss and every parameter gradient on the GPU equal the CPU's
// (f32, within rounding): the autograd path end to end over the CUDA kernels,
// with attention composed from matmul, masked_fill and softmax (impl =
// reference) and with the fused flash-attention kernels (impl = fused). Skips
// without a CUDA device.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/cuda_testing.h"
#include "core/ops.h"
#include "layers/gpt.h"
#include "layers/testing.h"

using namespace attnlab;
using namespace attnlab::cuda_testing;
using test_util::random_ids;

namespace {

// The layer tests' tiny GPT, wider, with attention by `impl`.
GPTConfig tiny(bool gpt2_style, AttnImpl impl) {
  AttnOptions o;
  o.impl = impl;
  GPTConfig c = test_util::tiny_gpt_config(gpt2_style, o);
  c.vocab_size = 37;
  c.d_model = 16;
  c.d_mlp = 24;
  return c;
}

void expect_gpu_matches_cpu(bool gpt2_style, AttnImpl impl) {
  const std::string style = std::string(gpt2_style ? "gpt2-style" : "llama-style") +
                            (impl == AttnImpl::fused ? " fused" : " reference");
  GPTConfig cfg = tiny(gpt2_style, impl);
  GPT cpu_model(cfg, 7), gpu_model(cfg, 7);
  gpu_model.to(kGpu);
  Tensor ids = random_ids(3, 11, cfg.vocab_size, 1), targets = random_ids(3, 11, cfg.vocab_size, 2);
  // Some ignored targets, as padding makes them.
  std::vector<int64_t> t = targets.to_vector<int64_t>();
  t[0] = t[5] = -100;
  targets = Tensor::from(t, {3, 11});

  Var cpu_loss = cpu_model.loss(ids, targets);
  Var gpu_loss = gpu_model.loss(ids.to(kGpu), targets.to(kGpu));
  ASSERT_TRUE(gpu_loss.data().device().is_cuda()) << style;
  expect_close(gpu_loss.data(), cpu_loss.data(), 1e-5, 1e-5, style + " loss");
  cpu_loss.backward();
  gpu_loss.backward();

  NamedParams cpu_params = cpu_model.named_parameters(), gpu_params = gpu_model.named_parameters();
  ASSERT_EQ(cpu_params.size(), gpu_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const auto& [name, p] = cpu_params[i];
    ASSERT_EQ(gpu_params[i].first, name);
    const Tensor& g_cpu = p.grad();
    const Tensor& g_gpu = gpu_params[i].second.grad();
    ASSERT_TRUE(g_cpu.defined()) << style << " " << name;
    ASSERT_TRUE(g_gpu.defined()) << style << " " << name;
    EXPECT_TRUE(g_gpu.device().is_cuda()) << style << " " << name;
    expect_close(g_gpu, g_cpu, 1e-3, 1e-5, style + " grad " + name);
  }
}

}  // namespace

TEST(GPTCuda, Gpt2StyleLossAndGradientsMatchCpu) {
  SKIP_WITHOUT_CUDA();
  for (AttnImpl impl : {AttnImpl::reference, AttnImpl::fused}) expect_gpu_matches_cpu(true, impl);
}

TEST(GPTCuda, LlamaStyleLossAndGradientsMatchCpu) {
  SKIP_WITHOUT_CUDA();
  for (AttnImpl impl : {AttnImpl::reference, AttnImpl::fused}) expect_gpu_matches_cpu(false, impl);
}
