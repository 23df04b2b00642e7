// Helpers shared by the CUDA kernel files (device code only, never included by host-only code):
// argument checks for device tensors, typed raw pointers, 8-wide bf16 vector loads/stores and
// warp/block reductions. Kernels compute in fp32 on bf16 storage.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string_view>
#include <type_traits>

#include "core/tensor.h"
#include "kernels/cuda/cuda_check.h"

namespace hydraulis::cuda::detail {

using bf16 = __nv_bfloat16;

// `t` is a device tensor of `dtype` with exactly `shape` (an empty shape skips the shape check).
inline void check_tensor(const core::Tensor& t, core::DType dtype, const core::Shape& shape,
                         std::string_view name) {
  HYD_CHECK(t.defined() && t.device() == core::Device::kCuda,
            "{}: expected a CUDA tensor, got {}", name, t.defined() ? t.describe() : "undefined");
  HYD_CHECK(t.dtype() == dtype, "{}: expected {}, got {}", name, core::dtype_name(dtype),
            t.describe());
  HYD_CHECK(shape.empty() || t.shape() == shape, "{}: expected shape {}, got {}", name,
            core::shape_string(shape), t.describe());
}

template <typename T>
T* ptr(core::Tensor& t) {
  return static_cast<T*>(t.raw_data());
}
template <typename T>
const T* ptr(const core::Tensor& t) {
  return static_cast<const T*>(t.raw_data());
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

inline int blocks_for(int64_t n, int threads, int64_t cap = 1 << 20) {
  int64_t b = (n + threads - 1) / threads;
  return int(b < 1 ? 1 : (b > cap ? cap : b));
}

// 8 bf16 <-> 8 floats through one 16-byte access.
__device__ __forceinline__ void load8(const bf16* p, float (&v)[8]) {
  uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 f = __bfloat1622float2(h[i]);
    v[2 * i] = f.x;
    v[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void store8(bf16* p, const float (&v)[8]) {
  uint4 raw;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
  *reinterpret_cast<uint4*>(p) = raw;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* scratch /* [32] */) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.f;
  return warp_sum(v);
}

// Sequence index of token t: the b with cu[b] <= t < cu[b + 1] (skips empty sequences).
__device__ __forceinline__ int sequence_of(const int32_t* cu, int num_seqs, int t) {
  int lo = 0, hi = num_seqs;  // invariant: cu[lo] <= t < cu[hi]
  while (hi - lo > 1) {
    int mid = (lo + hi) >> 1;
    if (cu[mid] <= t) lo = mid; else hi = mid;
  }
  return lo;
}

}  // namespace hydraulis::cuda::detail
