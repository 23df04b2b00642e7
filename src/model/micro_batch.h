// MicroBatch: a packed variable-length batch as the model consumes it. Whole sequences are
// concatenated; a sequence of n tokens gives n − 1 training positions (input tokens[0..n−2],
// targets tokens[1..n−1], spec.md §1), so cu_seqlens counts positions, not tokens.
// Tests: tests/model/model_test.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace hydraulis::model {

struct MicroBatch {
  core::Tensor input_ids;   // (T) i32
  core::Tensor targets;     // (T) i32, the next token (or cpu::kIgnoreIndex: no loss there)
  core::Tensor cu_seqlens;  // (B + 1) i32, sequence b is positions [cu[b], cu[b+1])

  // Context parallelism (parallel/cp_plan.h), all undefined otherwise. The rank holds chunks of
  // sequences: cu_seqlens delimits its attention segments (query chunks), `positions` (T) gives
  // every token's position in its sequence (RoPE), and segment s attends to the keys at rows
  // kv_rows[cu_seqlens_k[s] .. cu_seqlens_k[s+1]) of the cp group's all-gathered keys, where each
  // rank contributes kv_local_rows rows (its T tokens, zero-padded).
  core::Tensor positions;      // (T) i32
  core::Tensor cu_seqlens_k;   // (B + 1) i32
  core::Tensor kv_rows;        // (cu_seqlens_k[B]) i32
  int64_t kv_local_rows = 0;   // rows per rank in the all-gather (≥ T)

  // Host copy of the global target ids when `targets` were remapped to a vocabulary shard.
  core::Tensor host_targets;

  bool context_parallel() const { return kv_rows.defined(); }

  int64_t num_tokens() const { return input_ids.defined() ? input_ids.size(0) : 0; }
  int64_t num_sequences() const { return cu_seqlens.defined() ? cu_seqlens.size(0) - 1 : 0; }
  // Targets that count in the loss (not ignored).
  int64_t num_targets() const;
};

// Packs whole token sequences (each ≥ 1 token) into one micro-batch of Σ (n_i − 1) positions.
MicroBatch pack_sequences(std::span<const std::vector<int32_t>> sequences);

// OK when every input id and target (other than the ignore index) is in [0, vocab_size); otherwise
// names the offending token, its position and sequence, and the fix.
core::Status check_token_ids(const MicroBatch& batch, int64_t vocab_size);

}  // namespace hydraulis::model
