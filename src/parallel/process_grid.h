// ProcessGrid: where every pipeline, stage, cp rank and tp rank of a strategy sits on the world
// ranks (spec.md §8), and check_model_fits: whether a model can be sharded by every scheme of a
// strategy. Pure rank math; equations and a worked example in docs/parallel.md ("Process grid").
// Tests: tests/parallel/process_grid_test.cpp.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "planner/scheme_space.h"
#include "planner/strategy.h"

namespace hydraulis::parallel {

// The coordinates of one world rank inside a strategy.
struct RankCoord {
  int pipeline = 0;
  int stage = 0;    // 0 .. pp − 1
  int cp_rank = 0;  // 0 .. cp − 1
  int tp_rank = 0;  // 0 .. tp − 1
  bool operator==(const RankCoord&) const = default;
};

// Placement (tp innermost, so a TP group is cp·tp-aligned and never straddles a node boundary when
// tp divides gpus_per_node):
//   first(p)  = Σ_{q < p} cp_q·tp_q·pp_q
//   rank      = first(p) + stage·(cp·tp) + cp_rank·tp + tp_rank
// e.g. [(1, 2, 1), (2, 1, 2)] on 6 ranks: rank 0, 1 = pipeline 0 tp 0, 1; rank 2, 3 = pipeline 1
// stage 0 cp 0, 1; rank 4, 5 = pipeline 1 stage 1 cp 0, 1.
class ProcessGrid {
 public:
  // Errors: a scheme with a non-positive degree, or Σ cp·tp·pp != world_size (both named).
  static core::StatusOr<ProcessGrid> create(const planner::Strategy& strategy, int world_size);

  int world_size() const { return world_size_; }
  int num_pipelines() const { return static_cast<int>(strategy_.size()); }
  const planner::Strategy& strategy() const { return strategy_; }
  const planner::Scheme& scheme(int pipeline) const;
  int first_rank(int pipeline) const;
  // One past the last rank of the pipeline.
  int end_rank(int pipeline) const { return first_rank(pipeline) + scheme(pipeline).gpus(); }
  // True when every pipeline has the same scheme (the optimizer layout's strategy).
  bool homogeneous() const;

  RankCoord coord(int rank) const;
  int rank_of(const RankCoord& c) const;

  // Ranks in increasing order.
  std::vector<int> tp_group(int pipeline, int stage, int cp_rank) const;  // tp ranks 0 .. tp − 1
  std::vector<int> cp_group(int pipeline, int stage, int tp_rank) const;  // cp ranks 0 .. cp − 1
  std::vector<int> stage_ranks(int pipeline, int stage) const;            // all cp·tp ranks
  std::vector<int> pipeline_ranks(int pipeline) const;

  // Multi-line table: "pipeline 0 (1, 2, 1): ranks 0-1\n  stage 0: cp 0: tp ranks [0, 1]\n...".
  std::string describe() const;

 private:
  planner::Strategy strategy_;
  std::vector<int> first_;  // first_[p], plus first_[num_pipelines] = world_size
  int world_size_ = 0;
};

// Every tp divides num_heads, num_kv_heads, ffn_hidden and vocab_size (the padded vocabulary), and
// every pipeline has at least one layer per stage (num_layers ≥ pp). The message names the factor,
// the pipeline and its scheme, and the fix.
core::Status check_model_fits(const model::LlamaConfig& config, const planner::Strategy& strategy);

}  // namespace hydraulis::parallel
