#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "train/checkpoint.h"

using namespace attnlab;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("attnlab_ckpt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

Checkpoint sample_checkpoint() {
  Generator gen(7);
  Checkpoint c;
  c.params["wte.weight"] = Tensor::empty({5, 3}).normal_(gen);
  c.params["blocks.0.attn.wq.weight"] = Tensor::empty({3, 3}).normal_(gen);
  c.params["ln_f.weight"] = Tensor::ones({3});
  c.optim["wte.weight"]["exp_avg"] = Tensor::empty({5, 3}).normal_(gen);
  c.optim["wte.weight"]["step"] = Tensor::from<int64_t>({12});
  c.meta["step"] = 12;
  c.meta["data_offset"] = 1234567890123;
  c.config = "[model]\nn_layer = 1\n";
  return c;
}

}  // namespace

TEST(Checkpoint, RoundTrip) {
  fs::path dir = fresh_dir("roundtrip");
  std::string path = (dir / "ckpt.h5").string();
  Checkpoint c = sample_checkpoint();
  save_checkpoint(path, c);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  Checkpoint r = load_checkpoint(path);
  ASSERT_EQ(r.params.size(), c.params.size());
  for (auto& [name, t] : c.params) {
    ASSERT_TRUE(r.params.count(name)) << name;
    EXPECT_EQ(r.params[name].shape(), t.shape());
    EXPECT_EQ(r.params[name].to_vector<float>(), t.to_vector<float>()) << name;
  }
  EXPECT_EQ(r.optim["wte.weight"]["exp_avg"].to_vector<float>(), c.optim["wte.weight"]["exp_avg"].to_vector<float>());
  EXPECT_EQ(r.optim["wte.weight"]["step"].to_vector<int64_t>(), std::vector<int64_t>{12});
  EXPECT_EQ(r.meta, c.meta);
  EXPECT_EQ(r.config, c.config);
  Checkpoint no_optim = load_checkpoint(path, false);
  EXPECT_TRUE(no_optim.optim.empty());
  fs::remove_all(dir);
}

TEST(Checkpoint, OverwriteIsAtomic) {
  fs::path dir = fresh_dir("overwrite");
  std::string path = (dir / "ckpt.h5").string();
  Checkpoint c = sample_checkpoint();
  save_checkpoint(path, c);
  c.meta["step"] = 99;
  save_checkpoint(path, c);
  EXPECT_EQ(load_checkpoint(path).meta["step"], 99);
  fs::remove_all(dir);
}

TEST(Checkpoint, BadFilesGiveOneClearError) {
  fs::path dir = fresh_dir("bad");
  auto expect_error = [](const std::string& path, const std::string& what) {
    try {
      load_checkpoint(path);
      FAIL() << "no error for " << path;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  expect_error((dir / "missing.h5").string(), "no such file");
  std::string garbage = (dir / "garbage.h5").string();
  std::ofstream(garbage) << "this is not hdf5";
  expect_error(garbage, "not an HDF5 file");
  // A checkpoint cut in half.
  std::string good = (dir / "good.h5").string(), torn = (dir / "torn.h5").string();
  save_checkpoint(good, sample_checkpoint());
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(torn, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  try {
    load_checkpoint(torn);
    FAIL() << "no error for a torn checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(torn), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
