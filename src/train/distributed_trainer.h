// DistributedTrainer: training with heterogeneous strategies that change every step (design.md,
// "Data flow of one training step"). Every rank samples the same global batch, runs the same
// deterministic planner (method 0/1/3/4 of spec.md §7), and so agrees on the strategy and the
// micro-batches without a broadcast; it then propagates the step's parameters from the fixed
// optimizer layout into the strategy's layout, runs its pipeline's 1F1B schedule, reduces the
// gradients into the optimizer layout (summed over pipelines and cp ranks), and every rank steps
// AdamW on its own shards. The runtimes of all strategies (groups, stage shards, reshard plans)
// are built at start-up, in list order. Docs: docs/training.md ("Distributed").
// Tests: tests/train/parity_test.cpp (threads), tests/train/mpi_parity_test.cpp (mpirun).
#pragma once

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "parallel/layout.h"
#include "planner/batch_planner.h"
#include "planner/scheme_space.h"
#include "planner/strategy.h"
#include "train/trainer.h"

namespace hydraulis::parallel {
class StrategyRuntime;
}
namespace hydraulis::optim {
class ShardedAdamW;
}

namespace hydraulis::train {

struct DistributedConfig {
  TrainerConfig trainer;                      // model, steps, data, optimizer, metrics, ...
  std::vector<planner::Strategy> strategies;  // the first is homogeneous: the optimizer layout
  std::optional<planner::SchemeSpace> scheme_space;  // none: analytic_scheme_space
  planner::BatchingMethod method = planner::BatchingMethod::kDispatchFinePacking;
  // Tests: choose strategy `k` at step t as forced_strategies[(t − 1) % size] (empty: planner).
  std::vector<int> forced_strategies;
  // kOverlap: parameter propagation and gradient reduction overlap the pipeline's compute where
  // the backend has buffered sends (MPI, threads; parallel/reshard_overlap.h); kSerial: each runs
  // whole, before and after the pipeline (always so over NCCL). Both give identical bits.
  enum class ReshardSchedule { kOverlap, kSerial } reshard = ReshardSchedule::kOverlap;
};

class DistributedTrainer {
 public:
  // Collective over `world`. Validates the strategies against the world size and the model,
  // builds every strategy's runtime, and initialises the optimizer shards from config.seed (the
  // same values a single-device run starts from).
  static core::StatusOr<std::unique_ptr<DistributedTrainer>> create(
      const DistributedConfig& config, const data::IndexedDataset& dataset,
      std::shared_ptr<comm::Communicator> world);
  // The same with the tensors on `ops`' device: `device_world` carries them (NCCL on GPUs, its
  // work ordered on ops' stream) while `world` carries host scalars and the start-up checks.
  static core::StatusOr<std::unique_ptr<DistributedTrainer>> create(
      const DistributedConfig& config, const data::IndexedDataset& dataset,
      std::shared_ptr<comm::Communicator> world, std::shared_ptr<comm::Communicator> device_world,
      std::shared_ptr<const model::Ops> ops);
  ~DistributedTrainer();

  core::StatusOr<StepMetrics> step();
  // Steps up to config.trainer.steps, writing its checkpoints (Trainer::run). `stop_requested`
  // is asked on every rank after every step and the answers are agreed over the world (a stop on
  // any rank stops all at the same step, which is checkpointed); stopped() is then true. Pass
  // it on every rank or on none.
  core::Status run(const std::function<void(const StepMetrics&)>& on_step = {},
                   const std::function<bool()>& stop_requested = {});
  bool stopped() const { return stopped_; }
  int64_t steps_done() const { return step_; }
  // Checkpoints (train/checkpoint.h), collective over the world. Save gathers every logical
  // tensor to rank 0 one at a time, which streams it into the file (rank 0 writes; returns the
  // step directory on every rank). Load, before the first step, reads on every rank only the
  // chunks of its optimizer-layout shards, so any strategy list and rank count (and the
  // single-device trainer) may have written the checkpoint.
  core::StatusOr<std::string> save_checkpoint(const std::string& dir);
  core::Status load_checkpoint(const std::string& path);
  // The logical AdamW moment (exp_avg, or exp_avg_sq when `second`) of parameter `name`, whole,
  // on every rank (collective; for tests).
  core::StatusOr<core::Tensor> gather_moment(const std::string& name, bool second);
  const std::vector<StepMetrics>& history() const { return history_; }
  // The logical value and gradient of parameter `name` (whole tensor, gathered to every rank;
  // collective). For the parity tests and checkpoints.
  core::StatusOr<core::Tensor> gather_parameter(const std::string& name, bool gradient);

 private:
  DistributedTrainer() = default;
  // A global batch and its plan, made on a planning thread.
  struct PlannedBatch {
    data::GlobalBatch batch;
    core::StatusOr<planner::BatchPlan> plan;
    double planning_ms = 0;
  };
  // Draws the batch of `step` from the sampler and plans it on a thread.
  std::future<PlannedBatch> plan_async(int64_t step);
  // Checkpoints (distributed_checkpoint.cpp): logical tensor `param` of `role` gathered to rank
  // 0 (an empty tensor elsewhere); this rank's part of a load; the stop agreement and the
  // checkpoint after a step (true: stop).
  core::StatusOr<core::Tensor> gather_to_root(int param, int role);
  core::Status load_shards(const std::string& path, data::SamplerState& sampler,
                           int64_t& step, int64_t& optimizer_steps);
  core::StatusOr<bool> after_step(const std::function<bool()>& stop_requested);

  DistributedConfig config_;
  const data::IndexedDataset* dataset_ = nullptr;
  std::shared_ptr<comm::Communicator> world_, device_world_;
  // The overlapped reshard's own communicator (its messages must not meet the pipeline's).
  std::shared_ptr<comm::Communicator> reshard_world_;
  std::shared_ptr<const model::Ops> ops_;
  std::unique_ptr<data::GlobalBatchSampler> sampler_;
  std::vector<planner::StrategyModel> strategy_models_;
  std::vector<std::unique_ptr<parallel::StrategyRuntime>> runtimes_;
  std::unique_ptr<optim::ShardedAdamW> optimizer_;
  std::vector<parallel::LogicalParam> params_;
  parallel::Layout optimizer_layout_;
  bool aliased_ = false;  // one rank: the optimizer works on the runtime's own tensors
  MetricsWriter metrics_{""};
  std::vector<StepMetrics> history_;
  EnergyMeter energy_;
  int own_boards_ = -1;  // every rank on a board of its own (1), not (0), not yet asked (-1)
  int64_t step_ = 0;
  // The sampler state before the batch the planning thread holds (a checkpoint's position).
  data::SamplerState planned_from_;
  bool stopped_ = false;
  // Last member: destroyed first, so a planning thread still running finishes while the members
  // it reads are alive.
  std::future<PlannedBatch> next_plan_;
};

}  // namespace hydraulis::train
