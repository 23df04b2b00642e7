// Fuzz target: the GPT-2 vocab.json and merges.txt loaders. The input is vocab.json, a NUL byte,
// then merges.txt (no NUL: both halves go to the same file pair). Property: load() returns a
// tokenizer or a clean Status, and a tokenizer it accepts round-trips text
// (decode(encode(x)) == x). Regressions: tests/reliability/fuzz_regression_test.cpp.
#include <string>

#include "data/tokenizer.h"
#include "fuzz/fuzz_support.h"

namespace hydraulis::fuzz {

int gpt2_files_one_input(const uint8_t* data, size_t size) {
  quiet_logs();
  const std::string_view bytes = as_text(data, size);
  const size_t split = bytes.find('\0');
  const std::string_view vocab = bytes.substr(0, split);
  const std::string_view merges =
      split == std::string_view::npos ? std::string_view() : bytes.substr(split + 1);
  const std::string vocab_path = write_scratch_file("vocab.json", vocab);
  const std::string merges_path = write_scratch_file("merges.txt", merges);
  auto tokenizer = data::Gpt2Tokenizer::load(vocab_path, merges_path);
  if (!tokenizer.is_ok()) {
    HYD_CHECK(!tokenizer.status().message().empty(), "error Status without a message");
    return 0;
  }
  HYD_CHECK(tokenizer->vocab_size() >= 257, "accepted a vocabulary of {} tokens",
            tokenizer->vocab_size());
  HYD_CHECK(tokenizer->eod_id() >= 0 && tokenizer->eod_id() < tokenizer->vocab_size(),
            "end-of-document id {} outside the vocabulary", tokenizer->eod_id());
  // Text the merges of real vocabularies act on, plus the merges file itself as text.
  for (std::string_view text : {std::string_view("Hello world, the tokenizer's tests 123!\n"),
                                std::string_view(" \xc3\xa9t\xc3\xa9  \xff\xfe x"), merges}) {
    std::vector<int32_t> ids = tokenizer->encode(text);
    auto decoded = tokenizer->decode(ids);
    HYD_CHECK(decoded.is_ok(), "decode of encode() output failed: {}",
              decoded.status().to_string());
    HYD_CHECK(*decoded == text, "decode(encode(x)) != x for {} bytes", text.size());
  }
  return 0;
}

}  // namespace hydraulis::fuzz

HYD_FUZZ_TARGET(gpt2_files_one_input)
