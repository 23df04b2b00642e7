// Warm-up + cosine learning-rate schedule (formula in lr_schedule.h).
#include "optim/lr_schedule.h"

#include <cmath>
#include <numbers>

#include "core/check.h"

namespace hydraulis::optim {

core::Status LrSchedule::validate() const {
  if (!(peak_lr >= 0) || !(min_lr >= 0) || min_lr > peak_lr) {
    return core::invalid_argument("learning rates must satisfy 0 <= min lr ({}) <= lr ({})", min_lr,
                                  peak_lr);
  }
  if (warmup_steps < 0 || total_steps < 1) {
    return core::invalid_argument("warm-up steps {} must be >= 0 and total steps {} >= 1",
                                  warmup_steps, total_steps);
  }
  return core::Status::ok();
}

double LrSchedule::lr_at(int64_t step) const {
  HYD_CHECK(step >= 1, "lr_at: step {} must be >= 1", step);
  if (step <= warmup_steps) return peak_lr * double(step) / double(warmup_steps);
  if (step > total_steps) return min_lr;  // also covers total_steps <= warmup_steps
  double progress = double(step - warmup_steps) / double(total_steps - warmup_steps);
  return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace hydraulis::optim
