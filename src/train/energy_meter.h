// The run's board energy (model::Ops::board_joules, kernels/cuda/energy.h): the joules the
// boards took since this process's first step and the mean power over that time, written into
// the step metrics as board_joules / board_watts. NVML's counter is coarse (tens of ms) and
// covers the whole board, so the figures are cumulative, never per step: any window's power is
// the difference of two lines over their time. Distributed runs sum the ranks' boards when every
// rank has a board of its own (DistributedTrainer). Docs: docs/training.md ("Energy").
#pragma once

#include <chrono>
#include <string>

#include "model/ops.h"
#include "train/metrics.h"

namespace hydraulis::train {

class EnergyMeter {
 public:
  // At the first step (later calls do nothing): remembers the counter and the clock.
  void start(const model::Ops& ops);
  // Joules since start(); NaN without a counter or before start().
  double joules(const model::Ops& ops) const;
  double seconds() const;  // wall time since start()

 private:
  bool started_ = false;
  double joules0_ = 0;
  std::chrono::steady_clock::time_point t0_;
};

// Sets m.board_joules and m.board_watts (mean over `seconds`) when `joules` is a reading (finite,
// positive); leaves them unset (not written) otherwise.
void set_energy_metrics(StepMetrics& m, double joules, double seconds);

// "  672 W (mean)" for the progress lines when the step has board_watts, else empty.
std::string power_text(const StepMetrics& m);

// This process's board as "host/PCI address" (the backend's board_id), empty when the backend
// names no board: ranks that print the same name share a board.
std::string board_name(const model::Ops& ops);

}  // namespace hydraulis::train
