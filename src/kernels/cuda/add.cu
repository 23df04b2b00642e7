// Residual addition kernels: 8 bf16 per thread through 16-byte accesses when the element count
// and the pointers allow, else one element per thread; f32 one element per thread.
#include "kernels/cuda/add.h"

#include "kernels/cuda/common.cuh"

namespace hydraulis::cuda {

namespace {

using detail::bf16;

__global__ void add_bf16x8_kernel(const bf16* a, const bf16* b, bf16* y, int64_t groups) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < groups;
       i += int64_t(gridDim.x) * blockDim.x) {
    float va[8], vb[8];
    detail::load8(a + 8 * i, va);
    detail::load8(b + 8 * i, vb);
#pragma unroll
    for (int j = 0; j < 8; ++j) va[j] += vb[j];
    detail::store8(y + 8 * i, va);
  }
}

template <typename T>
__global__ void add_scalar_kernel(const T* a, const T* b, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (std::is_same_v<T, bf16>) {
      y[i] = __float2bfloat16_rn(__bfloat162float(a[i]) + __bfloat162float(b[i]));
    } else {
      y[i] = a[i] + b[i];
    }
  }
}

}  // namespace

void add(const core::Tensor& a, const core::Tensor& b, core::Tensor& y, cudaStream_t stream) {
  const core::DType dt = a.dtype();
  HYD_CHECK(dt == core::DType::kBF16 || dt == core::DType::kF32, "cuda::add: bf16 or f32, got {}",
            a.describe());
  detail::check_tensor(a, dt, {}, "add a");
  detail::check_tensor(b, dt, a.shape(), "add b");
  detail::check_tensor(y, dt, a.shape(), "add y");
  const int64_t n = a.numel();
  if (n == 0) return;
  constexpr int kThreads = 256;
  if (dt == core::DType::kBF16) {
    const bf16* pa = detail::ptr<bf16>(a);
    const bf16* pb = detail::ptr<bf16>(b);
    bf16* py = detail::ptr<bf16>(y);
    if (n % 8 == 0 && detail::aligned16(pa) && detail::aligned16(pb) && detail::aligned16(py)) {
      add_bf16x8_kernel<<<detail::blocks_for(n / 8, kThreads), kThreads, 0, stream>>>(pa, pb, py,
                                                                                      n / 8);
    } else {
      add_scalar_kernel<bf16>
          <<<detail::blocks_for(n, kThreads), kThreads, 0, stream>>>(pa, pb, py, n);
    }
  } else {
    add_scalar_kernel<float><<<detail::blocks_for(n, kThreads), kThreads, 0, stream>>>(
        detail::ptr<float>(a), detail::ptr<float>(b), detail::ptr<float>(y), n);
  }
  HYD_CUDA_LAUNCH_CHECK();
}

}  // namespace hydraulis::cuda
