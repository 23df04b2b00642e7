// Causal softmax attention over a packed variable-length micro-batch (flash-attn "varlen" layout):
// query t of sequence b attends to keys cu[b] .. t only, so attention never crosses sequences.
// Grouped-query heads: query head h reads kv head h / (H / Hkv) (HF repeat_kv). Scale 1/sqrt(D).
// The forward saves the log-sum-exp of each (head, query) row for the backward.
// Tests: tests/kernels/attention_test.cpp.
#pragma once

#include "core/tensor.h"

namespace hydraulis::cpu {

// q (T, H, D), k and v (T, Hkv, D) with Hkv dividing H, cu_seqlens (B + 1) i32,
// out (T, H, D), lse (H, T): lse[h, t] = log Σ_j exp(s_tj), s_tj = q_t·k_j / sqrt(D).
void attention_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                   const core::Tensor& cu_seqlens, core::Tensor& out, core::Tensor& lse);

// dq (T, H, D), dk and dv (T, Hkv, D), all overwritten. With p = exp(s − lse) and
// Δ_t = dout_t·out_t: dv_j = Σ_t p_tj dout_t, ds_tj = p_tj (dout_t·v_j − Δ_t),
// dq_t = Σ_j ds_tj k_j / sqrt(D), dk_j = Σ_t ds_tj q_t / sqrt(D) (summed over the query heads
// that share kv head j).
void attention_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                   const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
                   const core::Tensor& cu_seqlens, core::Tensor& dq, core::Tensor& dk,
                   core::Tensor& dv);

// Segment form (context parallelism: a rank's query chunks attend to all-gathered keys): segment s
// has queries q[cu_seqlens_q[s] .. cu_seqlens_q[s+1]) and keys/values k, v[cu_seqlens_k[s] ..
// cu_seqlens_k[s+1]), k_len ≥ q_len, causal aligned bottom-right: query i of the segment sees
// segment keys 0 .. i + (k_len − q_len) (flash-attn's varlen convention). q, out (Tq, H, D),
// k, v, dk, dv (Tk, Hkv, D), lse (H, Tq). With cu_seqlens_q == cu_seqlens_k it is attention_fwd.
void attention_segments_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                            const core::Tensor& cu_seqlens_q, const core::Tensor& cu_seqlens_k,
                            core::Tensor& out, core::Tensor& lse);
void attention_segments_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                            const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
                            const core::Tensor& cu_seqlens_q, const core::Tensor& cu_seqlens_k,
                            core::Tensor& dq, core::Tensor& dk, core::Tensor& dv);

}  // namespace hydraulis::cpu
