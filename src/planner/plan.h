// Plan of one global batch: the chosen strategy, each pipeline's micro-batches (indices into the
// batch's input length array) and the estimates of spec.md §4; plus the plan.jsonl writer/reader
// (form fixed by design.md) and a verifier that recomputes every estimate.
// Tests: tests/planner/plan_test.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "planner/scheme_space.h"

namespace hydraulis::planner {

struct PipelinePlan {
  Scheme scheme;
  int64_t max_tokens = 0;    // token cap of one micro-batch of this pipeline
  double estimated_ms = 0;   // (max micro-batch cost + c)·(pp − 1 + v); 0 when idle
  std::vector<std::vector<int>> micro_batches;  // indices into the batch's input array
};

struct BatchPlan {
  int64_t batch = 0;         // position of the global batch in its input
  int strategy = 0;          // index into the strategy list
  double estimated_ms = 0;   // largest pipeline estimate
  double lower_bound_ms = 0; // no plan of the considered strategies can be faster
  double planning_ms = 0;    // wall time spent planning this batch
  std::vector<PipelinePlan> pipelines;  // in the strategy's list order
  // Extensions (written after the design.md keys): the batching method, and the length every
  // sequence is padded to (method 0; 0 = packed varlen micro-batches).
  int method = 4;
  int64_t pad_tokens = 0;

  // estimated_ms / lower_bound_ms − 1 (0 when the bound is 0).
  double gap() const;
};

// One plan.jsonl line (no trailing newline).
std::string plan_to_json_line(const BatchPlan& plan);
core::Json plan_to_json(const BatchPlan& plan);
// `source` names the input in errors ("plan.jsonl:3").
core::StatusOr<BatchPlan> plan_from_json(const core::Json& json, const std::string& source);

core::Status write_plan_jsonl(const std::string& path, std::span<const BatchPlan> plans);
core::StatusOr<std::vector<BatchPlan>> read_plan_jsonl(const std::string& path);
core::StatusOr<std::vector<BatchPlan>> parse_plan_jsonl(std::string_view text,
                                                        const std::string& source);

// Cost of a micro-batch holding these lengths, padded or not: Σ a·s² + b·s with s = pad_tokens
// when pad_tokens > 0.
double micro_batch_cost_padded(const SchemeCost& cost, std::span<const int64_t> lengths,
                               int64_t pad_tokens);

// Checks `plan` against the batch's lengths (input order) and each pipeline's cost coefficients
// (`costs[j]` for pipeline j): every sequence in exactly one micro-batch, every micro-batch within
// its pipeline's max_tokens (each sequence within pad_tokens when padded), every estimate equal to
// the recomputed spec.md §4 value (relative tolerance), and lower_bound_ms ≤ estimated_ms.
core::Status verify_plan(const BatchPlan& plan, std::span<const int64_t> lengths,
                         std::span<const SchemeCost> costs, double tolerance = 1e-6);

}  // namespace hydraulis::planner
