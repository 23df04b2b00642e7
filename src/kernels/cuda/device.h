// Device plumbing of the CUDA backend: the caching allocator behind core::Tensor on Device::kCuda,
// host <-> device copies, zero fill and the f32 <-> bf16 conversion kernels.
// Memory model: one stream per device; a freed block is reused by later work on that same stream,
// which the stream orders after every kernel that used it (as PyTorch's caching allocator does).
// Tests: tests/kernels_cuda/device_test.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

#include "core/tensor.h"

namespace hydraulis::cuda {

// True when a CUDA device is visible (tests skip otherwise).
bool device_available();
std::string device_description();  // "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)"

// Rounds requests (512 B under 1 MiB, 2 MiB above), keeps freed blocks in size-ordered free
// lists and hands back the smallest cached block that fits (at most twice the request). When
// cudaMalloc fails it frees the cache and retries once; a second failure aborts naming the
// request, the bytes in use and the device's free memory. Thread-safe.
class CachingAllocator final : public core::Allocator {
 public:
  ~CachingAllocator() override;
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;

  void release_cached();  // cudaFree every cached (free) block
  size_t bytes_in_use() const;
  size_t bytes_cached() const;
  size_t peak_bytes_in_use() const;
  void reset_peak();

 private:
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_blocks_;     // block size -> pointer
  std::unordered_map<void*, size_t> used_;       // pointer -> block size
  size_t in_use_ = 0, cached_ = 0, peak_ = 0;
};

// The process's allocator for Device::kCuda, registered with core::set_allocator on first call.
CachingAllocator& install_allocator();

// New device tensor with the host tensor's shape, dtype and bytes (synchronous w.r.t. the host
// buffer: it may be freed on return).
core::Tensor to_device(const core::Tensor& host, cudaStream_t stream);
// New host tensor with the device tensor's contents; synchronises the stream.
core::Tensor to_host(const core::Tensor& device, cudaStream_t stream);
// Device tensor of zeros.
core::Tensor zeros(const core::Shape& shape, core::DType dtype, cudaStream_t stream);
void fill_zero(core::Tensor& tensor, cudaStream_t stream);

// dst = src converted elementwise (f32 <-> bf16, or a same-dtype copy); both on the device, same
// element count. f32 -> bf16 rounds to nearest even, like core::float_to_bf16_bits.
void convert(const core::Tensor& src, core::Tensor& dst, cudaStream_t stream);
// Host tensor (any float dtype) -> device tensor of `dtype` (conversion on the host, exact RNE).
core::Tensor to_device_as(const core::Tensor& host, core::DType dtype, cudaStream_t stream);
// Device tensor (f32 or bf16) -> host f32 tensor; synchronises the stream.
core::Tensor to_host_f32(const core::Tensor& device, cudaStream_t stream);

}  // namespace hydraulis::cuda
