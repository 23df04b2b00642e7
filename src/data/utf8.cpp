// sanitize_utf8 / is_valid_utf8 over the strict decoder in utf8.h, and the code point class
// lookup of the GPT-2 pre-tokenizer (unicode_tables.h): a 64 Ki-entry table for the BMP, binary
// search over the generated ranges above it. Tests: tests/data/tokenizer_test.cpp.
#include "data/utf8.h"

#include <algorithm>
#include <array>

#include "data/unicode_tables.h"

namespace hydraulis::data {

std::string sanitize_utf8(std::string_view text, size_t* replaced) {
  std::string out;
  out.reserve(text.size());
  size_t count = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    // Copy the longest valid run at once; the common case is a fully valid text.
    size_t run_end = pos;
    Utf8Char c{0, 0};
    while (run_end < text.size()) {
      c = decode_utf8(text, run_end);
      if (c.code_point == kInvalidCodePoint) break;
      run_end += c.length;
    }
    out.append(text.substr(pos, run_end - pos));
    pos = run_end;
    if (pos < text.size()) {
      out.append("\xEF\xBF\xBD");
      ++count;
      pos += c.length;
    }
  }
  if (replaced != nullptr) *replaced = count;
  return out;
}

bool is_valid_utf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    Utf8Char c = decode_utf8(text, pos);
    if (c.code_point == kInvalidCodePoint) return false;
    pos += c.length;
  }
  return true;
}

namespace {

std::array<CharClass, 0x10000> make_bmp_table() {
  std::array<CharClass, 0x10000> table;
  table.fill(CharClass::kOther);
  for (size_t i = 0; i < kCodePointRangeCount; ++i) {
    const CodePointRange& r = kCodePointRanges[i];
    for (uint32_t cp = r.first; cp <= r.last && cp < 0x10000; ++cp) table[cp] = r.cls;
  }
  return table;
}

}  // namespace

CharClass char_class(uint32_t code_point) {
  static const std::array<CharClass, 0x10000> bmp = make_bmp_table();
  if (code_point < 0x10000) return bmp[code_point];
  const CodePointRange* begin = kCodePointRanges;
  const CodePointRange* end = kCodePointRanges + kCodePointRangeCount;
  // First range whose last >= code_point.
  const CodePointRange* it = std::lower_bound(
      begin, end, code_point, [](const CodePointRange& r, uint32_t cp) { return r.last < cp; });
  if (it != end && it->first <= code_point) return it->cls;
  return CharClass::kOther;
}

}  // namespace hydraulis::data
