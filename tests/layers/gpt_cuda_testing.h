#pragma once
// The GPU-against-CPU check of a whole model (tests/layers/test_gpt_cuda.cpp,
// tests/train/test_gpt_cuda_variants.cpp): same config and seed on both
// devices, the loss and every parameter gradient within f32 rounding.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/cuda_testing.h"
#include "layers/gpt.h"
#include "layers/testing.h"

namespace attnlab::cuda_testing {

inline void expect_gpt_gpu_matches_cpu(const GPTConfig& cfg, int64_t T, const std::string& label) {
  GPT cpu_model(cfg, 7), gpu_model(cfg, 7);
  gpu_model.to(kGpu);
  Tensor ids = test_util::random_ids(3, T, cfg.vocab_size, 1), targets = test_util::random_ids(3, T, cfg.vocab_size, 2);
  // Some ignored targets, as padding makes them.
  std::vector<int64_t> t = targets.to_vector<int64_t>();
  t[0] = t[5] = -100;
  targets = Tensor::from(t, {3, T});

  Var cpu_loss = cpu_model.loss(ids, targets);
  Var gpu_loss = gpu_model.loss(ids.to(kGpu), targets.to(kGpu));
  ASSERT_TRUE(gpu_loss.data().device().is_cuda()) << label;
  expect_close(gpu_loss.data(), cpu_loss.data(), 1e-5, 1e-5, label + " loss");
  cpu_loss.backward();
  gpu_loss.backward();

  NamedParams cpu_params = cpu_model.named_parameters(), gpu_params = gpu_model.named_parameters();
  ASSERT_EQ(cpu_params.size(), gpu_params.size()) << label;
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const auto& [name, p] = cpu_params[i];
    ASSERT_EQ(gpu_params[i].first, name) << label;
    const Tensor& g_cpu = p.grad();
    const Tensor& g_gpu = gpu_params[i].second.grad();
    ASSERT_EQ(g_cpu.defined(), g_gpu.defined()) << label << " " << name;
    if (!g_cpu.defined()) continue;  // a parameter the loss does not reach (e.g. an unused sink)
    EXPECT_TRUE(g_gpu.device().is_cuda()) << label << " " << name;
    expect_close(g_gpu, g_cpu, 1e-3, 1e-5, label + " grad " + name);
  }
}

}  // namespace attnlab::cuda_testing
