// Strategy proposal (spec.md §5): a dynamic program over (GPUs, longest length) that splits a
// sequence-length histogram into length ranges, each served by d replicas of one scheme, and
// turns the optimum for every longest length into a strategy list. Original:
// examples/strategy/strategy_proposal.py. Method, complexity and timings: docs/planner.md.
// Tests: tests/planner/proposal_test.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "planner/cost_model.h"
#include "planner/scheme_space.h"
#include "planner/strategy.h"

namespace hydraulis::planner {

// Sequence lengths (tokens, ascending, unique, > 0) with their counts (> 0, possibly fractional
// after scaling to one global batch).
struct LengthHistogram {
  std::vector<int64_t> lengths;
  std::vector<double> counts;

  double total_sequences() const;
  double total_tokens() const;
  int64_t longest() const { return lengths.empty() ? 0 : lengths.back(); }
};

// Counts every length > 0 (lengths <= 0 are ignored).
LengthHistogram make_length_histogram(std::span<const int64_t> lengths);
// Expected counts in one global batch of `global_token_num` tokens: count · T / total_tokens.
// (The original feeds whole-corpus counts to the program; the argmin differs only through the
// (pp − 1) warm-up term, which scaling makes realistic.)
LengthHistogram scale_to_global_batch(const LengthHistogram& histogram, double global_token_num);
// Lengths above `max_len` become `max_len` (a longer document is cut to the cap, spec.md §1).
LengthHistogram clip_histogram(const LengthHistogram& histogram, int64_t max_len);

// Which schemes may serve the length range (s − l, s].
enum class CapacityRule {
  kRangeEnd,       // original: max_tokens ≥ s (the grid point)
  kLongestLength,  // ours: max_tokens ≥ the longest length present in the range
};

struct ProposalOptions {
  int num_gpus = 0;         // N; a multiple of n_step
  int n_step = 1;           // N_STEP
  int64_t s_step = 128;     // S_STEP
  int64_t max_seq_len = 0;  // S: longer lengths are clipped to it; 0 = the longest length
  // The optimizer layout (os_dp, os_tp, os_pp); nullopt = choose it (choose_optimizer_layout).
  std::optional<OptimizerLayout> layout;
  CapacityRule capacity = CapacityRule::kLongestLength;
};

// One DP choice: `replicas` pipelines of `scheme` share the lengths in (begin, end].
struct ProposalSegment {
  int64_t begin = 0;
  int64_t end = 0;
  Scheme scheme;
  int replicas = 0;
  double cost_ms = 0;  // histogram cost of the range / replicas
};

struct ProposedStrategy {
  Strategy strategy;             // pipelines sorted by tp (then cp, pp) descending
  int64_t covered_length = 0;    // the DP's s: every length <= it has a pipeline
  double estimated_ms = 0;       // spec.md §4 histogram cost of lengths <= covered_length
  double covered_sequences = 0;  // histogram count with length <= covered_length
  std::vector<ProposalSegment> segments;
  int filled_gpus = 0;  // GPUs the DP left idle, given to extra replicas afterwards
};

struct SchemeCapacity {
  Scheme scheme;
  int64_t max_tokens = 0;  // under the proposal's optimizer layout (0: does not fit)
};

struct Proposal {
  OptimizerLayout layout;
  std::vector<SchemeCapacity> capacities;    // every scheme of the space, in file order
  std::vector<ProposedStrategy> strategies;  // [0] is the homogeneous optimizer-layout strategy
  int64_t s_top = 0;                         // the last grid point (S rounded up to S_STEP)
  int64_t s_step = 0;                        // S_STEP
  double total_sequences = 0;
  int64_t dp_cells = 0;  // (n, s, k, l, d) candidates evaluated
  // Per grid point s = (j + 1)·S_STEP: the DP optimum t[N][s] (infinity when no strategy holds
  // the lengths <= s) and the index of its strategy in `strategies` (-1: none).
  std::vector<double> optimum_by_length;
  std::vector<int> strategy_by_length;
  std::vector<Strategy> strategy_list() const;
};

// The histogram cost of one homogeneous strategy (dp pipelines of `cost.scheme`) over the whole
// histogram: histogram_range_cost / dp (the caller keeps only the lengths the scheme holds).
double homogeneous_time(const SchemeCost& cost, const LengthHistogram& histogram, int dp);

// Layout choice when none is given: among schemes whose GPU count divides N and whose
// homogeneous strategy (N / gpus pipelines, that scheme as its own optimizer layout) holds the
// longest length, the one with the least DP optimum at the longest length; ties: least
// homogeneous time. Error when no homogeneous strategy holds the longest length.
core::StatusOr<OptimizerLayout> choose_optimizer_layout(const SchemeSpace& space,
                                                        const LengthHistogram& histogram,
                                                        const ProposalOptions& options);

core::StatusOr<Proposal> propose_strategies(const SchemeSpace& space,
                                            const LengthHistogram& histogram,
                                            const ProposalOptions& options);

core::Json proposal_to_json(const Proposal& proposal);

}  // namespace hydraulis::planner
