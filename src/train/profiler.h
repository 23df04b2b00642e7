// Profiler (`hydraulis profile`, spec.md §3): for every scheme (cp, tp, pp) that fits the ranks,
// runs real training micro-batches through the scheme's parallel::StrategyRuntime (one pipeline,
// so its tp/cp collectives and pp sends are in the time) at lengths min, 2·min, … up to max,
// stopping at the first length whose memory forecast does not fit. Each step holds v = pp
// micro-batches of ONE sequence each; its wall time (CUDA events on a GPU, steady clock on the
// CPU, the maximum over the scheme's ranks) is recorded for every repeat after the warm-up, with
// every rank's peak memory and its model-state bytes. Output: planner::Profile (its JSON is in
// docs/formats.md). Docs: docs/profiling.md. Tests: tests/train/profiler_test.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/status.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/ops.h"
#include "planner/profile.h"
#include "planner/scheme_space.h"

namespace hydraulis::train {

struct ProfileOptions {
  model::LlamaConfig model;
  model::ModelOptions model_options;
  std::vector<planner::Scheme> schemes;  // empty: default_profile_schemes
  int64_t min_seq_len = 128;
  int64_t max_seq_len = 65536;
  int warmup = 2;
  int repeats = 5;
  uint64_t seed = 1234;  // weights and token ids
  // Headroom of the memory forecast: a length runs only if forecast·(1 + margin) fits.
  double memory_margin = 0.1;
  std::string git = "unknown";
  bool progress = true;  // a progress line per length on rank 0 (stderr)
};

// Every (cp, tp, pp) with cp, tp, pp ∈ {1, 2, 4, 8}, cp·tp·pp <= ranks, that the model can be
// sharded by (parallel::check_model_fits) and, for cp > 1, that the backend supports. Ordered by
// GPUs, then cp, tp, pp.
std::vector<planner::Scheme> default_profile_schemes(int ranks, const model::LlamaConfig& model,
                                                     bool context_parallel_supported);

// Checks before any allocation: lengths, repeats, every scheme within the ranks and the model.
core::Status validate_profile_options(const ProfileOptions& options, int ranks);

// Collective over `world` (host scalars) and `device_world` (tensors on ops' device; the same
// communicator on the CPU). A scheme of g GPUs runs on world ranks 0 .. g − 1 while the others
// wait. The returned profile is complete on rank 0.
core::StatusOr<planner::Profile> run_profile(const ProfileOptions& options,
                                             std::shared_ptr<comm::Communicator> world,
                                             std::shared_ptr<comm::Communicator> device_world,
                                             std::shared_ptr<const model::Ops> ops);

}  // namespace hydraulis::train
