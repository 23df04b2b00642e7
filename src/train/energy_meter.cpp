// Cumulative board energy of a run (energy_meter.h).
#include "train/energy_meter.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <limits>

namespace hydraulis::train {

void EnergyMeter::start(const model::Ops& ops) {
  if (started_) return;
  started_ = true;
  joules0_ = ops.board_joules();
  t0_ = std::chrono::steady_clock::now();
}

double EnergyMeter::joules(const model::Ops& ops) const {
  if (!started_) return std::numeric_limits<double>::quiet_NaN();
  return ops.board_joules() - joules0_;  // NaN when either reading is
}

double EnergyMeter::seconds() const {
  if (!started_) return 0;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

void set_energy_metrics(StepMetrics& m, double joules, double seconds) {
  if (!std::isfinite(joules) || joules <= 0 || seconds <= 0) return;
  m.board_joules = joules;
  m.board_watts = joules / seconds;
}

std::string power_text(const StepMetrics& m) {
  if (m.board_watts < 0) return {};
  return fmt::format("  {:.0f} W (mean)", m.board_watts);
}

std::string board_name(const model::Ops& ops) {
  const std::string board = ops.board_id();
  if (board.empty()) return {};
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = 0;
  return std::string(host) + "/" + board;
}

}  // namespace hydraulis::train
