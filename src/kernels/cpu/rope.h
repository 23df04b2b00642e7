// Rotary position embedding, Hugging Face LLaMA convention ("rotate half"): head dim D is split
// into halves x1 = x[:D/2], x2 = x[D/2:], rotated pairwise (x1[i], x2[i]) by angle p·f_i with
// f_i = theta^(−2i/D) and p the token's position inside its own sequence (restarts at 0 at every
// cu_seqlens boundary). Angles are computed in the kernel dtype like HF (fp32 for fp32).
// Tests: tests/kernels/rope_test.cpp.
#pragma once

#include "core/tensor.h"

namespace hydraulis::cpu {

// y1 = x1·cos − x2·sin, y2 = x2·cos + x1·sin.  x, y (T, H, D) (y may alias x), cu_seqlens (B + 1).
void rope_fwd(const core::Tensor& x, const core::Tensor& cu_seqlens, double theta, core::Tensor& y);

// The inverse rotation (rotation by −angle): dx1 = dy1·cos + dy2·sin, dx2 = dy2·cos − dy1·sin.
// dy, dx (T, H, D) (dx may alias dy).
void rope_bwd(const core::Tensor& dy, const core::Tensor& cu_seqlens, double theta,
              core::Tensor& dx);

// The same rotations at explicit positions (T) i32 instead of positions restarting at every
// cu_seqlens boundary: context parallelism hands each rank chunks from the middle of sequences.
// rope_fwd(x, cu) == rope_positions_fwd(x, t − cu[b(t)]).
void rope_positions_fwd(const core::Tensor& x, const core::Tensor& positions, double theta,
                        core::Tensor& y);
void rope_positions_bwd(const core::Tensor& dy, const core::Tensor& positions, double theta,
                        core::Tensor& dx);

// The fused q/k/v projection's split: qkv (T, (H + 2·Hkv)·D) holds q | k | v per token row;
// q (T, H, D) and k (T, Hkv, D) get their columns rotated, v (T, Hkv, D) a copy. Positions come
// from `positions` (T) i32 where defined, else from cu_seqlens.
void qkv_split_rope(const core::Tensor& qkv, const core::Tensor& cu_seqlens,
                    const core::Tensor& positions, double theta, core::Tensor& q, core::Tensor& k,
                    core::Tensor& v);
// Its backward: dqkv's columns = (inverse-rotated dq | inverse-rotated dk | dv).
void qkv_merge_rope_bwd(const core::Tensor& dq, const core::Tensor& dk, const core::Tensor& dv,
                        const core::Tensor& cu_seqlens, const core::Tensor& positions,
                        double theta, core::Tensor& dqkv);

}  // namespace hydraulis::cpu
