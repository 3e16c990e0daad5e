#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab {

// A shard's tokens and what produced them. Both fields are empty / 0 when the
// format does not record them (llm.c .bin files).
struct TokenShard {
  std::vector<uint32_t> tokens;
  std::string tokenizer;    // tokenizer name or spec, e.g. "byte", "bpe:1024"
  uint32_t vocab_size = 0;  // 0 = unknown
};

// HDF5: dataset /tokens (1-D, uint16 when vocab_size <= 65536, else uint32)
// with attributes `tokenizer` (string) and `vocab_size` (int64).
void write_h5_shard(const std::string& path, const TokenShard& shard);
TokenShard read_h5_shard(const std::string& path);

// llm.c: a header of 256 int32 (magic 20240520, version, token count), then
// the tokens: version 1 is uint16 (GPT-2), version 2 uint32 (llm.c's LLaMA-3).
// Writing picks version 1 unless a token is >= 65536.
inline constexpr int32_t kBinMagic = 20240520;
void write_bin_shard(const std::string& path, const std::vector<uint32_t>& tokens);
TokenShard read_bin_shard(const std::string& path);

// By extension: .h5 / .hdf5 or .bin. Writes are atomic (path.tmp, then rename).
// Every failure is an attnlab::Error naming the file and what is wrong.
void write_shard(const std::string& path, const TokenShard& shard);
TokenShard read_shard(const std::string& path);

}  // namespace attnlab
