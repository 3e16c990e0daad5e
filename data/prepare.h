#pragma once
#include <cstdint>
#include <string>

namespace attnlab {

struct PrepareResult {
  std::string tokenizer;  // name recorded in the shards, e.g. "bpe:1024"
  uint32_t vocab_size = 0;
  uint64_t input_bytes = 0;
  uint64_t train_tokens = 0;
  uint64_t val_tokens = 0;
  std::string train_path, val_path, tokenizer_path;
  double tokenizer_seconds = 0;  // BPE training
  double encode_seconds = 0;

  // A few lines for the CLI to print.
  std::string summary() const;
};

// Tokenizes a text file into out_dir/train.<ext>, out_dir/val.<ext> and
// out_dir/tokenizer.json. The val split is the last `val_fraction` of the
// text (moved forward to a UTF-8 character boundary). tokenizer_spec:
//   "byte"     the byte tokenizer;
//   "bpe:N"    byte-level BPE with vocab N (>= 257), trained on the train split;
//   otherwise  an existing tokenizer.json (or a directory holding one).
// format: "h5" (also "hdf5") or "bin" (llm.c). Errors name the culprit.
PrepareResult prepare_dataset(const std::string& input_file, const std::string& tokenizer_spec,
                              const std::string& out_dir, double val_fraction = 0.1,
                              const std::string& format = "h5");

}  // namespace attnlab
