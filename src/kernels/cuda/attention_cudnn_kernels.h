// Device helpers of the cuDNN attention path (attention_cudnn.cpp): per-step sequence lengths and
// ragged offsets from cu_seqlens, and the softmax-stats layout conversions between cuDNN's padded
// (Bb, H, Sb, 1) and our packed (H, T). Internal to kernels/cuda; the kernels live in
// attention_cudnn_kernels.cu. Tested through tests/kernels_cuda/attention_cudnn_test.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/tensor.h"

namespace hydraulis::cuda::detail {

// The argument checks of attention_fwd / attention_bwd (shapes, dtypes, device, alignment).
void check_cudnn_attention_fwd_args(const core::Tensor& q, const core::Tensor& k,
                                    const core::Tensor& v, const core::Tensor& cu_seqlens,
                                    const core::Tensor& out, const core::Tensor& lse);
void check_cudnn_attention_bwd_args(const core::Tensor& dout, const core::Tensor& q,
                                    const core::Tensor& k, const core::Tensor& v,
                                    const core::Tensor& out, const core::Tensor& lse,
                                    const core::Tensor& cu_seqlens, const core::Tensor& dq,
                                    const core::Tensor& dk, const core::Tensor& dv);

// From cu (B + 1) on the device, for the bucketed batch Bb >= B (sequences B .. Bb-1 are empty):
// seq_len[b] = cu[b+1] − cu[b] (0 for b >= B), (Bb); q_off[b] = cu[min(b, B)] · q_row and
// kv_off[b] = cu[min(b, B)] · kv_row, (Bb + 1) — element offsets of sequence b's first row in
// the packed (T, H, D) and (T, Hkv, D) tensors (row strides q_row = H·D, kv_row = Hkv·D).
void cudnn_attention_offsets(const int32_t* cu, int B, int Bb, int64_t q_row, int64_t kv_row,
                             int32_t* seq_len, int32_t* q_off, int32_t* kv_off,
                             cudaStream_t stream);

// lse[h, t] = stats[b, h, t − cu[b], 0] for every token t of sequence b; stats (Bb, H, Sb, 1)
// contiguous, lse (H, T).
void cudnn_stats_to_lse(const float* stats, const int32_t* cu, int B, int H, int Sb, int T,
                        float* lse, cudaStream_t stream);
// The inverse: stats (Bb, H, Sb, 1) from lse (H, T); rows past a sequence's end (and padded
// sequences) are written as 0 so that the backward never reads uninitialised memory.
void cudnn_lse_to_stats(const float* lse, const int32_t* cu, int B, int Bb, int H, int Sb, int T,
                        float* stats, cudaStream_t stream);

}  // namespace hydraulis::cuda::detail
