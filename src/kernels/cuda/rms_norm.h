// RMSNorm on the device: bf16 x/y/dy/dx, fp32 rstd and fp32 math; the twin of cpu::rms_norm_*
// (same formulas, docs/kernels.md). Tests: tests/kernels_cuda/elementwise_test.cpp.
#pragma once

#include <cuda_runtime.h>

#include "core/tensor.h"

namespace hydraulis::cuda {

// x (T, C) bf16, weight (C) bf16, y (T, C) bf16 (may alias x), rstd (T) f32.
void rms_norm_fwd(const core::Tensor& x, const core::Tensor& weight, double eps, core::Tensor& y,
                  core::Tensor& rstd, cudaStream_t stream);

// dy, x (T, C) bf16, weight (C) bf16, rstd (T) f32 -> dx (T, C) bf16 overwritten,
// dweight (C) f32 or bf16 accumulated (+=). The weight gradient is reduced in a fixed order
// (per-chunk partials, then a column sum), so results are run-to-run identical.
void rms_norm_bwd(const core::Tensor& dy, const core::Tensor& x, const core::Tensor& weight,
                  const core::Tensor& rstd, core::Tensor& dx, core::Tensor& dweight,
                  cudaStream_t stream);

// The same with dx = rms_norm_bwd's dx + residual (T, C) bf16 in the one pass (residual may
// alias dy; dx must not alias residual): the residual gradient of a decoder layer.
void rms_norm_bwd_add(const core::Tensor& dy, const core::Tensor& x, const core::Tensor& weight,
                      const core::Tensor& rstd, const core::Tensor& residual, core::Tensor& dx,
                      core::Tensor& dweight, cudaStream_t stream);

}  // namespace hydraulis::cuda
