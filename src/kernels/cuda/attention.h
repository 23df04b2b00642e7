// Variable-length causal attention on the device, flash-attention style (tiles in shared memory,
// online softmax, bf16 tensor-core mma.sync with fp32 accumulation, nothing of size T² in memory).
// Same layout and semantics as cpu::attention_* (docs/kernels.md "Attention layout"); head dims
// 64 and 128. Tests: tests/kernels_cuda/attention_test.cpp; bench: bench/kernels/.
#pragma once

#include <cuda_runtime.h>

#include "core/tensor.h"

namespace hydraulis::cuda {

// q (T, H, D), k, v (T, Hkv, D) bf16; cu_seqlens (B + 1) i32 on the device;
// out (T, H, D) bf16, lse (H, T) f32 (natural log).
void attention_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                   const core::Tensor& cu_seqlens, core::Tensor& out, core::Tensor& lse,
                   cudaStream_t stream);

// dq (T, H, D), dk, dv (T, Hkv, D) bf16, overwritten. Deterministic: dq by query tiles and
// dk/dv by key tiles (all query heads of a group in one block), no atomics.
void attention_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                   const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
                   const core::Tensor& cu_seqlens, core::Tensor& dq, core::Tensor& dk,
                   core::Tensor& dv, cudaStream_t stream);

}  // namespace hydraulis::cuda
