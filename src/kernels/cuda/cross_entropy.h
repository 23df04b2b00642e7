// Token cross-entropy on the device over bf16 logits (T, V) with large V: one block per token row
// computes an online (running max, rescaled sum) log-sum-exp in fp32 straight from the bf16 row,
// so no fp32 copy of the logits is ever made; the backward writes bf16 dlogits in place.
// Normalisation by the step's global token count as in cpu::cross_entropy_* (docs/kernels.md).
// Tests: tests/kernels_cuda/elementwise_test.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/tensor.h"

namespace hydraulis::cuda {

// logits (T, V) bf16, targets (T) i32 -> losses (T) f32, lse (T) f32, loss (1) f32 (written, a
// fixed-order sum of losses / global_token_count).
void cross_entropy_fwd(const core::Tensor& logits, const core::Tensor& targets,
                       int32_t ignore_index, int64_t global_token_count, core::Tensor& losses,
                       core::Tensor& lse, core::Tensor& loss, cudaStream_t stream);

// dlogits (T, V) bf16 = (softmax − onehot) / global_token_count; may alias logits.
void cross_entropy_bwd(const core::Tensor& logits, const core::Tensor& targets,
                       const core::Tensor& lse, int32_t ignore_index, int64_t global_token_count,
                       core::Tensor& dlogits, cudaStream_t stream);

// Both in one pass per row (what a training step's head needs): losses, lse, loss as the
// forward, and dlogits as the backward from that lse; dlogits may alias logits.
void cross_entropy_fwd_bwd(const core::Tensor& logits, const core::Tensor& targets,
                           int32_t ignore_index, int64_t global_token_count, core::Tensor& losses,
                           core::Tensor& lse, core::Tensor& loss, core::Tensor& dlogits,
                           cudaStream_t stream);

}  // namespace hydraulis::cuda
