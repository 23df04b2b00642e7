// Learning-rate schedule: linear warm-up then cosine decay (GPT-3 / Megatron "cosine"):
//   step s = 1, 2, ... (the optimizer step about to run)
//   s ≤ W:        lr = peak · s / W
//   W < s ≤ S:    lr = min + (peak − min) · (1 + cos(π · (s − W) / (S − W))) / 2
//   s > S:        lr = min
// Docs: docs/training.md. Tests: tests/optim/optim_test.cpp.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace hydraulis::optim {

struct LrSchedule {
  double peak_lr = 1e-4;
  double min_lr = 1e-5;
  int64_t warmup_steps = 0;  // W
  int64_t total_steps = 1;   // S: where the cosine reaches min_lr

  core::Status validate() const;
  // The learning rate of step s (1-based).
  double lr_at(int64_t step) const;
};

}  // namespace hydraulis::optim
