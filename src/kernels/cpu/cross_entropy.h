// Token cross-entropy with the step-level normalisation of design.md: a micro-batch contributes
// loss = (1 / global_token_count) · Σ_t −log softmax(logits_t)[target_t] over its non-ignored
// tokens, so summing the contributions of all micro-batches and pipelines gives the mean over the
// step's tokens however the sequences were split. Tests: tests/kernels/cross_entropy_test.cpp.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hydraulis::cpu {

inline constexpr int32_t kIgnoreIndex = -100;  // PyTorch's default ignore_index
// Vocab-parallel cross-entropy: the row's target lies in another shard of the vocabulary. The row
// counts (its softmax gradient is written) but has no one-hot column and no loss term here; the
// caller combines the shards' lse and target logits (docs/parallel.md, "Vocab-parallel loss").
inline constexpr int32_t kTargetOnOtherShard = -1;

// logits (T, V), targets (T) i32 in [0, V), == ignore_index or == kTargetOnOtherShard.
// losses (T): −log p_target per token (0 where ignored); lse (T): log Σ_v exp(logits_tv), saved
// for the backward; loss (1): Σ_t losses_t / global_token_count. global_token_count > 0.
void cross_entropy_fwd(const core::Tensor& logits, const core::Tensor& targets,
                       int32_t ignore_index, int64_t global_token_count, core::Tensor& losses,
                       core::Tensor& lse, core::Tensor& loss);

// dlogits_tv = (exp(logits_tv − lse_t) − [v = target_t]) / global_token_count, 0 on ignored rows.
// dlogits (T, V) may alias logits (in place, as llm.c does to save the largest activation).
void cross_entropy_bwd(const core::Tensor& logits, const core::Tensor& targets,
                       const core::Tensor& lse, int32_t ignore_index, int64_t global_token_count,
                       core::Tensor& dlogits);

}  // namespace hydraulis::cpu
