// Stage 2 (packing): one pipeline's sequences -> micro-batches of at most max_tokens tokens,
// minimising (max micro-batch cost + c)·(pp − 1 + v) over v. Three packers: the greedy of batching
// methods 1/3, ours (LPT + local search per v, v ordered by a convex lower bound, early stop) and
// the original's per-v CBC MILP. Docs: docs/planner_assignment.md. Tests: tests/planner/pack_test.cpp.
#pragma once

#include <cstdint>
#include <span>

#include "core/status.h"
#include "planner/assignment.h"

namespace hydraulis::planner {

struct PackResult {
  MicroBatches micro_batches;  // indices into the packed lengths, largest cost first
  double max_cost = 0;         // largest micro-batch cost (ms, without c)
  double time_ms = 0;          // pipeline_ms(max_cost, micro_batches.size())
  bool fallback = false;       // the MILP packer found nothing and ours filled in
};

// Inclusive range of micro-batch counts v to try.
struct MicroBatchRange {
  int64_t lo = 0;
  int64_t hi = 0;
};

// The original's range (spec.md §7): lo = ⌈T/M⌉, hi = min(lo + 19, max(lo, min(u, ⌊T/U⌋))).
MicroBatchRange original_micro_batch_range(const PipelineModel& model, int64_t total_tokens,
                                           int64_t num_sequences);
// Ours: the same without the "+19" cap (the lower bound below prunes instead).
MicroBatchRange micro_batch_range(const PipelineModel& model, int64_t total_tokens,
                                  int64_t num_sequences);

// Aggregates of a set of sequences on one pipeline.
struct PipelineLoad {
  double work = 0;       // Σ a·s² + b·s
  int64_t tokens = 0;    // Σ s
  double max_cost = 0;   // max a·s² + b·s
  int64_t count = 0;     // number of sequences
};

// min over v in micro_batch_range of (max(work/v, max_cost) + c)·(pp − 1 + v): a lower bound of
// any packing that uses a v of that range (the function is convex in v, so this is O(1)).
double pack_lower_bound(const PipelineModel& model, const PipelineLoad& load);

// Batching methods 1/3: for each unpacked sequence, shortest first, start a micro-batch and add
// the longest remaining sequences that still fit under `cap` tokens.
PackResult pack_greedy(const PipelineModel& model, std::span<const int64_t> lengths, int64_t cap);

// Ours: for every v (in increasing lower-bound order, stopping once the bound reaches the best
// found), LPT by cost into v micro-batches under the token cap (first-fit-decreasing by tokens when
// LPT cannot place an item), then moves and swaps out of the costliest micro-batch.
PackResult pack_balanced(const PipelineModel& model, std::span<const int64_t> lengths);

// The original: for v in original_micro_batch_range, the CBC MILP "minimise the largest
// micro-batch cost" with `time_limit_s` per solve; keeps the cheapest pipeline time.
PackResult pack_original_milp(const PipelineModel& model, std::span<const int64_t> lengths,
                              double time_limit_s);

// Builds a PackResult (sorted, costs recomputed) from a bin per sequence.
PackResult pack_result_from_bins(const PipelineModel& model, std::span<const int64_t> lengths,
                                 std::span<const int> bin_of, int num_bins);

}  // namespace hydraulis::planner
