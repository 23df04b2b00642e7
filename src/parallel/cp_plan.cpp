// Context-parallel split of a packed micro-batch and its brute-force check (docs/parallel.md).
#include "parallel/cp_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "core/check.h"

namespace hydraulis::parallel {

int64_t cp_chunk_begin(int64_t n, int cp, int chunk) {
  return int64_t{chunk} * n / (2 * int64_t{cp});
}

namespace {

struct Range {
  int64_t begin, end;  // positions inside one sequence
};

// The position ranges rank r owns in a sequence of n positions, in local order (chunk r, then
// chunk 2cp−1−r), empty chunks dropped and touching chunks merged.
std::vector<Range> owned_ranges(int64_t n, int cp, int r) {
  const int mirror = 2 * cp - 1 - r;
  std::vector<Range> ranges;
  for (int c : {r, mirror}) {
    Range range{cp_chunk_begin(n, cp, c), cp_chunk_begin(n, cp, c + 1)};
    if (range.begin == range.end) continue;
    if (!ranges.empty() && ranges.back().end == range.begin) {
      ranges.back().end = range.end;
    } else {
      ranges.push_back(range);
    }
  }
  return ranges;
}

}  // namespace

core::StatusOr<CpPlan> make_cp_plan(std::span<const int64_t> seq_lens, int cp) {
  if (cp < 1) return core::invalid_argument("cp = {} must be >= 1", cp);
  std::vector<int64_t> cu{0};
  for (size_t b = 0; b < seq_lens.size(); ++b) {
    if (seq_lens[b] < 0) {
      return core::invalid_argument("sequence {} has length {}: lengths must be >= 0", b,
                                    seq_lens[b]);
    }
    cu.push_back(cu.back() + seq_lens[b]);
    if (cu.back() > std::numeric_limits<int32_t>::max()) {
      return core::invalid_argument(
          "micro-batch of {} sequences reaches {} rows at sequence {}: beyond int32 row indices, "
          "split it into smaller micro-batches",
          seq_lens.size(), cu.back(), b);
    }
  }
  CpPlan plan;
  plan.cp = cp;
  plan.total_rows = cu.back();
  plan.ranks.resize(static_cast<size_t>(cp));
  // Pass 1: ownership. owner_*[row] = (rank, local index), to name keys in the gathered buffer.
  std::vector<int32_t> owner_rank(static_cast<size_t>(plan.total_rows));
  std::vector<int32_t> owner_local(static_cast<size_t>(plan.total_rows));
  for (int r = 0; r < cp; ++r) {
    CpRankPlan& rank = plan.ranks[static_cast<size_t>(r)];
    rank.cu_seqlens_q.push_back(0);
    for (size_t b = 0; b < seq_lens.size(); ++b) {
      for (const Range& range : owned_ranges(seq_lens[b], cp, r)) {
        for (int64_t p = range.begin; p < range.end; ++p) {
          const int64_t row = cu[b] + p;
          owner_rank[static_cast<size_t>(row)] = r;
          owner_local[static_cast<size_t>(row)] = static_cast<int32_t>(rank.local_rows.size());
          rank.local_rows.push_back(static_cast<int32_t>(row));
          rank.positions.push_back(static_cast<int32_t>(p));
        }
        rank.segment_sequence.push_back(static_cast<int32_t>(b));
        rank.cu_seqlens_q.push_back(static_cast<int32_t>(rank.local_rows.size()));
      }
    }
    plan.max_local_rows = std::max(plan.max_local_rows, rank.num_rows());
  }
  // Pass 2: keys. A segment ending at position e of sequence b attends to positions 0 .. e − 1.
  for (CpRankPlan& rank : plan.ranks) {
    rank.cu_seqlens_k.push_back(0);
    for (int64_t j = 0; j < rank.num_segments(); ++j) {
      const size_t b = static_cast<size_t>(rank.segment_sequence[static_cast<size_t>(j)]);
      const int32_t last_local = rank.cu_seqlens_q[static_cast<size_t>(j) + 1] - 1;
      const int64_t end = rank.positions[static_cast<size_t>(last_local)] + 1;
      for (int64_t p = 0; p < end; ++p) {
        const size_t row = static_cast<size_t>(cu[b] + p);
        rank.kv_rows.push_back(
            static_cast<int32_t>(owner_rank[row] * plan.max_local_rows + owner_local[row]));
      }
      rank.cu_seqlens_k.push_back(static_cast<int32_t>(rank.kv_rows.size()));
    }
  }
  return plan;
}

core::Status check_cp_plan(const CpPlan& plan, std::span<const int64_t> seq_lens) {
  // Sequence and position of every packed row, straight from the lengths.
  std::vector<int64_t> row_seq, row_pos;
  for (size_t b = 0; b < seq_lens.size(); ++b) {
    for (int64_t p = 0; p < seq_lens[b]; ++p) {
      row_seq.push_back(static_cast<int64_t>(b));
      row_pos.push_back(p);
    }
  }
  const int64_t total = static_cast<int64_t>(row_seq.size());
  if (plan.total_rows != total) {
    return core::internal_error("plan has {} rows, the lengths sum to {}", plan.total_rows, total);
  }
  if (static_cast<int>(plan.ranks.size()) != plan.cp) {
    return core::internal_error("plan has {} ranks for cp {}", plan.ranks.size(), plan.cp);
  }
  std::vector<int> owned(static_cast<size_t>(total), 0);
  int64_t max_rows = 0;
  for (int r = 0; r < plan.cp; ++r) {
    const CpRankPlan& rank = plan.ranks[static_cast<size_t>(r)];
    if (rank.positions.size() != rank.local_rows.size()) {
      return core::internal_error("rank {}: {} positions for {} rows", r, rank.positions.size(),
                                  rank.local_rows.size());
    }
    for (size_t i = 0; i < rank.local_rows.size(); ++i) {
      const int64_t row = rank.local_rows[i];
      if (row < 0 || row >= total) {
        return core::internal_error("rank {} local row {} is packed row {}, outside [0, {})", r, i,
                                    row, total);
      }
      ++owned[static_cast<size_t>(row)];
      if (rank.positions[i] != row_pos[static_cast<size_t>(row)]) {
        return core::internal_error("rank {} local row {} (packed {}) has position {}, not {}", r,
                                    i, row, rank.positions[i], row_pos[static_cast<size_t>(row)]);
      }
    }
    max_rows = std::max(max_rows, rank.num_rows());
  }
  for (int64_t row = 0; row < total; ++row) {
    if (owned[static_cast<size_t>(row)] != 1) {
      return core::internal_error("packed row {} is owned by {} ranks", row,
                                  owned[static_cast<size_t>(row)]);
    }
  }
  if (plan.max_local_rows != max_rows) {
    return core::internal_error("max_local_rows {} but the largest rank has {} rows",
                                plan.max_local_rows, max_rows);
  }
  // Every query's visible keys, mapped back through the gathered buffer to (sequence, position).
  for (int r = 0; r < plan.cp; ++r) {
    const CpRankPlan& rank = plan.ranks[static_cast<size_t>(r)];
    const size_t segments = rank.segment_sequence.size();
    if (rank.cu_seqlens_q.size() != segments + 1 || rank.cu_seqlens_k.size() != segments + 1 ||
        rank.cu_seqlens_q.front() != 0 || rank.cu_seqlens_k.front() != 0 ||
        rank.cu_seqlens_q.back() != rank.num_rows() ||
        rank.cu_seqlens_k.back() != static_cast<int64_t>(rank.kv_rows.size())) {
      return core::internal_error("rank {}: cu_seqlens do not frame {} segments", r, segments);
    }
    for (size_t j = 0; j < segments; ++j) {
      const int64_t q0 = rank.cu_seqlens_q[j], q_len = rank.cu_seqlens_q[j + 1] - q0;
      const int64_t k0 = rank.cu_seqlens_k[j], k_len = rank.cu_seqlens_k[j + 1] - k0;
      if (q_len <= 0 || k_len < q_len) {
        return core::internal_error("rank {} segment {}: {} queries, {} keys", r, j, q_len, k_len);
      }
      for (int64_t i = 0; i < q_len; ++i) {
        const int64_t row = rank.local_rows[static_cast<size_t>(q0 + i)];
        const int64_t seq = row_seq[static_cast<size_t>(row)],
                      pos = row_pos[static_cast<size_t>(row)];
        if (seq != rank.segment_sequence[j]) {
          return core::internal_error("rank {} segment {} query {} is in sequence {}, not {}", r, j,
                                      i, seq, rank.segment_sequence[j]);
        }
        const int64_t visible = i + (k_len - q_len) + 1;  // keys k0 .. k0 + visible − 1
        if (visible != pos + 1) {
          return core::internal_error("rank {} segment {} query {} (position {}) sees {} keys", r,
                                      j, i, pos, visible);
        }
        std::vector<bool> seen(static_cast<size_t>(pos + 1), false);
        for (int64_t k = 0; k < visible; ++k) {
          const int64_t g = rank.kv_rows[static_cast<size_t>(k0 + k)];
          const int64_t q = plan.max_local_rows > 0 ? g / plan.max_local_rows : -1;
          const int64_t li = plan.max_local_rows > 0 ? g % plan.max_local_rows : -1;
          if (g < 0 || q >= plan.cp || li >= plan.ranks[static_cast<size_t>(q)].num_rows()) {
            return core::internal_error(
                "rank {} segment {}: key {} is gathered row {}, padding or outside the buffer", r,
                j, k, g);
          }
          const int64_t key_row =
              plan.ranks[static_cast<size_t>(q)].local_rows[static_cast<size_t>(li)];
          const int64_t key_seq = row_seq[static_cast<size_t>(key_row)];
          const int64_t key_pos = row_pos[static_cast<size_t>(key_row)];
          if (key_seq != seq || key_pos > pos || seen[static_cast<size_t>(key_pos)]) {
            return core::internal_error(
                "rank {} segment {}: query at sequence {} position {} sees sequence {} position "
                "{}{}",
                r, j, seq, pos, key_seq, key_pos, key_seq == seq && key_pos <= pos ? " twice" : "");
          }
          seen[static_cast<size_t>(key_pos)] = true;
        }
      }
    }
  }
  return core::Status::ok();
}

}  // namespace hydraulis::parallel
