// Where `plan` and `simulate` get their global batches: a --batches JSON file, or --data P
// sampled by the global-batch sampler (spec.md §1). Lengths are training positions (n − 1 for a
// sequence of n tokens).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/status.h"

namespace hydraulis::apps {

struct BatchSourceArgs {
  std::string data;     // indexed dataset prefix
  std::string batches;  // or: JSON array of global batches of lengths
  int64_t global_token_num = 200000;
  int64_t max_seq_len = 32768;
  int num_batches = 50;
};

// Registers --data, --batches, --global-token-num, --num-batches (not --max-seq-len, whose
// meaning differs between commands).
void add_batch_source_options(CLI::App* app, BatchSourceArgs* args);

// Exactly one of --data / --batches must be set; sizes must be positive.
core::StatusOr<std::vector<std::vector<int64_t>>> load_global_batches(const BatchSourceArgs& args);

}  // namespace hydraulis::apps
