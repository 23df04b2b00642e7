// Variable-length causal attention on the device, flash-attention style (tiles in shared memory,
// online softmax, bf16 tensor-core mma.sync with fp32 accumulation, nothing of size T² in memory).
// Same layout and semantics as cpu::attention_* (docs/kernels.md "Attention layout"); head dims
// 64 and 128, plain and segment form. Tests: tests/kernels_cuda/attention_test.cpp; bench:
// bench/kernels/.
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

// Segment form (context parallelism), same semantics as cpu::attention_segments_*: segment s has
// queries q[cu_seqlens_q[s] .. cu_seqlens_q[s+1]) and keys/values k, v[cu_seqlens_k[s] ..
// cu_seqlens_k[s+1]), k_len ≥ q_len (a segment with fewer keys traps the kernel), causal aligned
// bottom-right: query i sees segment keys 0 .. i + (k_len − q_len). q, out, dout, dq (Tq, H, D);
// k, v, dk, dv (Tk, Hkv, D); lse (H, Tq); both offset arrays (B + 1) i32 on the device. The same
// kernels as attention_fwd/bwd (which pass cu_seqlens twice); dk, dv rows of keys that no query
// sees are written as zeros.
void attention_segments_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                            const core::Tensor& cu_seqlens_q, const core::Tensor& cu_seqlens_k,
                            core::Tensor& out, core::Tensor& lse, cudaStream_t stream);
void attention_segments_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                            const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
                            const core::Tensor& cu_seqlens_q, const core::Tensor& cu_seqlens_k,
                            core::Tensor& dq, core::Tensor& dk, core::Tensor& dv,
                            cudaStream_t stream);

}  // namespace hydraulis::cuda
