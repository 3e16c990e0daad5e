#pragma once
#include <cstddef>
#include <string_view>
#include <vector>

namespace attnlab {

// Splits text into the chunks BPE merges within (merges never cross a chunk
// boundary). The chunks partition the text exactly, for any bytes, so joining
// them gives the input back. The scheme, in the spirit of GPT-2's:
//   - contractions 's 't 'm 'd 're 've 'll (with ' or U+2019) stand alone;
//   - a run of letters, of digits, or of other symbols, each with at most one
//     leading space (' ' only) glued on;
//   - a run of whitespace, minus a final space when a word follows it.
// Characters are classified on UTF-8 code points: non-ASCII letters count as
// letters, Latin-1 and general punctuation as symbols, invalid bytes as
// symbols one byte each. No chunk is longer than kMaxChunkBytes, which bounds
// the cost of merging inside one chunk.
inline constexpr size_t kMaxChunkBytes = 128;

std::vector<std::string_view> pretokenize(std::string_view text);

// The scheme's name, saved with a BPE tokenizer so a later change of scheme
// is detected instead of silently encoding differently.
inline constexpr const char* kPretokenizerName = "attnlab-v1";

}  // namespace attnlab
