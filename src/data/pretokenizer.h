// The GPT-2 pre-tokenizer: splits text into the "words" that the reference encoder's regex
//   /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu
// matches, on UTF-8 bytes. Each byte of an invalid UTF-8 sequence counts as one "other" character
// ([^\s\p{L}\p{N}]), so any byte string splits into words that concatenate back to it.
// Tests: tests/data/tokenizer_test.cpp (against node's regex on the same text).
#pragma once

#include <cstddef>
#include <string_view>

namespace hydraulis::data {

// End (exclusive byte offset) of the word that starts at `pos` (< text.size()); always > pos.
size_t pretokenize_word_end(std::string_view text, size_t pos);

}  // namespace hydraulis::data
