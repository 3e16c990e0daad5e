// The attention keys of [attn.NAME] and [model]: each reaches AttnOptions /
// GPTConfig, bad values and combinations get one clear error naming the key,
// keys with no effect are errors, and every example config builds a model.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "layers/attention/registry.h"
#include "layers/gpt.h"
#include "test_util.h"
#include "train/ablate.h"
#include "train/config.h"
#include "train/config_schema.h"
#include "train/model_config.h"

using namespace attnlab;
using attnlab::test::source_dir;

namespace {

namespace fs = std::filesystem;

Config text(const std::string& ini, const std::vector<std::string>& overrides = {}) {
  return parse_config_text(
      "[model]\nn_layer = 2\nn_head = 4\nd_model = 32\nblock_size = 16\n" + ini + "\n[data]\nseq_len = 16\n",
      "test.ini", overrides);
}

GPTConfig model(const std::string& ini) { return gpt_config_from(text(ini)); }

}  // namespace

TEST(AttentionConfig, EveryKeyReachesTheOptions) {
  GPTConfig g = model(
      "layers = a, b\naux_loss_weight = 0.25\npos_emb = sinusoidal\n"
      "[attn.a]\nn_head = 8\nn_q_head = 4\nn_kv_head = 2\npos = rope\nrope_theta = 500\nrope_fraction = 0.5\n"
      "rope_scale = 4\nscore = softplus\nsoftcap = 20\nscale = 0.3\nlength_scale = true\ntrain_len = 64\n"
      "mask = sinks\nwindow = 8\nsink_tokens = 2\nsink_kv = true\nqk_norm = l2\nout_gate = true\nconv = 3\n"
      "[attn.b]\nkind = diff\npos = alibi\nalibi_scale = 2\nmask = fixed\nstride = 4\nsummary = 2\n"
      "diff_lambda_init = 0.5\n");
  EXPECT_EQ(g.pos_emb, PosEmbKind::sinusoidal);
  EXPECT_EQ(g.aux_loss_weight, 0.25);
  AttnOptions a = g.attn_options(0), b = g.attn_options(1);
  EXPECT_EQ(a.n_head, 4);  // n_q_head query heads ...
  EXPECT_EQ(a.d_head, 4);  // ... of width d_model / n_head = 32 / 8
  EXPECT_EQ(a.n_kv_head, 2);
  EXPECT_EQ(a.rope_theta, 500);
  EXPECT_EQ(a.rope_fraction, 0.5);
  EXPECT_EQ(a.rope_scale, 4);
  EXPECT_EQ(a.score, ScoreKind::softplus);
  EXPECT_EQ(a.softcap, 20);
  EXPECT_EQ(a.scale, 0.3);
  EXPECT_TRUE(a.length_scale);
  EXPECT_EQ(a.train_len, 64);
  EXPECT_EQ(a.mask, MaskKind::sinks);
  EXPECT_EQ(a.window, 8);
  EXPECT_EQ(a.sink_tokens, 2);
  EXPECT_TRUE(a.sink_kv);
  EXPECT_EQ(a.qk_norm, QKNormKind::l2);
  EXPECT_TRUE(a.out_gate);
  EXPECT_EQ(a.conv, 3);
  EXPECT_EQ(b.kind, "diff");
  EXPECT_EQ(b.pos, PosKind::alibi);
  EXPECT_EQ(b.alibi_scale, 2);
  EXPECT_EQ(b.mask, MaskKind::fixed);
  EXPECT_EQ(b.stride, 4);
  EXPECT_EQ(b.summary, 2);
  EXPECT_EQ(b.diff_lambda_init, 0.5);
  EXPECT_EQ(b.train_len, 16);  // train_len = 0: model.block_size
  EXPECT_EQ(b.layer, 1);
  GPT m(g, 1);
  EXPECT_EQ(m.forward(Tensor::from(std::vector<int64_t>{1, 2, 3, 4, 5}, {1, 5})).shape(), (Shape{1, 5, 256}));

  g = model("[attn.default]\nkind = moh\nmoh_shared = 1\nmoh_topk = 2\nmask = moba\nmoba_block = 4\nmoba_topk = 2\n");
  EXPECT_EQ(g.attn_options(0).moh_shared, 1);
  EXPECT_EQ(g.attn_options(0).moh_topk, 2);
  EXPECT_EQ(g.attn_options(0).moba_block, 4);
  EXPECT_EQ(g.attn_options(0).moba_topk, 2);
  g = model("sink_token = true\n[attn.default]\nmask = fixed\nstride = 4\nsparse_heads = factorized\nscore = lssar\n"
            "reweight_power = 4\n");
  EXPECT_TRUE(g.sink_token);
  EXPECT_EQ(g.attn_options(0).sparse_heads, SparseHeads::factorized);
  EXPECT_EQ(g.attn_options(0).score, ScoreKind::lssar);
  EXPECT_EQ(g.attn_options(0).reweight_power, 4);
  EXPECT_EQ(GPT(g, 1).parameter("sink_token").shape(), (Shape{1, 32}));
  EXPECT_FALSE(model("").sink_token);
  EXPECT_EQ(model("").attn_options(0).reweight_power, 15);  // LSSAR's default p
  g = model("[attn.default]\nkind = linear\nfeature_map = cosine\nnormalize = cottention\n");
  EXPECT_EQ(g.attn_options(0).normalize, LinearNorm::cottention);
  g = model("[attn.default]\nkind = linear\nfeature_map = hedgehog\n");
  EXPECT_EQ(g.attn_options(0).feature_map, FeatureMap::hedgehog);
  g = model("[attn.default]\nmask = strided\nstride = 3\nscore = sigmoid\nqk_norm = layer\n");
  EXPECT_EQ(g.attn_options(0).mask, MaskKind::strided);
  EXPECT_EQ(g.attn_options(0).score, ScoreKind::sigmoid);
  EXPECT_EQ(g.attn_options(0).qk_norm, QKNormKind::layer);
}

TEST(AttentionConfig, BadValuesAndCombinations) {
  auto mentions = [](const std::string& ini, std::vector<std::string> parts) {
    std::string e = test::error_of([&] { model(ini); });
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    for (auto& p : parts) EXPECT_NE(e.find(p), std::string::npos) << "'" << e << "' lacks '" << p << "'";
  };
  mentions("[attn.x]\nmask = sinks\n", {"attn.x.mask = sinks", "window >= 1"});
  mentions("[attn.x]\nmask = strided\n", {"attn.x.mask = strided", "stride >= 1"});
  mentions("[attn.x]\nmask = fixed\nstride = 2\nsummary = 3\n", {"attn.x.summary = 3", "summary <= stride"});
  mentions("[attn.x]\nmask = moba\nmoba_topk = 2\n", {"attn.x.moba_block", "moba_block >= 1"});
  mentions("[attn.x]\nscore = relu2\n", {"attn.x.score = relu2", "softmax, sigmoid, relu, softplus"});
  mentions("[attn.x]\npos = xpos\n", {"attn.x.pos = xpos", "rope, nope, alibi"});
  mentions("[attn.x]\nqk_norm = cosine\n", {"attn.x.qk_norm", "none, rms, l2, layer"});
  mentions("[attn.x]\nconv = 1\n", {"attn.x.conv = 1", "2, 3 or 4"});
  mentions("[attn.x]\nconv = 5\n", {"attn.x.conv = 5", "[0, 4]"});
  mentions("[attn.x]\nrope_scale = 0\n", {"attn.x.rope_scale = 0", "> 0"});
  mentions("[attn.x]\nn_q_head = 6\n", {"attn.x.n_q_head = 6", "exceed"});
  mentions("[attn.x]\nn_q_head = 2\nn_kv_head = 4\n", {"attn.x.n_kv_head = 4", "must divide its 2 query heads"});
  mentions("[attn.x]\nkind = diff\nn_kv_head = 1\n", {"attn.x.n_kv_head = 1", "even"});
  mentions("[attn.x]\nkind = diff\nscore = sigmoid\n", {"attn.x.score = sigmoid", "not implemented"});
  mentions("[attn.x]\nkind = diff\nsink_kv = true\n", {"attn.x.sink_kv", "not implemented"});
  mentions("[attn.x]\nkind = diff\ndiff_lambda_init = -0.5\n", {"attn.x.diff_lambda_init = -0.5", "-1"});
  mentions("[attn.x]\nkind = moh\nmoh_shared = 5\n", {"attn.x.moh_shared = 5", "exceeds"});
  mentions("[attn.x]\nkind = moh\nmoh_shared = 2\nmoh_topk = 3\n", {"attn.x.moh_topk = 3", "2 routed heads"});
  mentions("pos_emb = rotary\n", {"model.pos_emb = rotary", "none, learned, sinusoidal"});
  mentions("aux_loss_weight = -1\n", {"model.aux_loss_weight = -1", ">= 0"});
  mentions("[attn.x]\nscore = lssar\nreweight_power = 0\n", {"attn.x.reweight_power = 0", "> 0"});
  mentions("[attn.x]\nmask = strided\nstride = 2\nsparse_heads = split\n", {"attn.x.sparse_heads = split", "merged"});
  mentions("layers = x\n[attn.x]\nkind = diff\nmask = strided\nstride = 2\nsparse_heads = factorized\n",
           {"[attn.x]", "sparse_heads = factorized", "kind = diff"});
  mentions("layers = x\n[attn.x]\nkind = linear\nfeature_map = elu1\nnormalize = cottention\n",
           {"[attn.x]", "cottention", "feature_map = cosine"});
  mentions("[attn.x]\nkind = linear\nfeature_map = porcupine\n", {"attn.x.feature_map = porcupine", "hedgehog"});
  mentions("sink_token = maybe\n", {"model.sink_token = maybe"});
}

TEST(AttentionConfig, KeysWithoutEffectAreErrors) {
  auto mentions = [](const std::string& ini, const std::string& key) {
    std::string e = test::error_of([&] { model("layers = x\n" + ini); });
    EXPECT_NE(e.find(key), std::string::npos) << e;
    EXPECT_NE(e.find("has no effect"), std::string::npos) << e;
  };
  mentions("[attn.x]\nwindow = 4\n", "attn.x.window = 4");
  mentions("[attn.x]\npos = nope\nrope_theta = 500\n", "attn.x.rope_theta = 500");
  mentions("[attn.x]\nalibi_scale = 2\n", "attn.x.alibi_scale = 2");
  mentions("[attn.x]\nmask = window\nwindow = 4\nsink_tokens = 2\n", "attn.x.sink_tokens = 2");
  mentions("[attn.x]\nstride = 4\n", "attn.x.stride = 4");
  mentions("[attn.x]\nmoba_topk = 2\n", "attn.x.moba_topk = 2");
  mentions("[attn.x]\ndiff_lambda_init = 0.3\n", "attn.x.diff_lambda_init = 0.3");
  mentions("[attn.x]\nmoh_shared = 1\n", "attn.x.moh_shared = 1");
  mentions("[attn.x]\nsparse_heads = factorized\n", "attn.x.sparse_heads = factorized");
  mentions("[attn.x]\nscore = softplus\nreweight_power = 3\n", "attn.x.reweight_power = 3");
}

TEST(AttentionConfig, UnbuiltKindsAreClearErrors) {
  // Every kind the schema accepts either builds or says it is not implemented.
  const auto* f = config::attn_section().find("kind");
  ASSERT_NE(f, nullptr);
  std::string choices(f->check.choices);
  std::vector<std::string> known = attention_kinds();
  for (size_t start = 0; start <= choices.size();) {
    size_t bar = choices.find('|', start);
    std::string kind = choices.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
    start = bar == std::string::npos ? choices.size() + 1 : bar + 1;
    if (std::find(known.begin(), known.end(), kind) != known.end()) continue;
    std::string e = test::error_of([&] { model("layers = x\n[attn.x]\nkind = " + kind + "\n"); });
    EXPECT_NE(e.find("attn.x.kind = " + kind + ": not implemented"), std::string::npos) << e;
  }
}

TEST(AttentionConfig, ExampleConfigsBuildTheirModels) {
  int n = 0;
  for (const auto& dir : {source_dir() / "configs", source_dir() / "configs" / "examples"})
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().extension() != ".ini") continue;
      Config c = load_config(entry.path());
      GPTConfig g;
      ASSERT_NO_THROW(g = gpt_config_from(c)) << entry.path();
      GPT m(g, 1);
      EXPECT_EQ(m.forward(Tensor::from(std::vector<int64_t>{1, 2, 3}, {1, 3})).shape(), (Shape{1, 3, 256}))
          << entry.path();
      ++n;
    }
  EXPECT_GE(n, 6);
  // The RoPE/NoPE hybrid is four layers in a cycle.
  GPTConfig h = gpt_config_from(load_config(source_dir() / "configs" / "examples" / "rnope_hybrid.ini"));
  for (int64_t i = 0; i < h.n_layer; ++i) {
    AttnOptions o = h.attn_options(i);
    EXPECT_EQ(o.pos, i % 4 == 3 ? PosKind::nope : PosKind::rope) << i;
    EXPECT_EQ(o.mask, i % 4 == 3 ? MaskKind::causal : MaskKind::window) << i;
  }
}

TEST(AttentionConfig, AblationVariantsBuildTheirModels) {
  // load_ablation checks each variant's config; every one must also make a model.
  int n = 0;
  for (const auto& entry : fs::directory_iterator(source_dir() / "configs" / "ablations")) {
    if (entry.path().extension() != ".ini") continue;
    AblationSpec spec = load_ablation(entry.path().string());
    for (const auto& v : spec.variants) {
      std::vector<std::string> o = spec.common;
      o.insert(o.end(), v.overrides.begin(), v.overrides.end());
      EXPECT_NO_THROW(gpt_config_from(load_config(spec.base, o))) << entry.path() << " variant " << v.name;
      ++n;
    }
  }
  EXPECT_GE(n, 20);
}

TEST(AttentionConfig, Gpt2SmallBenchConfigHasGpt2sParameterCount) {
  // configs/bench/gpt2_124m.ini is GPT-2 small with the vocabulary padded to 50304:
  // 124,475,904 parameters (wte 50304x768 tied, wpe 1024x768, 12 blocks of 7,087,872, ln_f).
  Config c = load_config(source_dir() / "configs" / "bench" / "gpt2_124m.ini");
  EXPECT_EQ(c.train.device, "cuda");
  EXPECT_EQ(c.train.precision, "bf16");
  GPT m(gpt_config_from(c), 1);
  EXPECT_EQ(m.num_parameters(), 124475904);
}
