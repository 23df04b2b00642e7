// Strict UTF-8 decoding (WHATWG Encoding Standard, the decoder of node's Buffer.toString('utf8')
// and TextDecoder): rejects overlong forms, surrogates and code points above U+10FFFF, and splits
// invalid input into "maximal subparts", each replaced by one U+FFFD in sanitize_utf8().
// Tests: tests/data/tokenizer_test.cpp (checked against node at test time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hydraulis::data {

inline constexpr uint32_t kInvalidCodePoint = 0xFFFFFFFFu;

struct Utf8Char {
  uint32_t code_point;  // kInvalidCodePoint for an invalid sequence
  uint32_t length;      // bytes consumed (>= 1): the whole character, or the maximal subpart
};

// Decodes the character that starts at text[pos] (pos < text.size()).
inline Utf8Char decode_utf8(std::string_view text, size_t pos);

// Replaces every maximal subpart of an invalid sequence by U+FFFD (EF BF BD), exactly as node's
// Buffer.toString('utf8') does; `replaced` (optional) receives the number of replacements.
std::string sanitize_utf8(std::string_view text, size_t* replaced = nullptr);
bool is_valid_utf8(std::string_view text);

// ---- implementation -----------------------------------------------------------------------------

inline Utf8Char decode_utf8(std::string_view text, size_t pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  const size_t left = text.size() - pos;
  const uint32_t b0 = p[0];
  if (b0 < 0x80) return {b0, 1};
  uint32_t need;          // continuation bytes still needed
  uint32_t lower = 0x80;  // bounds of the first continuation byte (WHATWG "lower/upper boundary")
  uint32_t upper = 0xBF;
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lower = 0xA0;  // no overlong 3-byte forms
    if (b0 == 0xED) upper = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lower = 0x90;  // no overlong 4-byte forms
    if (b0 == 0xF4) upper = 0x8F;  // nothing above U+10FFFF
  } else {
    return {kInvalidCodePoint, 1};  // continuation byte or C0, C1, F5..FF lead byte
  }
  for (uint32_t i = 1; i <= need; ++i) {
    if (i >= left) return {kInvalidCodePoint, i};  // truncated at the end of the text
    const uint32_t b = p[i];
    if (b < lower || b > upper) return {kInvalidCodePoint, i};  // b starts the next character
    lower = 0x80;
    upper = 0xBF;
    cp = (cp << 6) | (b & 0x3F);
  }
  return {cp, need + 1};
}

}  // namespace hydraulis::data
