// Cost and memory model of spec.md §3-4, as pure functions of a scheme's fitted coefficients.
// Formulas and worked examples: docs/planner.md. Tests: tests/planner/cost_model_test.cpp.
#pragma once

#include <cstdint>
#include <span>

#include "planner/scheme_space.h"

namespace hydraulis::planner {

// The fixed optimizer layout (os_dp, os_tp, os_pp): the first, homogeneous strategy of a list.
struct OptimizerLayout {
  int dp = 1;
  int tp = 1;
  int pp = 1;
};

// Cost of one sequence in a (packed) micro-batch: a·s² + b·s (c is per micro-batch).
inline double sequence_cost(const SchemeCost& cost, int64_t s) {
  double x = static_cast<double>(s);
  return cost.a * x * x + cost.b * x;
}

// Σ sequence_cost over a packed micro-batch.
double micro_batch_cost(const SchemeCost& cost, std::span<const int64_t> lengths);

// A pipeline running v micro-batches whose largest cost is max_cost:
// (max_cost + c) · (pp − 1 + v); 0 when v == 0 (the pipeline idles).
double pipeline_time(const SchemeCost& cost, double max_micro_batch_cost, int64_t num_micro_batches);

// Spec.md §4 cost of one pipeline of `cost.scheme` processing a length histogram (counts may be
// fractional): Σ count(s)·(a·s² + b·s + c) + (pp − 1)·(a·m² + b·m + c), m = the longest length
// with a positive count (0 when none; the original then still adds (pp − 1)·c).
double histogram_range_cost(const SchemeCost& cost, std::span<const int64_t> lengths,
                            std::span<const double> counts);

// Micro-batch token caps are aligned down to this many tokens (original: e2e_train.py).
inline constexpr int64_t kTokenAlignment = 128;

// Parameters + gradients + optimizer states per GPU (bytes) of `scheme` under `layout`.
double model_state_bytes(const SchemeSpace& space, const Scheme& scheme,
                         const OptimizerLayout& layout);
// Activation bytes per GPU for s tokens in one micro-batch: L·(s·H/tp)·A[tp].
double activation_bytes(const SchemeSpace& space, const Scheme& scheme, int64_t tokens);
// Most tokens one micro-batch of `scheme` holds (spec.md §3), aligned down to 128; 0 or an error
// when even the model state does not fit (the message names the scheme and the bytes).
core::StatusOr<int64_t> max_tokens(const SchemeSpace& space, const Scheme& scheme,
                                   const OptimizerLayout& layout);

// Homogeneous variant (spec.md §3): data-parallel degree dp, optimizer states sharded over dp
// in this scheme's own (tp, pp): the os terms become alpha/dp.
double model_state_bytes_homogeneous(const SchemeSpace& space, const Scheme& scheme, int dp);
// gap["node"] (the original always uses it; 0 when absent).
double memory_gap_bytes(const SchemeSpace& space);
// Predicted peak bytes per GPU: activation(tokens) + model state + gap.
double predicted_memory_bytes(const SchemeSpace& space, const Scheme& scheme,
                              const OptimizerLayout& layout, int64_t tokens);
// max_tokens for a given model-state size (bytes per GPU); shared by both variants.
core::StatusOr<int64_t> max_tokens_for_state(const SchemeSpace& space, const Scheme& scheme,
                                             double state_bytes);

}  // namespace hydraulis::planner
