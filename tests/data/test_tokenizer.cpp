#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "data/bpe.h"
#include "data/file_io.h"
#include "data/pretokenize.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace attnlab {
namespace {

using test::random_bytes;
using test::sample_text;
using test::TempDir;

std::string join(const std::vector<std::string_view>& parts) {
  std::string s;
  for (auto p : parts) s += p;
  return s;
}

std::vector<std::string> chunks_of(std::string_view s) {
  std::vector<std::string> out;
  for (auto c : pretokenize(s)) out.emplace_back(c);
  return out;
}

TEST(ByteTokenizer, IdentityOnBytes) {
  ByteTokenizer tok;
  EXPECT_EQ(tok.name(), "byte");
  EXPECT_EQ(tok.vocab_size(), 256u);
  EXPECT_EQ(tok.encode("Ab\xff"), (std::vector<uint32_t>{65, 98, 255}));
  for (uint32_t seed = 0; seed < 5; ++seed) {
    std::string s = random_bytes(1000 + seed, seed);
    EXPECT_EQ(tok.decode(tok.encode(s)), s);
  }
  EXPECT_EQ(tok.decode({}), "");
  EXPECT_ERROR_MENTIONS(tok.decode({1, 256}), "256");
}

TEST(Pretokenize, SplitsLikeGpt2) {
  EXPECT_EQ(chunks_of("Hello world"), (std::vector<std::string>{"Hello", " world"}));
  EXPECT_EQ(chunks_of("don't stop"), (std::vector<std::string>{"don", "'t", " stop"}));
  EXPECT_EQ(chunks_of("people’s hats"), (std::vector<std::string>{"people", "’s", " hats"}));
  EXPECT_EQ(chunks_of("a  b"), (std::vector<std::string>{"a", " ", " b"}));
  EXPECT_EQ(chunks_of("a\n\nb"), (std::vector<std::string>{"a", "\n\n", "b"}));
  EXPECT_EQ(chunks_of("in 1851, ago—never"),
            (std::vector<std::string>{"in", " 1851", ",", " ago", "—", "never"}));
  EXPECT_EQ(chunks_of("café 'sea"), (std::vector<std::string>{"café", " '", "sea"}));
  EXPECT_EQ(chunks_of("end.  "), (std::vector<std::string>{"end", ".", "  "}));
}

TEST(Pretokenize, PartitionsAnyBytes) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    std::string s = random_bytes(3000, seed);
    auto parts = pretokenize(s);
    EXPECT_EQ(join(parts), s);
    for (auto p : parts) {
      EXPECT_FALSE(p.empty());
      EXPECT_LE(p.size(), kMaxChunkBytes);
    }
  }
  std::string long_word(1000, 'x');
  auto parts = pretokenize(long_word);
  EXPECT_EQ(join(parts), long_word);
  EXPECT_EQ(parts.size(), (1000 + kMaxChunkBytes - 1) / kMaxChunkBytes);
}

TEST(Bpe, TrainReducesTokensAndRoundTrips) {
  const std::string text = sample_text(20000, 1);
  auto tok = train_bpe(text, 320);
  EXPECT_EQ(tok->vocab_size(), 320u);
  EXPECT_EQ(tok->name(), "bpe:320");
  auto ids = tok->encode(text);
  EXPECT_LT(ids.size() * 3, text.size()) << "BPE should compress this repetitive text well";
  EXPECT_EQ(tok->decode(ids), text);
  for (uint32_t id : ids) EXPECT_LT(id, 320u);
  // Frequent words become single tokens, with their leading space.
  EXPECT_EQ(tok->encode(" whale").size(), 1u);
  EXPECT_EQ(tok->token_bytes(tok->encode(" whale")[0]), " whale");
}

TEST(Bpe, RoundTripsArbitraryBytes) {
  auto tok = train_bpe(sample_text(5000, 2) + random_bytes(5000, 3), 600);
  for (uint32_t seed = 10; seed < 30; ++seed) {
    std::string s = random_bytes(2000, seed);
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
  }
  std::string mixed = "naïve \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 trunc\xe2\x82 " + sample_text(200, 4);
  EXPECT_EQ(tok->decode(tok->encode(mixed)), mixed);
  EXPECT_TRUE(tok->encode("").empty());
}

// Plain BPE: recount every pair before each merge. Same tie-break as train_bpe.
struct NaiveBpe {
  std::vector<BpeTokenizer::Merge> merges;
  std::vector<std::vector<uint32_t>> words;  // final segmentation of each chunk
};

NaiveBpe naive_bpe(std::string_view corpus, uint32_t vocab) {
  NaiveBpe r;
  for (auto c : pretokenize(corpus)) {
    std::vector<uint32_t> w;
    for (char ch : c) w.push_back(static_cast<unsigned char>(ch));
    r.words.push_back(w);
  }
  while (256 + r.merges.size() < vocab) {
    std::map<std::pair<uint32_t, uint32_t>, int64_t> counts;
    for (auto& w : r.words)
      for (size_t i = 0; i + 1 < w.size(); ++i) ++counts[{w[i], w[i + 1]}];
    if (counts.empty()) break;
    auto best = counts.begin();  // map order: the smallest pair wins ties
    for (auto it = counts.begin(); it != counts.end(); ++it)
      if (it->second > best->second) best = it;
    const uint32_t id = static_cast<uint32_t>(256 + r.merges.size());
    r.merges.push_back(best->first);
    for (auto& w : r.words) {
      std::vector<uint32_t> out;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == best->first.first && w[i + 1] == best->first.second) {
          out.push_back(id);
          ++i;
        } else {
          out.push_back(w[i]);
        }
      }
      w = out;
    }
  }
  return r;
}

TEST(Bpe, MatchesNaiveReference) {
  const std::string corpora[] = {sample_text(1500, 11), sample_text(300, 12) + random_bytes(400, 13),
                                 "aaaaaaa aaaa abababab ab ab aa", std::string(50, 'z') + " zz zzz"};
  for (const std::string& text : corpora) {
    NaiveBpe ref = naive_bpe(text, 420);
    auto tok = train_bpe(text, 420);
    ASSERT_EQ(tok->merges(), ref.merges);
    // Encoding applies merges by rank; on the training chunks that is the training segmentation.
    std::vector<uint32_t> expected;
    for (auto& w : ref.words) expected.insert(expected.end(), w.begin(), w.end());
    EXPECT_EQ(tok->encode(text), expected);
  }
}

TEST(Bpe, TrainingIsDeterministic) {
  const std::string text = sample_text(5000, 5);
  auto a = train_bpe(text, 350);
  auto b = train_bpe(text, 350);
  EXPECT_EQ(a->merges(), b->merges());
}

TEST(Bpe, StopsWhenNoPairsRemain) {
  auto tok = train_bpe("ab ab ab", 1000);
  EXPECT_LT(tok->vocab_size(), 1000u);
  EXPECT_GT(tok->vocab_size(), 256u);
  EXPECT_EQ(tok->encode("ab ab").size(), 2u);
  EXPECT_EQ(tok->name(), "bpe:" + std::to_string(tok->vocab_size()));
}

TEST(Bpe, RejectsTinyVocab) { EXPECT_ERROR_MENTIONS(train_bpe("abc", 256), "256", "257"); }

TEST(Bpe, SaveLoadGivesIdenticalEncodes) {
  TempDir dir;
  const std::string text = sample_text(8000, 6);
  auto tok = train_bpe(text, 500);
  const std::string path = dir.file("tok.json");
  tok->save(path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto loaded = load_tokenizer(path);
  EXPECT_EQ(loaded->name(), tok->name());
  EXPECT_EQ(loaded->vocab_size(), tok->vocab_size());
  const std::string probe = sample_text(3000, 7) + random_bytes(500, 8);
  EXPECT_EQ(loaded->encode(probe), tok->encode(probe));
  // A directory holding tokenizer.json loads too.
  tok->save(dir.file("tokenizer.json"));
  EXPECT_EQ(load_tokenizer(dir.path().string())->encode(probe), tok->encode(probe));
}

TEST(Bpe, DecodeRejectsUnknownIds) {
  auto tok = train_bpe(sample_text(1000, 9), 300);
  EXPECT_ERROR_MENTIONS(tok->decode({1, 300}), "300", "bpe:300");
}

TEST(LoadTokenizer, ByteSpecAndByteFile) {
  TempDir dir;
  EXPECT_EQ(load_tokenizer("byte")->name(), "byte");
  ByteTokenizer().save(dir.file("b.json"));
  EXPECT_EQ(load_tokenizer(dir.file("b.json"))->name(), "byte");
}

TEST(LoadTokenizer, ErrorsNameTheFile) {
  TempDir dir;
  EXPECT_ERROR_MENTIONS(load_tokenizer(dir.file("nope.json")), "nope.json", "no such file");
  EXPECT_ERROR_MENTIONS(load_tokenizer("bpe:512"), "bpe:512", "tokenizer.json");
  write_file_atomic(dir.file("garbage.json"), "{not json");
  EXPECT_ERROR_MENTIONS(load_tokenizer(dir.file("garbage.json")), "garbage.json", "JSON error");
  write_file_atomic(dir.file("type.json"), R"({"type": "wordpiece"})");
  EXPECT_ERROR_MENTIONS(load_tokenizer(dir.file("type.json")), "type.json", "wordpiece");
  write_file_atomic(dir.file("fwd.json"),
                    R"({"type": "bpe", "pretokenizer": "attnlab-v1", "merges": [[1, 300]]})");
  EXPECT_ERROR_MENTIONS(load_tokenizer(dir.file("fwd.json")), "fwd.json", "not yet defined");
  write_file_atomic(dir.file("pre.json"), R"({"type": "bpe", "pretokenizer": "gpt2", "merges": []})");
  EXPECT_ERROR_MENTIONS(load_tokenizer(dir.file("pre.json")), "pre.json", "gpt2");
  write_file_atomic(dir.file("vs.json"),
                    R"({"type": "bpe", "pretokenizer": "attnlab-v1", "vocab_size": 300, "merges": [[97, 98]]})");
  EXPECT_ERROR_MENTIONS(load_tokenizer(dir.file("vs.json")), "vs.json", "vocab_size 300");
}

// The real corpus, when scripts/fetch_data.sh has fetched it (its speed is
// measured by bench/bench_tokenizer, not here).
TEST(Bpe, MobyDickVocab1024RoundTrips) {
  const char* src = std::getenv("ATTNLAB_SOURCE_DIR");
  const std::string path = std::string(src ? src : ".") + "/datasets/mobydick.txt";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not fetched";
  const std::string text = read_file(path);
  auto tok = train_bpe(text, 1024);
  auto ids = tok->encode(text);
  EXPECT_EQ(tok->vocab_size(), 1024u);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_LT(ids.size(), text.size() / 2);  // 1024 merges roughly halve the bytes
}

}  // namespace
}  // namespace attnlab
