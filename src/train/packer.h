// Greedy packing of a global batch's sequences into micro-batches under a token cap (first-fit
// decreasing), for the single-device trainer. The planner's stage-2 packing (spec.md §7) replaces
// it in multi-pipeline runs; both return positions into the batch's sequence array.
// Tests: tests/train/train_test.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"

namespace hydraulis::train {

// positions[i]: training positions of sequence i (tokens − 1). Returns micro-batches (lists of
// sequence indices) with Σ positions ≤ cap each, largest micro-batch first. Sequences with 0
// positions are left out (they carry no loss). Error when one sequence alone exceeds the cap.
core::StatusOr<std::vector<std::vector<size_t>>> pack_greedy(std::span<const int64_t> positions,
                                                             int64_t cap);

}  // namespace hydraulis::train
