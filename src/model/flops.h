// Model FLOPs of a training step, the numerator of MFU (docs/training.md, "MFU"):
//   6·N·T  +  6·L·H·D·Σ_s n_s·(n_s + 1)
// N: parameters that enter a matmul per position (the layers' projections and the LM head; the
// embedding lookup and the norm weights do no matmul), T = Σ n_s positions, n_s the positions of
// sequence s. The attention term counts QKᵀ and P·V over the causal n(n+1)/2 pairs of every
// sequence, forward (2·2·H·D per pair) and backward (twice the forward); recomputation is not
// counted (model FLOPs, not hardware FLOPs). Tests: tests/model/model_test.cpp.
#pragma once

#include <cstdint>
#include <span>

#include "model/config.h"

namespace hydraulis::model {

// N of the formula above.
int64_t matmul_parameters(const LlamaConfig& config);

// FLOPs of forward + backward over sequences of `positions[s]` positions each.
double training_flops(const LlamaConfig& config, std::span<const int64_t> positions);

}  // namespace hydraulis::model
