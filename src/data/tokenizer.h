// GPT-2 byte-level BPE tokenizer (vocab.json + merges.txt), token-for-token equal to the reference
// JavaScript encoder (npm gpt-3-encoder) on valid UTF-8. Invalid UTF-8 bytes are kept as single
// "other" characters so that decode(encode(x)) == x for any bytes. Thread-safe for concurrent
// encode() calls (each thread uses its own word cache). Docs: docs/tokenizer.md.
// Tests: tests/data/tokenizer_test.cpp; bench: bench/tokenizer/.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "data/utf8.h"  // sanitize_utf8(): node's decoding of invalid UTF-8, for corpus readers

namespace hydraulis::data {

class Gpt2Tokenizer {
 public:
  static core::StatusOr<Gpt2Tokenizer> load(const std::string& vocab_path,
                                            const std::string& merges_path);
  Gpt2Tokenizer();
  ~Gpt2Tokenizer();
  Gpt2Tokenizer(Gpt2Tokenizer&&) noexcept;
  Gpt2Tokenizer& operator=(Gpt2Tokenizer&&) noexcept;

  // Appends the ids of `text` to `out`.
  void encode(std::string_view text, std::vector<int32_t>& out) const;
  std::vector<int32_t> encode(std::string_view text) const;
  // Errors on an id outside the vocabulary (names the id and the position).
  core::StatusOr<std::string> decode(std::span<const int32_t> ids) const;

  int32_t vocab_size() const;  // 50257 for GPT-2
  int32_t eod_id() const;      // "<|endoftext|>" (50256)

  // Empties the calling thread's word cache (benchmarks time the cold path with it). Each thread
  // keeps one cache (at most 2^18 words) for the tokenizer it used last.
  void clear_thread_cache() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hydraulis::data
