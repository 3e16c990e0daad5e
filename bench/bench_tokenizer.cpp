// BPE training and encoding speed on a corpus (default: the demo's Moby Dick).
//   build/bench/bench_tokenizer [datasets/mobydick.txt] [vocab=1024]
#include <chrono>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "data/bpe.h"
#include "data/file_io.h"

int main(int argc, char** argv) {
  std::string path = argc > 1 ? argv[1] : "datasets/mobydick.txt";
  uint32_t vocab = argc > 2 ? static_cast<uint32_t>(std::stoul(argv[2])) : 1024;
  try {
    std::string text = attnlab::read_file(path);
    auto t0 = std::chrono::steady_clock::now();
    auto tok = attnlab::train_bpe(text, vocab);
    auto t1 = std::chrono::steady_clock::now();
    auto ids = tok->encode(text);
    auto t2 = std::chrono::steady_clock::now();
    double train_s = std::chrono::duration<double>(t1 - t0).count();
    double enc_s = std::chrono::duration<double>(t2 - t1).count();
    std::printf("| corpus | bytes | vocab | train (s) | encode (s) | encode MB/s | bytes/token |\n"
                "|---|---:|---:|---:|---:|---:|---:|\n"
                "| %s | %zu | %u | %.3f | %.3f | %.1f | %.2f |\n",
                path.c_str(), text.size(), tok->vocab_size(), train_s, enc_s, text.size() / enc_s / 1e6,
                static_cast<double>(text.size()) / static_cast<double>(ids.size()));
  } catch (const attnlab::Error& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
  return 0;
}
