// Bad input at the command line: each case exits non-zero with one clear line
// on stderr naming the culprit, and leaves no partial output behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli_testing.h"
#include "core/device.h"
#include "train_fixture.h"

using namespace attnlab;
using namespace attnlab::test;
namespace fs = std::filesystem;

TEST(Cli, TrainsAndSamples) {
  test::TinyRun tiny;
  CliResult r = run_cli("train " + tiny_ini() + " -q" + args_of(tiny.overrides()) + " --train.steps=10", tiny.dir);
  ASSERT_EQ(r.code, 0) << r.err;
  std::string ckpt = tiny.dir.file("run") + "/ckpt.h5";
  r = run_cli("sample --ckpt " + ckpt + " --prompt 'the whale' --tokens 20 --seed 3", tiny.dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("the whale", 0), 0u) << r.out;
  EXPECT_GE(r.out.size(), std::string("the whale").size() + 1);
  r = run_cli("eval --ckpt " + ckpt + " --batches 2", tiny.dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("val_loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("perplexity"), std::string::npos) << r.out;
  // --device cpu is the default, spelled out.
  CliResult on_cpu = run_cli("eval --ckpt " + ckpt + " --batches 2 --device cpu", tiny.dir);
  ASSERT_EQ(on_cpu.code, 0) << on_cpu.err;
  EXPECT_EQ(on_cpu.out, r.out);
}

TEST(Cli, BadDevice) {
  test::TinyRun tiny;
  CliResult r = run_cli("train " + tiny_ini() + " -q" + args_of(tiny.overrides()) + " --train.steps=6", tiny.dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string ckpt = tiny.dir.file("run") + "/ckpt.h5";
  expect_one_line_error(run_cli("eval --ckpt " + ckpt + " --device gpu", tiny.dir), {"--device = gpu", "cpu, cuda"});
  expect_one_line_error(run_cli("sample --ckpt " + ckpt + " --device tpu:0", tiny.dir), {"--device = tpu:0"});
  if (!cuda_available()) {
    expect_one_line_error(run_cli("eval --ckpt " + ckpt + " --device cuda", tiny.dir), {"--device = cuda"});
    expect_one_line_error(run_cli("train " + tiny_ini() + args_of(tiny.overrides("gpu")) + " --train.device=cuda",
                                  tiny.dir),
                          {"train.device = cuda"});
    EXPECT_FALSE(fs::exists(tiny.dir.file("gpu")));
  }
}

TEST(Cli, UnknownKey) {
  test::TinyRun tiny;
  std::string ini = tiny.dir.file("bad.ini");
  std::ofstream(ini) << "[optim]\nlearning_rate = 0.1\n";
  expect_one_line_error(run_cli("train " + ini + args_of(tiny.overrides()), tiny.dir), {"bad.ini:2", "learning_rate"});
  EXPECT_FALSE(fs::exists(tiny.dir.file("run")));
}

TEST(Cli, BadValue) {
  test::TinyRun tiny;
  std::string ini = tiny.dir.file("bad.ini");
  std::ofstream(ini) << "[model]\nn_layer = two\n";
  expect_one_line_error(run_cli("train " + ini + args_of(tiny.overrides()), tiny.dir), {"bad.ini:2", "n_layer", "two"});
  expect_one_line_error(run_cli("train " + tiny_ini() + args_of(tiny.overrides()) + " --optim.lr=-1", tiny.dir),
                        {"optim.lr", "-1"});
  EXPECT_FALSE(fs::exists(tiny.dir.file("run")));
}

TEST(Cli, MissingFiles) {
  test::TinyRun tiny;
  expect_one_line_error(run_cli("train " + tiny.dir.file("nope.ini"), tiny.dir), {"nope.ini"});
  expect_one_line_error(
      run_cli("train " + tiny_ini() + args_of(tiny.overrides()) + " --data.train=" + tiny.dir.file("gone.h5"), tiny.dir),
      {"gone.h5"});
  EXPECT_FALSE(fs::exists(tiny.dir.file("run")));
  expect_one_line_error(run_cli("sample --ckpt " + tiny.dir.file("none.h5"), tiny.dir), {"none.h5"});
}

TEST(Cli, TruncatedShard) {
  test::TinyRun tiny;
  std::string bin = tiny.dir.file("cut.bin");
  std::vector<uint32_t> tokens(1000, 7);
  write_bin_shard(bin, tokens);
  fs::resize_file(bin, fs::file_size(bin) - 100);
  expect_one_line_error(run_cli("train " + tiny_ini() + args_of(tiny.overrides()) + " --data.train=" + bin, tiny.dir),
                        {"cut.bin"});
  EXPECT_FALSE(fs::exists(tiny.dir.file("run")));
}

TEST(Cli, CorruptedCheckpoint) {
  test::TinyRun tiny;
  std::string run = tiny.dir.file("run");
  fs::create_directories(run);
  std::ofstream(run + "/ckpt.h5") << "garbage, not HDF5";
  expect_one_line_error(run_cli("train --resume " + run, tiny.dir), {"ckpt.h5"});
  expect_one_line_error(run_cli("eval --ckpt " + run + "/ckpt.h5", tiny.dir), {"ckpt.h5"});
  EXPECT_FALSE(fs::exists(run + "/metrics.jsonl"));
}

TEST(Cli, UnknownCommandAndOption) {
  test::TinyRun tiny;
  EXPECT_NE(run_cli("fly", tiny.dir).code, 0);
  expect_one_line_error(run_cli("sample --ckpt x.h5 --tokenz 3", tiny.dir), {"tokenz"});
}

TEST(Cli, HelpListsEveryKey) {
  test::TinyRun tiny;
  CliResult r = run_cli("train --help", tiny.dir);
  EXPECT_EQ(r.code, 0);
  for (const char* key : {"n_layer", "rope_theta", "warmup_steps", "seq_len", "eval_every", "peak_flops"})
    EXPECT_NE(r.out.find(key), std::string::npos) << key;
}
