// Reshard plans between two parameter layouts (parallel/layout.h): the copies that propagate
// parameters optimizer layout → strategy layout (kAssign) and gradients strategy layout →
// optimizer layout with summation (kAccumulate), plus a reference executor over host vectors.
// docs/parallel.md ("Reshard plans"). Tests: tests/parallel/layout_test.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "parallel/layout.h"

namespace hydraulis::parallel {

// A rectangle of rows × cols elements from local tensor src_tensor of the source rank (at local
// row/col src_row, src_col) to local tensor dst_tensor of the destination rank (at dst_row,
// dst_col). Local coordinates index the row-major LocalTensor::rows() × cols() storage.
struct Copy {
  int src_tensor = 0;
  int64_t src_row = 0, src_col = 0;
  int dst_tensor = 0;
  int64_t dst_row = 0, dst_col = 0;
  int64_t rows = 0, cols = 0;
  int64_t numel() const { return rows * cols; }
  bool operator==(const Copy&) const = default;
};

enum class ReshardMode {
  kAssign,      // dst = src: every dst element written once, from its unique owner in src
  kAccumulate,  // dst = Σ src: every counting src element added into its unique owner in dst
};

struct ReshardPlan {
  ReshardMode mode = ReshardMode::kAssign;
  // copies[src_rank][dst_rank], each list sorted by (src_tensor, src_row, src_col, dst_tensor,
  // dst_row, dst_col). With kAccumulate a destination sums in increasing src rank, then list
  // order, so the summation order is fixed.
  std::vector<std::vector<std::vector<Copy>>> copies;

  int world_size() const { return static_cast<int>(copies.size()); }
  int64_t elements(int src_rank, int dst_rank) const;  // sent from src_rank to dst_rank
  int64_t elements_across_ranks() const;               // Σ over src ≠ dst
  int64_t elements_local() const;                      // Σ over src = dst
  std::vector<int64_t> elements_sent() const;          // per rank, to other ranks
  std::vector<int64_t> elements_received() const;      // per rank, from other ranks
  int64_t num_copies() const;
  // "assign: 1234 elements across ranks, 567 local, 89 copies; max per rank sent 100,
  // received 120"
  std::string summary() const;
};

// Errors: layouts of different world sizes, blocks with mismatched columns inside a tensor, an
// element with no source (kAssign: a dst element no src tensor holds; kAccumulate: a dst element
// no counting src tensor contributes to, or a counting src element with no owner in dst) or with
// several (kAssign: src holds it twice; kAccumulate: dst holds it twice). Each message names the
// rank, the local tensor, its parameter index and the element.
core::StatusOr<ReshardPlan> make_reshard_plan(const Layout& src, const Layout& dst,
                                              ReshardMode mode);

// Reference executor (tests, docs): data[rank][tensor] is the row-major rows() × cols() storage
// of that local tensor. dst_data is resized to dst's shapes; with kAssign it starts as NaN (so an
// unwritten element shows), with kAccumulate as 0.
void execute_reshard(const ReshardPlan& plan, const Layout& src, const Layout& dst,
                     const std::vector<std::vector<std::vector<float>>>& src_data,
                     std::vector<std::vector<std::vector<float>>>& dst_data, ReshardMode mode);

}  // namespace hydraulis::parallel
