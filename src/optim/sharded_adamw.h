// ShardedAdamW: AdamW over this rank's shards of the fixed optimizer layout (design.md): fp32
// master weights, their gradients and both moments for the elements this rank owns, and no copy
// of anything else. The global grad norm is Σ of every rank's Σ g² (a world all-reduce, summed in
// rank order), so clipping and the update equal the single-device AdamW's (optim/adamw.h) up to
// the order of the norm's summation. Docs: docs/training.md ("Distributed"). Tests:
// tests/train/parity_test.cpp.
#pragma once

#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "core/status.h"
#include "core/tensor.h"
#include "model/ops.h"
#include "model/parameters.h"
#include "optim/adamw.h"

namespace hydraulis::optim {

struct Shard {
  core::Tensor value;  // master weights (f32), rows × cols of the optimizer layout's local tensor
  core::Tensor grad;   // same shape: the reduced gradient
  model::WeightDecay decay = model::WeightDecay::kApply;
  core::Tensor compute;  // the bf16 copy the kernels read, refreshed by the step (GPU; or undefined)
};

class ShardedAdamW {
 public:
  ShardedAdamW(std::vector<Shard> shards, AdamWOptions options, std::shared_ptr<const model::Ops> ops,
               std::shared_ptr<comm::Communicator> world);

  std::vector<Shard>& shards() { return shards_; }
  void zero_grads();
  // sqrt(Σ over all ranks of Σ g²). Collective.
  core::StatusOr<double> grad_norm();
  // Clip with `grad_norm` and update every shard (lr); increments the step count.
  StepResult step(double lr, double grad_norm);
  int64_t steps_taken() const { return step_; }
  const core::Tensor& exp_avg(size_t i) const { return exp_avg_[i]; }
  const core::Tensor& exp_avg_sq(size_t i) const { return exp_avg_sq_[i]; }
  // Checkpoint restore: the moments are written in place, the step count set.
  core::Tensor& exp_avg(size_t i) { return exp_avg_[i]; }
  core::Tensor& exp_avg_sq(size_t i) { return exp_avg_sq_[i]; }
  void set_steps_taken(int64_t steps) { step_ = steps; }

 private:
  std::vector<Shard> shards_;
  AdamWOptions options_;
  std::shared_ptr<const model::Ops> ops_;
  std::shared_ptr<comm::Communicator> world_;
  std::vector<core::Tensor> exp_avg_, exp_avg_sq_;
  int64_t step_ = 0;
};

}  // namespace hydraulis::optim
