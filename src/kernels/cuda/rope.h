// Rotary position embedding on the device (HF "rotate half", positions restart per sequence):
// bf16 in/out, angles and rotation in fp32. Twin of cpu::rope_*; docs/kernels.md has the formulas.
// Tests: tests/kernels_cuda/elementwise_test.cpp.
#pragma once

#include <cuda_runtime.h>

#include "core/tensor.h"

namespace hydraulis::cuda {

// x, y (T, H, D) bf16 (y may alias x), cu_seqlens (B + 1) i32 on the device.
void rope_fwd(const core::Tensor& x, const core::Tensor& cu_seqlens, double theta, core::Tensor& y,
              cudaStream_t stream);
// Inverse rotation; dy, dx (T, H, D) bf16 (dx may alias dy).
void rope_bwd(const core::Tensor& dy, const core::Tensor& cu_seqlens, double theta,
              core::Tensor& dx, cudaStream_t stream);

// At explicit positions (T) i32 on the device (context parallelism); twin of cpu::rope_positions_*.
void rope_positions_fwd(const core::Tensor& x, const core::Tensor& positions, double theta,
                        core::Tensor& y, cudaStream_t stream);
void rope_positions_bwd(const core::Tensor& dy, const core::Tensor& positions, double theta,
                        core::Tensor& dx, cudaStream_t stream);

}  // namespace hydraulis::cuda
