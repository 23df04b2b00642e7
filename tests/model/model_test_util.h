// Shared fixtures of the model tests: the micro config of the PyTorch golden files, its seeded
// three-sequence batch, and a deterministic token generator.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/micro_batch.h"
#include "model/parameters.h"

namespace hydraulis::model::testing {

// The config of tests/model/golden/: 2 layers, hidden 32, 4 heads on 2 kv heads (head dim 8),
// ffn 48, vocab 96, untied head.
inline LlamaConfig golden_config() {
  LlamaConfig c;
  c.name = "golden";
  c.num_layers = 2;
  c.hidden = 32;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.ffn_hidden = 48;
  c.vocab_size = 96;
  c.max_seq_len = 64;
  c.rope_theta = 10000.0;
  c.norm_eps = 1e-5;
  c.lm_head = LmHead::kUntied;
  return c;
}

inline constexpr uint64_t kGoldenSeed = 7;

// The config of the d64 golden files (tests/model/golden/llama_d64_*): head dim 64 so the CUDA
// attention kernels run it (they support 64 and 128): 2 layers, hidden 128, 2 heads on 1 kv head,
// ffn 128, vocab 128, untied head. Files in f32 (torch computes in f64, stores f32).
inline LlamaConfig golden_d64_config() {
  LlamaConfig c = golden_config();
  c.name = "golden_d64";
  c.hidden = 128;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.ffn_hidden = 128;
  c.vocab_size = 128;
  c.max_seq_len = 256;
  return c;
}

}  // namespace hydraulis::model::testing

namespace hydraulis::model {
using Seqs = std::vector<std::vector<int32_t>>;
}  // namespace hydraulis::model

namespace hydraulis::model::testing {

// Token t of sequence s: a fixed hash into [0, vocab).
inline std::vector<int32_t> test_sequence(int64_t tokens, int64_t vocab, uint64_t salt) {
  std::vector<int32_t> seq;
  uint64_t x = salt * 0x9e3779b97f4a7c15ull + 1;
  for (int64_t i = 0; i < tokens; ++i) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    seq.push_back(int32_t((x * 0x2545f4914f6cdd1dull) >> 33) % int32_t(vocab));
  }
  return seq;
}

// The golden batch: sequences of 9, 5 and 13 tokens (8 + 4 + 12 = 24 positions), run as two
// micro-batches {0, 1} and {2}.
inline std::vector<std::vector<int32_t>> golden_sequences(int64_t vocab) {
  return {test_sequence(9, vocab, 1), test_sequence(5, vocab, 2), test_sequence(13, vocab, 3)};
}

// The d64 golden batch: 71, 34 and 98 tokens (70 + 33 + 97 = 200 positions, so attention tiles
// of 64 are crossed), run as two micro-batches {0, 1} and {2}.
inline std::vector<std::vector<int32_t>> golden_d64_sequences(int64_t vocab) {
  return {test_sequence(71, vocab, 11), test_sequence(34, vocab, 12), test_sequence(98, vocab, 13)};
}

inline std::string source_path(const std::string& relative) {
  const char* root = std::getenv("HYD_SOURCE_DIR");
  return (root != nullptr ? std::string(root) + "/" : std::string()) + relative;
}

}  // namespace hydraulis::model::testing
