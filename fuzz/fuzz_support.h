// Helpers shared by the fuzz targets (fuzz/*_fuzz.cpp) and their regression tests
// (tests/reliability/fuzz_regression_test.cpp): one entry function per target, a scratch
// directory for targets whose API reads files, and the check that turns a broken property into
// a crash libFuzzer records. Docs: docs/reliability.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/check.h"

namespace hydraulis::fuzz {

// One input of each target; returns 0 (libFuzzer's convention). A crash, a sanitizer report or a
// failed HYD_CHECK is a finding; a clean error Status is the expected answer to malformed bytes.
int corpus_reader_one_input(const uint8_t* data, size_t size);
int gpt2_files_one_input(const uint8_t* data, size_t size);
int tokenizer_one_input(const uint8_t* data, size_t size);
int indexed_dataset_one_input(const uint8_t* data, size_t size);
int scheme_space_one_input(const uint8_t* data, size_t size);
int profile_one_input(const uint8_t* data, size_t size);
int strategy_list_one_input(const uint8_t* data, size_t size);
int batches_one_input(const uint8_t* data, size_t size);
int plan_jsonl_one_input(const uint8_t* data, size_t size);
int checkpoint_one_input(const uint8_t* data, size_t size);

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A directory private to this process (created on first use under $TMPDIR, removed at exit).
const std::string& scratch_directory();
// Writes `bytes` to scratch_directory()/name (plain write, replacing the file); returns the path.
std::string write_scratch_file(const std::string& name, std::string_view bytes);
// Raises the log level to errors only: the targets feed malformed files on purpose.
void quiet_logs();
// The GPT-2 vocab.json / merges.txt directory: $HYD_GPT2_DIR, else $HYD_SOURCE_DIR/data/gpt2,
// else data/gpt2 (run from the repository root).
std::string gpt2_directory();

}  // namespace hydraulis::fuzz

// Defines libFuzzer's entry point for a target when built as a fuzzer (fuzz/CMakeLists.txt sets
// HYD_FUZZ_ENTRY); the regression tests compile the same file without it.
#ifdef HYD_FUZZ_ENTRY
#define HYD_FUZZ_TARGET(function)                                           \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    return ::hydraulis::fuzz::function(data, size);                         \
  }
#else
#define HYD_FUZZ_TARGET(function)
#endif
