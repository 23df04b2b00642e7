// Context-parallel plan of one packed micro-batch: which tokens each cp rank owns (the classic
// causal load balance, 2·cp chunks per sequence, rank r owns chunks r and 2cp−1−r), their RoPE
// positions, and the varlen attention segments over an all-gathered K/V buffer. A brute-force
// checker verifies ownership and every query's visible key set. docs/parallel.md ("Context
// parallelism"). Tests: tests/parallel/cp_plan_test.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"

namespace hydraulis::parallel {

// What one cp rank computes. Row indices are int32 like the kernels' cu_seqlens.
struct CpRankPlan {
  // Rows of the packed micro-batch this rank owns, in order: sequence by sequence, chunk r then
  // chunk 2cp−1−r. Local row i is packed row local_rows[i].
  std::vector<int32_t> local_rows;
  // Position inside its sequence of each local row (for RoPE): local_rows[i] − cu[b].
  std::vector<int32_t> positions;
  // Attention segments: maximal runs of local rows that are contiguous positions of one sequence
  // (one per non-empty owned chunk; the two chunks merge when they touch, as always for cp = 1
  // and for rank cp − 1). Segment j has queries local rows [cu_seqlens_q[j], cu_seqlens_q[j+1])
  // and keys kv_rows[cu_seqlens_k[j] .. cu_seqlens_k[j+1]), the sequence's positions 0 .. end of
  // the segment in order; causality is bottom-right aligned: query i sees keys
  // j ≤ i + (k_len − q_len).
  std::vector<int32_t> segment_sequence;  // (S) the sequence b of each segment
  std::vector<int32_t> cu_seqlens_q;      // (S + 1) over local rows
  std::vector<int32_t> cu_seqlens_k;      // (S + 1) over kv_rows
  // Rows of the all-gathered buffer: every rank's local rows padded to max_local_rows and
  // concatenated in rank order, so rank q's local row i is row q·max_local_rows + i.
  std::vector<int32_t> kv_rows;

  int64_t num_rows() const { return static_cast<int64_t>(local_rows.size()); }
  int64_t num_segments() const { return static_cast<int64_t>(segment_sequence.size()); }
};

struct CpPlan {
  int cp = 1;
  int64_t total_rows = 0;      // Σ n_b, rows of the packed micro-batch
  int64_t max_local_rows = 0;  // max over ranks of num_rows(): the all-gather's per-rank block
  std::vector<CpRankPlan> ranks;
};

// Chunk c of a sequence of n positions: [⌊c·n/(2cp)⌋, ⌊(c+1)·n/(2cp)⌋), c in [0, 2cp].
int64_t cp_chunk_begin(int64_t n, int cp, int chunk);

// seq_lens: n_b ≥ 0 positions per sequence (sequence b occupies packed rows cu[b] .. cu[b+1]);
// cp ≥ 1. Errors: cp < 1, a negative length, or Σ n_b beyond int32 (all named).
core::StatusOr<CpPlan> make_cp_plan(std::span<const int64_t> seq_lens, int cp);

// Brute force (O(Σ n_b²), for tests): every packed row is owned by exactly one rank, positions
// are right, max_local_rows is the maximum, and every query's visible key set (through kv_rows and
// the bottom-right causal rule) is exactly the positions ≤ its own in its own sequence.
core::Status check_cp_plan(const CpPlan& plan, std::span<const int64_t> seq_lens);

}  // namespace hydraulis::parallel
