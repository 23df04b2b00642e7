// StrategyRuntime: everything one rank needs to run steps under one strategy of the list, built
// once at start-up and cached (design.md: sub-groups and reshard plans are computed once per
// strategy): the process grid and this rank's coordinate, its tensor- and context-parallel
// communicators, its stage's model shard (a ParameterStore of the TP-shard config holding the
// stage's layers) and the reshard plans between the fixed optimizer layout and this strategy's
// layout. run() executes this rank's share of a step: the 1F1B table of its pipeline over the
// micro-batches the planner gave the pipeline (each split over the cp ranks), with activations
// and their gradients sent between neighbouring stages.
// Docs: docs/parallel.md ("Runtime"). Tests: tests/train/parity_test.cpp.
#pragma once

#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "core/status.h"
#include "model/llama.h"
#include "model/micro_batch.h"
#include "model/parameters.h"
#include "parallel/group_collectives.h"
#include "parallel/layout.h"
#include "parallel/process_grid.h"
#include "parallel/reshard.h"
#include "parallel/reshard_overlap.h"
#include "planner/strategy.h"

namespace hydraulis::parallel {

struct StageResult {
  double loss = 0;  // this rank's share of the step loss (last stage, tp rank 0; else 0)
  int64_t micro_batches = 0;
};

// cp rank `cp_rank`'s part of a packed micro-batch (parallel/cp_plan.h): its tokens, RoPE positions,
// attention segments and the rows of the all-gathered keys they read; the batch itself for cp = 1.
// A rank may receive no token (short sequences): it still takes part in the collectives.
core::StatusOr<model::MicroBatch> context_parallel_shard(const model::MicroBatch& batch, int cp,
                                                        int cp_rank);

// The transfers of one step that overlap its compute (parallel/reshard_overlap.h).
struct StepOverlap {
  ReshardExchange* propagate = nullptr;  // by use chunk: waited before each group's first forward
  ReshardExchange* reduce = nullptr;     // by done chunk: sent after each group's last backward
};

class StrategyRuntime {
 public:
  // Collective over `world` (every rank calls it with the same arguments, strategies in list
  // order). `optimizer` is the fixed optimizer layout.
  static core::StatusOr<std::unique_ptr<StrategyRuntime>> create(
      std::shared_ptr<comm::Communicator> world, const planner::Strategy& strategy,
      const model::LlamaConfig& config, const model::ModelOptions& options,
      const std::vector<LogicalParam>& params, const Layout& optimizer,
      std::shared_ptr<const model::Ops> ops);

  const ProcessGrid& grid() const { return grid_; }
  const RankCoord& coord() const { return coord_; }
  model::ParameterStore& store() { return *store_; }
  const ReshardPlan& propagate_plan() const { return to_strategy_; }
  const ReshardPlan& reduce_plan() const { return to_optimizer_; }
  // Every rank's chunk of every local tensor of this strategy's layout (use and done order).
  const StageChunks& chunks() const { return chunks_; }
  // This rank's local tensors of the strategy layout (value / gradient views of the store).
  std::vector<core::Tensor> values();
  std::vector<core::Tensor> grads();

  // Runs this rank's pipeline over `micro_batches` (whole packed micro-batches of the pipeline,
  // host tensors, largest first) with the step's global target count. With `overlap`, the
  // propagation's chunks are waited for (and their compute copies refreshed) as the first forward
  // reaches them, and the reduction's chunks sent as the last backward finishes them; both are
  // complete on this rank's side when run() returns (the caller then finishes them).
  core::StatusOr<StageResult> run(const std::vector<model::MicroBatch>& micro_batches,
                                  int64_t global_target_count, const StepOverlap& overlap = {});

 private:
  StrategyRuntime() = default;

  std::shared_ptr<comm::Communicator> world_, tp_, cp_;
  ProcessGrid grid_;
  RankCoord coord_;
  model::LlamaConfig shard_config_;
  std::unique_ptr<GroupCollectives> collectives_;
  std::unique_ptr<model::ParameterStore> store_;
  std::unique_ptr<model::LlamaModel> model_;
  ReshardPlan to_strategy_, to_optimizer_;
  StageChunks chunks_;
  int prev_rank_ = -1, next_rank_ = -1;  // neighbouring stages (same cp and tp rank)
};

}  // namespace hydraulis::parallel
