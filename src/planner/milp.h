// Exact MILP forms solved with COIN-OR CBC (time-limited, single thread, silent): the packing
// MILP of the original's stage 2 and the original's abandoned stage-1 dispatch MILP.
// Used by the original method, the exact comparison in bench/planner, and tests.
// Tests: tests/planner/pack_test.cpp, dispatch_test.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "planner/assignment.h"

namespace hydraulis::planner {

struct MilpResult {
  bool feasible = false;     // an integer solution was found
  bool optimal = false;      // and proven optimal
  double objective = 0;      // its objective value
  double bound = 0;          // CBC's best lower bound
  std::vector<int> choice;   // per item: bin (packing) or pipeline (dispatch)
};

// Items (tokens[i], costs[i]) into `num_bins` bins, Σ tokens ≤ cap per bin, minimise the largest
// bin cost. Binary o[i][k], continuous z; one row per item and two per bin.
MilpResult solve_pack_milp(std::span<const int64_t> tokens, std::span<const double> costs,
                           int64_t cap, int num_bins, double time_limit_s);

// Sequences (sorted lengths) to pipelines: binary m[i][j] (only where lengths[i] ≤ max_tokens_j),
// Y_j ≥ cost_j(s_i)·m[i][j], Z ≥ Σ_i cost_j(s_i)·m[i][j] + (pp_j − 1)·Y_j, minimise Z (spec.md
// §7's stage-1 objective). `start` (a pipeline per sequence, may be empty) is a MIP start.
MilpResult solve_dispatch_milp(std::span<const int64_t> lengths,
                               std::span<const PipelineModel> pipelines,
                               std::span<const int> start, double time_limit_s);

}  // namespace hydraulis::planner
