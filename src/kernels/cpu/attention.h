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

}  // namespace hydraulis::cpu
