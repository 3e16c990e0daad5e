#include "data/tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "data/bpe.h"
#include "data/file_io.h"

namespace attnlab {

void Tokenizer::save(const std::string& path) const { write_file_atomic(path, to_json().dump() + "\n"); }

std::vector<uint32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<uint32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<uint32_t>& ids) const {
  std::string s(ids.size(), '\0');
  for (size_t i = 0; i < ids.size(); ++i) {
    ATTNLAB_CHECK(ids[i] < 256, "byte tokenizer: cannot decode token id ", ids[i],
                  " (vocab size 256)");
    s[i] = static_cast<char>(ids[i]);
  }
  return s;
}

std::string ByteTokenizer::token_bytes(uint32_t id) const {
  ATTNLAB_CHECK(id < 256, "byte tokenizer: token id ", id, " out of range (vocab size 256)");
  return std::string(1, static_cast<char>(id));
}

Json ByteTokenizer::to_json() const {
  Json j = Json::object();
  j["type"] = "byte";
  return j;
}

std::unique_ptr<Tokenizer> tokenizer_from_json(const Json& j, const std::string& source) {
  ATTNLAB_CHECK(j.is_object() && j.contains("type") && j.at("type").is_string(), source,
                ": not a tokenizer file (expected a JSON object with a \"type\")");
  const std::string& type = j.at("type").as_string();
  if (type == "byte") return std::make_unique<ByteTokenizer>();
  if (type == "bpe") return BpeTokenizer::from_json(j, source);
  throw Error(detail::cat(source, ": unknown tokenizer type \"", type, "\" (expected byte or bpe)"));
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path_or_spec) {
  if (path_or_spec == "byte") return std::make_unique<ByteTokenizer>();
  namespace fs = std::filesystem;
  std::string path = path_or_spec;
  std::error_code ec;
  if (fs::is_directory(path, ec)) path = (fs::path(path) / "tokenizer.json").string();
  if (!fs::exists(path, ec)) {
    if (path_or_spec.rfind("bpe:", 0) == 0)
      throw Error(detail::cat("tokenizer \"", path_or_spec,
                              "\": a BPE tokenizer is trained by prepare; pass its tokenizer.json"));
    throw Error(detail::cat("tokenizer \"", path_or_spec,
                            "\": not \"byte\" and no such file or directory"));
  }
  return tokenizer_from_json(Json::parse(read_file(path), path), path);
}

}  // namespace attnlab
