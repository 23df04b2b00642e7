// AdamW over a ParameterStore: one exp_avg / exp_avg_sq pair per parameter (fp32, same layout as
// the master weights), global grad-norm clipping, and the non-finite gradient check that names
// the offending tensor, on the parameter store's backend (moments live beside the master
// weights). Single device; the sharded optimizer layout builds on the same step.
// Docs: docs/training.md. Tests: tests/optim/optim_test.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cpu/adamw.h"
#include "model/parameters.h"

namespace hydraulis::optim {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // matrices only: WeightDecay::kNone parameters get 0
  double max_grad_norm = 1.0;  // global clipping; <= 0 turns it off
};

// The kernel's step settings for a parameter with `decay` at learning rate `lr`.
cpu::AdamWConfig adamw_config(const AdamWOptions& options, double lr, model::WeightDecay decay);

struct StepResult {
  double grad_norm = 0;    // global L2 norm before clipping
  double clip_factor = 1;  // min(1, max_norm / (norm + 1e-6))
};

// A parameter whose gradient holds NaN/Inf.
struct NonfiniteGradient {
  std::string parameter;  // "model.layers.3.mlp.down_proj.weight"
  int64_t layer = -1;
  int64_t count = 0;        // non-finite elements
  int64_t first_index = 0;  // flat index of the first one
  double first_value = 0;
};

class AdamW {
 public:
  AdamW(model::ParameterStore& params, AdamWOptions options);

  // Global grad norm (sqrt of Σ g² over every parameter, tied ones counted once).
  double grad_norm() const;
  // Every parameter (in store order) whose gradient holds NaN/Inf.
  std::vector<NonfiniteGradient> nonfinite_gradients() const;
  // Clips (factor from `grad_norm`, the value of grad_norm()) and applies one AdamW update with
  // learning rate `lr`; increments the step count. The caller checks that the norm is finite
  // (else nonfinite_gradients() names the culprits) before calling.
  StepResult step(double lr, double grad_norm);

  int64_t steps_taken() const { return step_; }
  const AdamWOptions& options() const { return options_; }
  // Moments of parameter i (for checkpoints and tests); a checkpoint restore writes into them and
  // sets the step count (the bias correction of the next update).
  const core::Tensor& exp_avg(size_t i) const { return exp_avg_[i]; }
  const core::Tensor& exp_avg_sq(size_t i) const { return exp_avg_sq_[i]; }
  core::Tensor& exp_avg(size_t i) { return exp_avg_[i]; }
  core::Tensor& exp_avg_sq(size_t i) { return exp_avg_sq_[i]; }
  void set_steps_taken(int64_t steps) { step_ = steps; }

 private:
  model::ParameterStore& params_;
  AdamWOptions options_;
  std::vector<core::Tensor> exp_avg_, exp_avg_sq_;
  int64_t step_ = 0;
};

}  // namespace hydraulis::optim
