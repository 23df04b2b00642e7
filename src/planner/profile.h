// Profile: the raw measurements `hydraulis profile` makes and `hydraulis build-space` fits — per
// scheme (cp, tp, pp), every profiled sequence length with the time of every repeat and the peak
// memory of every rank, plus the model-state bytes each rank holds. Plain data with its own JSON
// format ("hydraulis-profile" version 1, docs/formats.md); the measuring lives in
// train/profiler.h, the fit in planner/space_fit.h. Tests: tests/planner/space_fit_test.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "planner/scheme_space.h"

namespace hydraulis::planner {

inline constexpr const char* kProfileFormat = "hydraulis-profile";
inline constexpr int kProfileVersion = 1;

// One profiled length of one scheme. step_ms[i] is repeat i's wall time of the pipeline's step
// (v micro-batches, one sequence of seq_len positions each); the time of one micro-batch is
// step_ms / slots (slots = pp − 1 + v, the 1F1B length of spec.md §4).
struct ProfilePoint {
  int64_t seq_len = 0;
  std::vector<double> step_ms;      // every repeat, in run order
  std::vector<int64_t> peak_bytes;  // per rank of the scheme (rank order), over the repeats

  int64_t max_peak_bytes() const;
};

// Bytes of model state one rank of a scheme holds, measured from its tensors: decoder-layer
// tensors vs the rest (embedding, final norm, LM head), each split into the strategy layout
// (weights, gradients, compute copy) and the optimizer layout (fp32 master, gradient, moments).
struct RankState {
  int rank = 0;         // in the scheme's group (0 .. gpus − 1)
  int stage = 0;
  int64_t layers = 0;   // decoder layers of this rank's stage
  int64_t layer_strategy_bytes = 0;
  int64_t layer_optimizer_bytes = 0;
  int64_t other_strategy_bytes = 0;
  int64_t other_optimizer_bytes = 0;
  int64_t context_bytes = 0;  // device memory in use outside the tensor allocator (CUDA/NCCL), 0 on CPU

  int64_t total() const {
    return layer_strategy_bytes + layer_optimizer_bytes + other_strategy_bytes +
           other_optimizer_bytes;
  }
};

struct SchemeProfile {
  Scheme scheme;
  int64_t micro_batches = 1;  // v: pp, so the first stage holds pp micro-batches (spec.md §3)
  std::vector<RankState> ranks;
  std::vector<ProfilePoint> points;  // increasing seq_len
  int64_t stopped_at = 0;            // first length not profiled (memory), 0 if none
  std::string stop_reason;

  int64_t slots() const { return scheme.pp - 1 + micro_batches; }
  // Median over the repeats of step_ms / slots, in ms.
  double median_ms(const ProfilePoint& point) const;
};

struct ProfileModel {
  std::string name;
  int64_t hidden = 0;      // H
  int64_t layers = 0;      // L
  int64_t vocab = 0;       // V
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t ffn_hidden = 0;
  bool operator==(const ProfileModel&) const = default;
};

struct Profile {
  ProfileModel model;
  std::string device_kind;     // "cpu" or "cuda"
  std::string device_name;     // "cpu" or the GPU's name
  int64_t device_memory_bytes = 0;  // per device: GPU total, or host memory available at start
  int ranks = 1;               // processes that ran the profile
  int cpu_threads = 0;         // CPU kernel threads per rank (CPU profiles)
  std::string git;             // commit of the binary ("unknown" outside a checkout)
  std::string created;         // UTC, ISO 8601
  int warmup = 0;
  int repeats = 0;
  int64_t min_seq_len = 0;
  int64_t max_seq_len = 0;
  std::vector<SchemeProfile> schemes;

  core::Json to_json() const;
  // `source` (a file name) prefixes every error, with the key path and the fix.
  static core::StatusOr<Profile> from_json(const core::Json& json, const std::string& source);
  static core::StatusOr<Profile> load(const std::string& path);
  core::Status save(const std::string& path) const;
};

}  // namespace hydraulis::planner
