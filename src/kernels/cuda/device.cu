// Caching allocator, copies and dtype conversion kernels of the CUDA backend (see device.h).
#include "kernels/cuda/device.h"

#include <cuda_bf16.h>
#include <fmt/format.h>

#include <cstring>
#include <vector>

#include "kernels/cuda/cuda_check.h"

namespace hydraulis::cuda {

namespace {

size_t round_request(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t(2) << 20;
  if (bytes == 0) bytes = 1;
  return bytes < (size_t(1) << 20) ? (bytes + kSmall - 1) / kSmall * kSmall
                                   : (bytes + kLarge - 1) / kLarge * kLarge;
}

// One thread per element; a grid-stride loop covers any n.
template <typename In, typename Out>
__global__ void convert_kernel(const In* __restrict__ in, Out* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (std::is_same_v<Out, __nv_bfloat16>) {
      out[i] = __float2bfloat16_rn(float(in[i]));
    } else {
      out[i] = Out(__bfloat162float(in[i]));
    }
  }
}

int grid_for(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  return int(std::min<int64_t>(std::max<int64_t>(blocks, 1), 65535 * 8));
}

}  // namespace

bool device_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

std::string device_description() {
  int dev = 0;
  HYD_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  HYD_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  return fmt::format("{} (sm_{}{}, {} SMs, {:.1f} GiB)", prop.name, prop.major, prop.minor,
                     prop.multiProcessorCount, double(prop.totalGlobalMem) / (1 << 30));
}

CachingAllocator::~CachingAllocator() { release_cached(); }

void* CachingAllocator::allocate(size_t bytes) {
  size_t size = round_request(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = free_blocks_.lower_bound(size);
  if (it != free_blocks_.end() && it->first <= 2 * size) {
    void* ptr = it->second;
    size_t block = it->first;
    free_blocks_.erase(it);
    cached_ -= block;
    used_[ptr] = block;
    in_use_ += block;
    peak_ = std::max(peak_, in_use_);
    return ptr;
  }
  void* ptr = nullptr;
  if (cudaMalloc(&ptr, size) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free allocation error
    for (auto& [block, p] : free_blocks_) HYD_CUDA_CHECK(cudaFree(p));
    free_blocks_.clear();
    cached_ = 0;
    if (cudaMalloc(&ptr, size) != cudaSuccess) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      (void)cudaMemGetInfo(&free_b, &total_b);
      HYD_CHECK(false,
                "out of device memory: {} bytes requested, {} in use by tensors, {} free of {} on "
                "the device; use a smaller micro-batch, recomputation or a scheme with more tp",
                size, in_use_, free_b, total_b);
    }
  }
  used_[ptr] = size;
  in_use_ += size;
  peak_ = std::max(peak_, in_use_);
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, size_t) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = used_.find(ptr);
  HYD_CHECK(it != used_.end(), "deallocate of pointer {} not allocated here", ptr);
  size_t block = it->second;
  used_.erase(it);
  in_use_ -= block;
  free_blocks_.emplace(block, ptr);
  cached_ += block;
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [block, p] : free_blocks_) (void)cudaFree(p);  // may run at exit: no abort
  free_blocks_.clear();
  cached_ = 0;
}

size_t CachingAllocator::bytes_in_use() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return in_use_;
}
size_t CachingAllocator::bytes_cached() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_;
}
size_t CachingAllocator::peak_bytes_in_use() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return peak_;
}
void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  peak_ = in_use_;
}

CachingAllocator& install_allocator() {
  // Leaked on purpose: tensors freed during static destruction must still find it.
  static CachingAllocator* allocator = [] {
    auto* a = new CachingAllocator();
    core::set_allocator(core::Device::kCuda, a);
    return a;
  }();
  return *allocator;
}

core::Tensor to_device(const core::Tensor& host, cudaStream_t stream) {
  HYD_CHECK(host.device() == core::Device::kCpu, "to_device of {}", host.describe());
  install_allocator();
  core::Tensor dev = core::Tensor::empty(host.shape(), host.dtype(), core::Device::kCuda);
  HYD_CUDA_CHECK(cudaMemcpyAsync(dev.raw_data(), host.raw_data(), host.nbytes(),
                                 cudaMemcpyHostToDevice, stream));
  HYD_CUDA_CHECK(cudaStreamSynchronize(stream));  // the host buffer may die on return
  return dev;
}

core::Tensor to_host(const core::Tensor& device, cudaStream_t stream) {
  HYD_CHECK(device.device() == core::Device::kCuda, "to_host of {}", device.describe());
  core::Tensor host = core::Tensor::empty(device.shape(), device.dtype(), core::Device::kCpu);
  HYD_CUDA_CHECK(cudaMemcpyAsync(host.raw_data(), device.raw_data(), device.nbytes(),
                                 cudaMemcpyDeviceToHost, stream));
  HYD_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host;
}

core::Tensor zeros(const core::Shape& shape, core::DType dtype, cudaStream_t stream) {
  install_allocator();
  core::Tensor t = core::Tensor::empty(shape, dtype, core::Device::kCuda);
  fill_zero(t, stream);
  return t;
}

void fill_zero(core::Tensor& tensor, cudaStream_t stream) {
  HYD_CHECK(tensor.device() == core::Device::kCuda, "fill_zero of {}", tensor.describe());
  HYD_CUDA_CHECK(cudaMemsetAsync(tensor.raw_data(), 0, tensor.nbytes(), stream));
}

void convert(const core::Tensor& src, core::Tensor& dst, cudaStream_t stream) {
  using core::DType;
  HYD_CHECK(src.device() == core::Device::kCuda && dst.device() == core::Device::kCuda &&
                src.numel() == dst.numel(),
            "convert {} -> {}", src.describe(), dst.describe());
  int64_t n = src.numel();
  if (n == 0) return;
  if (src.dtype() == dst.dtype()) {
    HYD_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), src.nbytes(),
                                   cudaMemcpyDeviceToDevice, stream));
    return;
  }
  constexpr int kThreads = 256;
  if (src.dtype() == DType::kF32 && dst.dtype() == DType::kBF16) {
    convert_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(
        static_cast<const float*>(src.raw_data()), static_cast<__nv_bfloat16*>(dst.raw_data()), n);
  } else if (src.dtype() == DType::kBF16 && dst.dtype() == DType::kF32) {
    convert_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(
        static_cast<const __nv_bfloat16*>(src.raw_data()), static_cast<float*>(dst.raw_data()), n);
  } else {
    HYD_CHECK(false, "convert: unsupported {} -> {}", src.describe(), dst.describe());
  }
  HYD_CUDA_LAUNCH_CHECK();
}

core::Tensor to_device_as(const core::Tensor& host, core::DType dtype, cudaStream_t stream) {
  using core::DType;
  HYD_CHECK(host.device() == core::Device::kCpu, "to_device_as of {}", host.describe());
  if (host.dtype() == dtype) return to_device(host, stream);
  core::Tensor staged = core::Tensor::empty(host.shape(), dtype);
  int64_t n = host.numel();
  auto read = [&](int64_t i) -> double {
    switch (host.dtype()) {
      case DType::kF32: return host.data<float>()[i];
      case DType::kF64: return host.data<double>()[i];
      case DType::kBF16: return float(host.data<core::BFloat16>()[i]);
      default: HYD_CHECK(false, "to_device_as: unsupported source {}", host.describe());
    }
    return 0;
  };
  for (int64_t i = 0; i < n; ++i) {
    switch (dtype) {
      case DType::kF32: staged.data<float>()[i] = float(read(i)); break;
      case DType::kF64: staged.data<double>()[i] = read(i); break;
      case DType::kBF16: staged.data<core::BFloat16>()[i] = core::BFloat16(float(read(i))); break;
      default: HYD_CHECK(false, "to_device_as: unsupported target {}", core::dtype_name(dtype));
    }
  }
  return to_device(staged, stream);
}

core::Tensor to_host_f32(const core::Tensor& device, cudaStream_t stream) {
  core::Tensor host = to_host(device, stream);
  if (host.dtype() == core::DType::kF32) return host;
  HYD_CHECK(host.dtype() == core::DType::kBF16, "to_host_f32 of {}", device.describe());
  core::Tensor out = core::Tensor::empty(host.shape(), core::DType::kF32);
  for (int64_t i = 0; i < host.numel(); ++i) {
    out.data<float>()[i] = float(host.data<core::BFloat16>()[i]);
  }
  return out;
}

}  // namespace hydraulis::cuda
