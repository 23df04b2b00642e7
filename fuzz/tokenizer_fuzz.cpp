// Fuzz target: GPT-2 BPE encoding of arbitrary bytes with the real vocabulary (data/gpt2).
// Property: every id is inside the vocabulary and decode(encode(x)) == x, byte for byte, also for
// invalid UTF-8. Regressions: tests/reliability/fuzz_regression_test.cpp.
#include "data/tokenizer.h"
#include "fuzz/fuzz_support.h"

namespace hydraulis::fuzz {

namespace {

const data::Gpt2Tokenizer& gpt2() {
  static const data::Gpt2Tokenizer tokenizer = [] {
    const std::string dir = gpt2_directory();
    auto loaded = data::Gpt2Tokenizer::load(dir + "/vocab.json", dir + "/merges.txt");
    HYD_CHECK(loaded.is_ok(),
              "cannot load the GPT-2 tokenizer from {} (run scripts/setup.sh or "
              "set HYD_GPT2_DIR): {}",
              dir, loaded.status().to_string());
    return std::move(loaded).value();
  }();
  return tokenizer;
}

}  // namespace

int tokenizer_one_input(const uint8_t* data, size_t size) {
  quiet_logs();
  const data::Gpt2Tokenizer& tokenizer = gpt2();
  const std::string_view text = as_text(data, size);
  const std::vector<int32_t> ids = tokenizer.encode(text);
  HYD_CHECK(ids.size() <= text.size(), "{} ids for {} bytes", ids.size(), text.size());
  for (int32_t id : ids) {
    HYD_CHECK(id >= 0 && id < tokenizer.vocab_size(), "id {} outside the vocabulary", id);
  }
  auto decoded = tokenizer.decode(ids);
  HYD_CHECK(decoded.is_ok(), "decode failed: {}", decoded.status().to_string());
  HYD_CHECK(*decoded == text, "decode(encode(x)) != x: {} bytes in, {} bytes out", text.size(),
            decoded->size());
  // A second encode hits the word cache and must give the same ids.
  HYD_CHECK(tokenizer.encode(text) == ids, "cached encode differs from the first encode");
  return 0;
}

}  // namespace hydraulis::fuzz

HYD_FUZZ_TARGET(tokenizer_one_input)
