// Stage 1 (dispatch): the sequences of a global batch (sorted lengths) -> pipelines of one
// strategy. The original's randomized greedy (spec.md §7, 50 shuffles), ours (LPT on the packed-time
// lower bound of each pipeline + local search on the bottleneck), and the strategy lower bound.
// Docs: docs/planner_assignment.md. Tests: tests/planner/dispatch_test.cpp.
#pragma once

#include <cstdint>
#include <span>

#include "planner/assignment.h"
#include "planner/pack.h"

namespace hydraulis::planner {

// Whether a dispatch may leave a pipeline without sequences (it then only joins the gradient
// reduction). The original rejects such results.
enum class EmptyPipelines { kAllow, kReject };

struct DispatchResult {
  PipelineAssignment pipelines;  // per pipeline (list order): indices into the sorted lengths
  double objective = 0;          // the dispatcher's own objective (infinity when rejected)
};

// Stage-1 total of the original: Σ cost(s) + (pp − 1)·max cost(s).
double original_stage1_total(const PipelineModel& model, const PipelineLoad& load);

// The original: pipelines by max_tokens descending; sequences only the first can hold go there;
// the rest, shuffled with seeds first_seed…first_seed+num_shuffles−1 (the original: 0…49), each to
// the eligible pipeline that minimises the resulting largest stage-1 total (ties: an empty
// pipeline, then the smaller own total, then the earlier pipeline); keeps the best shuffle. Every
// sequence must fit some pipeline. With kReject, a result leaving a pipeline empty is rejected
// (objective infinity when every shuffle is).
DispatchResult dispatch_original(std::span<const int64_t> sorted_lengths,
                                 std::span<const PipelineModel> pipelines, int num_shuffles,
                                 uint64_t first_seed, EmptyPipelines empty);

struct BalancedDispatchOptions {
  int max_refine_rounds = 64;    // packing-aware moves out of the bottleneck (0: none)
  int refine_candidates = 12;    // moves evaluated by real packing per round
};

// Ours: longest first, each sequence to the pipeline whose packed-time lower bound
// (pack_lower_bound) grows least; then moves/swaps out of the bottleneck pipeline on that estimate;
// then packs every pipeline with pack_balanced and moves sequences out of the packed bottleneck while
// that lowers it. `packs` receives each pipeline's packing (indices into the pipeline's own list).
// objective = the largest packed pipeline time. Stops early once it reaches `lower_bound_ms`.
DispatchResult dispatch_balanced(std::span<const int64_t> sorted_lengths,
                                 std::span<const PipelineModel> pipelines,
                                 const BalancedDispatchOptions& options, double lower_bound_ms,
                                 std::vector<PackResult>* packs);

// A lower bound on the largest pipeline time of any dispatch + packing of these sequences on
// these pipelines: max(longest-sequence bound, capacity bound found by bisection on the time τ
// with per-pipeline work capacities at τ and, as a second resource, work plus the micro-batch
// overheads the token cap forces; see docs/planner_assignment.md). 0 when lengths is
// empty; infinity when some sequence fits no pipeline.
double dispatch_lower_bound(std::span<const int64_t> sorted_lengths,
                            std::span<const PipelineModel> pipelines);

}  // namespace hydraulis::planner
