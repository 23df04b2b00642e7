// AdamW step (one fused pass: decay, moments, update, bf16 copy) and the grad-norm reduction
// kernels (kAdamNormBlocks partials per tensor, then one block sums all partials), launched by
// adamw.cpp. Twin: cpu/adamw.cpp.
#include "kernels/cuda/adamw_kernels.h"

#include "kernels/cuda/common.cuh"

namespace hydraulis::cuda::detail {

namespace {

constexpr int kNormThreads = 256;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(bf16 v) { return __bfloat162float(v); }

// One element's update (the same arithmetic on both paths below, so results do not depend on
// which path an element takes).
__device__ __forceinline__ void adamw_element(float gi, float& pi, float& mi, float& vi,
                                              const AdamWScalars& s) {
  gi *= s.grad_scale;
  pi *= s.decay;
  mi = mi + s.one_minus_beta1 * (gi - mi);
  vi = s.beta2 * vi + s.one_minus_beta2 * gi * gi;
  pi -= s.step_size * mi / (sqrtf(vi) / s.bc2_sqrt + s.eps);
}

__device__ __forceinline__ void load4(const float* g, float out[4]) {
  const float4 v = *reinterpret_cast<const float4*>(g);
  out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
}
__device__ __forceinline__ void load4(const bf16* g, float out[4]) {
  const uint2 raw = *reinterpret_cast<const uint2*>(g);
  const bf16* b = reinterpret_cast<const bf16*>(&raw);
#pragma unroll
  for (int k = 0; k < 4; ++k) out[k] = __bfloat162float(b[k]);
}

// kVec: 4 elements per thread through 16-byte loads (n4 = n / 4 groups; every pointer 16-byte
// aligned, the bf16 copy 8-byte aligned), then the n % 4 tail one by one.
template <typename G, bool kVec>
__global__ void adamw_kernel(float* __restrict__ p, const G* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, bf16* __restrict__ p_bf16, int64_t n,
                             AdamWScalars s) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if constexpr (kVec) {
    const int64_t n4 = n / 4;
    for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n4; j += stride) {
      const int64_t i = 4 * j;
      float gv[4], pv[4], mv[4], vv[4];
      load4(g + i, gv);
      load4(p + i, pv);
      load4(m + i, mv);
      load4(v + i, vv);
#pragma unroll
      for (int k = 0; k < 4; ++k) adamw_element(gv[k], pv[k], mv[k], vv[k], s);
      *reinterpret_cast<float4*>(p + i) = make_float4(pv[0], pv[1], pv[2], pv[3]);
      *reinterpret_cast<float4*>(m + i) = make_float4(mv[0], mv[1], mv[2], mv[3]);
      *reinterpret_cast<float4*>(v + i) = make_float4(vv[0], vv[1], vv[2], vv[3]);
      if (p_bf16 != nullptr) {
        bf16 b[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) b[k] = __float2bfloat16_rn(pv[k]);
        *reinterpret_cast<uint2*>(p_bf16 + i) = *reinterpret_cast<const uint2*>(b);
      }
    }
    done = 4 * n4;
  }
  for (int64_t i = done + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride) {
    float pi = p[i], mi = m[i], vi = v[i];
    adamw_element(to_float(g[i]), pi, mi, vi, s);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (p_bf16 != nullptr) p_bf16[i] = __float2bfloat16_rn(pi);
  }
}

template <typename G>
__global__ void sq_sum_partial_kernel(const G* __restrict__ g, int64_t n, double* __restrict__ out) {
  __shared__ float scratch[32];
  float acc = 0.f;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float x = to_float(g[i]);
    acc += x * x;
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = double(acc);
}

__global__ void sum_partials_kernel(const double* __restrict__ partial, int n, float* __restrict__ out) {
  __shared__ double s[1024];
  double acc = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[0] = float(s[0]);
}

}  // namespace

void launch_adamw(float* p, const void* g, bool grad_is_bf16, float* m, float* v, bf16* p_bf16,
                  int64_t n, const AdamWScalars& s, cudaStream_t stream) {
  const auto aligned = [](const void* q, uintptr_t a) { return reinterpret_cast<uintptr_t>(q) % a == 0; };
  const bool vec = aligned(p, 16) && aligned(m, 16) && aligned(v, 16) &&
                   aligned(g, grad_is_bf16 ? 8 : 16) && (p_bf16 == nullptr || aligned(p_bf16, 8));
  const int grid = blocks_for(vec ? (n + 3) / 4 : n, 256, 132 * 8);
  auto launch = [&](auto kernel, const auto* grad) {
    kernel<<<grid, 256, 0, stream>>>(p, grad, m, v, p_bf16, n, s);
  };
  if (grad_is_bf16) {
    const bf16* gb = static_cast<const bf16*>(g);
    if (vec) launch(adamw_kernel<bf16, true>, gb); else launch(adamw_kernel<bf16, false>, gb);
  } else {
    const float* gf = static_cast<const float*>(g);
    if (vec) launch(adamw_kernel<float, true>, gf); else launch(adamw_kernel<float, false>, gf);
  }
  HYD_CUDA_LAUNCH_CHECK();
}

void launch_sq_sum_partial(const void* g, bool is_bf16, int64_t n, double* out, cudaStream_t stream) {
  if (is_bf16) {
    sq_sum_partial_kernel<<<kAdamNormBlocks, kNormThreads, 0, stream>>>(static_cast<const bf16*>(g), n, out);
  } else {
    sq_sum_partial_kernel<<<kAdamNormBlocks, kNormThreads, 0, stream>>>(static_cast<const float*>(g), n, out);
  }
  HYD_CUDA_LAUNCH_CHECK();
}

void launch_sum_partials(const double* partial, int n, float* out, cudaStream_t stream) {
  sum_partials_kernel<<<1, 1024, 0, stream>>>(partial, n, out);
  HYD_CUDA_LAUNCH_CHECK();
}

}  // namespace hydraulis::cuda::detail
