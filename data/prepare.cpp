#include "data/prepare.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "data/bpe.h"
#include "data/file_io.h"
#include "data/shards.h"
#include "data/tokenizer.h"

namespace attnlab {

namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The vocab size of a "bpe:N" spec; throws naming the spec.
uint32_t parse_bpe_spec(const std::string& spec) {
  const std::string n = spec.substr(4);
  const auto bad = [&](const char* why) {
    return Error(detail::cat("tokenizer spec \"", spec, "\": ", why));
  };
  if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string::npos)
    throw bad("N in bpe:N must be a whole number, e.g. bpe:1024");
  const uint64_t v = std::stoull(n);
  if (v < 257) throw bad("vocab size must be at least 257 (256 bytes + 1 merge)");
  if (v > (1u << 24)) throw bad("vocab size must be at most 16777216");
  return static_cast<uint32_t>(v);
}

}  // namespace

std::string PrepareResult::summary() const {
  return detail::cat("tokenizer ", tokenizer, " (vocab ", vocab_size, ")", tokenizer_path.empty() ? "" : " -> ",
                     tokenizer_path, "\ntrain: ", train_tokens, " tokens -> ", train_path, "\nval:   ",
                     val_tokens, " tokens -> ", val_path, "\n", input_bytes, " bytes in, ",
                     input_bytes ? static_cast<double>(train_tokens + val_tokens) / static_cast<double>(input_bytes) : 0.0,
                     " tokens/byte; tokenizer ", tokenizer_seconds, " s, encode ", encode_seconds, " s");
}

PrepareResult prepare_dataset(const std::string& input_file, const std::string& tokenizer_spec,
                              const std::string& out_dir, double val_fraction, const std::string& format) {
  // Cheap checks first, so a typo fails before minutes of work.
  ATTNLAB_CHECK(val_fraction >= 0.0 && val_fraction < 1.0, "prepare: val_fraction ", val_fraction,
                " must be in [0, 1)");
  std::string ext;
  if (format == "h5" || format == "hdf5") ext = ".h5";
  else if (format == "bin") ext = ".bin";
  else throw Error(detail::cat("prepare: format \"", format, "\" is not h5 or bin"));

  std::unique_ptr<Tokenizer> tok;
  uint32_t bpe_vocab = 0;
  if (tokenizer_spec.rfind("bpe:", 0) == 0) bpe_vocab = parse_bpe_spec(tokenizer_spec);
  else tok = load_tokenizer(tokenizer_spec);

  const std::string text = read_file(input_file);
  ATTNLAB_CHECK(!text.empty(), input_file, ": input file is empty");

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec || !fs::is_directory(out_dir))
    throw Error(detail::cat(out_dir, ": cannot create output directory",
                            ec ? ": " + ec.message() : std::string()));
  // Probe now: BPE training should not run only to find the directory read-only.
  const std::string probe = (fs::path(out_dir) / ".attnlab_write_probe").string();
  write_file_atomic(probe, "");
  fs::remove(probe, ec);

  PrepareResult r;
  r.input_bytes = text.size();
  r.train_path = (fs::path(out_dir) / ("train" + ext)).string();
  r.val_path = (fs::path(out_dir) / ("val" + ext)).string();
  r.tokenizer_path = (fs::path(out_dir) / "tokenizer.json").string();

  size_t split = text.size() - static_cast<size_t>(std::llround(val_fraction * static_cast<double>(text.size())));
  while (split < text.size() && (static_cast<unsigned char>(text[split]) & 0xC0) == 0x80) ++split;
  const std::string_view train_text = std::string_view(text).substr(0, split);
  const std::string_view val_text = std::string_view(text).substr(split);

  if (bpe_vocab) {
    auto t0 = std::chrono::steady_clock::now();
    tok = train_bpe(train_text, bpe_vocab);
    r.tokenizer_seconds = seconds_since(t0);
  }
  tok->save(r.tokenizer_path);
  r.tokenizer = tok->name();
  r.vocab_size = tok->vocab_size();

  auto t0 = std::chrono::steady_clock::now();
  TokenShard train{tok->encode(train_text), r.tokenizer, r.vocab_size};
  TokenShard val{tok->encode(val_text), r.tokenizer, r.vocab_size};
  r.encode_seconds = seconds_since(t0);
  r.train_tokens = train.tokens.size();
  r.val_tokens = val.tokens.size();
  write_shard(r.train_path, train);
  write_shard(r.val_path, val);
  return r;
}

}  // namespace attnlab
