// A training run's report from its metrics JSONL (train/metrics.h): the summary a person checks
// (loss, throughput, MFU, how well the planner's estimates matched the measured step times, how
// often the strategy switched) and a figure of the run (loss, estimated vs measured step time,
// throughput, strategy per step). CLI: `hydraulis report`. Docs: docs/training.md ("Report").
// Tests: tests/train/run_report_test.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "train/metrics.h"
#include "viz/chart.h"

namespace hydraulis::train {

// The steps of a metrics file (step, loss, tokens, step_ms, strategy, tokens_per_s, and where
// present estimated_ms, mfu, model_tflops_per_s, peak_memory_bytes). Errors name the file and line.
core::StatusOr<std::vector<StepMetrics>> read_metrics(const std::string& path);

struct RunSummary {
  int64_t steps = 0;
  double first_loss = 0, last_loss = 0, min_loss = 0;
  // Over the steps after the first (it warms caches, threads and the allocator):
  double mean_tokens_per_s = 0;
  double mean_mfu = -1;             // -1: not recorded (CPU runs)
  double mean_tflops_per_s = -1;
  int64_t peak_memory_bytes = -1;
  // |estimated − measured| / measured of the step time, mean over the steps with an estimate
  // (−1: none), and the signed mean (> 0: the planner over-estimates).
  double estimate_mean_relative_error = -1;
  double estimate_mean_signed_error = 0;
  int64_t switches = 0;                      // steps whose strategy differs from the previous
  std::vector<int64_t> steps_per_strategy;   // index = strategy
  core::Json to_json() const;
};
RunSummary summarize_run(const std::vector<StepMetrics>& steps);

// Four panels: loss; measured step time and the planner's estimate; tokens/s (MFU in the
// notes); the strategy of each step.
viz::Figure run_figure(const std::vector<StepMetrics>& steps, const RunSummary& summary,
                       const std::string& title);

}  // namespace hydraulis::train
