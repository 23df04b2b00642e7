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

template <typename G>
__global__ void adamw_kernel(float* __restrict__ p, const G* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, bf16* __restrict__ p_bf16, int64_t n, AdamWScalars s) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float gi = to_float(g[i]) * s.grad_scale;
    float pi = p[i] * s.decay;
    float mi = m[i] + s.one_minus_beta1 * (gi - m[i]);
    float vi = s.beta2 * v[i] + s.one_minus_beta2 * gi * gi;
    pi -= s.step_size * mi / (sqrtf(vi) / s.bc2_sqrt + s.eps);
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
  int grid = blocks_for(n, 256, 132 * 8);
  if (grad_is_bf16) {
    adamw_kernel<<<grid, 256, 0, stream>>>(p, static_cast<const bf16*>(g), m, v, p_bf16, n, s);
  } else {
    adamw_kernel<<<grid, 256, 0, stream>>>(p, static_cast<const float*>(g), m, v, p_bf16, n, s);
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
