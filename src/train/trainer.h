// Single-device trainer: global batches from data::GlobalBatchSampler over an IndexedDataset,
// greedy packing into micro-batches under a token cap, gradient accumulation over micro-batches
// of any sizes (loss normalised by the step's target count), NaN/Inf detection naming the step,
// layer and tensor, AdamW with warm-up + cosine LR and global clipping, metrics JSONL and a
// progress line. The same loop on the CPU or on one GPU (the parameter store's backend,
// model/ops.h). Docs: docs/training.md. Tests: tests/train/train_test.cpp, cuda_train_test.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/indexed_dataset.h"
#include "data/sampler.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/parameters.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"
#include "train/energy_meter.h"
#include "train/metrics.h"

namespace hydraulis::train {

enum class NonfinitePolicy {
  kStop,      // return an error naming the step, layer and tensor
  kSkipStep,  // log it, drop the step's gradients, keep going (the optimizer does not step)
};

struct TrainerConfig {
  core::Device device = core::Device::kCpu;
  model::LlamaConfig model;
  model::ModelOptions model_options;
  int64_t steps = 10;
  int64_t global_token_num = 8192;
  int64_t max_seq_len = 1024;      // a sequence holds at most max_seq_len + 1 tokens
  int64_t micro_batch_tokens = 0;  // cap on positions per micro-batch; 0: max_seq_len
  uint64_t seed = 1234;            // init and (with shuffling) data order
  data::DocumentOrder order = data::DocumentOrder::kSequential;
  optim::LrSchedule lr;
  optim::AdamWOptions adamw;
  NonfinitePolicy nonfinite = NonfinitePolicy::kStop;
  std::string metrics_path;            // "" writes no file
  // Checkpoints (train/checkpoint.h) written by run(): "" writes none; every checkpoint_every
  // steps (0: only after the last step and on a stop request), keeping the newest keep_checkpoints.
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;
  int keep_checkpoints = 2;
  int64_t available_memory_bytes = 0;  // for the forecast; 0: ask the backend
  bool progress = true;                // a progress line per step and warnings on stderr

  // Ranges and consistency (before any allocation).
  core::Status validate() const;
};

// The token-budget global-batch sampler of `config` over the data set (spec.md §1).
core::StatusOr<std::unique_ptr<data::GlobalBatchSampler>> make_sampler(
    const TrainerConfig& config, const data::IndexedDataset& dataset);

// Token ids of one sequence of a global batch; error (naming document, position and fix) on an id
// outside [0, vocab_size).
core::StatusOr<std::vector<int32_t>> load_sequence(const data::IndexedDataset& dataset,
                                                   const data::SequenceRef& ref,
                                                   const model::LlamaConfig& model);

// Step time derived figures: tokens/s always; on a device also model TFLOP/s, MFU over `ranks`
// devices' peak and the backend's peak memory (docs/training.md, "MFU").
void finish_step_metrics(StepMetrics& m, const model::Ops& ops, const model::LlamaConfig& model,
                         std::span<const int64_t> positions, int ranks);

// Bytes of memory this process could still allocate (MemAvailable), 0 if unknown.
int64_t available_host_memory();

class Trainer {
 public:
  // Validates the config against the data, forecasts memory (error if it does not fit), then
  // allocates and initialises the model from config.seed. `dataset` must outlive the trainer.
  static core::StatusOr<std::unique_ptr<Trainer>> create(const TrainerConfig& config,
                                                         const data::IndexedDataset& dataset);

  // One optimizer step over the next global batch.
  core::StatusOr<StepMetrics> step();
  // Steps up to config.steps; `on_step` (optional) sees every step's metrics. Writes the
  // checkpoints of config.checkpoint_dir. `stop_requested` (optional, asked after every step):
  // when it answers true, run() checkpoints that step and returns OK with stopped() true.
  core::Status run(const std::function<void(const StepMetrics&)>& on_step = {},
                   const std::function<bool()>& stop_requested = {});
  bool stopped() const { return stopped_; }
  // Steps done (after a resume: the checkpoint's step plus the steps run since).
  int64_t steps_done() const { return step_; }

  // Writes a checkpoint of the state after the last step into `dir` (train/checkpoint.h);
  // returns the step directory.
  core::StatusOr<std::string> save_checkpoint(const std::string& dir);
  // Restores weights, AdamW moments, step counts and the sampler position from `path` (a
  // checkpoint directory's latest, or a step directory), before the first step. The model and
  // the must-match settings are checked field by field.
  core::Status load_checkpoint(const std::string& path);

  model::ParameterStore& params() { return *params_; }
  model::LlamaModel& model() { return *model_; }
  const optim::AdamW& optimizer() const { return *optimizer_; }
  const std::vector<StepMetrics>& history() const { return history_; }
  const model::MemoryEstimate& memory_estimate() const { return memory_; }
  const model::Ops& ops() const { return *ops_; }

 private:
  Trainer(const TrainerConfig& config, const data::IndexedDataset& dataset);
  // Token ids of the batch's sequences; error on ids outside the vocabulary.
  core::StatusOr<std::vector<std::vector<int32_t>>> load(const data::GlobalBatch& batch) const;
  core::Status nonfinite_error(int64_t step, double loss,
                               const std::vector<model::MicroBatch>& micro_batches);
  void print_progress(const StepMetrics& m, double elapsed_s) const;

  TrainerConfig config_;
  const data::IndexedDataset& dataset_;
  std::unique_ptr<data::GlobalBatchSampler> sampler_;
  std::unique_ptr<model::ParameterStore> params_;
  std::unique_ptr<model::LlamaModel> model_;
  std::unique_ptr<optim::AdamW> optimizer_;
  MetricsWriter metrics_;
  std::vector<StepMetrics> history_;
  model::MemoryEstimate memory_;
  std::shared_ptr<const model::Ops> ops_;
  EnergyMeter energy_;
  int64_t step_ = 0;
  bool stopped_ = false;
};

}  // namespace hydraulis::train
