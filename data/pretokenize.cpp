#include "data/pretokenize.h"

#include <algorithm>
#include <cstdint>

namespace attnlab {

namespace {

enum class Cls : uint8_t { letter, digit, space, other };

struct Char {
  Cls cls;
  uint32_t len;  // bytes
  uint32_t cp;   // code point; 0xFFFFFFFF for an invalid byte
};

Cls classify(uint32_t cp) {
  if (cp < 0x80) {
    char c = static_cast<char>(cp);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return Cls::letter;
    if (c >= '0' && c <= '9') return Cls::digit;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') return Cls::space;
    return Cls::other;
  }
  if (cp <= 0xBF) return Cls::other;                    // Latin-1 controls, punctuation, signs
  if (cp == 0xD7 || cp == 0xF7) return Cls::other;      // multiplication and division signs
  if (cp >= 0x2000 && cp <= 0x2BFF) return Cls::other;  // punctuation, symbols, arrows, math
  if (cp >= 0x3000 && cp <= 0x303F) return Cls::other;  // CJK punctuation
  if (cp >= 0xFF00 && cp <= 0xFF0F) return Cls::other;  // fullwidth punctuation
  if (cp >= 0x1F000 && cp <= 0x1FAFF) return Cls::other;  // emoji and pictographs
  return Cls::letter;
}

Char char_at(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return {classify(c), 1, c};
  uint32_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? (c <= 0xEF ? 3 : 0) : c >= 0xC2 ? 2 : 0;
  if (len == 0 || i + len > s.size()) return {Cls::other, 1, 0xFFFFFFFFu};
  uint32_t cp = len == 2 ? c & 0x1Fu : len == 3 ? c & 0x0Fu : c & 0x07u;
  for (uint32_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return {Cls::other, 1, 0xFFFFFFFFu};
    cp = (cp << 6) | (b(i + k) & 0x3Fu);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return {Cls::other, 1, 0xFFFFFFFFu};
  return {classify(cp), len, cp};
}

// Length of a contraction suffix at i ("'s", "’ll", ...), or 0.
size_t contraction_at(std::string_view s, size_t i) {
  size_t apos;
  if (s[i] == '\'') apos = 1;
  else if (s.substr(i, 3) == "\xE2\x80\x99") apos = 3;  // U+2019
  else return 0;
  std::string_view rest = s.substr(i + apos);
  for (std::string_view suf : {"ll", "re", "ve", "s", "t", "m", "d"}) {
    if (rest.substr(0, suf.size()) != suf) continue;
    size_t end = i + apos + suf.size();
    // "'sea" is a quote before a word, not a contraction.
    if (end < s.size() && char_at(s, end).cls == Cls::letter) return 0;
    return apos + suf.size();
  }
  return 0;
}

}  // namespace

std::vector<std::string_view> pretokenize(std::string_view s) {
  std::vector<std::string_view> out;
  out.reserve(s.size() / 4 + 1);
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const size_t start = i;
    const size_t limit = std::min(n, start + kMaxChunkBytes);
    if (size_t k = contraction_at(s, i)) {
      out.push_back(s.substr(start, k));
      i += k;
      continue;
    }
    Char c = char_at(s, i);
    if (c.cls == Cls::space) {
      size_t j = i;
      while (j < limit && char_at(s, j).cls == Cls::space) ++j;
      const bool word_follows = j < n && char_at(s, j).cls != Cls::space;
      if (word_follows && s[j - 1] == ' ' && j - i >= 2) {
        out.push_back(s.substr(start, j - 1 - start));  // the last space goes with the word
        i = j - 1;
        continue;
      }
      if (!(word_follows && j - i == 1 && s[i] == ' ')) {
        out.push_back(s.substr(start, j - start));
        i = j;
        continue;
      }
      ++i;  // a single space glued to the word that follows
      c = char_at(s, i);
    }
    const Cls cls = c.cls;
    i += c.len;
    while (i < limit) {
      Char d = char_at(s, i);
      if (d.cls != cls || i + d.len > limit) break;
      if (cls == Cls::other && contraction_at(s, i)) break;
      i += d.len;
    }
    out.push_back(s.substr(start, i - start));
  }
  return out;
}

}  // namespace attnlab
