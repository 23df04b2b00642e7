// Launchers of the AdamW and grad-norm kernels (adamw_kernels.cu) for the host wrappers in
// adamw.cpp. Raw pointers only: this header is included by C++17 nvcc translation units.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace hydraulis::cuda::detail {

inline constexpr int kAdamNormBlocks = 1056;  // partials per tensor (8 per H100 SM), fixed order

struct AdamWScalars {
  // decay = 1 − lr·wd and 1 − β computed in double, then rounded (as PyTorch and the CPU twin).
  float decay, one_minus_beta1, beta2, one_minus_beta2, eps, step_size, bc2_sqrt, grad_scale;
};

// g is bf16 when grad_is_bf16, else f32; p_bf16 may be null.
void launch_adamw(float* p, const void* g, bool grad_is_bf16, float* m, float* v,
                  __nv_bfloat16* p_bf16, int64_t n, const AdamWScalars& s, cudaStream_t stream);
// out[0 .. kAdamNormBlocks) = per-block Σ g² of one tensor.
void launch_sq_sum_partial(const void* g, bool is_bf16, int64_t n, double* out, cudaStream_t stream);
// out[0] = Σ partial[0 .. n) in a fixed order.
void launch_sum_partials(const double* partial, int n, float* out, cudaStream_t stream);

}  // namespace hydraulis::cuda::detail
