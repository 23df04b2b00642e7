// Shared fixtures of the trainer tests: paths in the source tree and a small indexed data set of
// real text (the first documents of data/corpora/web.jsonl through the GPT-2 tokenizer).
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/json.h"
#include "data/indexed_dataset.h"
#include "data/tokenizer.h"

namespace hydraulis::train::testing {

inline std::string source_path(const std::string& relative) {
  const char* root = std::getenv("HYD_SOURCE_DIR");
  return (root != nullptr ? std::string(root) + "/" : std::string()) + relative;
}

// The first `documents` documents of the web corpus, tokenized, as an indexed data set (built
// once per test binary run; "" when the demo data is missing).
inline std::string real_dataset(int documents) {
  static std::string prefix;
  if (!prefix.empty()) return prefix;
  auto tokenizer = data::Gpt2Tokenizer::load(source_path("data/gpt2/vocab.json"),
                                             source_path("data/gpt2/merges.txt"));
  std::ifstream in(source_path("data/corpora/web.jsonl"));
  if (!tokenizer.is_ok() || !in) return "";
  // One file per process: the ranks of an mpirun test each build their own copy.
  std::string path = ::testing::TempDir() + "/train_test_web_" + std::to_string(documents) + "_" +
                     std::to_string(getpid());
  auto writer = data::IndexedDatasetWriter::create(path, data::TokenDType::kU16);
  EXPECT_TRUE(writer.is_ok());
  std::string line;
  for (int d = 0; d < documents && std::getline(in, line);) {
    auto json = core::parse_json(line, "web.jsonl");
    if (!json.is_ok() || !json->contains("content")) continue;
    std::vector<int32_t> ids = tokenizer->encode((*json)["content"].get<std::string>());
    if (ids.empty()) continue;
    ids.push_back(tokenizer->eod_id());
    EXPECT_TRUE(writer->add_document(ids).is_ok());
    ++d;
  }
  EXPECT_TRUE(writer->finish().is_ok());
  prefix = path;
  return prefix;
}

}  // namespace hydraulis::train::testing
