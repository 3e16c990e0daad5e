#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/json.h"

namespace attnlab {

// Text <-> token ids. Every tokenizer is byte-level: decode(encode(s)) == s for
// any bytes, UTF-8 or not. Implementations are immutable after construction,
// so one instance may be shared between threads.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // "byte" or "bpe:N"; what shards record as their tokenizer.
  virtual std::string name() const = 0;
  virtual uint32_t vocab_size() const = 0;
  virtual std::vector<uint32_t> encode(std::string_view text) const = 0;
  // Throws attnlab::Error for an id >= vocab_size().
  virtual std::string decode(const std::vector<uint32_t>& ids) const = 0;
  // The bytes of one token (may be part of a UTF-8 character).
  virtual std::string token_bytes(uint32_t id) const = 0;

  // The JSON that load_tokenizer reads back: {"type": "byte"} or {"type": "bpe", ...}.
  virtual Json to_json() const = 0;
  // Writes to_json() to `path` (atomically).
  void save(const std::string& path) const;
};

class ByteTokenizer final : public Tokenizer {
 public:
  std::string name() const override { return "byte"; }
  uint32_t vocab_size() const override { return 256; }
  std::vector<uint32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<uint32_t>& ids) const override;
  std::string token_bytes(uint32_t id) const override;
  Json to_json() const override;
};

// "byte" gives the byte tokenizer; a directory loads DIR/tokenizer.json; any
// other string is a tokenizer JSON file. Errors name the spec or file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path_or_spec);

// Builds a tokenizer from its JSON; `source` names the file in errors.
std::unique_ptr<Tokenizer> tokenizer_from_json(const Json& j, const std::string& source);

}  // namespace attnlab
