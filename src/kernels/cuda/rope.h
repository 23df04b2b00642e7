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

// The fused q/k/v projection (twins of cpu::qkv_split_rope / qkv_merge_rope_bwd): qkv
// (T, (H + 2·Hkv)·D) → q (T, H, D), k, v (T, Hkv, D) with q and k rotated, v copied; and dq, dk,
// dv → dqkv with the inverse rotation. Positions from `positions` (T) i32 where defined, else
// from cu_seqlens. One pass, the angles computed once per (token, pair) for all heads.
void qkv_split_rope(const core::Tensor& qkv, const core::Tensor& cu_seqlens,
                    const core::Tensor& positions, double theta, core::Tensor& q, core::Tensor& k,
                    core::Tensor& v, cudaStream_t stream);
void qkv_merge_rope_bwd(const core::Tensor& dq, const core::Tensor& dk, const core::Tensor& dv,
                        const core::Tensor& cu_seqlens, const core::Tensor& positions,
                        double theta, core::Tensor& dqkv, cudaStream_t stream);

}  // namespace hydraulis::cuda
