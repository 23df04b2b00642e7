// The GPT-2 pre-tokenizer as a hand-written matcher of the reference regex (see pretokenizer.h).
// The regex alternatives are tried in order at each position, as JavaScript does:
//   1. 's 't 're 've 'm 'll 'd   (ASCII, case-sensitive)
//   2-4. an optional ' ' then a run of letters | numbers | others
//   5. \s+(?!\S): a whitespace run, minus its last character when a non-space follows
//   6. \s+: the single whitespace character left over by 5 ("\n" before "a")
// Tests: tests/data/tokenizer_test.cpp.
#include "data/pretokenizer.h"

#include <array>
#include <cstdint>

#include "data/unicode_tables.h"
#include "data/utf8.h"

namespace hydraulis::data {
namespace {

constexpr std::array<CharClass, 128> make_ascii_classes() {
  std::array<CharClass, 128> t{};
  for (auto& c : t) c = CharClass::kOther;
  for (int b = 'a'; b <= 'z'; ++b) t[b] = CharClass::kLetter;
  for (int b = 'A'; b <= 'Z'; ++b) t[b] = CharClass::kLetter;
  for (int b = '0'; b <= '9'; ++b) t[b] = CharClass::kNumber;
  for (int b = '\t'; b <= '\r'; ++b) t[b] = CharClass::kSpace;  // \t \n \v \f \r
  t[' '] = CharClass::kSpace;
  return t;
}
// Equal to char_class() on ASCII (checked by a test); avoids the table's static-init guard.
constexpr std::array<CharClass, 128> kAsciiClasses = make_ascii_classes();

struct Char {
  CharClass cls;
  uint32_t length;
};

inline Char char_at(std::string_view text, size_t pos) {
  const auto b = static_cast<unsigned char>(text[pos]);
  if (b < 0x80) return {kAsciiClasses[b], 1};
  const Utf8Char c = decode_utf8(text, pos);
  // Each byte of an invalid sequence is one "other" character of its own.
  if (c.code_point == kInvalidCodePoint) return {CharClass::kOther, 1};
  return {char_class(c.code_point), c.length};
}

// End of the run of `cls` characters starting at `pos`.
inline size_t run_end(std::string_view text, size_t pos, CharClass cls) {
  while (pos < text.size()) {
    const auto b = static_cast<unsigned char>(text[pos]);
    if (b < 0x80) {
      if (kAsciiClasses[b] != cls) break;
      ++pos;
      continue;
    }
    const Char c = char_at(text, pos);
    if (c.cls != cls) break;
    pos += c.length;
  }
  return pos;
}

}  // namespace

size_t pretokenize_word_end(std::string_view text, size_t pos) {
  const size_t n = text.size();
  const char b = text[pos];
  if (b == '\'' && pos + 1 < n) {  // 1. contractions
    const char c1 = text[pos + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 2;
    if (pos + 2 < n) {
      const char c2 = text[pos + 2];
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
        return pos + 3;
      }
    }
  }
  if (b == ' ' && pos + 1 < n) {  // 2-4 with the optional leading space
    const Char c1 = char_at(text, pos + 1);
    if (c1.cls != CharClass::kSpace) return run_end(text, pos + 1 + c1.length, c1.cls);
  }
  const Char c0 = char_at(text, pos);
  if (c0.cls != CharClass::kSpace) return run_end(text, pos + c0.length, c0.cls);  // 2-4
  // 5 and 6: a whitespace run [pos, end); `last` is where its last character starts.
  size_t last = pos;
  size_t end = pos + c0.length;
  while (end < n) {
    const Char c = char_at(text, end);
    if (c.cls != CharClass::kSpace) break;
    last = end;
    end += c.length;
  }
  if (end == n) return n;       // 5: (?!\S) holds at the end of the text
  if (last > pos) return last;  // 5: backtrack one character so that (?!\S) holds
  return end;                   // 6: a single whitespace character before a non-space
}

}  // namespace hydraulis::data
