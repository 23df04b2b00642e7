// NVML's board energy counter (energy.h): the few entry points of its stable C ABI, resolved at
// run time.
#include "kernels/cuda/energy.h"

#include <cuda_runtime.h>
#include <dlfcn.h>

#include <limits>

namespace hydraulis::cuda {

EnergyCounter::EnergyCounter() {
  int device = 0;
  char bus[32] = {0};
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetPCIBusId(bus, sizeof(bus), device) != cudaSuccess) {
    cudaGetLastError();  // clear the error: a missing device is not this class's failure
    return;
  }
  pci_bus_id_ = bus;
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);  // never closed
  if (lib == nullptr) return;
  auto init = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlInit_v2"));
  auto by_bus = reinterpret_cast<int (*)(const char*, void**)>(
      dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2"));
  read_ = reinterpret_cast<int (*)(void*, unsigned long long*)>(
      dlsym(lib, "nvmlDeviceGetTotalEnergyConsumption"));
  void* handle = nullptr;
  unsigned long long mj = 0;
  if (init == nullptr || by_bus == nullptr || read_ == nullptr || init() != 0 ||
      by_bus(bus, &handle) != 0 || read_(handle, &mj) != 0) {
    return;
  }
  device_ = handle;
}

double EnergyCounter::joules() const {
  unsigned long long mj = 0;
  return available() && read_(device_, &mj) == 0 ? double(mj) / 1e3
                                                   : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace hydraulis::cuda
