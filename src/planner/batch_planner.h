// Per-global-batch planning (spec.md §7): candidate strategies, batching methods 0/1/3/4, and the
// algorithm behind stage 1 + 2 — ours, the original (randomized greedy + per-v CBC packing) or the
// exact time-limited CBC formulation — producing a BatchPlan with estimate, lower bound and time.
// Docs: docs/planner_assignment.md. Tests: tests/planner/batch_planner_test.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "planner/assignment.h"
#include "planner/dispatch.h"
#include "planner/dispatch_search.h"
#include "planner/plan.h"
#include "planner/scheme_space.h"
#include "planner/strategy.h"

namespace hydraulis::planner {

enum class BatchingMethod {
  kPadding = 0,              // even split, one sequence per micro-batch padded to max_seq_len
  kPacking = 1,              // even split + greedy packing
  kDispatchPacking = 3,      // dispatch + greedy packing with cap max_seq_len
  kDispatchFinePacking = 4,  // dispatch + fine-grained packing (the full method)
};

enum class PlannerAlgorithm {
  kOurs,      // dispatch_balanced + pack_balanced, then (method 4) search_dispatch
  kOriginal,  // dispatch_original (50 shuffles) + pack_original_milp (0.5 s per v)
  kMilp,      // CBC dispatch MILP (MIP start: one greedy shuffle) + pack_original_milp
};

core::StatusOr<BatchingMethod> batching_method_from_int(int method);
core::StatusOr<PlannerAlgorithm> planner_algorithm_from_string(std::string_view name);
const char* planner_algorithm_name(PlannerAlgorithm algorithm);

// One strategy of the list with its pipelines' models.
struct StrategyModel {
  Strategy strategy;
  std::vector<PipelineModel> pipelines;
  int64_t largest_max_tokens() const;
};

// Validates the list (spec.md §6) and builds every pipeline's model: coefficients from the space,
// max_tokens under the list's optimizer layout, utilization_seqlen by tp.
core::StatusOr<std::vector<StrategyModel>> build_strategy_models(
    const SchemeSpace& space, const std::vector<Strategy>& strategies, int num_gpus);

struct PlannerOptions {
  BatchingMethod method = BatchingMethod::kDispatchFinePacking;
  PlannerAlgorithm algorithm = PlannerAlgorithm::kOurs;
  int fixed_strategy = 0;        // the one strategy of methods 0 and 1
  int64_t max_seq_len = 0;       // pad length (0) / greedy cap (1, 3); 0: the batch's longest
                                 // sequence rounded up to a multiple of 128
  uint64_t seed = 0;             // first shuffle seed of the original's dispatch
  int num_shuffles = 50;
  double pack_time_limit_s = 0.5;      // per CBC packing solve (original, milp)
  double dispatch_time_limit_s = 2.0;  // CBC dispatch solve (milp)
  BalancedDispatchOptions balanced;
  DispatchSearchOptions search;  // ours, method 4: search on the packed objective (seeded by seed)
};

// Plans one global batch (lengths in input order). Errors: empty or non-positive lengths, a
// sequence no candidate strategy can hold (named with its position, length and the largest cap).
core::StatusOr<BatchPlan> plan_global_batch(std::span<const int64_t> lengths,
                                            std::span<const StrategyModel> strategies,
                                            const PlannerOptions& options, int64_t batch_index);

// Each pipeline's SchemeCost of a strategy (for verify_plan).
std::vector<SchemeCost> strategy_costs(const StrategyModel& strategy);

}  // namespace hydraulis::planner
