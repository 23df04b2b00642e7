// Anytime improvement of a stage-1 dispatch on the true packed objective (largest pipeline time
// after pack_balanced): descent by moves and swaps out of the packed bottleneck, restarts from
// randomized greedy dispatches, and kicks of the best plan (iterated local search). Work is
// counted in pipeline packings, not wall time, so results depend only on inputs and seed.
// Docs: docs/planner_assignment.md. Tests: tests/planner/dispatch_test.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "planner/dispatch.h"

namespace hydraulis::planner {

struct DispatchSearchOptions {
  // Work units the search may spend per strategy (0: no search): one per pipeline packing run
  // (memoized repeats are free) and one per descent step.
  int64_t pack_budget = 1000;
  int num_restarts = 4;        // randomized greedy dispatches searched besides the initial one
  int candidates_per_round = 24;  // moves/swaps checked by real packing per descent step
  uint64_t seed = 0;           // restarts and kicks draw from this seed
  double stop_gap = 0.002;     // stop once the plan is within this relative gap of the bound
  // Strategy choice: only strategies whose quick plan is within this share of the best quick plan
  // (and whose lower bound is below the best plan so far) are searched.
  double strategy_window = 0.1;
};

// Improves `initial` (with its packs, indices into each pipeline's list) on the packed objective;
// never returns a worse plan. objective = the largest packed pipeline time; `packs` receives the
// packing of each pipeline of the result.
DispatchResult search_dispatch(std::span<const int64_t> sorted_lengths,
                               std::span<const PipelineModel> pipelines,
                               const DispatchSearchOptions& options, double lower_bound_ms,
                               const DispatchResult& initial,
                               const std::vector<PackResult>& initial_packs,
                               std::vector<PackResult>* packs);

}  // namespace hydraulis::planner
