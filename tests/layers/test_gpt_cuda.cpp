// A tiny GPT's loss and every parameter gradient on the GPU equal the CPU's
// (f32, within rounding): the autograd path end to end over the CUDA kernels,
// with attention composed from matmul, masked_fill and softmax (impl =
// reference) and with the fused flash-attention kernels (impl = fused). Skips
// without a CUDA device.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "layers/gpt_cuda_testing.h"

using namespace attnlab;
using namespace attnlab::cuda_testing;

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
  expect_gpt_gpu_matches_cpu(tiny(gpt2_style, impl), 11, style);
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
