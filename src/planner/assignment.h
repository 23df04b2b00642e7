// Plain inputs of stage 1 (dispatch) and stage 2 (packing): one pipeline as the assignment sees it
// (cost coefficients, pp, token cap, utilization length) and the spec.md §4 pipeline time.
// Everything here works on a sorted length array; no scheme space needed (tests use plain data).
// Tests: tests/planner/pack_test.cpp, dispatch_test.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "planner/cost_model.h"
#include "planner/scheme_space.h"

namespace hydraulis::planner {

// One pipeline of a strategy: its scheme's fitted coefficients, its micro-batch token cap
// (spec.md §3 max_seqlen) and utilization_seqlen[tp] (micro-batches below it under-use the GPU).
struct PipelineModel {
  SchemeCost cost;
  int64_t max_tokens = 0;
  int64_t utilization_seqlen = 0;
  int pp() const { return cost.scheme.pp; }
  double sequence_ms(int64_t s) const { return sequence_cost(cost, s); }
};

// (max_micro_batch_cost + c)·(pp − 1 + v), 0 when v == 0 (spec.md §4).
inline double pipeline_ms(const PipelineModel& model, double max_micro_batch_cost,
                          int64_t num_micro_batches) {
  if (num_micro_batches <= 0) return 0.0;
  return (max_micro_batch_cost + model.cost.c) *
         static_cast<double>(model.pp() - 1 + num_micro_batches);
}

// Micro-batches of one pipeline as index lists (indices into the caller's length array).
using MicroBatches = std::vector<std::vector<int>>;

// Sequences of each pipeline (indices into the batch's sorted length array).
using PipelineAssignment = std::vector<std::vector<int>>;

}  // namespace hydraulis::planner
