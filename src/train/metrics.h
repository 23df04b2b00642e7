// StepMetrics and the metrics JSONL writer (design.md "m.jsonl"): one JSON object per line and
// step with the contract keys step, loss, tokens, step_ms, strategy, planning_ms, tokens_per_s,
// plus grad_norm, lr, targets, micro_batches and skipped; on a GPU also mfu, model_tflops_per_s,
// peak_memory_bytes and, with NVML's counter, board_joules and board_watts; in distributed runs
// estimated_ms and pipelines (estimated vs measured ms of each pipeline). The file is rewritten
// atomically after every step (core::AtomicFile), so it is always complete. Docs:
// docs/training.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace hydraulis::train {

struct StepMetrics {
  int64_t step = 0;         // 1-based optimizer step
  double loss = 0;          // mean token loss of the step (Σ over micro-batches, see docs)
  int64_t tokens = 0;       // tokens of the global batch
  int64_t targets = 0;      // training positions (the loss normaliser)
  double step_ms = 0;       // wall time of the whole step (data, plan, fwd/bwd, optimizer)
  int64_t strategy = 0;     // index into the strategy list (single device: 0)
  double planning_ms = 0;   // time to cut the global batch into micro-batches
  double tokens_per_s = 0;  // tokens / step time
  double grad_norm = 0;     // global L2 norm before clipping
  double lr = 0;            // learning rate used by this step
  int64_t micro_batches = 0;
  bool skipped = false;  // non-finite loss/gradients and --skip-nonfinite
  // Device runs only (negative: not written): model FLOP/s over the step (model/flops.h), MFU =
  // that over the device's bf16 dense peak, and the allocator's high-water mark of the step.
  double model_tflops_per_s = -1;
  double mfu = -1;
  int64_t peak_memory_bytes = -1;
  // Where the backend has an energy counter (train/energy_meter.h; negative: not written): the
  // boards' joules since this process's first step, and their mean power over that time.
  double board_joules = -1;
  double board_watts = -1;
  // Distributed runs: the planner's estimate of the step (its slowest pipeline, spec.md §4 in the
  // scheme space's units) and per pipeline, in the strategy's order, its estimate and the
  // measured wall time of its 1F1B run (the slowest of its ranks). Negative / empty: not written.
  double estimated_ms = -1;
  struct Pipeline {
    std::string scheme;  // "(cp, tp, pp)"
    double estimated_ms = 0;
    double measured_ms = 0;
  };
  std::vector<Pipeline> pipelines;

  core::Json to_json() const;
};

class MetricsWriter {
 public:
  // An empty path writes nothing.
  explicit MetricsWriter(std::string path) : path_(std::move(path)) {}
  core::Status append(const StepMetrics& metrics);
  // A resumed run: keeps the lines of steps 1..step of the existing file (if any), so the file
  // goes on as one run's metrics.
  core::Status resume(int64_t step);
  const std::string& text() const { return text_; }

 private:
  std::string path_;
  std::string text_;
};

}  // namespace hydraulis::train
