// The trainer's runtime choices: train.precision = bf16 (autograd/autocast.h)
// and train.device = cuda (skipped without a device).
#include <gtest/gtest.h>

#include <filesystem>

#include "core/cuda_testing.h"
#include "core/device.h"
#include "train/trainer.h"
#include "train_fixture.h"

using namespace attnlab;
using attnlab::test::losses;
using attnlab::test::TinyRun;

namespace {

std::vector<double> train_losses(const TinyRun& tiny, const std::vector<std::string>& extra, const std::string& run) {
  Trainer(tiny.config(extra, run), {.quiet = true}).run();
  return losses(tiny.dir.file(run));
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rel) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], rel * want[i]) << "step " << i + 1;
}

}  // namespace

TEST(MixedPrecision, Bf16TrainsLikeFp32) {
  TinyRun tiny;
  std::vector<double> fp32 = train_losses(tiny, {}, "fp32");
  std::vector<double> bf16 = train_losses(tiny, {"--train.precision=bf16"}, "bf16");
  EXPECT_NE(fp32, bf16) << "bf16 rounding changed nothing: is autocast on?";
  EXPECT_LT(bf16.back(), bf16.front() - 1.0);
  // Measured: the curves differ by about 1e-4 relative over these 30 steps.
  expect_close(bf16, fp32, 2e-3);
}

TEST(MixedPrecision, Bf16ResumeIsBitExact) {
  TinyRun tiny;
  test::expect_resume_is_bit_exact(tiny, {"--train.precision=bf16"});
}

TEST(MixedPrecision, CudaWithoutADeviceIsOneClearError) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  TinyRun tiny;
  EXPECT_ERROR_MENTIONS(Trainer(tiny.config({"--train.device=cuda"}, "gpu"), {.quiet = true}),
                        "train.device = cuda");
  EXPECT_FALSE(std::filesystem::exists(tiny.dir.file("gpu")));
}

TEST(TrainerCuda, TrainsLikeTheCpu) {
  SKIP_WITHOUT_CUDA();
  TinyRun tiny;
  std::vector<double> cpu = train_losses(tiny, {}, "cpu");
  std::vector<double> gpu = train_losses(tiny, {"--train.device=cuda"}, "gpu");
  // Different summation orders only; over 30 steps of Adam they stay within 1e-3.
  expect_close(gpu, cpu, 1e-3);
  std::vector<double> gpu_bf16 = train_losses(tiny, {"--train.device=cuda", "--train.precision=bf16"}, "gpu_bf16");
  expect_close(gpu_bf16, cpu, 0.02);  // loose: unmeasured on a GPU (the CPU emulation differs by ~1e-4)
}

TEST(TrainerCuda, ResumeIsBitExact) {
  SKIP_WITHOUT_CUDA();
  TinyRun tiny;
  test::expect_resume_is_bit_exact(tiny, {"--train.device=cuda", "--model.dropout=0.1"});
}
