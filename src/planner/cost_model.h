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

// Parameters + gradients + optimizer states per GPU (bytes) of `scheme` under `layout`.
double model_state_bytes(const SchemeSpace& space, const Scheme& scheme,
                         const OptimizerLayout& layout);
// Activation bytes per GPU for s tokens in one micro-batch: L·(s·H/tp)·A[tp].
double activation_bytes(const SchemeSpace& space, const Scheme& scheme, int64_t tokens);
// Most tokens one micro-batch of `scheme` holds (spec.md §3), aligned down to 128; 0 or an error
// when even the model state does not fit (the message names the scheme and the bytes).
core::StatusOr<int64_t> max_tokens(const SchemeSpace& space, const Scheme& scheme,
                                   const OptimizerLayout& layout);

}  // namespace hydraulis::planner
