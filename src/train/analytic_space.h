// An analytic scheme space for `train` without --scheme-space (docs/training.md, "Distributed"):
// every scheme of the strategy list gets cost(s) = a·s² + b·s + c from the model's FLOPs (6·N·s
// for the matrices, 6·L·C·s² for causal attention, fwd + bwd) on cp·tp GPUs at an assumed 40% of
// the device's peak (CPU: 50 GFLOP/s per rank), c = 1 ms; the memory model of spec.md §3 with
// A[tp] from the saved activations per token and B, alpha from 16 (CPU) or 18 (GPU) bytes per
// parameter; gpu_memory_bound is the device's memory. So any valid strategy list runs out of the
// box; profiling (`hydraulis profile`) replaces it with measured coefficients.
// Tests: tests/train/parity_test.cpp.
#pragma once

#include <vector>

#include "model/config.h"
#include "planner/scheme_space.h"
#include "planner/strategy.h"

namespace hydraulis::train {

planner::SchemeSpace analytic_scheme_space(const model::LlamaConfig& config,
                                           const std::vector<planner::Strategy>& strategies,
                                           double device_memory_bytes, double peak_flops,
                                           bool on_gpu);

}  // namespace hydraulis::train
