#include "data/bpe.h"

#include <algorithm>
#include <limits>
#include <queue>
#include <string>

#include "core/error.h"
#include "data/pretokenize.h"

namespace attnlab {

namespace {

uint64_t pack(uint32_t a, uint32_t b) { return (static_cast<uint64_t>(a) << 32) | b; }
uint32_t left_of(uint64_t p) { return static_cast<uint32_t>(p >> 32); }
uint32_t right_of(uint64_t p) { return static_cast<uint32_t>(p); }

// Replaces every non-overlapping (a, b), left to right, by c.
void merge_in_place(std::vector<uint32_t>& s, uint32_t a, uint32_t b, uint32_t c) {
  size_t w = 0;
  for (size_t r = 0; r < s.size();) {
    if (r + 1 < s.size() && s[r] == a && s[r + 1] == b) {
      s[w++] = c;
      r += 2;
    } else {
      s[w++] = s[r++];
    }
  }
  s.resize(w);
}

}  // namespace

BpeTokenizer::BpeTokenizer(std::vector<Merge> merges) : merges_(std::move(merges)) {
  bytes_.reserve(256 + merges_.size());
  for (int b = 0; b < 256; ++b) bytes_.emplace_back(1, static_cast<char>(b));
  rank_.reserve(merges_.size());
  for (size_t i = 0; i < merges_.size(); ++i) {
    auto [a, b] = merges_[i];
    const uint32_t id = static_cast<uint32_t>(256 + i);
    ATTNLAB_CHECK(a < id && b < id, "BPE merge ", i, " (", a, ", ", b,
                  ") refers to an id not yet defined (merge ", i, " defines id ", id, ")");
    ATTNLAB_CHECK(rank_.emplace(pack(a, b), static_cast<uint32_t>(i)).second, "BPE merge ", i,
                  " (", a, ", ", b, ") repeats an earlier merge");
    bytes_.push_back(bytes_[a] + bytes_[b]);
  }
}

std::string BpeTokenizer::name() const { return "bpe:" + std::to_string(vocab_size()); }

void BpeTokenizer::encode_chunk(std::string_view chunk, std::vector<uint32_t>& out) const {
  std::vector<uint32_t> s(chunk.size());
  for (size_t i = 0; i < chunk.size(); ++i) s[i] = static_cast<unsigned char>(chunk[i]);
  while (s.size() >= 2) {
    uint32_t best = std::numeric_limits<uint32_t>::max();
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      auto it = rank_.find(pack(s[i], s[i + 1]));
      if (it != rank_.end() && it->second < best) best = it->second;
    }
    if (best == std::numeric_limits<uint32_t>::max()) break;
    merge_in_place(s, merges_[best].first, merges_[best].second, 256 + best);
  }
  out.insert(out.end(), s.begin(), s.end());
}

std::vector<uint32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<uint32_t> out;
  out.reserve(text.size() / 3 + 1);
  // Natural text repeats a few thousand chunks over and over; encode each once per call.
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> cache;  // chunk -> [begin, end) in out
  for (std::string_view chunk : pretokenize(text)) {
    auto it = cache.find(chunk);
    if (it != cache.end()) {
      auto [b, e] = it->second;
      for (size_t k = b; k < e; ++k) out.push_back(out[k]);
      continue;
    }
    size_t begin = out.size();
    encode_chunk(chunk, out);
    cache.emplace(chunk, std::make_pair(begin, out.size()));
  }
  return out;
}

std::string BpeTokenizer::decode(const std::vector<uint32_t>& ids) const {
  std::string s;
  for (uint32_t id : ids) {
    ATTNLAB_CHECK(id < bytes_.size(), name(), " tokenizer: cannot decode token id ", id,
                  " (vocab size ", bytes_.size(), ")");
    s += bytes_[id];
  }
  return s;
}

std::string BpeTokenizer::token_bytes(uint32_t id) const {
  ATTNLAB_CHECK(id < bytes_.size(), name(), " tokenizer: token id ", id, " out of range (vocab size ",
                bytes_.size(), ")");
  return bytes_[id];
}

Json BpeTokenizer::to_json() const {
  Json j = Json::object();
  j["type"] = "bpe";
  j["vocab_size"] = vocab_size();
  j["pretokenizer"] = kPretokenizerName;
  Json merges = Json::array();
  for (auto [a, b] : merges_) merges.push_back(Json::array({a, b}));
  j["merges"] = std::move(merges);
  return j;
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_json(const Json& j, const std::string& source) {
  try {
    const std::string& pre = j.at("pretokenizer").as_string();
    ATTNLAB_CHECK(pre == kPretokenizerName, "pretokenizer \"", pre, "\" is not this build's \"",
                  kPretokenizerName, "\"");
    std::vector<Merge> merges;
    const Json::Array& arr = j.at("merges").as_array();
    merges.reserve(arr.size());
    for (const Json& m : arr) {
      ATTNLAB_CHECK(m.is_array() && m.size() == 2, "each merge must be a pair of ids");
      int64_t a = m.at(0).as_int(), b = m.at(1).as_int();
      ATTNLAB_CHECK(a >= 0 && b >= 0 && a <= UINT32_MAX && b <= UINT32_MAX, "merge id out of range");
      merges.emplace_back(static_cast<uint32_t>(a), static_cast<uint32_t>(b));
    }
    auto tok = std::make_unique<BpeTokenizer>(std::move(merges));
    if (const Json* v = j.find("vocab_size"))
      ATTNLAB_CHECK(v->as_int() == tok->vocab_size(), "vocab_size ", v->as_int(), " but ",
                    arr.size(), " merges give ", tok->vocab_size());
    return tok;
  } catch (const Error& e) {
    throw Error(detail::cat(source, ": bad BPE tokenizer: ", e.what()));
  }
}

// ---- training ----

namespace {

struct HeapEntry {
  int64_t count;
  uint64_t pair;
};

// Most frequent first; among equals, the smaller pair.
struct HeapOrder {
  bool operator()(const HeapEntry& x, const HeapEntry& y) const {
    if (x.count != y.count) return x.count < y.count;
    return x.pair > y.pair;
  }
};

}  // namespace

std::unique_ptr<BpeTokenizer> train_bpe(std::string_view corpus, uint32_t vocab_size) {
  ATTNLAB_CHECK(vocab_size >= 257, "train_bpe: vocab size ", vocab_size,
                " must be at least 257 (256 bytes + 1 merge)");
  // Unique chunks with their frequencies: the work scales with the vocabulary
  // of the text, not its length.
  std::unordered_map<std::string_view, int64_t> chunk_freq;
  for (std::string_view c : pretokenize(corpus))
    if (c.size() >= 2) ++chunk_freq[c];
  std::vector<std::string_view> chunks;
  chunks.reserve(chunk_freq.size());
  for (auto& [c, f] : chunk_freq) chunks.push_back(c);
  std::sort(chunks.begin(), chunks.end());  // word ids independent of hash order

  const size_t nw = chunks.size();
  std::vector<std::vector<uint32_t>> words(nw);
  std::vector<int64_t> freq(nw);
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;  // pair -> words that had it
  for (size_t w = 0; w < nw; ++w) {
    freq[w] = chunk_freq[chunks[w]];
    auto& s = words[w];
    for (char ch : chunks[w]) s.push_back(static_cast<unsigned char>(ch));
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      uint64_t p = pack(s[i], s[i + 1]);
      pair_count[p] += freq[w];
      auto& list = where[p];
      if (list.empty() || list.back() != w) list.push_back(static_cast<uint32_t>(w));
    }
  }
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, HeapOrder> heap;
  for (auto& [p, c] : pair_count) heap.push({c, p});

  std::vector<BpeTokenizer::Merge> merges;
  std::vector<uint32_t> seen(nw, 0);
  uint32_t stamp = 0;
  std::unordered_map<uint64_t, int64_t> delta;
  while (256 + merges.size() < vocab_size) {
    // Entries go stale when a count changes (a fresh one is pushed then); skip them.
    bool found = false;
    HeapEntry top{};
    while (!heap.empty()) {
      top = heap.top();
      heap.pop();
      auto it = pair_count.find(top.pair);
      if (it != pair_count.end() && it->second == top.count && top.count > 0) {
        found = true;
        break;
      }
    }
    if (!found) break;
    const uint32_t a = left_of(top.pair), b = right_of(top.pair);
    const uint32_t c = static_cast<uint32_t>(256 + merges.size());
    merges.emplace_back(a, b);

    std::vector<uint32_t> affected = std::move(where[top.pair]);
    where.erase(top.pair);
    ++stamp;
    delta.clear();
    for (uint32_t w : affected) {
      if (seen[w] == stamp) continue;
      seen[w] = stamp;
      auto& s = words[w];
      bool has = false;
      for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == a && s[i + 1] == b;
      if (!has) continue;
      for (size_t i = 0; i + 1 < s.size(); ++i) delta[pack(s[i], s[i + 1])] -= freq[w];
      merge_in_place(s, a, b, c);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        uint64_t p = pack(s[i], s[i + 1]);
        delta[p] += freq[w];
        if (s[i] == c || s[i + 1] == c) {
          auto& list = where[p];
          if (list.empty() || list.back() != w) list.push_back(w);
        }
      }
    }
    for (auto& [p, d] : delta) {
      if (d == 0) continue;
      int64_t& cnt = pair_count[p];
      cnt += d;
      if (cnt <= 0) {
        pair_count.erase(p);
        where.erase(p);
      } else {
        heap.push({cnt, p});
      }
    }
  }
  return std::make_unique<BpeTokenizer>(std::move(merges));
}

}  // namespace attnlab
