#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "data/tokenizer.h"

namespace attnlab {

// Byte-level BPE. Ids 0..255 are the bytes; merge i creates id 256 + i from
// a pair of earlier ids. Text is first split by pretokenize() and merges apply
// within each chunk, lowest rank (earliest learned) first.
class BpeTokenizer final : public Tokenizer {
 public:
  using Merge = std::pair<uint32_t, uint32_t>;

  // Throws attnlab::Error when a merge refers to an id not yet defined or repeats a pair.
  explicit BpeTokenizer(std::vector<Merge> merges);

  std::string name() const override;  // "bpe:<vocab_size>"
  uint32_t vocab_size() const override { return static_cast<uint32_t>(bytes_.size()); }
  std::vector<uint32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<uint32_t>& ids) const override;
  std::string token_bytes(uint32_t id) const override;
  Json to_json() const override;

  const std::vector<Merge>& merges() const { return merges_; }
  // Encodes one pretokenized chunk.
  void encode_chunk(std::string_view chunk, std::vector<uint32_t>& out) const;

  static std::unique_ptr<BpeTokenizer> from_json(const Json& j, const std::string& source);

 private:
  std::vector<Merge> merges_;
  std::unordered_map<uint64_t, uint32_t> rank_;  // packed pair -> merge index
  std::vector<std::string> bytes_;               // id -> bytes
};

// Learns merges on `corpus` until the vocabulary has `vocab_size` ids (256
// bytes + merges) or no pair occurs any more; the result's vocab_size() says
// which. Ties between equally frequent pairs go to the smaller (left, right)
// ids, so training is deterministic. Throws for vocab_size < 257.
std::unique_ptr<BpeTokenizer> train_bpe(std::string_view corpus, uint32_t vocab_size);

}  // namespace attnlab
