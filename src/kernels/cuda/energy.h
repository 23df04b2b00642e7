// The board's energy counter of a CUDA device through NVML (nvmlDeviceGetTotalEnergyConsumption,
// millijoules since the driver loaded). libnvidia-ml.so.1 is dlopen'ed, so there is no build
// dependency and binaries run where it is missing; available() is then false, as it is on a GPU
// without the counter. The counter covers the whole board (every process on it) and is updated
// by the driver at a coarse interval (tens of milliseconds): read differences over windows of
// many steps, not of one. Users: model/cuda_ops.cpp (Ops::board_joules), the trainers' metrics,
// bench/train/train_bench.cpp. Docs: docs/training.md.
#pragma once

#include <string>

namespace hydraulis::cuda {

class EnergyCounter {
 public:
  EnergyCounter();  // the current CUDA device's board (found by its PCI address)
  EnergyCounter(const EnergyCounter&) = delete;
  EnergyCounter& operator=(const EnergyCounter&) = delete;

  bool available() const { return device_ != nullptr; }
  // Joules since the driver loaded; NaN when the counter cannot be read.
  double joules() const;
  // The device's PCI address ("0000:00:06.0"; empty when unknown): names the board.
  const std::string& pci_bus_id() const { return pci_bus_id_; }

 private:
  void* device_ = nullptr;  // nvmlDevice_t
  int (*read_)(void*, unsigned long long*) = nullptr;
  std::string pci_bus_id_;
};

}  // namespace hydraulis::cuda
