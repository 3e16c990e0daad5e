#include <gtest/gtest.h>
#include <hdf5.h>

#include <array>
#include <filesystem>
#include <fstream>

#include "data/file_io.h"
#include "data/shards.h"
#include "test_util.h"

namespace attnlab {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::vector<uint32_t> ramp(size_t n, uint32_t mod) {
  std::vector<uint32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<uint32_t>((i * 7919) % mod);
  return t;
}

// The dtype HDF5 stores /tokens with: 2 or 4 bytes.
size_t h5_token_width(const std::string& path) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "tokens", H5P_DEFAULT);
  hid_t t = H5Dget_type(d);
  size_t w = H5Tget_size(t);
  H5Tclose(t);
  H5Dclose(d);
  H5Fclose(f);
  return w;
}

// A raw HDF5 file with one 1-D dataset of `type` named `name`.
void write_raw_h5(const std::string& path, const char* name, hid_t type, const void* data, hsize_t n) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t s = H5Screate_simple(1, &n, nullptr);
  hid_t d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(d);
  H5Sclose(s);
  H5Fclose(f);
}

void write_bin_header(const std::string& path, int32_t magic, int32_t version, int32_t count,
                      size_t token_bytes) {
  std::array<int32_t, 256> h{};
  h[0] = magic, h[1] = version, h[2] = count;
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(h.data()), sizeof h);
  std::string zeros(token_bytes, '\0');
  out.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
}

TEST(Shards, H5Uint16RoundTrip) {
  TempDir dir;
  TokenShard s{ramp(10001, 50257), "bpe:50257", 50257};
  const std::string path = dir.file("train.h5");
  write_shard(path, s);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(h5_token_width(path), 2u);
  TokenShard r = read_shard(path);
  EXPECT_EQ(r.tokens, s.tokens);
  EXPECT_EQ(r.tokenizer, "bpe:50257");
  EXPECT_EQ(r.vocab_size, 50257u);
}

TEST(Shards, H5Uint32RoundTrip) {
  TempDir dir;
  TokenShard s{ramp(5000, 100000), "bpe:100000", 100000};
  s.tokens.push_back(99999);
  const std::string path = dir.file("big.hdf5");
  write_shard(path, s);
  EXPECT_EQ(h5_token_width(path), 4u);
  TokenShard r = read_shard(path);
  EXPECT_EQ(r.tokens, s.tokens);
  EXPECT_EQ(r.tokenizer, "bpe:100000");
  EXPECT_EQ(r.vocab_size, 100000u);
}

TEST(Shards, H5EmptyAndOverwrite) {
  TempDir dir;
  const std::string path = dir.file("e.h5");
  write_shard(path, {{}, "byte", 256});
  EXPECT_TRUE(read_shard(path).tokens.empty());
  write_shard(path, {{1, 2, 3}, "byte", 256});
  EXPECT_EQ(read_shard(path).tokens, (std::vector<uint32_t>{1, 2, 3}));
}

TEST(Shards, BinRoundTrip) {
  TempDir dir;
  const std::string path = dir.file("val.bin");
  std::vector<uint32_t> t = ramp(7777, 65536);
  write_shard(path, {t, "byte", 256});
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(fs::file_size(path), 1024 + 2 * t.size());
  TokenShard r = read_shard(path);
  EXPECT_EQ(r.tokens, t);
  EXPECT_EQ(r.vocab_size, 0u);  // .bin does not record it
}

TEST(Shards, BinVersion2ForWideTokens) {
  TempDir dir;
  const std::string path = dir.file("wide.bin");
  std::vector<uint32_t> t = {0, 65536, 128255};
  write_bin_shard(path, t);
  EXPECT_EQ(fs::file_size(path), 1024 + 4 * t.size());
  EXPECT_EQ(read_bin_shard(path).tokens, t);
}

TEST(Shards, MissingFiles) {
  TempDir dir;
  EXPECT_ERROR_MENTIONS(read_shard(dir.file("missing.h5")), "missing.h5", "no such file");
  EXPECT_ERROR_MENTIONS(read_shard(dir.file("missing.bin")), "missing.bin", "no such file");
}

TEST(Shards, UnknownExtension) {
  TempDir dir;
  EXPECT_ERROR_MENTIONS(read_shard(dir.file("x.npy")), "x.npy", ".npy");
  EXPECT_ERROR_MENTIONS(write_shard(dir.file("x.txt"), {}), "x.txt");
}

TEST(Shards, TruncatedBin) {
  TempDir dir;
  const std::string path = dir.file("trunc.bin");
  write_bin_header(path, kBinMagic, 1, 100, 150);
  EXPECT_ERROR_MENTIONS(read_shard(path), "trunc.bin", "truncated", "100 tokens");
  write_file_atomic(path, "short");
  EXPECT_ERROR_MENTIONS(read_shard(path), "trunc.bin", "truncated", "header");
  write_bin_header(path, kBinMagic, 1, 10, 30);
  EXPECT_ERROR_MENTIONS(read_shard(path), "trunc.bin", "10 bytes after");
}

TEST(Shards, BadMagicAndVersion) {
  TempDir dir;
  const std::string path = dir.file("bad.bin");
  write_bin_header(path, 12345, 1, 0, 0);
  EXPECT_ERROR_MENTIONS(read_shard(path), "bad.bin", "magic", "12345");
  write_bin_header(path, kBinMagic, 7, 0, 0);
  EXPECT_ERROR_MENTIONS(read_shard(path), "bad.bin", "version 7");
}

TEST(Shards, H5WithoutTokens) {
  TempDir dir;
  const std::string path = dir.file("other.h5");
  const float x[3] = {1, 2, 3};
  write_raw_h5(path, "weights", H5T_NATIVE_FLOAT, x, 3);
  EXPECT_ERROR_MENTIONS(read_shard(path), "other.h5", "/tokens");
}

TEST(Shards, H5WrongDtype) {
  TempDir dir;
  const std::string path = dir.file("float.h5");
  const float x[3] = {1, 2, 3};
  write_raw_h5(path, "tokens", H5T_NATIVE_FLOAT, x, 3);
  EXPECT_ERROR_MENTIONS(read_shard(path), "float.h5", "float32", "uint16 or uint32");
  const int32_t y[3] = {1, 2, 3};
  write_raw_h5(path, "tokens", H5T_STD_I32LE, y, 3);
  EXPECT_ERROR_MENTIONS(read_shard(path), "float.h5", "int32");
}

TEST(Shards, H5WithoutAttributesStillReads) {
  TempDir dir;
  const std::string path = dir.file("plain.h5");
  const uint16_t x[3] = {5, 6, 7};
  write_raw_h5(path, "tokens", H5T_STD_U16LE, x, 3);
  TokenShard r = read_shard(path);
  EXPECT_EQ(r.tokens, (std::vector<uint32_t>{5, 6, 7}));
  EXPECT_EQ(r.tokenizer, "");
  EXPECT_EQ(r.vocab_size, 0u);
}

TEST(Shards, H5FixedLengthStringAttribute) {
  // What numpy bytes written through h5py give: a fixed-size ASCII string.
  TempDir dir;
  const std::string path = dir.file("fixed.h5");
  const uint16_t x[2] = {1, 2};
  write_raw_h5(path, "tokens", H5T_STD_U16LE, x, 2);
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "tokens", H5P_DEFAULT);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, 4);
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(d, "tokenizer", t, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, "byte");
  H5Aclose(a), H5Sclose(sp), H5Tclose(t), H5Dclose(d), H5Fclose(f);
  EXPECT_EQ(read_shard(path).tokenizer, "byte");
}

TEST(Shards, NotAnHdf5File) {
  TempDir dir;
  const std::string path = dir.file("text.h5");
  write_file_atomic(path, "just some text, not HDF5");
  EXPECT_ERROR_MENTIONS(read_shard(path), "text.h5", "not an HDF5 file");
}

TEST(Shards, TokenOutsideVocab) {
  TempDir dir;
  EXPECT_ERROR_MENTIONS(write_shard(dir.file("v.h5"), {{1, 300}, "byte", 256}), "v.h5", "300", "256");
  EXPECT_FALSE(fs::exists(dir.file("v.h5")));
}

TEST(Shards, UnwritableDirectoryLeavesNothing) {
  TempDir dir;
  const std::string h5 = dir.file("no_such_dir/t.h5");
  const std::string bin = dir.file("no_such_dir/t.bin");
  EXPECT_ERROR_MENTIONS(write_shard(h5, {{1}, "byte", 256}), "t.h5", "cannot create");
  EXPECT_ERROR_MENTIONS(write_shard(bin, {{1}, "byte", 256}), "t.bin", "cannot create");
  EXPECT_FALSE(fs::exists(dir.file("no_such_dir")));
}

TEST(Shards, FailedWriteKeepsTheOldFile) {
  TempDir dir;
  const std::string path = dir.file("keep.h5");
  write_shard(path, {{1, 2}, "byte", 256});
  EXPECT_ANY_THROW(write_shard(path, {{1, 999}, "byte", 256}));
  EXPECT_EQ(read_shard(path).tokens, (std::vector<uint32_t>{1, 2}));
}

}  // namespace
}  // namespace attnlab
