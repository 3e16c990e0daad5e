#include <gtest/gtest.h>

#include <filesystem>

#include "data/file_io.h"
#include "data/prepare.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace attnlab {
namespace {

namespace fs = std::filesystem;
using test::sample_text;
using test::TempDir;

TEST(Prepare, ByteH5SplitsTheTail) {
  TempDir dir;
  const std::string text = sample_text(3000, 1);
  write_file_atomic(dir.file("in.txt"), text);
  PrepareResult r = prepare_dataset(dir.file("in.txt"), "byte", dir.file("out"));
  EXPECT_EQ(r.tokenizer, "byte");
  EXPECT_EQ(r.vocab_size, 256u);
  EXPECT_EQ(r.train_tokens + r.val_tokens, text.size());
  EXPECT_NEAR(static_cast<double>(r.val_tokens), 0.1 * static_cast<double>(text.size()), 4.0);
  EXPECT_EQ(r.train_path, dir.file("out/train.h5"));
  TokenShard train = read_shard(dir.file("out/train.h5"));
  TokenShard val = read_shard(dir.file("out/val.h5"));
  EXPECT_EQ(train.tokenizer, "byte");
  EXPECT_EQ(train.vocab_size, 256u);
  auto tok = load_tokenizer(dir.file("out/tokenizer.json"));
  EXPECT_EQ(tok->name(), "byte");
  // The val split is the end of the text.
  EXPECT_EQ(tok->decode(train.tokens) + tok->decode(val.tokens), text);
  EXPECT_EQ(text.substr(text.size() - r.val_tokens), tok->decode(val.tokens));
  EXPECT_FALSE(r.summary().empty());
}

TEST(Prepare, BpeBinWithTokenizerFile) {
  TempDir dir;
  const std::string text = sample_text(6000, 2);
  write_file_atomic(dir.file("in.txt"), text);
  PrepareResult r = prepare_dataset(dir.file("in.txt"), "bpe:300", dir.file("out"), 0.2, "bin");
  EXPECT_EQ(r.tokenizer, "bpe:300");
  EXPECT_LT(r.train_tokens + r.val_tokens, text.size() / 2);
  auto tok = load_tokenizer(dir.file("out/tokenizer.json"));
  EXPECT_EQ(tok->name(), "bpe:300");
  std::string back = tok->decode(read_shard(dir.file("out/train.bin")).tokens) +
                     tok->decode(read_shard(dir.file("out/val.bin")).tokens);
  EXPECT_EQ(back, text);
  // An existing tokenizer can be reused for another corpus.
  PrepareResult again = prepare_dataset(dir.file("in.txt"), dir.file("out/tokenizer.json"), dir.file("out2"));
  EXPECT_EQ(again.tokenizer, "bpe:300");
  EXPECT_EQ(tok->decode(read_shard(dir.file("out2/train.h5")).tokens) +
                tok->decode(read_shard(dir.file("out2/val.h5")).tokens),
            text);
}

TEST(Prepare, SplitRespectsUtf8) {
  TempDir dir;
  const std::string text = "ééééééééé";  // 18 bytes of 2-byte characters
  write_file_atomic(dir.file("in.txt"), text);
  PrepareResult r = prepare_dataset(dir.file("in.txt"), "byte", dir.file("out"), 0.25);
  EXPECT_EQ(r.val_tokens % 2, 0u);
  EXPECT_GT(r.val_tokens, 0u);
}

TEST(Prepare, ErrorsNameTheCulprit) {
  TempDir dir;
  write_file_atomic(dir.file("in.txt"), sample_text(100, 3));
  const std::string in = dir.file("in.txt"), out = dir.file("out");
  EXPECT_ERROR_MENTIONS(prepare_dataset(dir.file("missing.txt"), "byte", out), "missing.txt", "no such file");
  EXPECT_ERROR_MENTIONS(prepare_dataset(in, "bpe:abc", out), "bpe:abc");
  EXPECT_ERROR_MENTIONS(prepare_dataset(in, "bpe:", out), "\"bpe:\"");
  EXPECT_ERROR_MENTIONS(prepare_dataset(in, "bpe:100", out), "bpe:100", "257");
  EXPECT_ERROR_MENTIONS(prepare_dataset(in, "wordpiece", out), "wordpiece");
  EXPECT_ERROR_MENTIONS(prepare_dataset(in, "byte", out, 1.5), "val_fraction", "1.5");
  EXPECT_ERROR_MENTIONS(prepare_dataset(in, "byte", out, 0.1, "parquet"), "parquet");
  // The output "directory" lies under a regular file.
  EXPECT_ERROR_MENTIONS(prepare_dataset(in, "byte", dir.file("in.txt/sub")), "in.txt/sub", "output directory");
  write_file_atomic(dir.file("empty.txt"), "");
  EXPECT_ERROR_MENTIONS(prepare_dataset(dir.file("empty.txt"), "byte", out), "empty.txt", "empty");
  EXPECT_FALSE(fs::exists(out + "/train.h5"));
}

}  // namespace
}  // namespace attnlab
