// Simulation over many global batches: every batch planned by batching methods 0/1/3/4 (ours, and
// optionally the original's method 4) and by each homogeneous strategy of the list alone; per run
// the estimated step times (spec.md §4), throughput in tokens/s and planning times. Also the
// --batches JSON reader shared by `hydraulis plan` and `simulate`.
// Tests: tests/planner/simulate_test.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "planner/batch_planner.h"

namespace hydraulis::planner {

// `--batches F.json`: a JSON array of global batches, each a non-empty array of integer lengths
// ≥ 1. Errors give line:column for malformed JSON and "batch i, element k" for bad values.
core::StatusOr<std::vector<std::vector<int64_t>>> parse_batches_json(std::string_view text,
                                                                     const std::string& source);
core::StatusOr<std::vector<std::vector<int64_t>>> read_batches_json(const std::string& path);

struct SimulationOptions {
  int64_t max_seq_len = 0;         // methods 0/1/3 (see PlannerOptions)
  bool include_original = false;   // also run the original's method 4 (slow: CBC per v)
  double pack_time_limit_s = 0.5;  // the original's CBC limit per packing solve
  uint64_t seed = 0;
};

// One planner configuration run over all batches.
struct SimulationRun {
  std::string name;                // "method 4 (ours)", "homogeneous 4x(1,16,1)"
  int method = 4;
  std::string algorithm = "ours";
  int only_strategy = -1;          // ≥ 0: restricted to that strategy; -1: chosen per batch
  std::vector<double> step_ms;     // per batch; NaN where this run cannot plan the batch
  std::vector<double> planning_ms; // per batch
  std::vector<double> gap;         // per batch: estimate / lower bound − 1
  std::vector<int> strategy;       // per batch: chosen strategy (list index), −1 if none
  int64_t planned_tokens = 0;      // tokens of the batches it could plan
  double total_ms = 0;             // Σ step_ms over those batches
  int failed_batches = 0;
  std::string first_error;         // why the first failed batch failed
  double tokens_per_s() const { return total_ms > 0 ? planned_tokens / total_ms * 1000.0 : 0.0; }
};

struct SimulationReport {
  std::vector<int64_t> batch_tokens;  // Σ lengths per batch
  std::vector<SimulationRun> runs;
};

core::StatusOr<SimulationReport> simulate_batches(const std::vector<std::vector<int64_t>>& batches,
                                                  const std::vector<StrategyModel>& strategies,
                                                  const SimulationOptions& options);

core::Json simulation_to_json(const SimulationReport& report,
                              const std::vector<StrategyModel>& strategies);

// True when every pipeline of the strategy has the same scheme.
bool is_homogeneous(const Strategy& strategy);

}  // namespace hydraulis::planner
