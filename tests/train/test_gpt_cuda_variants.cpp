// Every attention variant of the shipped ablations on the GPU against the CPU:
// the model each variant trains, its loss and every gradient within f32
// rounding. The "parity for every attention variant", through the
// same configs users run. Skips without a CUDA device.
#include <gtest/gtest.h>

#include <filesystem>

#include "layers/gpt_cuda_testing.h"
#include "test_util.h"
#include "train/ablate.h"
#include "train/config.h"
#include "train/model_config.h"

using namespace attnlab;

TEST(GPTCudaVariants, EveryAblationVariantMatchesCpu) {
  SKIP_WITHOUT_CUDA();
  namespace fs = std::filesystem;
  int n = 0;
  for (const auto& entry : fs::directory_iterator(test::source_dir() / "configs" / "ablations")) {
    if (entry.path().extension() != ".ini") continue;
    AblationSpec spec = load_ablation(entry.path().string());
    for (const auto& v : spec.variants) {
      std::vector<std::string> o = spec.common;
      o.insert(o.end(), v.overrides.begin(), v.overrides.end());
      GPTConfig cfg = gpt_config_from(load_config(spec.base, o));
      cuda_testing::expect_gpt_gpu_matches_cpu(cfg, 40, entry.path().filename().string() + " " + v.name);
      ++n;
    }
  }
  EXPECT_GE(n, 20);
}
