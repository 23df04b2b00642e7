// AdamW step on one flat parameter shard (PyTorch torch.optim.AdamW semantics: decoupled weight
// decay applied first, bias-corrected moments) and the global gradient norm used for clipping.
// fp32 master weights and moments; the caller passes the clip factor as grad_scale.
// Tests: tests/kernels/adamw_test.cpp.
#pragma once

#include <cstdint>
#include <span>

#include "core/tensor.h"

namespace hydraulis::cpu {

struct AdamWConfig {
  double lr = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // 0 for parameters excluded from decay
};

// With g = grad · grad_scale and step t >= 1 (the count including this step):
//   p ← p · (1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
//   p ← p − lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + eps)
// param, grad, exp_avg, exp_avg_sq: same shape and float dtype.
void adamw_step(core::Tensor& param, const core::Tensor& grad, core::Tensor& exp_avg,
                core::Tensor& exp_avg_sq, const AdamWConfig& config, int64_t step,
                double grad_scale);

// out (1) = Σ over every element of every tensor of g² (accumulated in double, in a fixed order).
// The global norm is sqrt of this summed over the ranks that hold disjoint gradient shards.
void grad_norm_sq(std::span<const core::Tensor> grads, core::Tensor& out);

// Clip factor as torch.nn.utils.clip_grad_norm_: min(1, max_norm / (total_norm + 1e-6)).
// Returns 1 when max_norm <= 0 (clipping off); a NaN norm gives NaN (the caller skips the step).
double grad_clip_factor(double total_norm, double max_norm);

}  // namespace hydraulis::cpu
